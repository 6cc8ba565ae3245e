"""The points table: which exercises a lesson has, their checks and points, read from ``solutions/`` only."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..config import REPO_ROOT
from ..exercises import BEGIN

#: Checks whose verdict cannot be replayed from recorded outputs (they observe the call itself).
KERNEL_JUDGED = {"check_fitnets", "check_distillation_loss", "check_choose_temperature",
                 "check_median_latency_ms", "check_fine_tune_pruned", "check_token_kd_loss", "check_greedy_decode",
                 "check_on_policy_loss"}
CHECK_CALL = re.compile(r"^\s*(?:assert\s+)?(?:checks\.)?(check_\w+)\(\s*(\w+)\s*[,)]", re.M)
_DEF = re.compile(r"^\s*def\s+(\w+)\s*\(", re.M)


@dataclass
class Exercise:
    """One exercise of a lesson, as the solution notebook defines it."""

    lesson: str  # "02"
    number: str  # "2.3"
    function: str  # the learner's function, e.g. "kd_loss"
    check: str  # "course_lib.checks.lesson02:check_kd_loss"
    points: float = 1.0

    @property
    def column(self) -> str:
        return f"{self.number} {self.function}"

    @property
    def check_name(self) -> str:
        return self.check.split(":")[1]


def _check_path(name: str, lesson: str) -> str:
    """``module:function`` of a check, found in course_lib.checks or its lesson module."""
    import importlib

    for module in ("course_lib.checks", f"course_lib.checks.lesson{lesson}"):
        try:
            if hasattr(importlib.import_module(module), name):
                return f"{module}:{name}"
        except ImportError:
            continue
    raise ValueError(f"no check named {name} in course_lib.checks (lesson {lesson})")


def exercises_from_solutions(solutions: Path = REPO_ROOT / "solutions") -> dict[str, list[Exercise]]:
    """``{lesson: [Exercise, ...]}`` read from the solution notebooks: the points table."""
    import nbformat

    table = {}
    for path in sorted(Path(solutions).glob("[0-9][0-9]_*.ipynb")):
        lesson = path.name[:2]
        nb = nbformat.read(str(path), as_version=4)
        functions, found = [], []
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            source = cell.source
            if BEGIN in source:
                for block in source.split(BEGIN)[:-1]:
                    names = _DEF.findall(block)
                    functions.append(names[-1] if names else None)
            for check, fn in CHECK_CALL.findall(source):
                if fn not in functions:
                    continue
                points = float(cell.metadata.get("course", {}).get("points", 1))
                found.append(Exercise(lesson, f"{int(lesson)}.{functions.index(fn) + 1}", fn,
                                      _check_path(check, lesson), points))
        if found:
            table[lesson] = found
    return table


def points_table(table: dict[str, list[Exercise]]) -> str:
    """The exercises and their points as a Markdown table (docs/teaching.md holds a copy; a test compares)."""
    lines = ["| lesson | exercise | function | check | points | judged |", "|---|---|---|---|---|---|"]
    for lesson, exercises in table.items():
        for e in exercises:
            where = "in the submission's kernel" if e.check_name in KERNEL_JUDGED else "by the grader"
            lines.append(f"| {lesson} | {e.number} | `{e.function}` | `{e.check_name}` | {e.points:g} | {where} |")
    return "\n".join(lines)
