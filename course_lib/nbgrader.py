"""Export the exercises as an nbgrader source assignment: ``python -m course_lib nbgrader-export DIR``.

For instructors who run nbgrader. The solution notebooks already use nbgrader's markers
(``### BEGIN SOLUTION`` / ``### END SOLUTION``); this adds nbgrader's cell metadata:

* a cell holding a solution block becomes a **solution cell** (nbgrader replaces the block);
* a check cell (``checks.check_...(fn)``) becomes a locked **autograded test cell** worth the
  points the grader's table gives it (``course_lib.grade.exercises_from_solutions``); its call
  is wrapped in ``assert``, because a check *returns* False for an unfinished exercise and
  nbgrader counts any test cell that does not raise as passed;
* every other cell is **read-only** (locked), so learners cannot edit the lesson's code.

Writes ``DIR/source/lessonNN/NN_name.ipynb`` and ``DIR/nbgrader_config.py``; then, in DIR,
``nbgrader generate_assignment lessonNN`` produces the student version.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from .config import REPO_ROOT
from .exercises import BEGIN

SCHEMA_VERSION = 3
_ASSERTED = re.compile(r"^(\s*)((?:checks\.)?check_\w+\(.*\))\s*$", re.M)


def _metadata(kind: str, grade_id: str, points: float = 0.0) -> dict:
    meta = {"grade": kind == "test", "solution": kind == "solution", "locked": kind != "solution",
            "grade_id": grade_id, "schema_version": SCHEMA_VERSION}
    if kind == "test":
        meta["points"] = points
    return meta


def nbgrader_notebook(solution_path: Path, points: dict[str, float]):
    """The solution notebook with nbgrader metadata on every cell (``points``: check-cell function -> points)."""
    import nbformat

    from .grade.points import CHECK_CALL as _CHECK_CALL

    nb = nbformat.read(str(solution_path), as_version=4)
    lesson = solution_path.name[:2]
    for index, cell in enumerate(nb.cells):
        checked = _CHECK_CALL.findall(cell.source) if cell.cell_type == "code" else []
        if cell.cell_type == "code" and BEGIN in cell.source:
            kind, grade_id = "solution", f"lesson{lesson}-solution-{index}"
        elif checked and checked[0][1] in points:
            kind, grade_id = "test", f"lesson{lesson}-check-{checked[0][1]}"
            # A check returns False (it does not raise) while the exercise is not done; nbgrader
            # gives points to any test cell that does not raise, so the export asserts the result.
            cell.source = _ASSERTED.sub(r"\1assert \2, 'not implemented yet'", cell.source)
        else:
            kind, grade_id = "readonly", f"lesson{lesson}-cell-{index}"
        cell.metadata["nbgrader"] = _metadata(kind, grade_id, points.get(checked[0][1], 0.0) if checked else 0.0)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    return nb


def export(folder: Path, solutions: Path = REPO_ROOT / "solutions") -> list[Path]:
    """Write the nbgrader source assignments into ``folder``; returns the notebooks written."""
    import nbformat

    from .grade import exercises_from_solutions

    table = exercises_from_solutions(solutions)
    folder = Path(folder)
    written = []
    for path in sorted(Path(solutions).glob("[0-9][0-9]_*.ipynb")):
        lesson = path.name[:2]
        points = {e.function: e.points for e in table.get(lesson, [])}
        target = folder / "source" / f"lesson{lesson}" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbgrader_notebook(path, points), str(target))
        written.append(target)
    (folder / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821 (nbgrader provides it)\n"
        "c.CourseDirectory.root = '.'\n"
        "c.ClearSolutions.code_stub = {'python': 'raise NotImplementedError()'}\n", encoding="utf-8")
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib nbgrader-export", description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the nbgrader course folder to write into")
    parser.add_argument("--solutions", type=Path, default=REPO_ROOT / "solutions")
    args = parser.parse_args(argv)
    for path in export(args.folder, args.solutions):
        print(f"wrote {path}")
    print(f"next: cd {args.folder} && nbgrader generate_assignment lessonNN")
    return 0


if __name__ == "__main__":
    sys.exit(main())
