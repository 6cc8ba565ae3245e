"""exercises/ is generated from solutions/; exercise notebooks run and give friendly feedback."""
import os
import subprocess
import sys

import nbformat
import pytest

from course_lib import exercises
from course_lib.config import REPO_ROOT

SOLUTIONS = sorted((REPO_ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((REPO_ROOT / "exercises").glob("*.ipynb"))
ALL_NOTEBOOKS = sorted(p for folder in ("notebooks", "solutions", "exercises")
                       for p in (REPO_ROOT / folder).glob("*.ipynb"))


def test_strip_solution_keeps_indentation_and_numbers_exercises():
    source = ("def f(x):\n    \"\"\"Doc.\"\"\"\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\n"
              "def g(y):\n    ### BEGIN SOLUTION\n    y = y * 2\n    return y\n    ### END SOLUTION\n")
    counter = [0]
    out = exercises.strip_solution(source, "3", counter)
    assert out.splitlines() == [
        "def f(x):", '    """Doc."""',
        '    raise NotImplementedError("Exercise 3.1: write the body of `f`")', "",
        "def g(y):", '    raise NotImplementedError("Exercise 3.2: write the body of `g`")',
    ]
    assert counter == [2]


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
])
def test_unbalanced_markers_are_reported(source, message):
    with pytest.raises(exercises.ExerciseFormatError, match=message):
        exercises.strip_solution(source, "1", [0])


def test_exercises_are_in_sync_with_solutions():
    result = subprocess.run([sys.executable, "-m", "course_lib.exercises", "check"],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in EXERCISES] == [p.name for p in SOLUTIONS]


def test_stale_exercise_is_detected(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    src = SOLUTIONS[0]
    (tmp_path / "solutions" / src.name).write_text(src.read_text())
    assert sorted(exercises.stale(tmp_path)) == sorted([
        f"missing: exercises/{src.name}", "missing: course_lib/answers/lesson00.py",
        "missing: course_lib/answers/__init__.py"])
    exercises.build(tmp_path)
    assert exercises.stale(tmp_path) == []
    target = tmp_path / "exercises" / src.name
    target.write_text(target.read_text().replace("Exercise", "Exercize"))
    assert exercises.stale(tmp_path) == [f"out of date: exercises/{src.name}"]
    answers = tmp_path / "course_lib" / "answers" / "lesson00.py"
    answers.write_text(answers.read_text().replace("!=", "=="))
    assert exercises.stale(tmp_path)[-1] == "out of date: course_lib/answers/lesson00.py"


def test_answer_keys_are_the_solution_blocks_importable_with_the_exercise_names():
    """Each answer-key module holds exactly the functions written in its lesson's solution blocks, by name."""
    import importlib

    import nbformat
    for path in SOLUTIONS:
        nb = nbformat.read(str(path), as_version=4)
        names = [line.split("def ", 1)[1].split("(")[0] for cell in nb.cells if cell.cell_type == "code"
                 and exercises.BEGIN in cell.source for line in cell.source.splitlines()
                 if line.startswith("def ")]
        module = importlib.import_module(f"course_lib.answers.lesson{path.name[:2]}")
        assert [n for n in vars(module) if callable(vars(module)[n]) and getattr(vars(module)[n], "__module__", "")
                == module.__name__] == names, path.name
        assert "do not edit" in module.__doc__


def test_no_solution_code_leaks_into_exercises():
    for path in EXERCISES:
        text = path.read_text()
        assert exercises.BEGIN not in text and exercises.END not in text, path.name


def test_lesson_numbers_match_across_folders():
    lessons = {p.name[:2] for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    for path in SOLUTIONS:
        assert path.name[:2] in lessons, f"{path.name} has no lesson notebook with the same number"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_notebooks_have_no_outputs(path):
    nb = nbformat.read(str(path), as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {i} has outputs"


def _is_check_cell(cell):
    return cell.cell_type == "code" and cell.source.lstrip().startswith('"""Check')


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_exercise_notebook_runs_and_says_not_implemented(path):
    """A fresh exercise notebook runs top to bottom; each check cell says 'not implemented yet'."""
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), as_version=4)
    os.environ["COURSE_FAST"] = "1"
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    check_cells = [c for c in nb.cells if _is_check_cell(c)]
    assert check_cells, f"{path.name} has no check cell"
    for cell in check_cells:
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert "not implemented yet" in text, f"{path.name}: a check cell printed {text!r}"
