"""docs/library.md says, for each helper, the one module it lives in: this test keeps it true.

Every public function and class of a ``course_lib`` module is named in the section of docs/library.md
whose heading names that module, and no section names a helper that lives in another module.
"""
import importlib
import inspect
import re

import pytest

from course_lib.config import REPO_ROOT

#: module -> the name its section's heading uses (submodules are documented with their package).
MODULES = {m: m for m in ["config", "hashing", "cache", "data", "models", "train", "losses", "evaluate", "timing",
                          "plots", "distill", "hidden", "emails", "modelcard", "compress", "sequence", "ranking", "nbgrader",
                          "exercises", "run_course", "report", "quiz", "site"]}
MODULES.update({f"router.{m}": "router" for m in ["teacher", "student", "targets", "pipeline", "scoring", "tool"]})
PACKAGES = {"grade": "grade", "checks": "checks"}  # their ``__all__`` is their public face


def defined_names(module_name: str) -> set[str]:
    module = importlib.import_module(f"course_lib.{module_name}")
    if module_name in PACKAGES:
        names = set(module.__all__)
        if module_name == "checks":
            lessons = sorted(p.stem for p in (REPO_ROOT / "course_lib" / "checks").glob("lesson[0-9][0-9].py"))
            names |= {n for lesson in lessons for n in vars(importlib.import_module(f"course_lib.checks.{lesson}"))
                      if n.startswith("check_")}
    else:
        names = {n for n, v in vars(module).items() if getattr(v, "__module__", None) == module.__name__}
    return {n for n in names if not n.startswith("_") and n != "main"
            and (inspect.isfunction(getattr(module, n, None)) or inspect.isclass(getattr(module, n, None))
                 or n.startswith("check_"))}


def sections() -> dict[str, str]:
    """``{heading: body}`` of each ``###`` section of docs/library.md."""
    text = (REPO_ROOT / "docs" / "library.md").read_text(encoding="utf-8")
    parts = re.split(r"^### (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def backticked(text: str) -> set[str]:
    return set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)(?:\([^`]*\))?`", text))


ALL = {**MODULES, **PACKAGES}


@pytest.mark.parametrize("module_name", sorted(ALL))
def test_each_public_helper_is_named_in_its_modules_section(module_name):
    home = ALL[module_name]
    body = "".join(b for heading, b in sections().items() if f"`{home}`" in heading)
    assert body, f"docs/library.md has no section for `{home}`"
    missing = sorted(defined_names(module_name) - backticked(body))
    assert not missing, f"docs/library.md's `{home}` section does not name {missing} (defined in {module_name})"


def test_no_section_names_a_helper_of_another_module():
    owner: dict[str, set[str]] = {}
    for module_name, home in ALL.items():
        for name in defined_names(module_name):
            owner.setdefault(name, set()).add(home)
    wrong = []
    for heading, body in sections().items():
        homes = backticked(heading)
        for name in backticked(body):
            if name in owner and not owner[name] & homes:
                wrong.append(f"{name} under {heading!r} lives in {sorted(owner[name])}")
    assert not wrong, wrong


def test_the_map_fails_on_a_moved_helper(monkeypatch):
    """The check itself can fail: a helper named under the wrong module is caught."""
    real = sections()
    moved = {h: (b.replace("`accuracy`", "") if "`evaluate`" in h else b + " `accuracy`" if "`timing`" in h else b)
             for h, b in real.items()}
    monkeypatch.setattr(__import__(__name__), "sections", lambda: moved)
    with pytest.raises(AssertionError, match="accuracy"):
        test_each_public_helper_is_named_in_its_modules_section("evaluate")
    with pytest.raises(AssertionError, match="accuracy under"):
        test_no_section_names_a_helper_of_another_module()
