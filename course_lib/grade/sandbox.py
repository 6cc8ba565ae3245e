"""Running one submission: a fresh Jupyter kernel inside a bubblewrap sandbox, bounded in time, memory and output.

What the sandbox gives each kernel (``bwrap --unshare-all --die-with-parent``):

* its own **network namespace** with nothing in it: no connection of any kind leaves it (TCP, UDP,
  raw sockets; ``connect_ex`` gets ``ENETUNREACH``). The grader talks to the kernel over Unix
  sockets in the submission's folder (Jupyter's ``ipc`` transport), not over TCP;
* its own **PID namespace**: it sees no other process, cannot signal another kernel, and every
  process it starts (a detached one, one that ignores SIGTERM) is killed when its kernel is;
* a **filesystem view** of its own: the interpreter, the installed packages, ``course_lib`` and the
  course's data read-only; its private work folder (a copy of the lesson's warm cache, its
  records, ``HOME``) writable; a private ``/tmp``. Nothing else: not ``solutions/``, not the other
  submissions, not the gradebook or feedback folders, not the grader's cache;
* a clean environment (only the variables the course needs).

Inside, :mod:`course_lib._sandbox` adds a memory limit, a file-size limit and capped printed
output. The grader adds a wall-clock deadline for the whole submission, kernel restarts included,
and caps the outputs and records it reads back.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Optional

from .. import _sandbox
from ..config import REPO_ROOT
from .points import Exercise
from .submissions import read_submission, without_check_calls

#: Largest record (bytes) read back from a kernel.
RECORD_LIMIT = 256 * 1024 * 1024
#: Characters of cell output kept per kernel on the grader's side (outputs are not graded).
CLIENT_OUTPUT_LIMIT = 200_000
BWRAP = "bwrap"
_FIX = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; `make setup` does it) on a Linux "
        "machine whose kernel allows namespaces, or, knowing that nothing is then contained, pass --no-sandbox")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create its namespaces here."""


def check_sandbox() -> None:
    """Raise :class:`SandboxUnavailable` with what to do unless ``bwrap`` can start a contained process here."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"the grader's sandbox needs Linux (this is {sys.platform}): " + _FIX)
    found = shutil.which(BWRAP)
    if found is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: " + _FIX)
    command = [found, "--unshare-all", "--die-with-parent", *_read_only_system(), "--proc", "/proc",
               "--dev", "/dev", sys.executable, "-c", "pass"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"bwrap could not be run ({exc}): " + _FIX) from None
    if done.returncode != 0:
        raise SandboxUnavailable(f"bwrap cannot create a sandbox here ({done.stderr.strip()[:300]}): " + _FIX)


_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf", "localtime",
        "alternatives", "fonts", "ssl", "mime.types")


def _read_only_system() -> list[str]:
    """bwrap arguments: the system folders, the interpreter and the installed packages, read-only."""
    args = []
    for name in _ETC:  # only what the loader, Python and matplotlib read: not the machine's other settings
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    for top in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    seen = {"/usr"}
    for folder in (sys.prefix, sys.base_prefix, sys.exec_prefix, Path(sys.executable).resolve().parents[1]):
        real = str(Path(folder).resolve())
        for path in {str(folder), real}:
            if not any(path == s or path.startswith(s + os.sep) for s in seen) and Path(path).exists():
                args += ["--ro-bind", path, path]
                seen.add(path)
    return args


def bwrap_command(workdir: Path, env: dict[str, str], data_dir: Optional[Path]) -> list[str]:
    """The bwrap prefix that runs a kernel with only ``workdir`` writable (see the module docstring)."""
    # The private /tmp first: binds after it may lie under /tmp (a checkout, a venv, the work folder).
    args = [shutil.which(BWRAP) or BWRAP, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--tmpfs", "/tmp", *_read_only_system(), "--proc", "/proc", "--dev", "/dev",
            "--ro-bind", str(REPO_ROOT / "course_lib"), str(REPO_ROOT / "course_lib")]
    if data_dir is not None and data_dir.is_dir():
        args += ["--ro-bind", str(data_dir), str(data_dir)]
    args += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args + ["--"]


def kernel_env(workdir: Path, memory_mb: int) -> dict[str, str]:
    """The kernel's whole environment: FAST mode, its private folders, no hub downloads, one thread."""
    return {"COURSE_FAST": "1", "COURSE_CACHE_DIR": str(workdir / "cache"),
            "COURSE_RESULTS_DIR": str(workdir / "results"), "COURSE_GRADE_MEMORY_MB": str(memory_mb),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO_ROOT), "HOME": str(workdir / "home"), "TMPDIR": "/tmp",
            "MPLCONFIGDIR": str(workdir / "home" / "mpl"), "IPYTHONDIR": str(workdir / "home" / "ipython"),
            "JUPYTER_RUNTIME_DIR": str(workdir / "home" / "runtime"), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}


def kernel_manager(memory_mb: int, workdir: Path, sandboxed: bool = True):
    """A kernel manager whose kernel runs in ``workdir`` (in bubblewrap unless ``sandboxed`` is False), over ipc."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager  # async: nbclient then notices a dead kernel

    from ..config import data_dir

    for sub in ("home", "cache", "results", "ipc", "records"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    spec_dir = workdir / "kernels" / "course-sandbox"
    spec_dir.mkdir(parents=True, exist_ok=True)
    env = kernel_env(workdir, memory_mb)
    argv = [sys.executable, "-m", "course_lib._sandbox", "-f", "{connection_file}"]
    if sandboxed:
        argv = bwrap_command(workdir, env, Path(data_dir())) + argv
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": "course sandbox", "language": "python", "env": {} if sandboxed else env}))
    km = AsyncKernelManager(kernel_name="course-sandbox", transport="ipc", ip=str(workdir / "ipc" / "k"),
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(workdir / "kernels")]))
    km.connection_file = str(workdir / "connection.json")
    return km


def _client(nb, km, timeout: int, workdir: Path, **kwargs):
    """An nbclient that keeps at most :data:`CLIENT_OUTPUT_LIMIT` characters of cell output in memory."""
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        kept = 0

        def output(self, outs, msg, display_id, cell_index):
            content = msg.get("content", {})
            size = len(str(content.get("text", ""))) + len(str(content.get("data", "")))
            self.kept += size
            if self.kept > CLIENT_OUTPUT_LIMIT:
                return None
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient(nb, km=km, timeout=timeout, allow_errors=True, kernel_name="course-sandbox",
                        startup_timeout=120, resources={"metadata": {"path": str(workdir)}}, **kwargs)


async def _execute(client, budget: float) -> Optional[str]:
    """Run ``client``'s notebook for at most ``budget`` seconds; why it stopped early (None if it finished)."""
    from nbclient.exceptions import CellTimeoutError

    failure = None
    try:
        await asyncio.wait_for(client.async_execute(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                               timeout=max(1.0, budget))
    except CellTimeoutError:  # a TimeoutError too: caught first
        failure = "ran past the time limit"
    except asyncio.TimeoutError:
        failure = "ran past the submission's time limit"
    except Exception as exc:  # a cell past its time limit, a dead kernel (os._exit, memory), a broken kernel
        failure = "ran past the time limit" if "Timeout" in type(exc).__name__ else "ended the kernel"
    finally:
        await _kill(client)
    return failure


async def _kill(client) -> None:
    """End the kernel and, with it, every process of its sandbox."""
    km = getattr(client, "km", None)
    if km is None:
        return
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    try:
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)  # bwrap: --die-with-parent takes the whole namespace with it
    except (OSError, ProcessLookupError):
        pass
    try:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
    except Exception:  # a kernel that is already gone
        pass
    try:
        cleanup = km.cleanup_resources()  # a coroutine on the async manager
        if asyncio.iscoroutine(cleanup):
            await cleanup
    except Exception:  # files already removed
        pass


def copy_regular_files(source: Path, target: Path) -> None:
    """Copy the regular files under ``source`` into ``target``: never links, pipes, devices, lock or temporary files."""
    for root, _dirs, files in os.walk(source, followlinks=False):
        relative = Path(root).relative_to(source)
        for name in files:
            path = Path(root) / name
            if path.is_symlink() or not path.is_file() or name.endswith((".lock", ".tmp")):
                continue
            (target / relative).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative / name, follow_symlinks=False)


def _recorder_setup(exercises: list[Exercise], records: Path, token: str) -> str:
    checks = {e.function: e.check for e in exercises}
    return (f"import course_lib._sandbox\ncourse_lib._sandbox.cap_output({_sandbox.OUTPUT_LIMIT})\n"
            f"{token} = course_lib._sandbox.make_recorder(globals(), {checks!r}, {str(records)!r}, "
            f"{str(REPO_ROOT / 'course_lib')!r})")


def grading_notebook(nb, exercises: list[Exercise], records: Path, skip: set[int], token: str):
    """The grader's setup cell + the submission's code cells (check calls removed, ``skip`` left out) + recorders."""
    import nbformat

    cells = [nbformat.v4.new_code_cell(_recorder_setup(exercises, records, token))]
    origin = [None]
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and index not in skip:
            cells.append(nbformat.v4.new_code_cell(without_check_calls(cell.source)))
            origin.append(index)
    for k, exercise in enumerate(exercises):
        cells.append(nbformat.v4.new_code_cell(f"{token}({k}, {exercise.function!r})"))
        origin.append(("exercise", k))
    return nbformat.v4.new_notebook(cells=cells), origin


def warm_cache(lesson: str, solutions: Path, timeout: float = 1800.0, memory_mb: int = 16384,
               sandboxed: bool = True) -> Optional[Path]:
    """A cache folder filled by running the lesson's solution notebook once (FAST mode), kept for later runs.

    Each submission's kernel starts from a *copy* of its regular files, so a lesson whose notebook
    builds a teacher (04, 05) does not rebuild it per submission. No kernel ever sees this folder.
    Kept under ``cache_dir()/grader/lessonNN-<sha of the solution notebook>``, sealed by
    :func:`course_lib.cache.seal` (the sha256 of every file) and verified each time it is handed out:
    a folder that fails is moved aside with a warning and built again.
    """
    from .. import cache, config, hashing

    solution = next(Path(solutions).glob(f"{lesson}_*.ipynb"), None)
    if solution is None:
        return None
    folder = config.cache_dir() / "grader" / f"lesson{lesson}-v3-{hashing.sha256_file(solution)[:12]}"
    with cache.file_lock(folder, f"warming the grader's cache for lesson {lesson}"):
        if folder.exists() and not _sealed(folder, solution.name):
            aside = cache.move_aside(folder)
            warnings.warn(f"the grader's seed cache {folder} did not match its seal; moved it to {aside} "
                          "and building it again", stacklevel=2)
        if not folder.exists():
            with tempfile.TemporaryDirectory(prefix="course-warm-") as tmp:
                workdir = Path(tmp)
                client = _client(read_submission(solution), kernel_manager(memory_mb, workdir, sandboxed),
                                 int(timeout), workdir)
                asyncio.run(_execute(client, timeout))
                staging = folder.with_name(folder.name + ".new")
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
                copy_regular_files(workdir / "cache", staging)
                os.replace(staging, folder)
                cache.seal(folder, key=solution.name)
    return folder


def _sealed(folder: Path, key: str) -> bool:
    """Whether ``folder`` matches the seal beside it (every file's sha256, the solution's name)."""
    from .. import cache

    try:
        cache.verify_sealed(folder, key=key)
    except cache.CacheError:
        return False
    return True


def _read_record(path: Path) -> dict:
    if path.stat().st_size > RECORD_LIMIT:
        raise ValueError(f"the function's recorded outputs are {path.stat().st_size / 2**20:.0f} MB; "
                         f"the grader reads at most {RECORD_LIMIT / 2**20:.0f} MB")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("the check's record was unreadable") from None
    if not isinstance(record, dict):
        raise ValueError("the check's record was unreadable")
    return record


def run_in_kernel(nb, exercises: list[Exercise], timeout: float, memory_mb: int, workdir: Path,
                  seed_cache: Optional[Path] = None, sandboxed: bool = True
                  ) -> tuple[dict[int, dict], dict[int, str], list[str]]:
    """Run the submission and the recorders in fresh kernels: ``(records, problems, notes)`` by exercise index.

    ``timeout`` bounds the whole submission (wall clock, kernel starts included). A cell may run
    for a third of it (at least 10 s). A cell that hangs or ends the kernel is left out and the rest
    run again in a new kernel, until every exercise has a record or a reason, or the time is spent.
    """
    import secrets

    if seed_cache is not None and seed_cache.is_dir():
        copy_regular_files(seed_cache, workdir / "cache")
    deadline = time.monotonic() + timeout
    skip, records, problems, notes = set(), {}, {}, []
    pending = list(range(len(exercises)))
    attempt = 0
    while pending:
        left = deadline - time.monotonic()
        if left < 5:
            for k in pending:
                problems[k] = f"the submission used up its {timeout:.0f} s before this exercise was checked"
            notes.append(f"stopped at the submission's time limit ({timeout:.0f} s)")
            break
        attempt += 1
        records_dir = workdir / f"records-{attempt}"  # a fresh folder: nothing an earlier kernel left is read
        records_dir.mkdir(parents=True)
        todo = [exercises[k] for k in pending]
        token = f"__grader_{secrets.token_hex(8)}"
        grading, origin = grading_notebook(nb, todo, records_dir, skip, token)
        started: list[int] = []
        cell_limit = max(5, int(min(left, max(10.0, timeout / 3))))  # one endless cell must not eat the budget
        client = _client(grading, kernel_manager(memory_mb, workdir, sandboxed), cell_limit, workdir,
                         on_cell_start=lambda cell, cell_index, started=started: started.append(cell_index))
        failure = asyncio.run(_execute(client, left))
        where = origin[started[-1]] if started else None
        for local, k in enumerate(list(pending)):
            path = records_dir / f"{local}.json"
            finished = failure is None or (isinstance(where, tuple) and where[1] > local)
            if finished and path.is_file():  # a record from a recorder cell that did not finish is not read
                try:
                    records[k] = _read_record(path)
                except ValueError as exc:
                    problems[k] = str(exc)
                pending.remove(k)
        if failure is None:
            for k in pending:
                problems[k] = "the check did not finish in the submission's kernel"
            break
        notes.append(f"{_describe(where, todo)} {failure}")
        if "submission's time limit" in failure:
            for k in pending:
                problems[k] = f"the submission used up its {timeout:.0f} s before this exercise was checked"
            break
        if isinstance(where, tuple):  # a recorder: this exercise's function hung or ended the kernel
            k = exercises.index(todo[where[1]])
            if k in pending:
                problems[k] = f"your function {failure} while it was being checked"
                pending.remove(k)
        elif where is None or where in skip:
            for k in pending:
                problems[k] = f"the kernel could not be started or kept alive ({failure})"
            break
        else:
            skip.add(where)
    return records, problems, notes


def _describe(where, todo: list[Exercise]) -> str:
    if where is None:
        return "the grader's set-up cell"
    if isinstance(where, tuple):
        return f"exercise {todo[where[1]].number}"
    return f"cell {where + 1} of the submission"
