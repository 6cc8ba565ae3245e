"""A model card for the distilled email router, written from measured results only (introduced in lesson 05).

"It's distilled" says nothing about where a student is worse. The card says what the student
is for, where it came from, what it was trained to keep and what it was allowed to lose, each
beside the teacher's number. Every number is read from the results (a dict, or the JSON file
lesson 05 writes); none is typed here, so a re-run can never leave the card out of date, and
a missing measurement is printed as "not measured" rather than guessed.

Results layout (every key optional)::

    {"router": {
        "teacher": {"accuracy", "accuracy_paraphrased", "ms_per_email_batch1", "cpu_s_per_million", "params"},
        "student": {... the same keys ...},            # as lesson 04 records them
        "agreement": float, "topk_agreement": {"2": float, ...},
        "ece": {"teacher", "student", "student_scaled"}, "temperature_scaling": float,
        "mcnemar_p": float, "mcnemar": {"student_only_errors", "teacher_only_errors"},
        "cascade": {"threshold", "share_to_teacher", "accuracy", "teacher_accuracy", "cpu_s_per_million"},
        "slices": {name: {"n", "student_accuracy", "student_ci", "teacher_accuracy", "agreement",
                          "accuracy_gap", "gap_ci"}}   # or evaluate.slice_metrics's list of dicts
        "failures": [{"text", "label", "student", "teacher", "student_confidence"}, ...],
        "needs_person": {"emails", "flagged", "teacher_right_queue", "student_right_queue"}},
     "mnist": {any scalars, listed as they are},
     "lineage": {"teacher_encoder", "teacher_sha256", "teacher_recipe", "student_architecture",
                 "data_seed", "generator_seed", "transfer_set_size", "temperature", "alpha",
                 "epochs", "queues": [names], ... any further keys are listed too}}
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
    """A measured value as table text: 4 significant digits, whole numbers above 1000, intervals as 'a to b'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_MEASURED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            return f"{_fmt(value[0])} to {_fmt(value[1])}"
        return ", ".join(_fmt(v) for v in value) if value else NOT_MEASURED
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_fmt(cell) for cell in row) + " |"
                    for row in rows]


def _slices(router: dict) -> list[dict]:
    slices = _get(router, "slices")
    if isinstance(slices, dict):
        return [{"name": name, **(metrics if isinstance(metrics, dict) else {})} for name, metrics in slices.items()]
    return [row for row in slices if isinstance(row, dict)] if isinstance(slices, list) else []


def _intended_use(router: dict, lineage: dict) -> list[str]:
    queues = _get(lineage, "queues") or _get(router, "queues")
    threshold = _get(router, "cascade", "threshold")
    lines = ["## Intended use", "",
             "Bounded routing: the student reads a customer email and picks the support queue "
             f"({_fmt(queues) if queues else 'the queues it was trained on'}). "
             "It replaces the teacher on the traffic it is confident about and hands the rest over."]
    if threshold is not None:
        lines.append(f"Emails whose top student probability is below {_fmt(threshold)} go to the teacher "
                     f"(share of the measured emails sent there: {_fmt(_get(router, 'cascade', 'share_to_teacher'))}).")
    lines += ["", "## Out-of-scope uses", "",
              "- Any label outside its queues, and any decision about a customer (refunds, account closures, "
              "fraud verdicts): it routes, a person or the teacher decides.",
              "- Long policy complaints and sensitive escalations: the student was never asked to keep the "
              "teacher's judgement there (see the slices and failures below).",
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
        ["accuracy on the test emails (share correct)", teacher.get("accuracy", _get(router, "cascade", "teacher_accuracy")),
         student.get("accuracy", _get(router, "student_accuracy")), "preserve"],
        ["accuracy on paraphrased emails", teacher.get("accuracy_paraphrased"), student.get("accuracy_paraphrased"),
         "preserve"],
        ["agreement with the teacher (same queue)", "-", _get(router, "agreement"), "preserve"],
    ]
    for k, value in sorted((_get(router, "topk_agreement") or {}).items()):
        rows.append([f"teacher's queue within the student's top {k}", "-", value, "preserve"])
    rows += [
        ["paired test of errors (McNemar, exact p)", "-", _get(router, "mcnemar_p"),
         "a small p means the error rates differ"],
        ["calibration error (ECE)", ece.get("teacher"), ece.get("student"), "allowed to lose: repaired afterwards"],
        ["calibration error after temperature scaling", "-", ece.get("student_scaled"),
         f"temperature {_fmt(_get(router, 'temperature_scaling'))}"],
        ["latency (ms per email, one at a time)", teacher.get("ms_per_email_batch1"),
         student.get("ms_per_email_batch1"), "gained"],
        ["cost (CPU-seconds per million emails)", teacher.get("cpu_s_per_million"),
         student.get("cpu_s_per_million"), "gained"],
        ["parameters", teacher.get("params"), student.get("params"), "gained"],
    ]
    return ["## What the student was trained to preserve, and what it was allowed to lose", "",
            "Trained to preserve: the teacher's queue decision on ordinary traffic, learnt from its soft "
            "probabilities. Allowed to lose: calibration (repaired by temperature scaling) and judgement "
            "on rare, long or sensitive emails (sent to the teacher by the cascade). Gained: speed and cost.",
            "", *_table(["measure", "teacher", "student", "what we asked"], rows), ""]


def _slice_table(router: dict) -> list[str]:
    slices = _slices(router)
    lines = ["## Per slice (queue, edge-case tag, length, paraphrase)", ""]
    if not slices:
        return lines + [f"Per-slice results: {NOT_MEASURED}.", ""]
    rows = [[row.get("name"), row.get("n"), row.get("teacher_accuracy"), row.get("student_accuracy"),
             row.get("student_ci"), row.get("agreement"), row.get("accuracy_gap"), row.get("gap_ci")]
            for row in slices]
    header = ["slice", "emails", "teacher accuracy", "student accuracy", "student interval (Wilson)",
              "agreement", "gap (teacher - student)", "gap interval (paired bootstrap)"]
    return lines + _table(header, rows) + ["", "A small slice has a wide interval: read the interval, not "
                                           "only the point.", ""]


def _cascade(router: dict) -> list[str]:
    cascade = _get(router, "cascade")
    lines = ["## Cascade to the teacher", ""]
    if not isinstance(cascade, dict):
        return lines + [f"Cascade: {NOT_MEASURED}.", ""]
    rows = [[cascade.get("threshold"), cascade.get("share_to_teacher"), cascade.get("accuracy"),
             cascade.get("teacher_accuracy"), cascade.get("cpu_s_per_million")]]
    header = ["threshold (student top probability)", "share sent to the teacher", "cascade accuracy",
              "teacher alone accuracy", "CPU-seconds per million emails"]
    return lines + _table(header, rows) + [""]


def _needs_person(router: dict) -> list[str]:
    """Escalations (legal threats, vulnerable or bereaved customers): routed, never flagged for a person."""
    escalations = _get(router, "needs_person")
    if not isinstance(escalations, dict):
        return []
    rows = [["emails that need a person (edge-case suite)", escalations.get("emails")],
            ["flagged for a person by the student", escalations.get("flagged")],
            ["routed to the expected queue by the teacher (share)", escalations.get("teacher_right_queue")],
            ["routed to the expected queue by the student (share)", escalations.get("student_right_queue")]]
    return ["## Escalations", "",
            "Legal threats, vulnerable and bereaved customers need a person whatever the queue. Neither model "
            "was trained to flag them: a queue is all they can give.", "",
            *_table(["measure", "value"], rows), ""]


def _failures(router: dict, max_failures: int) -> list[str]:
    failures = _get(router, "failures") or _get(router, "failure_examples")
    lines = ["## Known failures", ""]
    if not failures:
        return lines + [f"Failure examples: {NOT_MEASURED}.", ""]
    rows = [[textwrap.shorten(str(f.get("text", "")), 160, placeholder=" ..."), f.get("label"), f.get("student"),
             f.get("student_confidence"), f.get("teacher")] for f in failures[:max_failures] if isinstance(f, dict)]
    return lines + _table(["email", "true queue", "student", "student confidence", "teacher"], rows) + [""]


def _mnist(mnist: Any) -> list[str]:
    if not isinstance(mnist, dict) or not mnist:
        return []
    rows = [[key.replace("_", " "), value] for key, value in mnist.items()
            if value is None or isinstance(value, (int, float, str))
            or (isinstance(value, list) and all(isinstance(v, (int, float)) for v in value))]
    return ["## The same checks on MNIST", "", *_table(["measure", "value"], rows), ""]


def build_model_card(results: dict | str | Path, *, title: str = "Model card: the distilled email router",
                     max_failures: int = 5) -> str:
    """Markdown model card from measured ``results`` (a dict, or a path to its JSON file) (introduced in lesson 05).

    Sections: intended use (bounded routing) and out-of-scope uses; lineage; what the student
    was trained to preserve and allowed to lose, beside the teacher; per-slice results with
    intervals; the cascade; known failures; MNIST if given. Every number comes from ``results``
    (see the module docstring for the layout); anything missing reads "not measured".
    """
    if isinstance(results, (str, Path)):
        results = json.loads(Path(results).read_text())
    if not isinstance(results, dict):
        raise ValueError(f"results must be a dict or a path to a JSON file, got {type(results).__name__}")
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
