"""Build ``exercises/`` from ``solutions/``, the single source (introduced in lesson 00).

In a solution notebook, code between a line ``### BEGIN SOLUTION`` and a line
``### END SOLUTION`` is the learner's to write. The exercise notebook gets, at the
same indentation, ``raise NotImplementedError("Exercise N.k: ...")`` instead, where N
is the notebook's number and k counts exercises within it. Outputs are stripped.

    python -m course_lib.exercises build   # write exercises/*.ipynb
    python -m course_lib.exercises check   # exit 1 if exercises/ is stale
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

from .config import REPO_ROOT

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_DEF = re.compile(r"^\s*def\s+(\w+)\s*\(")


class ExerciseFormatError(ValueError):
    """A solution notebook's markers are unbalanced or misplaced."""


def strip_solution(source: str, number: str, counter: list[int], where: str = "") -> str:
    """Replace each BEGIN/END SOLUTION block in ``source`` by a ``raise NotImplementedError``."""
    out, inside, indent, func = [], False, "", None
    for lineno, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        match = _DEF.match(line)
        if match and not inside:
            func = match.group(1)
        if stripped == BEGIN:
            if inside:
                raise ExerciseFormatError(f"{where} line {lineno}: {BEGIN} inside another solution block")
            inside, indent = True, line[: len(line) - len(line.lstrip())]
            counter[0] += 1
            what = f"write the body of `{func}`" if func else "write this code"
            out.append(f'{indent}raise NotImplementedError("Exercise {number}.{counter[0]}: {what}")')
        elif stripped == END:
            if not inside:
                raise ExerciseFormatError(f"{where} line {lineno}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ExerciseFormatError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def exercise_notebook(solution_path: Path) -> nbformat.NotebookNode:
    """The exercise notebook generated from one solution notebook."""
    nb = nbformat.read(str(solution_path), as_version=4)
    number = str(int(solution_path.name.split("_", 1)[0]))
    counter = [0]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source = strip_solution(cell.source, number, counter, where=f"{solution_path.name} cell {i}")
            cell.outputs = []
            cell.execution_count = None
        if cell.cell_type == "markdown" and BEGIN in cell.source:
            raise ExerciseFormatError(f"{solution_path.name} cell {i}: solution markers belong in code cells")
    if counter[0] == 0:
        raise ExerciseFormatError(f"{solution_path.name} has no {BEGIN} block: nothing for the learner to do")
    nb.metadata.pop("widgets", None)
    return nb


def _render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def planned(root: Path = REPO_ROOT) -> dict[Path, str]:
    """Map each exercise path to the text it should have."""
    return {root / "exercises" / src.name: _render(exercise_notebook(src))
            for src in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb"))}


def build(root: Path = REPO_ROOT) -> list[Path]:
    """Write every exercise notebook; remove exercise notebooks whose solution is gone."""
    plan = planned(root)
    (root / "exercises").mkdir(exist_ok=True)
    for path, text in plan.items():
        path.write_text(text, encoding="utf-8")
    for orphan in set((root / "exercises").glob("*.ipynb")) - set(plan):
        orphan.unlink()
    return sorted(plan)


def stale(root: Path = REPO_ROOT) -> list[str]:
    """Descriptions of every difference between ``exercises/`` and what ``build`` would write."""
    plan = planned(root)
    problems = []
    for path, text in plan.items():
        if not path.exists():
            problems.append(f"missing: {path.relative_to(root)}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"out of date: {path.relative_to(root)}")
    for orphan in set((root / "exercises").glob("*.ipynb")) - set(plan):
        problems.append(f"no solution for: {orphan.relative_to(root)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.exercises", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "check"])
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            for path in build():
                print(f"wrote {path.relative_to(REPO_ROOT)}")
            return 0
        problems = stale()
    except ExerciseFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if problems:
        print("exercises/ is stale; run `python -m course_lib.exercises build`:\n  " + "\n  ".join(problems),
              file=sys.stderr)
        return 1
    print("exercises/ is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
