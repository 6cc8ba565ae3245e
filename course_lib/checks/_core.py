"""The machinery shared by all checks (introduced in lesson 00).

Every ``check_*`` function takes the learner's function, runs it on cases with
known answers and then either

* prints one short success line and returns ``True``;
* prints ``not implemented yet: ...`` and returns ``False`` when the learner's
  function still raises ``NotImplementedError`` (so a fresh exercise notebook runs
  top to bottom without crashing);
* raises ``AssertionError`` saying what was wrong, with a hint for the typical mistake.

A check runs several cases whose answers differ (shapes, arguments, edge values), recomputes what
each known mistake gives on each and names the one that matches (:func:`name_mistakes`); when none
does, it says what it gave, what it got and on which input. It calls the learner's function with the
same inputs every time it runs (generators seeded locally, the caller's global RNGs untouched: a
grader replays it), and the course's answer is the generated answer key (``course_lib.answers``).

Two ways to run a check, and what each protects against:

**In a notebook** the learner calls ``check_*(fn)`` directly, in the kernel's own process, so
the hint appears under the cell. This path is for honest mistakes, not for defence:

* an exception in ``fn`` becomes an ``AssertionError`` that names it and its line;
* each call of ``fn`` is stopped after a time limit (``SIGALRM``), and the message gives the
  limit and how long the course's own solution took for the same call on this machine; the
  limit is :data:`TIME_LIMIT_FACTOR` times that, and at least :data:`TIME_LIMIT_S`. The limit
  works only on POSIX and only in the main thread (elsewhere there is none), and ``fn`` can
  defeat it by catching the exception or ignoring ``SIGALRM``;
* nothing else: ``fn`` runs with the kernel's rights and can end it (``os._exit``), fork it,
  or flood its output.

**For a grader** :func:`run_check` returns a :class:`CheckResult` and does not raise. Where
``os.fork`` exists (Linux, macOS) it runs the check in a forked child process in its own
process group, which sends the result back over a pipe; the parent

* enforces a wall-clock limit (``time_limit_s``, default :data:`RUN_CHECK_TIME_LIMIT_S`) from
  any thread, whatever ``fn`` does with signals or exceptions;
* turns a child that ends without a result (``os._exit``, ``sys.exit`` from a thread, a
  crash or signal) into a failed result that says how it ended;
* fails a submission that calls ``os.fork`` (the forked copies never report, so a result
  is never duplicated) and kills the child's whole process group when done or timed out;
* keeps at most :data:`MESSAGE_LIMIT` characters of the message (printed output included),
  saying how much was cut.

It does not protect against code that leaves the process group (``os.setsid``), exhausts
memory or disk, reads or writes files, or uses the network: the child has the caller's rights.
Where ``os.fork`` is missing (Windows) the check runs in-process with the notebook path's
limits, plus the message cap. To grade submissions, use the isolated grading command
``python -m course_lib grade`` (to come, see the classroom issue), which runs each one in a
separate process.
"""
from __future__ import annotations

import contextlib
import faulthandler
import functools
import io
import json
import os
import select
import signal
import sys
import threading
import time
import traceback
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from time import perf_counter as _perf_counter  # bound here: a check may replace time.perf_counter
from typing import Any, Callable

import torch

#: The smallest time limit, in seconds, for one call of a learner's function in a check.
TIME_LIMIT_S = 10.0
#: A call may take this many times as long as the course's solution took for the same call here.
TIME_LIMIT_FACTOR = 50.0
#: Default wall-clock limit, in seconds, for a whole check run by :func:`run_check`.
RUN_CHECK_TIME_LIMIT_S = 300.0
#: The most characters of a message :func:`run_check` returns.
MESSAGE_LIMIT = 2000


class LearnerTimeout(Exception):
    """The learner's function ran past the time limit."""


@contextmanager
def _time_limit(seconds: float | None):
    """Interrupt the block after ``seconds`` (POSIX main thread only; elsewhere no limit)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds is None:
        yield
        return

    def _handler(signum, frame):
        raise LearnerTimeout()

    previous = signal.signal(signal.SIGALRM, _handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _NotImplemented(Exception):
    """Raised inside a check when the learner's function is still a stub."""


class _Timing(threading.local):
    """Per-thread state of the check being run: reference call times, or the limits they give."""

    def __init__(self):
        self.recording: list[float] | None = None  # while timing the course's solution: seconds per call
        self.reference: list[float] | None = None  # while checking the learner: the solution's seconds per call
        self.calls = 0
        self.changed: list[str] = []  # inputs the learner's function changed in place, reported at the end
        self.own_hint = False  # the check compares this call's inputs itself, with a more specific hint


_timing = _Timing()


def _limit_for_call() -> tuple[float, str]:
    """(seconds, why) for the next call of the learner's function."""
    reference = _timing.reference
    if reference is None:
        return TIME_LIMIT_S, f"{TIME_LIMIT_S:g} s on a tiny input"
    ref = reference[_timing.calls] if _timing.calls < len(reference) else max(reference, default=0.0)
    limit = max(TIME_LIMIT_S, TIME_LIMIT_FACTOR * ref)
    return limit, (f"{limit:.3g} s: the course's solution took {ref:.3g} s for this call on this machine, and the "
                   f"limit is {TIME_LIMIT_FACTOR:g}x that, at least {TIME_LIMIT_S:g} s")


def call_learner(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's ``fn`` with a time limit, turning its failures into clear messages."""
    name = getattr(fn, "__name__", "your function")
    if _timing.recording is not None:  # timing the course's solution: no limit, no translation
        start = _perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _timing.recording.append(_perf_counter() - start)
    limit, why = _limit_for_call()
    _timing.calls += 1
    inputs = _snapshot(args, kwargs)
    try:
        with _time_limit(limit):
            result = fn(*args, **kwargs)
        _note_changed_inputs(fn, inputs, args, kwargs)
        return result
    except NotImplementedError as exc:
        raise _NotImplemented(str(exc) or name) from None
    except LearnerTimeout:
        raise AssertionError(
            f"{name} was stopped after {why}. Look for a loop that never ends, or work repeated far more "
            "often than needed (a Python loop over every element where one tensor operation would do)."
        ) from None
    except AssertionError:
        raise
    except Exception as exc:  # the learner's code crashed: show where, briefly
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (line {frames[-1].lineno} of {frames[-1].name})" if frames else ""
        raise AssertionError(f"{name} raised {type(exc).__name__}: {exc}{where}") from None


def _snapshot(args: tuple, kwargs: dict) -> dict:
    """Copies of the tensor and array arguments, to compare after the call (modules may change: they train)."""
    import numpy as np

    items = [(i, a) for i, a in enumerate(args)] + list(kwargs.items())
    return {key: a.detach().clone() if isinstance(a, torch.Tensor) else a.copy()
            for key, a in items if isinstance(a, (torch.Tensor, np.ndarray))}


def _same(before: Any, after: Any) -> bool:
    import numpy as np

    if isinstance(after, torch.Tensor):
        after = after.detach()
        if before.shape != after.shape or before.dtype != after.dtype:
            return False
        if before.is_floating_point() or before.is_complex():
            return bool(((before == after) | (before.isnan() & after.isnan())).all())
        return torch.equal(before, after)
    if before.shape != after.shape or before.dtype != after.dtype:
        return False
    return bool(np.array_equal(before, after, equal_nan=before.dtype.kind in "fc"))


@contextlib.contextmanager
def inputs_compared_by_check():
    """Around a :func:`call_learner` whose inputs the check compares itself, with its own hint for the mistake.

    Elsewhere a changed input fails the check at once (the expected value is usually computed from
    the same tensors, so a later comparison would blame the wrong thing); here it is only noted, and
    fails the check at its end if the check's own comparison did not.
    """
    saved, _timing.own_hint = _timing.own_hint, True
    try:
        yield
    finally:
        _timing.own_hint = saved


def _note_changed_inputs(fn: Callable, inputs: dict, args: tuple, kwargs: dict) -> None:
    """Fail at once when ``fn`` changed a tensor or array it was given (see :func:`inputs_compared_by_check`)."""
    import inspect

    for key, before in inputs.items():
        after = args[key] if isinstance(key, int) else kwargs[key]
        if _same(before, after):
            continue
        name = key
        if isinstance(key, int):
            try:
                name = list(inspect.signature(fn).parameters)[key]
            except (TypeError, ValueError, IndexError):
                name = f"argument {key + 1}"
        if name not in _timing.changed:
            _timing.changed.append(name)
        if not _timing.own_hint:
            raise AssertionError(_changed_inputs_message(fn))


def _changed_inputs_message(fn: Callable) -> str:
    names = ", ".join(f"`{n}`" for n in _timing.changed)
    return (f"{getattr(fn, '__name__', 'your function')} changed its input in place ({names}): the caller still "
            "needs it as it was. Compute on a new tensor: `x.clone()` first, or `x - y` rather than `x -= y`, "
            "`x.abs()` rather than `x.abs_()`.")


def _reference_times(wrapper: Callable) -> list[float] | None:
    """Seconds per call of the course's solution in this check, measured once per process."""
    solution = getattr(wrapper, "solution", None)
    if solution is None:
        return None
    if wrapper.reference_times is None:
        _timing.recording = []
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                wrapper.__wrapped__(solution)
            wrapper.reference_times = _timing.recording
        finally:
            _timing.recording = None
    return wrapper.reference_times


def learner_check(title: str, solution: Callable | None = None) -> Callable:
    """Decorator for a check: adds the success line and the friendly not-implemented path.

    ``solution`` is the course's answer: the check runs it once (untimed) to measure how long
    each call takes on this machine, and scales the learner's time limits from that.
    """

    def decorate(check: Callable[..., None]) -> Callable[..., bool]:
        @functools.wraps(check)
        def wrapper(fn: Callable, *args: Any, **kwargs: Any) -> bool:
            if not callable(fn):
                raise AssertionError(f"{title}: expected a function, got {type(fn).__name__}.")
            saved = _timing.reference, _timing.calls, _timing.changed
            _timing.reference, _timing.calls = _reference_times(wrapper), 0
            _timing.changed = []
            try:
                check(fn, *args, **kwargs)
                if _timing.changed:  # every check compares the caller's inputs before and after each call
                    raise AssertionError(_changed_inputs_message(fn))
            except _NotImplemented as exc:
                print(f"not implemented yet: {exc}")
                return False
            finally:
                _timing.reference, _timing.calls, _timing.changed = saved
            print(f"\u2714 {title}: all checks passed.")
            return True

        wrapper.check_title = title
        wrapper.solution = solution
        wrapper.reference_times = None
        return wrapper

    return decorate


@dataclass
class CheckResult:
    """What a grader records for one check: passed, not implemented, or failed with a message."""

    passed: bool
    status: str  # "passed", "not implemented", "failed"
    message: str


def _cap(text: str, limit: int = MESSAGE_LIMIT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... cut: {len(text) - limit:,} more characters]"


class _CappedText(io.TextIOBase):
    """A text stream that keeps its first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int):
        self.limit, self.kept, self.dropped = limit, [], 0
        self._size = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        s = str(s)
        room = self.limit - self._size
        if room > 0:
            self.kept.append(s[:room])
            self._size += min(room, len(s))
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def text(self) -> str:
        kept = "".join(self.kept)
        return kept + (f"\n[... cut: {self.dropped:,} more characters]" if self.dropped else "")


def _run_here(check: Callable[[Callable], bool], fn: Callable, in_child: bool = False) -> CheckResult:
    """Run the check in this process, catching what can be caught; the message is capped."""
    buffer = _CappedText(MESSAGE_LIMIT)
    try:
        with contextlib.redirect_stdout(buffer):
            ok = check(fn)
    except AssertionError as exc:
        return CheckResult(False, "failed", _cap(str(exc)))
    except BaseException as exc:  # a grader must survive anything a submission does
        if isinstance(exc, KeyboardInterrupt) and not in_child:
            raise  # the grader's own Ctrl-C
        return CheckResult(False, "failed", _cap(f"{type(exc).__name__}: {exc}"))
    return CheckResult(bool(ok), "passed" if ok else "not implemented", _cap(buffer.text().strip()))


def _child(check: Callable, fn: Callable, write_fd: int) -> None:
    """In the forked child: run the check, report once over the pipe. The caller calls os._exit."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # low-level writes must not reach the grader's terminal or log
        os.dup2(devnull, fd)
    faulthandler.disable()  # it may hold a copy of the grader's stderr: a crash is reported as a result instead
    sys.stdout = sys.stderr = _CappedText(MESSAGE_LIMIT)
    torch.set_num_threads(1)  # no OpenMP pool inherited from the parent; a check is tiny
    me, forked = os.getpid(), []
    os.register_at_fork(before=lambda: forked.append(True))
    result = _run_here(check, fn, in_child=True)
    if os.getpid() != me:  # a copy made by the learner's os.fork(): only the first child reports
        return
    if forked:
        result = CheckResult(False, "failed", "the function called os.fork(): a check must run in one process "
                             "(the copies were stopped).")
    payload = json.dumps(asdict(result)).encode() + b"\n"
    while payload:
        payload = payload[os.write(write_fd, payload):]


def _ended_without_result(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        return f"the check process crashed (signal {name}) before it could report: no result."
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return (f"the check process ended with exit code {code} before it could report: the function ended the "
            "process (os._exit, or an exit from another thread), so there is no result.")


def _run_forked(check: Callable, fn: Callable, time_limit_s: float) -> CheckResult:
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():  # Python 3.12+ warns when forking a threaded process; the child is ours
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(read_fd)
            _child(check, fn, write_fd)
        except BaseException:  # noqa: B036 -- whatever happens, the child must not return into the caller
            code = 70
        finally:
            os._exit(code)
    os.close(write_fd)
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)  # also here, so the group exists before we may need to kill it
    data, timed_out = b"", False
    deadline = time.monotonic() + time_limit_s
    try:
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([read_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break  # the child is gone without a result
            data += chunk
            if len(data) > 16 * MESSAGE_LIMIT + 4096:
                break
    finally:
        os.close(read_fd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if timed_out:
        return CheckResult(False, "failed", f"the check was stopped after {time_limit_s:g} s (run_check's "
                           "wall-clock limit) without a result: a loop that never ends, or a function that "
                           "ignores the check's own time limit.")
    line = data.split(b"\n", 1)[0] if b"\n" in data else b""
    if not line:
        return CheckResult(False, "failed", _ended_without_result(status))
    try:
        fields = json.loads(line)
        return CheckResult(bool(fields["passed"]), str(fields["status"]), _cap(str(fields["message"])))
    except (ValueError, KeyError, TypeError):
        return CheckResult(False, "failed", "the check process sent a garbled result.")


def run_check(check: Callable[[Callable], bool], fn: Callable, time_limit_s: float | None = None) -> CheckResult:
    """Run ``check(fn)`` for a grader and return a :class:`CheckResult`; never raises.

    On POSIX the check runs in a forked child process with a wall-clock limit of
    ``time_limit_s`` seconds (default :data:`RUN_CHECK_TIME_LIMIT_S`); elsewhere in this
    process. The module docstring lists what each protects against.
    """
    limit = RUN_CHECK_TIME_LIMIT_S if time_limit_s is None else float(time_limit_s)
    with contextlib.suppress(Exception):  # the course's solution, timed here once so children inherit it
        _reference_times(check)
    if not hasattr(os, "fork"):
        return _run_here(check, fn)
    return _run_forked(check, fn, limit)


def assert_close(actual: Any, expected: torch.Tensor, what: str, hint: str, atol: float = 1e-5,
                 rtol: float = 1e-4) -> torch.Tensor:
    """Assert a learner's tensor equals ``expected`` within tolerance, with a hint if not."""
    if not isinstance(actual, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(actual).__name__}.")
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{what}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}. {hint}"
        )
    actual_f = actual.detach().to(torch.float64).cpu()
    expected_f = expected.detach().to(torch.float64).cpu()
    if not torch.isfinite(actual_f).all():
        raise AssertionError(f"{what}: the result contains nan or inf. {hint}")
    if not torch.allclose(actual_f, expected_f, atol=atol, rtol=rtol):
        err = (actual_f - expected_f).abs().max().item()
        raise AssertionError(f"{what}: wrong values (largest difference {err:.3g}). {hint}")
    return actual


def assert_not_in_place(fn: Callable, tensor: torch.Tensor, *args: Any, what: str, fix: str) -> None:
    """Call ``fn(tensor, *args)`` and fail if it changed ``tensor``: a learner's function must not edit its input."""
    original = tensor.clone()
    with inputs_compared_by_check():
        call_learner(fn, tensor, *args)
    if not torch.equal(tensor, original):
        raise AssertionError(f"{getattr(fn, '__name__', 'your function')} changed {what} in place: "
                             f"compute on a new tensor ({fix}).")


def name_mistakes(got: Any, expected: Any, variants: dict, ruled_out: set, same: Callable[[Any, Any], bool]
                  ) -> list[str] | None:
    """Which typical mistakes explain ``got``: ``None`` when ``got`` is right, else the matching hint keys.

    ``variants`` maps each hint key to what that mistake returns on this case (a value, or a list of
    values for several ways of making it). A right answer adds to ``ruled_out`` every way of making a
    mistake that would have given a different answer here, so a later case never names one an earlier
    case excluded. A key is named only when its variant equals ``got`` and differs from ``expected``; the list may be
    empty (the mistake is none of the known ones: say what was observed instead).
    """
    pairs = [((key, i), v) for key, values in variants.items()
             for i, v in enumerate(values if isinstance(values, list) else [values])]
    if same(got, expected):
        ruled_out |= {sub for sub, v in pairs if not same(v, expected)}
        return None
    return list(dict.fromkeys(sub[0] for sub, v in pairs if sub not in ruled_out and same(got, v)
                              and not same(v, expected)))
