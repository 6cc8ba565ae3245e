"""The untrusted side of the grader: the kernel's limits and the recorder (see :mod:`course_lib.grade`).

``python -m course_lib._sandbox -f CONNECTION_FILE`` starts an IPython kernel with a memory limit,
a file-size limit and Python-level network connections refused; the grader starts it inside
bubblewrap (:mod:`course_lib.grade.sandbox`), which is what actually contains it. Before the
submission's first cell, the grader's own first cell calls :func:`make_recorder`; after the
submission's cells, the recorder runs the course's check on each learner's function and writes to
a JSON file *what the function was given and what it returned* (plain arrays, never pickle). The
grader then judges those outputs in its own process on its own inputs; nothing this kernel says
about passing or failing is trusted, except where :mod:`course_lib.grade` says so.

This is the only code of the grader that runs inside the kernel. It must only use the standard
library, NumPy and torch.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
from typing import Any

import numpy as np

#: Characters of printed output kept per submission (the rest is dropped, once announced).
OUTPUT_LIMIT = 20_000
#: Largest file (bytes) the kernel may write.
FILE_LIMIT = 2 * 1024**3


# ----------------------------------------------------------------------------- plain-data codec
def _array(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, np.require(array, requirements="C"), allow_pickle=False)  # ascontiguousarray would make 0-d 1-d
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def encode(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON data: tensors and arrays as base64 ``.npy``, modules as their state dict."""
    import torch

    if depth > 20:
        return {"unsupported": "nesting deeper than 20"}
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not np.isfinite(value):
            return {"float": repr(value)}
        return value
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return {"tensor": _array(tensor.numpy()), "dtype": str(value.dtype), "grad": bool(value.requires_grad)}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {"unsupported": "object array"}
        return {"ndarray": _array(value)}
    if isinstance(value, np.generic):
        return encode(value.item(), depth + 1)
    if isinstance(value, torch.nn.Module):
        return {"module": {k: encode(v, depth + 1) for k, v in value.state_dict().items()},
                "training": bool(value.training)}
    if isinstance(value, (list, tuple)):
        return {"list" if isinstance(value, list) else "tuple": [encode(v, depth + 1) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    return {"unsupported": type(value).__name__}


def _load_array(text: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def decode(data: Any) -> Any:
    """The value :func:`encode` wrote (a module comes back as its state dict)."""
    import torch

    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if not isinstance(data, dict) or len(data) == 0:
        raise ValueError("not an encoded value")
    if "float" in data:
        return float(data["float"])
    if "tensor" in data:
        tensor = torch.from_numpy(_load_array(data["tensor"]).copy())
        dtype = getattr(torch, str(data.get("dtype", "")).replace("torch.", ""), None)
        if isinstance(dtype, torch.dtype) and dtype != tensor.dtype:
            tensor = tensor.to(dtype)
        return tensor
    if "ndarray" in data:
        return _load_array(data["ndarray"])
    if "module" in data:
        return {k: decode(v) for k, v in data["module"].items()}
    if "list" in data:
        return [decode(v) for v in data["list"]]
    if "tuple" in data:
        return tuple(decode(v) for v in data["tuple"])
    if "dict" in data:
        return {_hashable(decode(k)): decode(v) for k, v in data["dict"]}
    if "unsupported" in data:
        raise ValueError(f"the value was a {data['unsupported']}, which the grader cannot bring back")
    raise ValueError(f"unknown encoded value {sorted(data)}")


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def fingerprint(args: tuple, kwargs: dict) -> str:
    """sha256 of the encoded arguments: the grader compares it with its own copy of the check's inputs.

    Callables are named by their qualified name only (their behaviour cannot be compared this way).
    """
    def plain(value):
        if callable(value) and not hasattr(value, "state_dict"):
            return {"callable": getattr(value, "__qualname__", type(value).__name__)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return encode(value)

    text = json.dumps([plain(list(args)), plain(dict(sorted(kwargs.items())))], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------- the recorder (runs in the kernel)
#: Largest encoded value a recorded call may return or leave in an argument (bytes of array data).
VALUE_LIMIT = 64 * 1024 * 1024


def _mutable(value) -> bool:
    import torch

    return isinstance(value, (torch.Tensor, np.ndarray, torch.nn.Module))


def _data(value) -> bool:
    import torch

    return isinstance(value, (torch.Tensor, np.ndarray))


def _digest(value) -> str:
    """sha256 of a tensor's or array's dtype, shape and bytes (what "changed in place" compares)."""
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    array = np.ascontiguousarray(value)
    return hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest()


def _state(value) -> tuple:
    """What "changed in place" compares: the values, and whether a tensor still requires grad (``detach_()``)."""
    return _digest(value), bool(getattr(value, "requires_grad", False))


def _nbytes(value, depth: int = 0) -> int:
    import torch

    if depth > 20:
        return 0
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, torch.nn.Module):
        return sum(_nbytes(v, depth + 1) for v in value.state_dict().values())
    if isinstance(value, (list, tuple)):
        return sum(_nbytes(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return sum(_nbytes(v, depth + 1) for v in value.values())
    return 0


def _bounded(value) -> Any:
    size = _nbytes(value)
    if size > VALUE_LIMIT:
        return {"unsupported": f"value of {size / 2**20:.0f} MB (the grader accepts {VALUE_LIMIT / 2**20:.0f} MB)"}
    return encode(value)


def _gradients(result, args: tuple, kwargs: dict) -> dict:
    """d result / d each tensor argument that requires grad, when ``result`` is a scalar with a graph.

    The grader rebuilds a scalar with the same value and these gradients, so a check's gradient
    tests (is the teacher detached? is the T^2 there?) judge the learner's real graph.
    """
    import torch

    if not (isinstance(result, torch.Tensor) and result.requires_grad and result.numel() == 1):
        return {}
    named = []
    for key, arg in [(str(i), a) for i, a in enumerate(args)] + list(kwargs.items()):
        if isinstance(arg, torch.Tensor) and arg.requires_grad:
            named.append((key, arg))
        elif isinstance(arg, torch.nn.Module):  # a regressor, a student: its parameters' gradients too
            named += [(f"{key}.{name}", p) for name, p in arg.named_parameters() if p.requires_grad]
    if not named:
        return {}
    try:
        grads = torch.autograd.grad(result, [a for _, a in named], retain_graph=True, allow_unused=True)
    except RuntimeError:
        return {}
    return {k: None if g is None else encode(g) for (k, _), g in zip(named, grads)}


def make_recorder(namespace: dict, checks: dict, records: str, library: str):
    """The grader's recorder, made in the kernel *before* the submission's first cell runs.

    ``namespace`` is the notebook's global namespace; ``checks`` maps each exercise's function name
    to its check (``"module:function"``), imported now, before the submission can change them;
    ``records`` is the folder for the records; ``library`` is the folder of course_lib's own code.
    The grader keeps the returned function under a name chosen at random for this run and calls it
    once per exercise, with the exercise's number and function name. Everything it uses is bound
    here, so rebinding a module attribute later (``course_lib._sandbox.record = ...``) changes nothing.

    Per call of the learner's function the record holds: the fingerprint of the arguments before the
    call; the return value (or the exception's type and message); the value after the call of every
    module argument (trained weights reach the grader); which tensor or array arguments the function
    changed in place; and, for the first calls, the course_lib functions it ran (by code object, so a
    name built at run time is seen too).
    """
    import importlib
    import sys as _sys
    from contextlib import redirect_stdout

    import torch

    checks = {name: getattr(importlib.import_module(path.split(":")[0]), path.split(":")[1])
              for name, path in checks.items()}
    own = (os.path.join(library, "checks") + os.sep, os.path.join(library, "_sandbox.py"))
    setprofile, dump, join = _sys.setprofile, json.dump, os.path.join

    calls_seen: set = set()  # (file, first line, name) of the course_lib functions the learner's function ran

    def profiled(fn, args, kwargs):
        def profile(frame, event, arg):
            code = frame.f_code
            if event == "call" and code.co_filename.startswith(library) and not code.co_filename.startswith(own):
                calls_seen.add((code.co_filename, code.co_firstlineno, code.co_name))

        setprofile(profile)
        try:
            return fn(*args, **kwargs)
        finally:
            setprofile(None)

    def record(index: int, name: str) -> None:
        fn = namespace.get(name)
        calls = []
        calls_seen.clear()

        def recorded(*args, **kwargs):
            entry = {"inputs": fingerprint(args, kwargs)}
            before = {key: _state(a) for key, a in _arguments(args, kwargs) if _data(a)}
            calls.append(entry)
            try:
                result = profiled(fn, args, kwargs) if len(calls) <= 2 else fn(*args, **kwargs)
            except BaseException as exc:
                entry["raised"] = [type(exc).__name__, str(exc)[:2000]]
                raise
            finally:
                entry["after"] = {key: _bounded(a) for key, a in _arguments(args, kwargs)
                                  if isinstance(a, torch.nn.Module)}
                entry["mutated"] = [key for key, a in _arguments(args, kwargs)
                                    if key in before and _state(a) != before[key]]
            same = [i for i, a in enumerate(args) if result is a]
            entry["returned"] = {"arg": same[0]} if same else {"value": _bounded(result)}
            entry["grads"] = _gradients(result, args, kwargs)
            return result

        recorded.__name__ = getattr(fn, "__name__", name)
        recorded.__qualname__ = getattr(fn, "__qualname__", recorded.__name__)
        verdict, message = "passed", ""
        if fn is None or not callable(fn):
            verdict, message = "missing", f"`{name}` is not defined as a function in the notebook"
        else:
            buffer = io.StringIO()
            try:
                with redirect_stdout(buffer):
                    ok = checks[name](recorded)
                if not ok:
                    verdict, message = "not implemented", buffer.getvalue().strip()[-2000:]
            except BaseException as exc:  # the kernel's own verdict: only trusted where the grader says so
                verdict, message = "failed", f"{type(exc).__name__}: {exc}"[:4000]
        library_ran = sorted({f"{os.path.relpath(f, library)}:{line}:{code}" for f, line, code in calls_seen})
        with open(join(records, f"{index}.json"), "w", encoding="utf-8") as f:
            dump({"calls": calls, "verdict": verdict, "message": message, "library": library_ran}, f)

    return record


def _arguments(args: tuple, kwargs: dict):
    return [(str(i), a) for i, a in enumerate(args)] + list(kwargs.items())


# ----------------------------------------------------------------------------- the limited kernel
class _CappedStream(io.TextIOBase):
    def __init__(self, stream, limit: int):
        self.stream, self.left, self.cut = stream, limit, False

    def write(self, text: str) -> int:
        if self.left > 0:
            self.stream.write(text[: self.left])
        elif not self.cut:
            self.cut = True
            self.stream.write("\n[output cut by the grader]\n")
        self.left -= len(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def cap_output(limit: int = OUTPUT_LIMIT) -> None:
    """Keep at most ``limit`` characters of printed output (run as the kernel's first cell)."""
    sys.stdout = _CappedStream(sys.stdout, limit)
    sys.stderr = _CappedStream(sys.stderr, limit)


def _refuse_network() -> None:
    import socket

    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError("network access is switched off while grading")
        return real_connect(self, address)

    socket.socket.connect = connect


def main() -> None:
    """Start the kernel with the limits: memory from ``COURSE_GRADE_MEMORY_MB``; no outside network."""
    import resource

    megabytes = int(os.environ.get("COURSE_GRADE_MEMORY_MB", "0") or 0)
    if megabytes > 0:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # No single file larger than this: a submission cannot fill the disk with one write.
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    _refuse_network()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
