"""What the instructor reads: the gradebook (CSV), per-student feedback, the class report."""
from __future__ import annotations

import csv
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .replay import ExerciseResult

#: A CSV cell starting with one of these is a formula to a spreadsheet: it gets a leading quote.
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n")


@dataclass
class SubmissionResult:
    student: str
    path: Path
    lesson: Optional[str]
    results: list[ExerciseResult] = field(default_factory=list)
    problem: str = ""  # why the whole submission could not be (fully) graded
    seconds: float = 0.0
    flags: list[str] = field(default_factory=list)  # about the whole submission ("not sandboxed", ...)

    @property
    def total(self) -> float:
        return sum(r.points for r in self.results)


def csv_cell(value) -> str:
    """``value`` as text a spreadsheet shows as text: ``=HYPERLINK(...)`` becomes ``'=HYPERLINK(...)``."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def write_gradebook(results: list[SubmissionResult], path: Path) -> Path:
    """CSV: one row per submission, one column per exercise (points), ``total``, then flags and problems.

    Written to a temporary file beside ``path`` and moved into place, so a reader never sees half a gradebook.
    """
    columns = []
    for sub in results:
        for r in sub.results:
            if r.exercise.column not in columns:
                columns.append(r.exercise.column)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give the gradebook a file name (e.g. {path / 'gradebook.csv'})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["student", "lesson", *columns, "total", "max", "flags", "problem"])
            for sub in results:
                points = {r.exercise.column: r.points for r in sub.results}
                flags = sub.flags + [f"{r.exercise.number}: {flag}" for r in sub.results for flag in r.flags]
                writer.writerow([csv_cell(sub.student), sub.lesson or "", *[f"{points.get(c, 0):g}" for c in columns],
                                 f"{sub.total:g}", f"{sum(r.exercise.points for r in sub.results):g}",
                                 csv_cell("; ".join(flags)), csv_cell(sub.problem)])
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def feedback_name(student: str) -> str:
    """A file name for a student's feedback: their id with anything but letters, digits, ``-_.()`` replaced."""
    name = re.sub(r"[^\w\-.() ]", "_", student).strip(" .") or "student"
    return name[:150] + ".md"


def write_feedback(results: list[SubmissionResult], folder: Path) -> dict[str, Path]:
    """One Markdown file per submission in ``folder``; two students never share a file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    used: set[str] = set()
    for sub in results:
        name = feedback_name(sub.student)
        stem, number = name.removesuffix(".md"), 2
        while name.lower() in used:
            name, number = f"{stem} ({number}).md", number + 1
        used.add(name.lower())
        written[sub.student] = folder / name
        (folder / name).write_text(feedback_markdown(sub), encoding="utf-8")
    return written


def _mistake(message: str) -> str:
    """A failure message with its numbers masked, so the same mistake by two students reads the same."""
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", message.strip().splitlines()[0] if message.strip() else "")
    return text[:200] or "(no message)"




def feedback_markdown(sub: SubmissionResult) -> str:
    """Per-student feedback: each exercise's verdict, the check's message with its hint, and flags."""
    best = sum(r.exercise.points for r in sub.results)
    lines = [f"# Feedback for {sub.student}", "", f"Lesson {sub.lesson or '?'}: **{sub.total:g} of {best:g} points**.", ""]
    if sub.problem:
        lines += [f"> Note: {sub.problem}", ""]
    lines += [f"*{flag}*" for flag in sub.flags] + ([""] if sub.flags else [])
    for r in sub.results:
        mark = {"passed": "passed", "not implemented": "not implemented yet", "missing": "missing"}.get(r.status, "failed")
        lines += [f"## Exercise {r.exercise.number}: `{r.exercise.function}` ({r.points:g}/{r.exercise.points:g}, {mark})", ""]
        if r.message:
            lines += ["```", r.message[:3000], "```", ""]
        lines += [f"*{flag}*" for flag in r.flags] + ([""] if r.flags else [])
    return "\n".join(lines)


def class_report(results: list[SubmissionResult], folder: Path, top: int = 3) -> Path:
    """``class_report.md`` and ``class_report.png``: share passing each exercise, most frequent mistakes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_exercise: dict[str, list[ExerciseResult]] = {}
    for sub in results:
        for r in sub.results:
            by_exercise.setdefault(r.exercise.column, []).append(r)
    n = len(results)
    lines = ["# Class report", "", f"{n} submission{'s' if n != 1 else ''}.", "",
             "| exercise | passed | share | most frequent mistakes |", "|---|---|---|---|"]
    shares = {}
    for column, rs in by_exercise.items():
        passed = sum(r.status == "passed" for r in rs)
        shares[column] = passed / len(rs)
        mistakes = Counter(_mistake(r.message) if r.status == "failed" else r.status for r in rs if r.status != "passed")
        text = "; ".join(f"{m.replace('|', '/')}: {c} of {len(rs)}" for m, c in mistakes.most_common(top)) or "none"
        lines.append(f"| {column} | {passed} of {len(rs)} | {shares[column]:.0%} | {text} |")
    fig = Figure(figsize=(max(4, 1.2 * len(shares)), 3.2))
    ax = fig.subplots()
    ax.bar(list(shares), [100 * v for v in shares.values()], color="tab:blue")
    ax.set_ylim(0, 100)
    ax.set_ylabel("submissions passing (%)")
    ax.set_xlabel("exercise")
    ax.set_title(f"Share of the class passing each exercise ({n} submissions)")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(folder / "class_report.png", dpi=100)
    lines += ["", "![share passing each exercise](class_report.png)", ""]
    (folder / "class_report.md").write_text("\n".join(lines), encoding="utf-8")
    return folder / "class_report.md"


