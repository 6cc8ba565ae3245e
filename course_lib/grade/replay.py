"""Judging in the grader's own process: the check runs again on a stand-in that answers with the recorded outputs.

The stand-in first verifies that the grader's own (pristine) inputs have the fingerprint the kernel
recorded; module arguments then take the state the learner's function left them in (training is
what those exercises ask for); tensors and arrays never do: a function that changed its input
tensors in place fails, whatever the kernel's check said.
"""
from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .. import _sandbox
from ..config import REPO_ROOT
from .points import KERNEL_JUDGED, Exercise
from .submissions import library_function


@dataclass
class ExerciseResult:
    exercise: Exercise
    status: str = "failed"  # passed / failed / not implemented / missing
    message: str = ""
    points: float = 0.0
    flags: list[str] = field(default_factory=list)


#: Judging swaps sys.stdout (redirect_stdout is process-wide): one judgement at a time under --jobs.
_JUDGING = threading.Lock()


class _Mismatch(BaseException):
    """The check here and the check in the submission's kernel did not see the same calls."""


def _exception(name: str, message: str) -> BaseException:
    import builtins

    from ..checks import _core

    if name == "LearnerTimeout":
        return _core.LearnerTimeout()
    found = getattr(builtins, name, None)
    if isinstance(found, type) and issubclass(found, Exception):
        return found(message)
    return type(name, (Exception,), {})(message)


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
        import torch

        if self.index >= len(self.calls):
            raise _Mismatch("the check called the function more often here than in the submission's kernel")
        call = self.calls[self.index]
        self.index += 1
        if call.get("inputs") != _sandbox.fingerprint(args, kwargs):
            raise _Mismatch(f"call {self.index} received other inputs in the submission's kernel: the submission "
                            "changed the check, the course library or torch/numpy there")
        for key, encoded in (call.get("after") or {}).items():
            target = args[int(key)] if key.isdigit() else kwargs[key]
            if isinstance(target, torch.nn.Module):
                target.load_state_dict(_sandbox.decode(encoded))
        if "raised" in call:
            raise _exception(*call["raised"])
        returned = call.get("returned") or {}
        if "arg" in returned:
            return args[returned["arg"]]
        value = _sandbox.decode(returned.get("value"))
        if call.get("grads"):
            value = _surrogate(value, call["grads"], args, kwargs)
        return value


def _argument_name(exercise: Exercise, key: str) -> str:
    """``student_logits`` for key "0" of kd_loss (the solution's parameter names), else "argument 1"."""
    if not key.isdigit():
        return f"`{key}`"
    reference = library_function(exercise.function)
    try:
        names = list(inspect.signature(reference).parameters) if reference else []
    except (TypeError, ValueError):
        names = []
    return f"`{names[int(key)]}`" if int(key) < len(names) else f"argument {int(key) + 1}"


def mutated_inputs(exercise: Exercise, record: dict) -> Optional[str]:
    """The feedback for a function that changed its input tensors or arrays in place (None if it did not)."""
    for number, call in enumerate(record.get("calls") or [], start=1):
        keys = [str(k) for k in call.get("mutated") or []]
        if keys:
            names = ", ".join(_argument_name(exercise, k) for k in keys)
            return (f"your function changed its input {names} in place (call {number} of the check). A function "
                    "must leave the tensors it is given as they were, values and `requires_grad` alike: the caller "
                    "still needs them. Work on a copy (`x = x.clone()`) or use out-of-place operations (`x + 1`, not "
                    "`x += 1` or `x.zero_()`; `x.detach()`, not `x.detach_()`).")
    return None


def ran_library_code(exercise: Exercise, record: dict) -> Optional[str]:
    """Why the function ran the library's own implementation of the exercise while it was checked (None if not)."""
    reference = library_function(exercise.function)
    where = None
    if reference is not None:
        try:
            code = inspect.unwrap(reference).__code__
            where = (str(Path(code.co_filename).resolve().relative_to(REPO_ROOT / "course_lib")), code.co_firstlineno)
        except (AttributeError, ValueError):
            where = None
    for entry in record.get("library") or []:
        path, _, rest = str(entry).partition(":")
        line, _, name = rest.partition(":")
        if name == exercise.function or (where is not None and (path, line) == (where[0], str(where[1]))):
            return f"ran course_lib's {name} ({path}) while it was checked"
    return None


def judge(exercise: Exercise, record: dict) -> ExerciseResult:
    """The verdict on one exercise, computed here from the kernel's record (see the module docstring)."""
    import contextlib
    import importlib
    import io

    result = ExerciseResult(exercise)
    if record.get("verdict") == "missing":
        result.status, result.message = "missing", str(record.get("message", ""))[:4000]
        return result
    mutated = mutated_inputs(exercise, record)
    if exercise.check_name in KERNEL_JUDGED:
        result.flags.append("judged in the submission's kernel")
        result.status, result.message = record.get("verdict", "failed"), str(record.get("message", ""))[:4000]
    else:
        module, _, attr = exercise.check.partition(":")
        check = getattr(importlib.import_module(module), attr)
        buffer = io.StringIO()
        try:
            with _JUDGING, contextlib.redirect_stdout(buffer):
                ok = check(_Replay(record.get("calls", []), exercise.function))
            result.status = "passed" if ok else "not implemented"
            result.message = buffer.getvalue().strip()[-2000:]
        except AssertionError as exc:
            result.status, result.message = "failed", str(exc)
        except _Mismatch as exc:
            result.status, result.message = "failed", f"tampering suspected: {exc}"
            result.flags.append("inputs differ in the kernel")
        except Exception as exc:  # a check that cannot replay this record: say so, never crash the class
            result.status = "failed"
            result.message = f"the grader could not judge this answer ({type(exc).__name__}: {str(exc)[:500]})"
    if mutated and result.status != "not implemented":
        result.status, result.message = "failed", mutated
        result.flags.append("changed its inputs in place")
    return result
