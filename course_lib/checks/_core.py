"""The machinery shared by all checks (introduced in lesson 00).

Every ``check_*`` function takes the learner's function, runs it on cases with
known answers and then either

* prints one short success line and returns ``True``;
* prints ``not implemented yet: ...`` and returns ``False`` when the learner's
  function still raises ``NotImplementedError`` (so a fresh exercise notebook runs
  top to bottom without crashing);
* raises ``AssertionError`` saying what was wrong, with a hint for the typical mistake.

A learner's function that crashes, or runs longer than ``TIME_LIMIT_S`` (an
infinite loop), also becomes an ``AssertionError`` with a clear message.
Graders should call :func:`run_check`, which never raises.
"""
from __future__ import annotations

import functools
import signal
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

import torch

#: Seconds one call of a learner's function may take before the check gives up on it.
TIME_LIMIT_S = 20.0


class LearnerTimeout(Exception):
    """The learner's function ran past the time limit."""


@contextmanager
def _time_limit(seconds: float):
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


def call_learner(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's ``fn`` with a time limit, turning its failures into clear messages."""
    name = getattr(fn, "__name__", "your function")
    try:
        with _time_limit(TIME_LIMIT_S):
            return fn(*args, **kwargs)
    except NotImplementedError as exc:
        raise _NotImplemented(str(exc) or name) from None
    except LearnerTimeout:
        raise AssertionError(
            f"{name} ran for more than {TIME_LIMIT_S:.0f} s on a tiny input: is there an infinite loop?"
        ) from None
    except AssertionError:
        raise
    except Exception as exc:  # the learner's code crashed: show where, briefly
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" (line {frames[-1].lineno} of {frames[-1].name})" if frames else ""
        raise AssertionError(f"{name} raised {type(exc).__name__}: {exc}{where}") from None


def learner_check(title: str) -> Callable:
    """Decorator for a check: adds the success line and the friendly not-implemented path."""

    def decorate(check: Callable[..., None]) -> Callable[..., bool]:
        @functools.wraps(check)
        def wrapper(fn: Callable, *args: Any, **kwargs: Any) -> bool:
            if not callable(fn):
                raise AssertionError(f"{title}: expected a function, got {type(fn).__name__}.")
            try:
                check(fn, *args, **kwargs)
            except _NotImplemented as exc:
                print(f"not implemented yet: {exc}")
                return False
            print(f"\u2714 {title}: all checks passed.")
            return True

        wrapper.check_title = title
        return wrapper

    return decorate


@dataclass
class CheckResult:
    """What a grader records for one check: passed, not implemented, or failed with a message."""

    passed: bool
    status: str  # "passed", "not implemented", "failed"
    message: str


def run_check(check: Callable[[Callable], bool], fn: Callable) -> CheckResult:
    """Run ``check(fn)`` and never raise: the entry point for a grader."""
    import contextlib
    import io

    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            ok = check(fn)
    except AssertionError as exc:
        return CheckResult(False, "failed", str(exc))
    except BaseException as exc:  # a grader must survive anything a submission does
        if isinstance(exc, KeyboardInterrupt):
            raise
        return CheckResult(False, "failed", f"{type(exc).__name__}: {exc}")
    text = buffer.getvalue().strip()
    return CheckResult(bool(ok), "passed" if ok else "not implemented", text)


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
    call_learner(fn, tensor, *args)
    if not torch.equal(tensor, original):
        raise AssertionError(f"{getattr(fn, '__name__', 'your function')} changed {what} in place: "
                             f"compute on a new tensor ({fix}).")
