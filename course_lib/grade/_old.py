"""Grade a class's exercise notebooks safely: ``python -m course_lib grade`` (for instructors).

How a submission is graded, and why it cannot gain points by patching anything:

1. The **points table** comes from ``solutions/`` (never from the submission): each exercise is a
   ``### BEGIN SOLUTION`` block inside a function, and the check cell that calls
   ``check_<name>(<function>)`` after it. Points come from that check cell's metadata,
   ``{"course": {"points": 2}}`` (default 1).
2. The submission's code cells run in a **fresh kernel** (nbclient) started by
   ``python -m course_lib._sandbox``: memory limit, outside network refused, printed output cut
   at ``_sandbox.OUTPUT_LIMIT`` characters, a time limit per submission, FAST mode, a temporary
   cache. Its own check cells are skipped. Then, per exercise, the kernel runs the check on the
   learner's function through a *recorder* that writes, for each call, a fingerprint of the
   inputs and the function's outputs as plain arrays (JSON, base64 ``.npy``; never pickle).
3. The grader (this process) runs the **same check** on a stand-in function that answers each
   call with the recorded output, after verifying that its own inputs have the recorded
   fingerprint. The verdict, the message and the points are this process's. A submission that
   patched ``torch``, ``numpy``, ``course_lib`` or the checks in its kernel changes nothing here:
   either its recorded outputs are right for the grader's inputs, or the check fails (a changed
   input is reported as such).

Checks that watch what happens *during* a call (a spy on a library function, a model that
records its own training) cannot be replayed from outputs; they are listed in
:data:`KERNEL_JUDGED` and their verdict comes from the kernel, flagged in the gradebook as
"judged in the submission's kernel" (see docs/teaching.md for what that means).

An answer that calls or copies the library's own implementation of the exercise (e.g.
``from course_lib.losses import kd_loss``) is flagged and gets ``library_points`` of its points
(default 0).
"""
from __future__ import annotations

import ast
import csv
import json
import re
import shutil
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from . import _sandbox
from .config import REPO_ROOT
from .exercises import BEGIN

#: Checks whose verdict cannot be replayed from recorded outputs (they observe the call itself).
KERNEL_JUDGED = {"check_fitnets", "check_median_latency", "check_distillation_loss", "check_choose_temperature",
                 "check_median_latency_ms", "check_fine_tune_pruned", "check_token_kd_loss", "check_greedy_decode"}
_CHECK_CALL = re.compile(r"^\s*(?:checks\.)?(check_\w+)\(\s*(\w+)\s*[,)]", re.M)
_DEF = re.compile(r"^\s*def\s+(\w+)\s*\(", re.M)


# ----------------------------------------------------------------------------- the points table
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
            for check, fn in _CHECK_CALL.findall(source):
                if fn not in functions:
                    continue
                points = float(cell.metadata.get("course", {}).get("points", 1))
                found.append(Exercise(lesson, f"{int(lesson)}.{functions.index(fn) + 1}", fn,
                                      _check_path(check, lesson), points))
        if found:
            table[lesson] = found
    return table


# ----------------------------------------------------------------------------- reading a submission
@dataclass
class ExerciseResult:
    exercise: Exercise
    status: str = "failed"  # passed / failed / not implemented / missing
    message: str = ""
    points: float = 0.0
    flags: list[str] = field(default_factory=list)


@dataclass
class SubmissionResult:
    student: str
    path: Path
    lesson: Optional[str]
    results: list[ExerciseResult] = field(default_factory=list)
    problem: str = ""  # why the whole submission could not be (fully) graded
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return sum(r.points for r in self.results)


def student_id(path: Path) -> str:
    """The student id is the file name without ``.ipynb`` (e.g. ``alice.ipynb`` -> ``alice``)."""
    return Path(path).name.removesuffix(".ipynb")


def read_submission(path: Path):
    """The notebook at ``path``, or a ``ValueError`` saying why it cannot be read."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise ValueError("the file is missing" if not path.exists() else "it is not a file")
    if path.stat().st_size == 0:
        raise ValueError("the file is empty")
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8", errors="replace"), as_version=4)
    except Exception as exc:  # invalid JSON, not a notebook, a wrong format version
        raise ValueError(f"not a valid notebook ({type(exc).__name__}: {str(exc)[:200]})") from None
    return nb


def _top_level(nb):
    """``(statement, cell source)`` for every top-level statement of the notebook's parsable code cells."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = _strip_magics(cell.source)
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            yield node, source


def _defined_functions(nb) -> dict[str, str]:
    """``{name: source of the function}`` for every top-level function the notebook's code cells define."""
    return {node.name: ast.get_source_segment(source, node) or "" for node, source in _top_level(nb)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def guess_lesson(nb, table: dict[str, list[Exercise]]) -> Optional[str]:
    """The lesson whose exercise functions the notebook defines most of (None if none)."""
    defined = set(_defined_functions(nb))
    scores = {lesson: len(defined & {e.function for e in exercises}) for lesson, exercises in table.items()}
    best = max(scores, key=scores.get, default=None)
    return best if best is not None and scores[best] > 0 else None


# ----------------------------------------------------------------------------- answers copied from the library
def _library_function(name: str):
    """The course_lib function of that name, if the library implements the exercise itself."""
    import importlib

    for module in ("losses", "evaluate", "distill", "hidden", "router.targets", "router.timing", "sequence",
                   "compress"):
        try:
            found = getattr(importlib.import_module(f"course_lib.{module}"), name, None)
        except ImportError:
            continue
        if callable(found):
            return found
    return None


def _normalised_body(source: str) -> str:
    """The function's body as an AST dump, without docstring, names of the function and its arguments."""
    try:
        node = ast.parse(textwrap.dedent(source)).body[0]
    except (SyntaxError, IndexError):
        return ""
    body = node.body[1:] if (node.body and isinstance(node.body[0], ast.Expr)
                             and isinstance(node.body[0].value, ast.Constant)) else node.body
    return ast.dump(ast.Module(body=body, type_ignores=[]), annotate_fields=False)


def library_answer(source: str, function: str) -> Optional[str]:
    """Why the learner's ``source`` for ``function`` is the library's own answer (None if it is not)."""
    import inspect

    reference = _library_function(function)
    if reference is None or not source:
        return None
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_lib"):
            if any(alias.name == function for alias in node.names):
                return f"imports {function} from {node.module}"
        if isinstance(node, ast.Attribute) and node.attr == function:
            return f"calls the library's {function}"
    try:
        if _normalised_body(inspect.getsource(reference)) == _normalised_body(source):
            return f"is a copy of course_lib's {function}"
    except (OSError, TypeError):
        pass
    return None


def _library_imports(nb) -> dict[str, str]:
    """Names the notebook imports from course_lib at top level: ``{local name: original name}``."""
    return {alias.asname or alias.name: alias.name for node, _ in _top_level(nb)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_lib") for alias in node.names}


# ----------------------------------------------------------------------------- running the kernel
def _kernel_manager(memory_mb: int, workdir: Path, cache: Optional[Path] = None):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager  # async: nbclient then notices a dead kernel

    spec_dir = workdir / "kernels" / "course-sandbox"
    spec_dir.mkdir(parents=True, exist_ok=True)
    env = {"COURSE_FAST": "1", "COURSE_CACHE_DIR": str(cache or workdir / "cache"),
           "COURSE_RESULTS_DIR": str(workdir / "results"),
           "COURSE_GRADE_MEMORY_MB": str(memory_mb), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "course_lib._sandbox", "-f", "{connection_file}"],
        "display_name": "course sandbox", "language": "python", "env": env}))
    return AsyncKernelManager(kernel_name="course-sandbox", kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(workdir / "kernels")]))


def _is_check_cell(source: str) -> bool:
    return bool(_CHECK_CALL.search(source))


def _grading_notebook(nb, exercises: list[Exercise], records: Path, skip: set[int]):
    """Setup cell + the submission's code cells (its check cells and ``skip`` left out) + one recorder per exercise."""
    import nbformat

    cells = [nbformat.v4.new_code_cell(f"import course_lib._sandbox as __grader\n__grader.cap_output({_sandbox.OUTPUT_LIMIT})")]
    origin = [None]
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and index not in skip and not _is_check_cell(cell.source):
            cells.append(nbformat.v4.new_code_cell(cell.source))
            origin.append(index)
    for k, exercise in enumerate(exercises):
        out = records / f"{k}.json"
        cells.append(nbformat.v4.new_code_cell(
            f"__grader.record({exercise.check!r}, globals().get({exercise.function!r}), {str(out)!r})"))
        origin.append(("exercise", k))
    return nbformat.v4.new_notebook(cells=cells), origin


def warm_cache(lesson: str, solutions: Path, timeout: float = 1800.0, memory_mb: int = 16384) -> Optional[Path]:
    """A cache folder filled by running the lesson's solution notebook once (FAST mode), kept for later runs.

    Each submission's kernel starts from a *copy* of it, so a lesson whose notebook builds a teacher
    (04, 05) does not rebuild it per submission, and no submission can change what another one reads.
    Kept under ``cache_dir()/grader/lessonNN-<sha of the solution notebook>``.
    """
    from nbclient import NotebookClient

    from . import cache, config
    from .data import file_digest

    solution = next(Path(solutions).glob(f"{lesson}_*.ipynb"), None)
    if solution is None:
        return None
    folder = config.cache_dir() / "grader" / f"lesson{lesson}-{file_digest(solution, 'sha256')[:12]}"
    done = folder / ".complete"
    with cache.file_lock(folder, f"warming the grader's cache for lesson {lesson}"):
        if not done.exists():
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="course-warm-") as tmp:
                nb = read_submission(solution)
                client = NotebookClient(nb, km=_kernel_manager(memory_mb, Path(tmp), cache=folder), timeout=int(timeout),
                                        allow_errors=True, kernel_name="course-sandbox", startup_timeout=120,
                                        resources={"metadata": {"path": tmp}})
                try:
                    client.execute()
                except Exception:  # a warm-up that fails leaves a partial cache: submissions then compute the rest
                    pass
                finally:
                    _stop(client)
            done.write_text(str(solution.name))
    return folder


def run_in_kernel(nb, exercises: list[Exercise], timeout: float, memory_mb: int,
                  workdir: Path, seed_cache: Optional[Path] = None) -> tuple[dict[int, dict], dict[int, str], list[str]]:
    """Run the submission and the recorders in fresh kernels: ``(records, problems, notes)`` by exercise index.

    A cell may run for a third of ``timeout`` (at least 10 s). A cell that hangs or ends the kernel is
    left out and the rest run again in a new kernel, until every exercise has a record or a reason,
    or ``timeout`` seconds are spent.
    """
    from nbclient import NotebookClient

    records_dir = workdir / "records"
    records_dir.mkdir(parents=True, exist_ok=True)
    if seed_cache is not None and seed_cache.is_dir():
        shutil.copytree(seed_cache, workdir / "cache", ignore=shutil.ignore_patterns("*.lock", ".complete"),
                        dirs_exist_ok=True)
    deadline = time.monotonic() + timeout
    skip, records, problems, notes = set(), {}, {}, []
    pending = list(range(len(exercises)))
    while pending:
        left = deadline - time.monotonic()
        if left < 5:
            for k in pending:
                problems[k] = f"the submission used up its {timeout:.0f} s before this exercise was checked"
            break
        for old in records_dir.glob("*.json"):
            old.unlink()
        todo = [exercises[k] for k in pending]
        grading, origin = _grading_notebook(nb, todo, records_dir, skip)
        started: list[int] = []
        cell_limit = max(5, int(min(left, max(10.0, timeout / 3))))  # one endless cell must not eat the budget
        client = NotebookClient(grading, km=_kernel_manager(memory_mb, workdir), timeout=cell_limit,
                                allow_errors=True, kernel_name="course-sandbox", startup_timeout=120,
                                resources={"metadata": {"path": str(workdir)}},
                                on_cell_start=lambda cell, cell_index, started=started: started.append(cell_index))
        failure = None
        try:
            client.execute()
        except Exception as exc:  # a cell past the time limit, a dead kernel (os._exit, memory), a broken kernel
            failure = "ran past the time limit" if "Timeout" in type(exc).__name__ else "ended the kernel"
        finally:
            _stop(client)
        for local, k in enumerate(list(pending)):
            path = records_dir / f"{local}.json"
            if path.is_file():
                try:
                    records[k] = json.loads(path.read_text(encoding="utf-8"))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    problems[k] = "the check's record was unreadable"
                pending.remove(k)
        if failure is None:
            for k in pending:
                problems[k] = "the check did not finish in the submission's kernel"
            break
        where = origin[started[-1]] if started else None
        notes.append(f"{_describe(where, todo)} {failure}")
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


def _stop(client) -> None:
    from jupyter_core.utils import run_sync

    km = getattr(client, "km", None)
    try:
        if km is not None and km.has_kernel:
            run_sync(km.shutdown_kernel)(now=True)
    except Exception:  # a kernel that is already gone
        pass


# ----------------------------------------------------------------------------- judging in this process
class _Mismatch(BaseException):
    """The check here and the check in the submission's kernel did not see the same calls."""


def _exception(name: str, message: str) -> BaseException:
    import builtins

    from .checks import _core

    if name == "LearnerTimeout":
        return _core.LearnerTimeout()
    found = getattr(builtins, name, None)
    if isinstance(found, type) and issubclass(found, Exception):
        return found(message)
    return type(name, (Exception,), {})(message)


def _apply(target, value) -> None:
    """Give the grader's copy of an argument the value it had after the learner's call."""
    import numpy as np
    import torch

    if isinstance(target, torch.nn.Module):
        target.load_state_dict(value)
    elif isinstance(target, torch.Tensor):
        with torch.no_grad():
            target.copy_(value)
    elif isinstance(target, np.ndarray):
        target[...] = value


def _surrogate(value, grads: dict, args: tuple, kwargs: dict):
    """A scalar equal to ``value`` whose gradient with respect to each argument is the recorded one."""

    out = value.detach().clone()
    for key, grad in grads.items():
        if grad is None:
            continue
        where, _, parameter = key.partition(".")
        arg = args[int(where)] if where.isdigit() else kwargs[where]
        if parameter:  # a parameter of a module argument
            arg = dict(arg.named_parameters())[parameter]
        g = _sandbox.decode(grad).to(arg.dtype)
        inner = (arg * g).sum()
        out = out + (inner - inner.detach()).to(out.dtype)
    return out


class _Replay:
    """Stands in for the learner's function in the grader: answers each call with the recorded outputs."""

    def __init__(self, calls: list, name: str):
        self.calls, self.index, self.__name__ = calls, 0, name

    def __call__(self, *args, **kwargs):
        if self.index >= len(self.calls):
            raise _Mismatch("the check called the function more often here than in the submission's kernel")
        call = self.calls[self.index]
        self.index += 1
        if call.get("inputs") != _sandbox.fingerprint(args, kwargs):
            raise _Mismatch(f"call {self.index} received other inputs in the submission's kernel: the submission "
                            "changed the check, the course library or torch/numpy there")
        for key, encoded in (call.get("after") or {}).items():
            _apply(args[int(key)] if key.isdigit() else kwargs[key], _sandbox.decode(encoded))
        if "raised" in call:
            raise _exception(*call["raised"])
        returned = call.get("returned") or {}
        if "arg" in returned:
            return args[returned["arg"]]
        value = _sandbox.decode(returned.get("value"))
        if call.get("grads"):
            value = _surrogate(value, call["grads"], args, kwargs)
        return value


def judge(exercise: Exercise, record: dict) -> ExerciseResult:
    """The verdict on one exercise, computed here from the kernel's record (see the module docstring)."""
    import contextlib
    import importlib
    import io

    result = ExerciseResult(exercise)
    name = exercise.check.split(":")[1]
    if name in KERNEL_JUDGED:
        result.flags.append("judged in the submission's kernel")
        result.status, result.message = record.get("verdict", "failed"), str(record.get("message", ""))[:4000]
        return result
    module, _, attr = exercise.check.partition(":")
    check = getattr(importlib.import_module(module), attr)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            ok = check(_Replay(record.get("calls", []), exercise.function))
        result.status = "passed" if ok else "not implemented"
        result.message = buffer.getvalue().strip()[-2000:]
    except AssertionError as exc:
        result.status, result.message = "failed", str(exc)
    except _Mismatch as exc:
        result.status, result.message = "failed", f"tampering suspected: {exc}"
        result.flags.append("inputs differ in the kernel")
    except Exception as exc:  # a check that cannot replay this record: say so, never crash the class
        result.status, result.message = "failed", f"the grader could not judge this answer ({type(exc).__name__}: {exc})"
    return result


# ----------------------------------------------------------------------------- one submission, a class
def grade_submission(path: Path, table: dict[str, list[Exercise]], lesson: Optional[str] = None,
                     timeout: float = 300.0, memory_mb: int = 16384, library_points: float = 0.0,
                     solutions: Optional[Path] = REPO_ROOT / "solutions") -> SubmissionResult:
    """Grade one notebook; never raises. Every exercise of the lesson gets a row, with a reason when it earned nothing."""
    start = time.perf_counter()
    path = Path(path)
    sub = SubmissionResult(student_id(path), path, lesson)
    try:
        nb = read_submission(path)
        sub.lesson = lesson or guess_lesson(nb, table)
    except ValueError as exc:
        nb, sub.problem = None, str(exc)
    if sub.lesson is None or sub.lesson not in table:
        sub.lesson = sub.lesson or (next(iter(table)) if len(table) == 1 else None)
        if not sub.problem:
            sub.problem = "no exercise of any lesson is defined in it"
    exercises = table.get(sub.lesson, [])
    if nb is None or sub.problem:
        sub.results = [ExerciseResult(e, "missing", sub.problem) for e in exercises]
        sub.seconds = time.perf_counter() - start
        return sub
    defined = _defined_functions(nb)
    imported = _library_imports(nb)
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        try:
            seed = warm_cache(sub.lesson, solutions, memory_mb=max(memory_mb, 16384)) if solutions else None
            records, problems, notes = run_in_kernel(nb, exercises, timeout, memory_mb, Path(tmp), seed)
        except Exception as exc:  # the grader's own machinery failed: report, never crash the class
            records, problems, notes = {}, {k: f"grading failed ({type(exc).__name__}: {exc})"
                                            for k in range(len(exercises))}, []
    sub.problem = "; ".join(notes)
    for k, exercise in enumerate(exercises):
        if exercise.function not in defined and imported.get(exercise.function) != exercise.function:
            result = ExerciseResult(exercise, "missing", f"`{exercise.function}` is not defined in the notebook")
        elif k in records:
            result = judge(exercise, records[k])
        else:
            result = ExerciseResult(exercise, "failed", problems.get(k, "not checked"))
        copied = (f"imports {exercise.function} from course_lib" if imported.get(exercise.function) == exercise.function
                  else library_answer(defined.get(exercise.function, ""), exercise.function))
        if copied:
            result.flags.append(f"library answer: {copied}")
        if result.status == "passed":
            result.points = exercise.points * (library_points if copied else 1.0)
        sub.results.append(result)
    sub.seconds = time.perf_counter() - start
    return sub


def _grade_one(args) -> SubmissionResult:
    return grade_submission(*args)


def grade(paths: Sequence[Path], lesson: Optional[str] = None, timeout: float = 300.0, memory_mb: int = 16384,
          library_points: float = 0.0, jobs: int = 1, solutions: Path = REPO_ROOT / "solutions",
          progress: bool = True) -> list[SubmissionResult]:
    """Grade every submission (one fresh kernel each, ``jobs`` at a time), in the order given."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    table = exercises_from_solutions(solutions)
    if lesson is not None:
        lesson = f"{int(lesson):02d}"
        if lesson not in table:
            raise ValueError(f"no exercises for lesson {lesson} in {solutions}")
        table = {lesson: table[lesson]}
    work = [(Path(p), table, lesson, timeout, memory_mb, library_points, solutions) for p in paths]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(tqdm(pool.map(_grade_one, work), total=len(work), desc="grading", unit="notebook",
                            disable=not progress))
    return results


# ----------------------------------------------------------------------------- what the instructor reads
def _mistake(message: str) -> str:
    """A failure message with its numbers masked, so the same mistake by two students reads the same."""
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", message.strip().splitlines()[0] if message.strip() else "")
    return text[:200] or "(no message)"


def write_gradebook(results: list[SubmissionResult], path: Path) -> Path:
    """CSV: one row per submission, one column per exercise (points), ``total``, then flags and problems."""
    columns = []
    for sub in results:
        for r in sub.results:
            if r.exercise.column not in columns:
                columns.append(r.exercise.column)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "lesson", *columns, "total", "max", "flags", "problem"])
        for sub in results:
            points = {r.exercise.column: r.points for r in sub.results}
            flags = [f"{r.exercise.number}: {flag}" for r in sub.results for flag in r.flags]
            writer.writerow([sub.student, sub.lesson or "", *[f"{points.get(c, 0):g}" for c in columns],
                             f"{sub.total:g}", f"{sum(r.exercise.points for r in sub.results):g}",
                             "; ".join(flags), sub.problem])
    return path


def feedback_markdown(sub: SubmissionResult) -> str:
    """Per-student feedback: each exercise's verdict, the check's message with its hint, and flags."""
    best = sum(r.exercise.points for r in sub.results)
    lines = [f"# Feedback for {sub.student}", "", f"Lesson {sub.lesson or '?'}: **{sub.total:g} of {best:g} points**.", ""]
    if sub.problem:
        lines += [f"> Note: {sub.problem}", ""]
    for r in sub.results:
        mark = {"passed": "passed", "not implemented": "not implemented yet", "missing": "missing"}.get(r.status, "failed")
        lines += [f"## Exercise {r.exercise.number}: `{r.exercise.function}` ({r.points:g}/{r.exercise.points:g}, {mark})", ""]
        if r.message:
            lines += ["```", r.message[:3000], "```", ""]
        lines += [f"*{flag}*" for flag in r.flags] + ([""] if r.flags else [])
    return "\n".join(lines)


def class_report(results: list[SubmissionResult], folder: Path, top: int = 3) -> Path:
    """``class_report.md`` and ``class_report.png``: share passing each exercise, most frequent mistakes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_exercise: dict[str, list[ExerciseResult]] = {}
    for sub in results:
        for r in sub.results:
            by_exercise.setdefault(r.exercise.column, []).append(r)
    n = len(results)
    lines = ["# Class report", "", f"{n} submission{'s' if n != 1 else ''}.", "",
             "| exercise | passed | share | most frequent mistakes |", "|---|---|---|---|"]
    shares = {}
    for column, rs in by_exercise.items():
        passed = sum(r.status == "passed" for r in rs)
        shares[column] = passed / len(rs)
        mistakes = Counter(_mistake(r.message) if r.status == "failed" else r.status for r in rs if r.status != "passed")
        text = "; ".join(f"{m.replace('|', '/')}: {c} of {len(rs)}" for m, c in mistakes.most_common(top)) or "none"
        lines.append(f"| {column} | {passed} of {len(rs)} | {shares[column]:.0%} | {text} |")
    fig = Figure(figsize=(max(4, 1.2 * len(shares)), 3.2))
    ax = fig.subplots()
    ax.bar(list(shares), [100 * v for v in shares.values()], color="tab:blue")
    ax.set_ylim(0, 100)
    ax.set_ylabel("submissions passing (%)")
    ax.set_xlabel("exercise")
    ax.set_title(f"Share of the class passing each exercise ({n} submissions)")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    fig.savefig(folder / "class_report.png", dpi=100)
    lines += ["", "![share passing each exercise](class_report.png)", ""]
    (folder / "class_report.md").write_text("\n".join(lines), encoding="utf-8")
    return folder / "class_report.md"


def points_table(table: dict[str, list[Exercise]]) -> str:
    """The exercises and their points as a Markdown table (docs/teaching.md holds a copy; a test compares)."""
    lines = ["| lesson | exercise | function | check | points | judged |", "|---|---|---|---|---|---|"]
    for lesson, exercises in table.items():
        for e in exercises:
            name = e.check.split(":")[1]
            where = "in the submission's kernel" if name in KERNEL_JUDGED else "by the grader"
            lines.append(f"| {lesson} | {e.number} | `{e.function}` | `{name}` | {e.points:g} | {where} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m course_lib grade SUBMISSION.ipynb ... --csv gradebook.csv [--feedback DIR] ...``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_lib grade", description="Grade exercise notebooks safely.")
    parser.add_argument("submissions", nargs="*", type=Path)
    parser.add_argument("--csv", type=Path, help="the gradebook to write (required to grade)")
    parser.add_argument("--list", action="store_true", help="print the points table (from solutions/) and stop")
    parser.add_argument("--feedback", type=Path, help="folder for per-student feedback and the class report")
    parser.add_argument("--lesson", help="lesson number (default: guessed from each notebook's functions)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per submission (default 300)")
    parser.add_argument("--memory-mb", type=int, default=16384,
                        help="virtual-memory limit of each kernel in MB (default 16384; torch reserves several GB)")
    parser.add_argument("--library-points", type=float, default=0.0,
                        help="share of the points for an answer that uses the library's own function (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="kernels at once (default 1)")
    parser.add_argument("--solutions", type=Path, default=REPO_ROOT / "solutions")
    args = parser.parse_args(argv)
    if args.list:
        print(points_table(exercises_from_solutions(args.solutions)))
        return 0
    if not args.submissions or args.csv is None:
        parser.error("give the submissions to grade and --csv GRADEBOOK (or --list)")
    try:
        results = grade(args.submissions, args.lesson, args.timeout, args.memory_mb, args.library_points, args.jobs,
                        args.solutions)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_gradebook(results, args.csv)
    print(f"gradebook: {args.csv}")
    if args.feedback:
        args.feedback.mkdir(parents=True, exist_ok=True)
        for sub in results:
            (args.feedback / f"{sub.student}.md").write_text(feedback_markdown(sub), encoding="utf-8")
        print(f"feedback and class report: {class_report(results, args.feedback)}")
    for sub in results:
        best = sum(r.exercise.points for r in sub.results)
        print(f"{sub.student:<24} {sub.total:g}/{best:g}" + (f"  ({sub.problem})" if sub.problem else ""))
    return 0
