"""Build ``exercises/`` and the answer keys from ``solutions/``, the single source (introduced in lesson 00).

In a solution notebook, code between a line ``### BEGIN SOLUTION`` and a line
``### END SOLUTION`` is the learner's to write. The exercise notebook gets, at the
same indentation, ``raise NotImplementedError("Exercise N.k: ...")`` instead, where N
is the notebook's number and k counts exercises within it. Outputs are stripped.

The same blocks are the answer keys: ``course_lib/answers/lessonNN.py`` is generated from the
solution notebook's exercise cells (their functions, with the imports they use from the
notebook's earlier cells), read-only, for the checks to import; the checks keep no copy.

    python -m course_lib.exercises build   # write exercises/*.ipynb and course_lib/answers/lessonNN.py
    python -m course_lib.exercises check   # exit 1 if either is stale
"""
from __future__ import annotations

import argparse
import ast
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


# Imports an answer key must not carry: the checks import the answer keys, not the other way round.
_SKIPPED_MODULES = ("course_lib.checks", "course_lib.config")


def _unmarked(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if line.strip() not in (BEGIN, END))


def answer_module(solution_path: Path) -> str:
    """The text of ``course_lib/answers/lessonNN.py``: the exercise cells' functions and the imports they use.

    From every code cell with a solution block, its imports and function definitions (markers removed,
    other statements dropped); from the notebook's other code cells, only the imports those functions use.
    """
    nb = nbformat.read(str(solution_path), as_version=4)
    imports, functions = {}, []  # imports: bound name -> import statement
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(_unmarked(cell.source))
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                if isinstance(node, ast.ImportFrom) and (module or "").startswith(_SKIPPED_MODULES):
                    continue
                for alias in node.names:
                    if module == "course_lib" and alias.name == "checks":
                        continue
                    statement = ast.unparse(type(node)(**{**node.__dict__, "names": [alias]}))
                    imports[alias.asname or alias.name.split(".")[0]] = statement
            elif isinstance(node, ast.FunctionDef) and BEGIN in cell.source:
                functions.append(ast.get_source_segment(_unmarked(cell.source), node))
    if not functions:
        raise ExerciseFormatError(f"{solution_path.name}: no function in its solution cells")
    used = {n.id for f in functions for n in ast.walk(ast.parse(f)) if isinstance(n, ast.Name)}
    header = (f'"""Answer keys of lesson {solution_path.name[:2]}\'s exercises, generated from '
              f'solutions/{solution_path.name}: do not edit.\n\n'
              "Regenerate with `python -m course_lib.exercises build`; the checks import these, and "
              "tests/test_exercises.py fails when this file is stale.\n\"\"\"\n")
    kept = sorted({statement for name, statement in imports.items() if name in used},
                  key=lambda st: (not st.startswith("import "), st))
    body = "\n".join(kept) + "\n\n\n" + "\n\n\n".join(functions) + "\n"
    return header + "# ruff: noqa\n" + body


def _answer_path(root: Path, solution_path: Path) -> Path:
    return root / "course_lib" / "answers" / f"lesson{solution_path.name[:2]}.py"


_ANSWERS_INIT = ('"""Generated answer keys, one module per lesson (``lessonNN``): see ``course_lib.exercises``."""\n')


def planned(root: Path = REPO_ROOT) -> dict[Path, str]:
    """Map each generated path (exercise notebooks, answer-key modules) to the text it should have."""
    plan = {}
    for src in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
        plan[root / "exercises" / src.name] = _render(exercise_notebook(src))
        plan[_answer_path(root, src)] = answer_module(src)
    plan[root / "course_lib" / "answers" / "__init__.py"] = _ANSWERS_INIT
    return plan


def _orphans(root: Path, plan: dict) -> set:
    found = set((root / "exercises").glob("*.ipynb")) | set((root / "course_lib" / "answers").glob("lesson*.py"))
    return found - set(plan)


def build(root: Path = REPO_ROOT) -> list[Path]:
    """Write every exercise notebook and answer key; remove those whose solution is gone."""
    plan = planned(root)
    for path, text in plan.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for orphan in _orphans(root, plan):
        orphan.unlink()
    return sorted(plan)


def stale(root: Path = REPO_ROOT) -> list[str]:
    """Descriptions of every difference between ``exercises/``, the answer keys and what ``build`` would write."""
    plan = planned(root)
    problems = []
    for path, text in plan.items():
        if not path.exists():
            problems.append(f"missing: {path.relative_to(root)}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"out of date: {path.relative_to(root)}")
    for orphan in _orphans(root, plan):
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
        print("exercises/ or course_lib/answers/ is stale; run `python -m course_lib.exercises build`:\n  "
              + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("exercises/ and course_lib/answers/ are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
