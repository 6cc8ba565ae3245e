"""The classroom grader: crafted submissions, each in its own test, graded in real kernels (issue 13).

A small solutions folder holds two exercises (lesson 02's kd_loss, 2 points, and choose_class_bias,
1 point); every submission below is a variation of it.
"""
import csv
import json
from pathlib import Path

import nbformat
import pytest

from course_lib import grade
from course_lib.config import REPO_ROOT

SETUP = "import torch\nimport torch.nn.functional as F\nfrom course_lib import checks\n"
KD = '''def kd_loss(student_logits, teacher_logits, temperature=1.0):
    """T^2 * KL(teacher_T || student_T), batchmean."""
    ### BEGIN SOLUTION
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1).mean()
    return kl * temperature**2
    ### END SOLUTION
'''
KD_NO_T2 = KD.replace("    return kl * temperature**2", "    return kl")
BIAS = '''def choose_class_bias(logits, labels, cls, candidates):
    """The candidate bias for column cls that maximises accuracy (ties: the smallest)."""
    ### BEGIN SOLUTION
    best, best_correct = None, -1
    for bias in candidates:
        shifted = logits.clone()
        shifted[:, cls] += bias
        correct = int((shifted.argmax(dim=1) == labels).sum())
        if correct > best_correct:
            best, best_correct = float(bias), correct
    return best
    ### END SOLUTION
'''
CHECK_KD = "checks.check_kd_loss(kd_loss)"
CHECK_BIAS = "checks.check_choose_class_bias(choose_class_bias)"


def _notebook(*sources, points=None):
    cells = []
    for source in sources:
        cell = nbformat.v4.new_code_cell(source)
        if points and source in points:
            cell.metadata["course"] = {"points": points[source]}
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


@pytest.fixture(scope="module")
def solutions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("solutions")
    nbformat.write(_notebook(SETUP, KD, CHECK_KD, BIAS, CHECK_BIAS, points={CHECK_KD: 2}),
                   str(folder / "02_two_exercises.ipynb"))
    return folder


def _write(folder: Path, name: str, *sources) -> Path:
    path = folder / f"{name}.ipynb"
    nbformat.write(_notebook(*sources), str(path))
    return path


def _grade(solutions, *paths, **kwargs):
    kwargs.setdefault("timeout", 60)
    return grade.grade(list(paths), solutions=solutions, progress=False, **kwargs)


def _by_function(sub):
    return {r.exercise.function: r for r in sub.results}


def test_the_points_table_comes_from_the_solutions(solutions):
    table = grade.exercises_from_solutions(solutions)
    assert [(e.number, e.function, e.points) for e in table["02"]] == [("2.1", "kd_loss", 2.0),
                                                                       ("2.2", "choose_class_bias", 1.0)]


def test_right_answers_get_full_marks_and_wrong_ones_the_checks_hint(solutions, tmp_path):
    right = _write(tmp_path, "alice", SETUP, KD, CHECK_KD, BIAS, CHECK_BIAS)
    wrong = _write(tmp_path, "bob", SETUP, KD_NO_T2, CHECK_KD, BIAS, CHECK_BIAS)
    alice, bob = _grade(solutions, right, wrong)
    assert (alice.student, alice.total) == ("alice", 3.0)
    assert bob.total == 1.0 and _by_function(bob)["kd_loss"].status == "failed"
    assert "T" in _by_function(bob)["kd_loss"].message  # the check's hint about the missing T^2


def test_untouched_exercise_gets_zero_with_not_implemented(solutions, tmp_path):
    stub = lambda src: src.split("    ### BEGIN SOLUTION")[0] + "    raise NotImplementedError('Exercise')\n"  # noqa: E731
    (sub,) = _grade(solutions, _write(tmp_path, "carol", SETUP, stub(KD), CHECK_KD, stub(BIAS), CHECK_BIAS))
    assert sub.total == 0 and {r.status for r in sub.results} == {"not implemented"}


@pytest.mark.parametrize("patch", [
    "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True",
    "import course_lib.checks as c\nc.check_kd_loss = lambda fn: True\nc.check_choose_class_bias = lambda fn: True",
    "import course_lib.checks._core as core\ncore.assert_close = lambda actual, expected, *a, **k: actual",
    "import course_lib.losses as L\nimport course_lib.checks.lesson02 as c2\nc2._kd_variants = lambda *a: []",
])
def test_patching_libraries_or_checks_gains_nothing(solutions, tmp_path, patch):
    cheat = KD_NO_T2 + "\n" + patch
    (sub,) = _grade(solutions, _write(tmp_path, "mallory", SETUP, cheat, CHECK_KD, BIAS, CHECK_BIAS))
    assert _by_function(sub)["kd_loss"].status == "failed" and _by_function(sub)["kd_loss"].points == 0
    bias = _by_function(sub)["choose_class_bias"]  # honest, but a check patched in the kernel may cost it too
    assert bias.status == "passed" or "tampering suspected" in bias.message


def test_editing_or_deleting_check_cells_gains_nothing(solutions, tmp_path):
    (sub,) = _grade(solutions, _write(tmp_path, "dave", SETUP, KD_NO_T2, "print('passed')", BIAS))
    assert sub.total == 1.0 and _by_function(sub)["kd_loss"].status == "failed"


def test_a_cell_that_raises_costs_only_what_it_breaks(solutions, tmp_path):
    (sub,) = _grade(solutions, _write(tmp_path, "erin", SETUP, KD, "raise RuntimeError('oops')", BIAS))
    assert sub.total == 3.0


def test_os_exit_in_a_cell_ends_only_that_cell(solutions, tmp_path):
    (sub,) = _grade(solutions, _write(tmp_path, "frank", SETUP, KD, "import os\nos._exit(0)", BIAS))
    assert sub.total == 3.0 and "ended the kernel" in sub.problem


def test_os_exit_inside_the_function_fails_that_exercise_only(solutions, tmp_path):
    bad = KD.replace("    ### BEGIN SOLUTION", "    import os\n    os._exit(3)\n    ### BEGIN SOLUTION")
    (sub,) = _grade(solutions, _write(tmp_path, "grace", SETUP, bad, BIAS))
    results = _by_function(sub)
    assert results["kd_loss"].points == 0 and "ended the kernel" in results["kd_loss"].message
    assert results["choose_class_bias"].status == "passed"


def test_an_endless_loop_is_stopped_and_the_rest_graded(solutions, tmp_path):
    (sub,) = _grade(solutions, _write(tmp_path, "heidi", SETUP, KD, "while True:\n    pass", BIAS), timeout=40)
    assert sub.total == 3.0 and "time limit" in sub.problem


def test_reordered_cells_still_graded(solutions, tmp_path):
    (sub,) = _grade(solutions, _write(tmp_path, "ivan", BIAS, SETUP, KD))  # BIAS defined before torch imported
    assert sub.total == 3.0


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"{not json", "not a valid notebook"),
    (b'{"cells": 3}', "not a valid notebook"),
])
def test_broken_files_get_a_row_and_a_reason(solutions, tmp_path, content, reason):
    path = tmp_path / "judy.ipynb"
    path.write_bytes(content)
    good = _write(tmp_path, "ken", SETUP, KD, BIAS)
    judy, ken = _grade(solutions, path, good)
    assert judy.total == 0 and reason in judy.problem and len(judy.results) == 2
    assert ken.total == 3.0


def test_a_missing_file_gets_a_row(solutions, tmp_path):
    (sub,) = _grade(solutions, tmp_path / "nobody.ipynb")
    assert sub.total == 0 and "missing" in sub.problem and len(sub.results) == 2


def test_library_answers_are_flagged_and_get_the_configured_points(solutions, tmp_path):
    imported = _write(tmp_path, "leo", SETUP, "from course_lib.losses import kd_loss", BIAS)
    wrapped = _write(tmp_path, "mia", SETUP, "import course_lib.losses\n\ndef kd_loss(s, t, temperature=1.0):\n"
                     "    return course_lib.losses.kd_loss(s, t, temperature)", BIAS)
    leo, mia = _grade(solutions, imported, wrapped, library_points=0.5)
    for sub in (leo, mia):
        kd = _by_function(sub)["kd_loss"]
        assert kd.status == "passed" and kd.points == 1.0 and any("library answer" in f for f in kd.flags)


def test_gradebook_feedback_and_class_report(solutions, tmp_path):
    class_ = [_write(tmp_path, f"s{i}", SETUP, KD if i < 2 else KD_NO_T2, BIAS) for i in range(5)]
    (tmp_path / "s5.ipynb").write_text("")
    results = _grade(solutions, *class_, tmp_path / "s5.ipynb", jobs=2)
    book = grade.write_gradebook(results, tmp_path / "book.csv")
    rows = list(csv.DictReader(open(book)))
    assert [r["student"] for r in rows] == [f"s{i}" for i in range(6)]
    assert [r["total"] for r in rows] == ["3", "3", "1", "1", "1", "0"]
    assert {"2.1 kd_loss", "2.2 choose_class_bias", "total"} <= set(rows[0])
    report = grade.class_report(results, tmp_path / "feedback").read_text()
    kd_line = next(line for line in report.splitlines() if line.startswith("| 2.1 kd_loss"))
    assert "| 2 of 6 |" in kd_line and ": 3 of 6" in kd_line and "missing: 1 of 6" in kd_line
    assert (tmp_path / "feedback" / "class_report.png").stat().st_size > 1000
    feedback = grade.feedback_markdown(results[2])
    assert "1 of 3 points" in feedback and "kd_loss" in feedback


def test_teaching_guide_points_table_is_current():
    text = (REPO_ROOT / "docs" / "teaching.md").read_text()
    start, end = "<!-- points-table: generated by `python -m course_lib grade --list` -->\n", "<!-- /points-table -->"
    table = text.split(start)[1].split(end)[0].strip()
    assert table == grade.points_table(grade.exercises_from_solutions()), \
        "docs/teaching.md's points table is stale: paste `python -m course_lib grade --list` into it"


def test_nbgrader_export_generates_an_assignment(tmp_path):
    import os
    import subprocess

    from course_lib import nbgrader

    written = nbgrader.export(tmp_path)
    assert {p.parent.name for p in written} >= {"lesson00", "lesson02"}
    env = {**os.environ, "PATH": f"{Path(grade.sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["nbgrader", "generate_assignment", "lesson02", "--force"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    released = json.loads(next((tmp_path / "release" / "lesson02").glob("*.ipynb")).read_text())
    sources = ["".join(c["source"]) for c in released["cells"]]
    assert not any("### BEGIN SOLUTION" in s for s in sources)  # nbgrader stripped the answers
    tests = [c for c in released["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
    assert tests and all("".join(c["source"]).lstrip().count("assert checks.check_") == 1 or
                         "assert checks.check_" in "".join(c["source"]) for c in tests)
    assert sum(c["metadata"]["nbgrader"]["points"] for c in tests) == len(grade.exercises_from_solutions()["02"])


def test_every_answer_key_gets_full_marks_and_every_exercise_zero(tmp_path):
    """The real course: each solution notebook graded in its kernel gets every point; each untouched exercise none."""
    table = grade.exercises_from_solutions()
    paths = []
    for lesson in table:
        solution = next((REPO_ROOT / "solutions").glob(f"{lesson}_*.ipynb"))
        for kind, source in (("key", solution), ("blank", REPO_ROOT / "exercises" / solution.name)):
            paths.append(tmp_path / f"{kind}{lesson}.ipynb")
            paths[-1].write_bytes(source.read_bytes())
    results = grade.grade(paths, jobs=2, timeout=600, progress=False)
    for sub in results:
        best = sum(e.points for e in table[sub.lesson])
        if sub.student.startswith("key"):
            assert sub.total == best, (sub.student, sub.problem, [(r.exercise.number, r.message[:300]) for r in sub.results])
        else:
            assert sub.total == 0 and {r.status for r in sub.results} == {"not implemented"}, (
                sub.student, sub.problem, [(r.exercise.number, r.status, r.message[:200]) for r in sub.results])
