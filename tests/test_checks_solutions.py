"""Every answer key in solutions/ passes its check, and each check's docstring names its exercise's number."""
import re

import nbformat
import pytest

from course_lib import checks, exercises
from course_lib.config import REPO_ROOT

SOLUTIONS = sorted((REPO_ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def _exercises(path):
    """[(exercise number, solution cell source, check cell source)] in notebook order, and the setup cell."""
    nb = nbformat.read(str(path), as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    number = int(path.name[:2])
    found, k = [], 0
    for i, source in enumerate(code):
        if exercises.BEGIN in source:
            k += source.count(exercises.BEGIN)
            check = next(s for s in code[i + 1:] if s.lstrip().startswith('"""Check'))
            found.append((f"{number}.{k}", source, check))
    return code[0], found


CASES = [(path, number, solution, check) for path in SOLUTIONS
         for number, solution, check in _exercises(path)[1]]


@pytest.mark.parametrize("path,number,solution,check", CASES, ids=[f"exercise {c[1]}" for c in CASES])
def test_the_answer_key_passes_its_check_and_the_check_names_the_exercise(path, number, solution, check, pinned_one_thread,
                                                                          capsys):
    setup, found = _exercises(path)
    namespace: dict = {}
    exec(setup, namespace)  # noqa: S102 -- the course's own notebooks
    for _, source, _ in found:  # later answers may use earlier ones (2.4 trains with 2.1's kd_loss)
        exec(source, namespace)  # noqa: S102
    name = re.search(r"(check_\w+)\(", check).group(1)
    assert eval(check.split('"""', 2)[2].strip(), namespace) is True  # noqa: S307
    assert "all checks passed" in capsys.readouterr().out
    check_fn = namespace.get(name) or getattr(checks, name)
    assert f"(exercise {number})" in " ".join(check_fn.__doc__.split()), name
