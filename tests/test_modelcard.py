"""The lesson-05 model card: every number it prints is read from the results, none is typed."""
import json
import re

import numpy as np
import pytest

from course_lib import evaluate
from course_lib.modelcard import NOT_MEASURED, build_model_card, write_model_card

NUMBER = re.compile(r"(?<![\w.,])[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\w)|(?<![\w.,])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?!\w)")


def numbers_in_card(card: str) -> list[str]:
    """Every number in the card, thousands separators removed ("12,511" -> "12511")."""
    return [token.replace(",", "") for token in NUMBER.findall(card)]


def numbers_in_results(value, found=None) -> list[float]:
    """Every number in the results: numeric values, numeric keys, and numbers written inside strings."""
    found = [] if found is None else found
    if isinstance(value, dict):
        for key, item in value.items():
            numbers_in_results(key, found)
            numbers_in_results(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            numbers_in_results(item, found)
    elif isinstance(value, str):
        found.extend(float(token) for token in NUMBER.findall(value))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        found.append(float(value))
    return found


def measured_results():
    gen = np.random.default_rng(23)
    labels = gen.integers(0, 5, size=240)
    teacher = np.eye(5)[np.where(gen.random(240) < 0.93, labels, (labels + 1) % 5)] * 0.83 + 0.034
    spread = gen.uniform(0.3, 0.95, size=(240, 1))
    student = np.eye(5)[np.where(gen.random(240) < 0.87, labels, (labels + 2) % 5)] * spread + (1 - spread) / 5
    names = np.array(["billing", "delivery", "refund", "fraud", "account"])[labels].tolist()
    names[:3] = ["long policy complaint"] * 3
    slices = evaluate.slice_metrics(student, teacher, labels, names, n_boot=200, seed=4)
    cascade = evaluate.cascade_curve(student, teacher, labels, [0.7345], student_cost=1.306e-5,
                                     teacher_cost=0.0125)[0]
    return {
        "router": {
            "teacher": {"accuracy": 0.9545, "accuracy_paraphrased": 0.93096, "ms_per_email_batch1": 18.9737,
                        "cpu_s_per_million": 12511.3766, "params": 22715526},
            "student": {"accuracy": 0.9355, "accuracy_paraphrased": 0.90863, "ms_per_email_batch1": 0.257814,
                        "cpu_s_per_million": 13.5015, "params": 196686},
            "agreement": evaluate.agreement(student, teacher),
            "topk_agreement": {"2": evaluate.topk_agreement(student, teacher, 2)},
            "ece": {"teacher": 0.04127, "student": 0.08391, "student_scaled": 0.02263},
            "temperature_scaling": 1.4372,
            "mcnemar_p": evaluate.mcnemar(student, teacher, labels)["p_value"],
            "cascade": {**cascade, "teacher_accuracy": 0.9545},
            "slices": {row.pop("name"): row for row in slices},
            "failures": [{"text": "Order 40417 was charged twice | and the refund form rejects my card ending 3318",
                          "label": "refund", "student": "billing", "student_confidence": 0.9127,
                          "teacher": "refund"}],
            "needs_person": {"emails": 72, "flagged": 0, "teacher_right_queue": 0.7083, "student_right_queue": 0.8194},
        },
        "mnist": {"teacher_errors": 61, "student_errors": 73, "baseline_errors": [152, 171, 156]},
        "lineage": {"teacher_encoder": "sentence-transformers/all-MiniLM-L6-v2",
                    "teacher_sha256": "9f3a" + "c0de" * 15, "data_seed": 17, "generator_seed": 29,
                    "transfer_set_size": 20000, "temperature": 0.25, "alpha": 0.9,
                    "queues": ["billing", "delivery", "refund", "fraud", "account"]},
    }


def assert_every_number_traced(card: str, results: dict) -> int:
    allowed = numbers_in_results(results)
    tokens = numbers_in_card(card)
    percents = [100 * v for v in allowed]          # shares are printed as percentages (gaps in points), 2 decimals
    for token in tokens:
        value = float(token)
        assert (any(abs(value - v) <= 5e-4 * abs(v) + 1e-12 for v in allowed)
                or any(abs(value - v) <= 0.005 + 1e-9 for v in percents)), f"{token} is not in the results"
    return len(tokens)


def test_every_number_in_the_card_comes_from_the_results(tmp_path):
    results = measured_results()
    card = build_model_card(results)
    assert assert_every_number_traced(card, results) > 40
    path = tmp_path / "lesson05.json"
    path.write_text(json.dumps(results))
    from_file = build_model_card(path)
    assert from_file == build_model_card(json.loads(path.read_text()))
    assert_every_number_traced(from_file, json.loads(path.read_text()))
    assert "nan" not in card.lower()


def test_card_sections_and_measured_values_appear():
    results = measured_results()
    card = build_model_card(results)
    for heading in ["## Intended use", "## Out-of-scope uses", "## Lineage",
                    "## What the student was trained to preserve, and what it was allowed to lose",
                    "## Per slice", "## Cascade to the teacher", "## Escalations", "## Known failures",
                    "## The same checks on MNIST"]:
        assert heading in card
    assert results["lineage"]["teacher_sha256"] in card
    assert "long policy complaint" in card and "0.7345" in card and "12,511" in card
    assert "Order 40417 was charged twice \\| and" in card             # the pipe cannot break the table
    # a changed measurement changes the card: nothing is typed in
    results["router"]["ece"]["student"] = 0.1234
    assert "0.1234" in build_model_card(results) and "0.08391" not in build_model_card(results)


def test_missing_measurements_read_not_measured_and_no_number_is_invented():
    card = build_model_card({})
    assert NOT_MEASURED in card and "not recorded" in card
    assert numbers_in_card(card) == []
    partial = build_model_card({"router": {"agreement": 0.9418}, "lineage": {"temperature": 0.5}})
    assert sorted(numbers_in_card(partial)) == ["0.5", "94.18"]
    with pytest.raises(ValueError, match="dict"):
        build_model_card([1, 2])


def test_write_model_card(tmp_path):
    path = write_model_card(measured_results(), tmp_path / "MODEL_CARD.md", max_failures=1)
    text = path.read_text()
    assert text.startswith("# Model card") and text == build_model_card(measured_results(), max_failures=1)


def results_with_escalations():
    results = measured_results()
    results["router"]["cascade"].update(edge_share_to_teacher=0.2811, needs_person_share_to_teacher=0.0972)
    results["router"]["failures"][0]["mixture"] = {"refund": 0.5, "billing": 0.3, "fraud": 0.2}
    results["router"]["failures"].append({"text": "please block my card, suspicious activity; and I forgot my username",
                                          "label": "account", "student": "fraud", "student_confidence": 0.998,
                                          "teacher": "account", "mixture": {"account": 0.55, "fraud": 0.45}})
    results["mnist"].update(ece_student_scaled=0.004167, student_agreement=0.9835)
    return results


def test_card_is_written_for_its_reader():
    """Issue 22: percentages, thousands separators, labels instead of raw key names."""
    results = results_with_escalations()
    card = build_model_card(results)
    assert "| accuracy on the test emails | 95.45% | 93.55% |" in card
    assert "22,715,526" in card and "196,686" in card and "12,511" in card
    assert "0.9545" not in card and "22715526" not in card
    for raw in ["ece student scaled", "ece_student_scaled", "student agreement |", "mcnemar p |", "topk"]:
        assert raw not in card
    assert "distilled student: ECE after temperature scaling | 0.004167" in card
    assert "distilled student: agreement with the teacher | 98.35%" in card
    assert assert_every_number_traced(card, results) > 40


def test_card_states_what_the_cascade_does_with_the_sensitive_emails():
    """Issue 22: both shares are in the card, and no sentence says the cascade catches the sensitive emails."""
    card = build_model_card(results_with_escalations())
    assert "share of the emails that need a person sent to the teacher | 9.72%" in card
    assert "share of the edge cases sent to the teacher | 28.11%" in card
    assert "only 9.72% of the emails that need one to the teacher (28.11% of all edge cases)" in card
    assert "sent to the teacher by the cascade)" not in card
    assert "never asked to keep the teacher's judgement" not in card
    assert "Neither model can flag an email for a person" in card
    without = measured_results()                       # not measured: said so, nothing promised
    assert f"the cascade sends to the teacher: {NOT_MEASURED}" in build_model_card(without)


def test_known_failures_name_the_labelling_policy_question():
    card = build_model_card(results_with_escalations())
    assert ("2 of these 2 are mixed emails, and in 2 the student chose one of the email's own intents" in card)
    assert "labelling-policy question" in card and "account 55.00%, fraud 45.00%" in card


def test_recorded_card_is_current_and_traced():
    """results/model_card_router.md is the card of results/lesson05.json, and every number in it is in that file."""
    from course_lib import config

    path = config.results_dir() / "lesson05.json"
    recorded = json.loads(path.read_text())
    card = build_model_card(path)
    assert (config.results_dir() / "model_card_router.md").read_text() == card
    assert assert_every_number_traced(card, recorded) > 100
    assert "needs_person" not in card and "edge_share" not in card
