"""The grader's seed cache (a lesson's warm cache folder): sealed when built, verified each time it is handed out.

The kernel run is replaced by a stand-in that writes the files a solution notebook would cache, so
these tests take a second; ``test_grade_attacks`` runs the real thing.
"""
import json

import nbformat
import pytest

from course_lib import cache, hashing
from course_lib.grade import sandbox


@pytest.fixture
def fake_kernel(tmp_course_dirs, monkeypatch):
    """Each "run" of a solution writes two cache files into the kernel's work folder; runs are counted."""
    runs = []

    async def execute(workdir, budget):
        runs.append(1)
        (workdir / "cache" / "teachers").mkdir(parents=True)
        (workdir / "cache" / "logits-abc.safetensors").write_bytes(b"logits %d" % len(runs))
        (workdir / "cache" / "teachers" / "teacher.safetensors").write_bytes(b"teacher")
        (workdir / "cache" / "logits-abc.safetensors.lock").write_bytes(b"")
        (workdir / "cache" / ".big.safetensors.12-abcd_123.tmp").write_bytes(b"a write cut short")

    monkeypatch.setattr(sandbox, "kernel_manager", lambda *a, **k: None)
    monkeypatch.setattr(sandbox, "_client", lambda nb, km, timeout, workdir, **k: workdir)
    monkeypatch.setattr(sandbox, "_execute", execute)
    solutions = tmp_course_dirs / "solutions"
    solutions.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]),
                   solutions / "02_hinton_distillation.ipynb")
    return solutions, runs


def test_the_seed_cache_is_built_once_sealed_and_reused(fake_kernel):
    solutions, runs = fake_kernel
    folder = sandbox.warm_cache("02", solutions)
    solution = solutions / "02_hinton_distillation.ipynb"
    assert folder.name == f"lesson02-v3-{hashing.sha256_file(solution)[:12]}"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "logits-abc.safetensors", "teachers/teacher.safetensors"]  # regular cache files only: no lock, no .tmp
    seal = json.loads(folder.with_name(folder.name + ".sha256").read_text())
    assert seal["sha256"]["teachers/teacher.safetensors"] == hashing.sha256_file(folder / "teachers/teacher.safetensors")
    cache.verify_sealed(folder, key=solution.name)
    assert sandbox.warm_cache("02", solutions) == folder and len(runs) == 1


@pytest.mark.parametrize("spoil", [
    lambda f: (f / "logits-abc.safetensors").write_bytes(b"logits X"),
    lambda f: (f / "planted.safetensors").write_bytes(b"planted"),
    lambda f: (f / "teachers" / "teacher.safetensors").unlink(),
    lambda f: f.with_name(f.name + ".sha256").unlink(),  # a build cut short before its seal
], ids=["changed", "added", "removed", "no-seal"])
def test_a_seed_cache_that_fails_its_seal_is_moved_aside_and_rebuilt(fake_kernel, spoil):
    solutions, runs = fake_kernel
    folder = sandbox.warm_cache("02", solutions)
    spoil(folder)
    with pytest.warns(UserWarning, match="did not match its seal; moved it to .*corrupt"):
        again = sandbox.warm_cache("02", solutions)
    assert again == folder and len(runs) == 2
    cache.verify_sealed(folder)
    assert (folder / "logits-abc.safetensors").read_bytes() == b"logits 2"
    assert folder.with_name(folder.name + ".corrupt").is_dir()


def test_no_seed_cache_without_a_solution(fake_kernel, tmp_path):
    assert sandbox.warm_cache("09", fake_kernel[0]) is None
