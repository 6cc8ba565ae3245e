"""A model card for the distilled email router, written from measured results only (introduced in lesson 05).

"It's distilled" says nothing about where a student is worse. The card says what the student
is for, where it came from, what it was trained to keep and what it was allowed to lose, each
beside the teacher's number. Every number is read from the results (a dict, or the JSON file
lesson 05 writes); none is typed here, so a re-run can never leave the card out of date, and
a missing measurement is printed as "not measured" rather than guessed. Shares print as
percentages, counts with thousands separators, and every row has a label written for its reader.

Results layout (every key optional)::

    {"router": {
        "teacher": {"accuracy", "accuracy_paraphrased", "ms_per_email_batch1", "cpu_s_per_million", "params"},
        "student": {... the same keys ...},            # as lesson 04 records them
        "agreement": float, "topk_agreement": {"2": float, ...},
        "ece": {"teacher", "student", "student_scaled"}, "temperature_scaling": float,
        "mcnemar_p": float, "mcnemar": {"student_only_errors", "teacher_only_errors"},
        "cascade": {"threshold", "share_to_teacher", "accuracy", "teacher_accuracy", "student_accuracy",
                    "cpu_s_per_million", "edge_share_to_teacher", "needs_person_share_to_teacher"},
        "slices": {name: {"n", "student_accuracy", "student_ci", "teacher_accuracy", "agreement",
                          "accuracy_gap", "gap_ci"}}   # or evaluate.slice_metrics's list of dicts
        "failures": [{"text", "label", "student", "teacher", "student_confidence",
                      "mixture": {queue: share}}, ...],
        "needs_person": {"emails", "flagged", "teacher_right_queue", "student_right_queue"}},
     "mnist": {any scalars, listed as they are},
     "lineage": {"teacher_encoder", "teacher_sha256", "teacher_recipe", "student_architecture",
                 "data_seed", "generator_seed", "transfer_set_size", "temperature", "alpha",
                 "epochs", "queues": [names], ... any further keys are listed too}}

The router tool's ``report.json`` (``python -m course_lib.router build``: top-level ``labels``,
``traffic_rows``, ``teacher``, ``student``, ``cascade``, ...) is read too: it is mapped onto this layout first.
"""
from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

NOT_MEASURED = "not measured"

LINEAGE_FIELDS = [
    ("teacher_encoder", "teacher encoder"),
    ("teacher_sha256", "teacher weights (sha256)"),
    ("teacher_recipe", "teacher recipe"),
    ("student_architecture", "student architecture"),
    ("data_seed", "data seed"),
    ("generator_seed", "email generator seed"),
    ("transfer_set_size", "transfer set (emails the teacher labelled)"),
    ("temperature", "target temperature of the soft targets"),
    ("alpha", "weight of the soft-target loss (alpha)"),
    ("epochs", "student training epochs"),
]


def _get(mapping: Any, *path: str) -> Any:
    """``mapping[path[0]][path[1]]...``, or None where any step is missing."""
    for key in path:
        if not isinstance(mapping, dict) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def _fmt(value: Any) -> str:
    """A measured value as table text: 4 significant digits, thousands separators, intervals as 'a to b'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_MEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            return f"{_fmt(value[0])} to {_fmt(value[1])}"
        return ", ".join(_fmt(v) for v in value) if value else NOT_MEASURED
    return str(value).replace("|", "\\|").replace("\n", " ")


class Pct(float):
    """A share (0-1) printed as a percentage with two decimals: 0.9545 -> '95.45%'."""


class Points(float):
    """A difference of two shares printed in percentage points: 0.0329 -> '+3.29 points'."""


def _pct(value: Any) -> Any:
    return Pct(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _cell(value: Any) -> str:
    """Table text for a cell: :class:`Pct` and :class:`Points` (alone or as an interval) read as percentages."""
    if isinstance(value, Pct) and not math.isnan(value):
        return f"{100 * value:.2f}%"
    if isinstance(value, Points) and not math.isnan(value):
        return f"{100 * value:+.2f} points"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, Pct) for v in value):
        return f"{_cell(value[0])} to {_cell(value[1])}"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, Points) for v in value):
        return f"{100 * value[0]:+.2f} to {100 * value[1]:+.2f} points"
    return _fmt(value)


def _interval(value: Any, kind: type) -> Any:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return (kind(value[0]), kind(value[1]))
    return value


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(cell) for cell in row) + " |"
                    for row in rows]


def _slices(router: dict) -> list[dict]:
    slices = _get(router, "slices")
    if isinstance(slices, dict):
        return [{"name": name, **(metrics if isinstance(metrics, dict) else {})} for name, metrics in slices.items()]
    return [row for row in slices if isinstance(row, dict)] if isinstance(slices, list) else []


def _share(value: Any) -> str:
    return _cell(_pct(value))


def _edge_slice(router: dict, tag: str) -> dict:
    return next((row for row in _slices(router) if row.get("name") in (f"edge: {tag}", tag)), {})


def _escalation_sentence(router: dict) -> str:
    """What happens to emails that need a person, from the measured shares (never a promise)."""
    person = _get(router, "cascade", "needs_person_share_to_teacher")
    edge = _get(router, "cascade", "edge_share_to_teacher")
    if person is None:
        return ("Neither model can flag an email for a person (neither has such an output); how many of them the "
                f"cascade sends to the teacher: {NOT_MEASURED}.")
    return ("Neither model can flag an email for a person (neither has such an output), and the cascade sends "
            f"{'only ' if person < 0.5 else ''}{_share(person)} of the emails that need one to the teacher "
            f"({_share(edge)} of all edge cases): "
            "the student is confident on the rest, and the teacher could not flag them either.")


def _intended_use(router: dict, lineage: dict) -> list[str]:
    queues = _get(lineage, "queues") or _get(router, "queues")
    threshold = _get(router, "cascade", "threshold")
    lines = ["## Intended use", "",
             "Bounded routing: the student reads a customer email and picks the support queue "
             f"({_fmt(queues) if queues else 'the queues it was trained on'}). "
             "It replaces the teacher on the traffic it is confident about and hands the rest over."]
    if threshold is not None:
        lines.append(f"Emails whose top student probability (after temperature scaling) is below {_fmt(threshold)} "
                     f"go to the teacher: {_share(_get(router, 'cascade', 'share_to_teacher'))} of the test emails.")
    long_policy = _edge_slice(router, "long_policy")
    long_line = "- Long policy complaints with the request buried inside"
    if long_policy:
        long_line += (f": both models route them poorly (edge-case suite: teacher {_share(long_policy.get('teacher_accuracy'))}, "
                      f"student {_share(long_policy.get('student_accuracy'))} of {_fmt(long_policy.get('n'))} emails).")
    else:
        long_line += f": {NOT_MEASURED}."
    lines += ["", "## Out-of-scope uses", "",
              "- Any label outside its queues, and any decision about a customer (refunds, account closures, "
              "fraud verdicts): it routes, a person or the teacher decides.",
              "- Sensitive escalations (legal threats, vulnerable or bereaved customers) that need a person: "
              f"the student routes {_share(_get(router, 'needs_person', 'student_right_queue'))} of them to the "
              f"expected queue (the teacher {_share(_get(router, 'needs_person', 'teacher_right_queue'))}), "
              "but routing is not escalation. " + _escalation_sentence(router),
              long_line,
              "- Languages, products or email styles absent from its transfer set.",
              "- Use without the cascade: its confident mistakes are listed below.", ""]
    return lines


def _lineage(lineage: dict) -> list[str]:
    rows = [[label, _get(lineage, key) if _get(lineage, key) is not None else "not recorded"]
            for key, label in LINEAGE_FIELDS]
    known = {key for key, _ in LINEAGE_FIELDS} | {"queues"}
    rows += [[key.replace("_", " "), value] for key, value in lineage.items() if key not in known]
    return ["## Lineage", "", *_table(["what", "value"], rows), ""]


def _preserve_and_lose(router: dict) -> list[str]:
    teacher, student = _get(router, "teacher") or {}, _get(router, "student") or {}
    ece = _get(router, "ece") or {}
    rows = [
        ["accuracy on the test emails", _pct(teacher.get("accuracy", _get(router, "cascade", "teacher_accuracy"))),
         _pct(student.get("accuracy", _get(router, "cascade", "student_accuracy"))), "preserve"],
        ["accuracy on paraphrased emails", _pct(teacher.get("accuracy_paraphrased")),
         _pct(student.get("accuracy_paraphrased")), "preserve"],
        ["agreement with the teacher (same queue)", "-", _pct(_get(router, "agreement")), "preserve"],
    ]
    for k, value in sorted((_get(router, "topk_agreement") or {}).items()):
        rows.append([f"teacher's queue within the student's top {k}", "-", _pct(value), "preserve"])
    rows += [
        ["paired test of errors (McNemar, exact p)", "-", _get(router, "mcnemar_p"),
         "a small p means the error rates differ"],
        ["calibration error (ECE, lower is better)", ece.get("teacher"), ece.get("student"),
         "allowed to lose: repaired afterwards"],
        ["calibration error after temperature scaling", ece.get("teacher_scaled", "-"), ece.get("student_scaled"),
         f"student's temperature {_fmt(_get(router, 'temperature_scaling'))}"],
        ["latency (ms per email, one at a time)", teacher.get("ms_per_email_batch1"),
         student.get("ms_per_email_batch1"), "gained"],
        ["cost (CPU-seconds per million emails)", teacher.get("cpu_s_per_million"),
         student.get("cpu_s_per_million"), "gained"],
        ["parameters", teacher.get("params"), student.get("params"), "gained"],
    ]
    return ["## What the student was trained to preserve, and what it was allowed to lose", "",
            "Trained to preserve: the teacher's queue decision on ordinary traffic, learnt from its soft "
            "probabilities. Allowed to lose: calibration (repaired by temperature scaling). Gained: speed and cost. "
            "Never asked of either model: escalation to a person. " + _escalation_sentence(router),
            "", *_table(["measure", "teacher", "student", "what we asked"], rows), ""]


def _slice_table(router: dict) -> list[str]:
    slices = _slices(router)
    lines = ["## Per slice (queue, edge-case tag, length, paraphrase)", ""]
    if not slices:
        return lines + [f"Per-slice results: {NOT_MEASURED}.", ""]
    rows = [[str(row.get("name")).replace("edge: ", "edge case: ").replace("_", " "), row.get("n"),
             _pct(row.get("teacher_accuracy")), _pct(row.get("student_accuracy")),
             _interval(row.get("student_ci"), Pct), _pct(row.get("agreement")),
             Points(row["accuracy_gap"]) if isinstance(row.get("accuracy_gap"), (int, float)) else row.get("accuracy_gap"),
             _interval(row.get("gap_ci"), Points)]
            for row in slices]
    header = ["slice", "emails", "teacher accuracy", "student accuracy", "student interval (Wilson)",
              "agreement", "gap (teacher minus student)", "gap interval (paired bootstrap)"]
    return lines + _table(header, rows) + ["", "A small slice has a wide interval: read the interval, not "
                                           "only the point.", ""]


def _cascade(router: dict) -> list[str]:
    cascade = _get(router, "cascade")
    lines = ["## Cascade to the teacher", ""]
    if not isinstance(cascade, dict):
        return lines + [f"Cascade: {NOT_MEASURED}.", ""]
    rows = [["threshold (student's top probability, after temperature scaling)", cascade.get("threshold")],
            ["share of the test emails sent to the teacher", _pct(cascade.get("share_to_teacher"))],
            ["share of the edge cases sent to the teacher", _pct(cascade.get("edge_share_to_teacher"))],
            ["share of the emails that need a person sent to the teacher",
             _pct(cascade.get("needs_person_share_to_teacher"))],
            ["cascade accuracy on test", _pct(cascade.get("accuracy"))],
            ["teacher alone, accuracy on test", _pct(cascade.get("teacher_accuracy"))],
            ["student alone, accuracy on test", _pct(cascade.get("student_accuracy"))],
            ["cascade cost (CPU-seconds per million emails)", cascade.get("cpu_s_per_million")]]
    return lines + _table(["measure", "value"], rows) + [
        "", "The threshold was chosen on validation. The cascade hands over the emails the student is unsure of; "
        "a sensitive email the student is sure of stays with the student.", ""]


def _needs_person(router: dict) -> list[str]:
    """Escalations (legal threats, vulnerable or bereaved customers): routed, never flagged for a person."""
    escalations = _get(router, "needs_person")
    if not isinstance(escalations, dict):
        return []
    rows = [["emails that need a person (edge-case suite)", escalations.get("emails")],
            ["routed to the expected queue by the teacher", _pct(escalations.get("teacher_right_queue"))],
            ["routed to the expected queue by the student", _pct(escalations.get("student_right_queue"))],
            ["sent to the teacher by the cascade", _pct(_get(router, "cascade", "needs_person_share_to_teacher"))],
            ["flagged for a person", "neither model can: it has no such output"]]
    return ["## Escalations", "",
            "Legal threats, vulnerable and bereaved customers need a person whatever the queue. Neither model "
            "was trained to flag them: a queue is all they can give.", "",
            *_table(["measure", "value"], rows), ""]


def _mixture_text(mixture: Any) -> str:
    if not isinstance(mixture, dict) or not mixture:
        return NOT_MEASURED
    return ", ".join(f"{name} {_share(weight)}" for name, weight in sorted(mixture.items(), key=lambda kv: -kv[1]))


def _failures(router: dict, max_failures: int) -> list[str]:
    failures = _get(router, "failures") or _get(router, "failure_examples")
    lines = ["## Known failures", ""]
    if not failures:
        return lines + [f"Failure examples: {NOT_MEASURED}.", ""]
    shown = [f for f in failures[:max_failures] if isinstance(f, dict)]
    rows = [[textwrap.shorten(str(f.get("text", "")), 160, placeholder=" ..."), f.get("label"), f.get("student"),
             _pct(f.get("student_confidence")), f.get("teacher")] for f in shown]
    header = ["email", "true queue", "student", "student confidence", "teacher"]
    with_mixture = [f for f in shown if isinstance(f.get("mixture"), dict)]
    if with_mixture:
        for row, f in zip(rows, shown):
            row.append(_mixture_text(f.get("mixture")))
        header.append("the email's intents (its label is the largest)")
        mixed = sum(len(f["mixture"]) > 1 for f in with_mixture)
        own = sum(f.get("student") in f["mixture"] for f in with_mixture)
        lines += [f"The student's most confident mistakes. {mixed} of these {len(with_mixture)} are mixed emails, "
                  f"and in {own} the student chose one of the email's own intents: a mixed email is labelled by its "
                  "largest share, so these are partly a labelling-policy question (which intent should win?), "
                  "not only routing errors.", ""]
    return lines + _table(header, rows) + [""]


MNIST_LABELS = {
    "teacher_errors": "teacher: test errors",
    "student_errors": "distilled student: test errors",
    "baseline_errors": "baseline student (true labels only): test errors",
    "student_agreement": "distilled student: agreement with the teacher",
    "student_topk_agreement_2": "distilled student: teacher's digit within its top 2",
    "baseline_agreement": "baseline: agreement with the teacher",
    "mcnemar_p": "distilled student vs teacher: McNemar exact p",
    "ece_teacher": "teacher: calibration error (ECE, lower is better)",
    "ece_student": "distilled student: ECE as trained",
    "ece_student_scaled": "distilled student: ECE after temperature scaling",
    "ece_baseline": "baseline: ECE as trained",
    "ece_baseline_scaled": "baseline: ECE after temperature scaling",
    "temperature_student": "distilled student: fitted temperature (above 1: over-confident)",
    "temperature_baseline": "baseline: fitted temperature",
    "student_training_temperature": "distilled student: temperature it was trained at",
    "student_epochs": "students' training epochs (a shorter schedule than lesson 02's)",
}
MNIST_SHARES = {"student_agreement", "student_topk_agreement_2", "baseline_agreement"}


def _mnist(mnist: Any) -> list[str]:
    if not isinstance(mnist, dict) or not mnist:
        return []
    rows = [[MNIST_LABELS.get(key, key.replace("_", " ")), _pct(value) if key in MNIST_SHARES else value]
            for key, value in mnist.items()
            if value is None or isinstance(value, (int, float, str))
            or (isinstance(value, list) and all(isinstance(v, (int, float)) for v in value))]
    return ["## The same checks on MNIST", "", *_table(["measure", "value"], rows), ""]


def _from_router_tool(report: dict) -> dict:
    """The router tool's ``report.json`` (:mod:`course_lib.router.tool`) in the layout above."""
    teacher, student = report.get("teacher") or {}, report.get("student") or {}
    cascade, mcnemar = report.get("cascade") or {}, report.get("mcnemar") or {}

    def model(row: dict) -> dict:
        return {"accuracy": row.get("test_accuracy"), **{k: row.get(k) for k in
                                                         ("ms_per_email_batch1", "cpu_s_per_million", "params")}}

    router = {"queues": report.get("labels"), "teacher": model(teacher), "student": model(student),
              "agreement": student.get("agreement_with_teacher"), "ece": report.get("ece"),
              "temperature_scaling": _get(report, "temperature_scaling", "student"),
              "mcnemar_p": mcnemar.get("p_value"),
              "mcnemar": {k: v for k, v in mcnemar.items() if k != "p_value"},
              "cascade": {"threshold": cascade.get("threshold"), "share_to_teacher": cascade.get("share_to_teacher"),
                          "accuracy": cascade.get("test_accuracy"), "teacher_accuracy": teacher.get("test_accuracy"),
                          "student_accuracy": student.get("test_accuracy"),
                          "cpu_s_per_million": cascade.get("cpu_s_per_million")},
              "slices": [{**row, "name": f"class {row.get('name')}"} for row in report.get("per_class") or []
                         if isinstance(row, dict)],
              "failures": report.get("confident_mistakes")}
    lineage = {"teacher_encoder": _get(report, "teacher_encoder", "name"),
               "teacher_sha256": _get(report, "teacher_encoder", "sha256"),
               "teacher_recipe": f"{teacher.get('kind')} encoder + head, chosen on validation"
               if teacher.get("kind") else None,
               "student_architecture": student.get("architecture"), "data_seed": report.get("split_seed"),
               "transfer_set_size": report.get("traffic_rows"), "temperature": student.get("target_temperature"),
               "alpha": 1.0 if student else None, "epochs": student.get("epochs"),
               "queues": report.get("labels"), "labelled_rows_(train,_validation,_test)":
               [_get(report, "split", k) for k in ("train", "validation", "test")] if report.get("split") else None}
    return {"router": router, "lineage": {k: v for k, v in lineage.items() if v is not None or k in dict(LINEAGE_FIELDS)}}


def build_model_card(results: dict | str | Path, *, title: str = "Model card: the distilled email router",
                     max_failures: int = 5) -> str:
    """Markdown model card from measured ``results`` (a dict, or a path to its JSON file) (introduced in lesson 05).

    Sections: intended use (bounded routing) and out-of-scope uses; lineage; what the student
    was trained to preserve and allowed to lose, beside the teacher; per-slice results with
    intervals; the cascade; known failures; MNIST if given. Every number comes from ``results``
    (see the module docstring for the layout); anything missing reads "not measured".
    """
    if isinstance(results, (str, Path)):
        source = Path(results)
        if not source.is_file():
            raise ValueError(f"{source}: no such results file (run lesson 05 in full mode to write it)")
        try:
            results = json.loads(source.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{source} is not valid JSON ({exc}): re-run the lesson that writes it, or restore it "
                             "from the repository (git checkout -- results/)") from None
    if not isinstance(results, dict):
        raise ValueError(f"results must be a dict or a path to a JSON file, got {type(results).__name__}")
    if "router" not in results and "labels" in results and "traffic_rows" in results:
        results = _from_router_tool(results)  # the router tool's report.json
    router: dict = results.get("router") or {}
    lineage: dict = results.get("lineage") or {}
    lines = [f"# {title}", ""]
    lines += _intended_use(router, lineage)
    lines += _lineage(lineage)
    lines += _preserve_and_lose(router)
    lines += _slice_table(router)
    lines += _cascade(router)
    lines += _needs_person(router)
    lines += _failures(router, max_failures)
    lines += _mnist(results.get("mnist"))
    return "\n".join(lines).rstrip() + "\n"


def write_model_card(results: dict | str | Path, path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`build_model_card`'s Markdown to ``path`` and return the path."""
    path = Path(path)
    path.write_text(build_model_card(results, **kwargs))
    return path
