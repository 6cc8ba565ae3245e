"""Course-wide settings: FAST mode, seeding, device and folders (introduced in lesson 00).

FAST mode is read here and nowhere else. Notebooks and library functions that
shrink their work in FAST mode call :func:`is_fast` (or read :data:`FAST`).
"""
from __future__ import annotations

import contextlib
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from . import hashing

#: True when the environment variable ``COURSE_FAST`` is ``1``; CI and ``make test`` set it.
FAST: bool = os.environ.get("COURSE_FAST", "0").strip().lower() in {"1", "true", "yes"}

REPO_ROOT = Path(__file__).resolve().parents[1]


def is_fast() -> bool:
    """FAST mode, read from this module so tests can switch it with ``monkeypatch``."""
    return FAST


def fast_warning(what: str = "smaller data and fewer epochs") -> str:
    """The sentence every lesson prints at its top in FAST mode, or ``""`` in full mode (introduced in lesson 00).

    Args:
        what: how this lesson shrinks its work in FAST mode, e.g. ``"a slice of MNIST and 1-2 epochs"``.
    """
    if not is_fast():
        return ""
    return (f"FAST mode ({what}): every number below is a smoke test of the code and may contradict the "
            "text; run without COURSE_FAST to learn from the numbers.")


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so a run repeats on the same machine.

    Also asks cuDNN for deterministic kernels. Returns the seed, so a notebook can print it.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return seed


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block with PyTorch's RNGs (CPU and CUDA) seeded, then restore them as they were.

    Library helpers use this instead of :func:`seed_everything`, so that building a model
    with seeded initial weights never reseeds the caller's global RNG behind its back::

        with config.seeded(0):
            student = models.MLP()
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def get_device() -> torch.device:
    """The best device here: CUDA, then Apple's MPS, then the CPU.

    Set ``COURSE_DEVICE=cpu`` (or ``cuda``, ``mps``) to force one.
    """
    forced = os.environ.get("COURSE_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _folder(variable: str, default: Path, what: str) -> Path:
    """``$variable`` or ``default``, created if missing; a clear error when it cannot be a folder."""
    path = Path(os.environ.get(variable) or default)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(f"the {what} folder {path} is a file, not a folder: "
                                 f"move it, or set {variable} to another folder") from None
    except OSError as exc:
        raise PermissionError(f"cannot create the {what} folder {path} ({exc.strerror}): "
                              f"set {variable} to a folder you can write to") from None
    return path


def data_dir() -> Path:
    """Where data sets live: ``$COURSE_DATA_DIR``, default ``<repo>/data`` (git-ignored). Created if missing."""
    return _folder("COURSE_DATA_DIR", REPO_ROOT / "data", "data")


def cache_dir() -> Path:
    """Where checkpoints and cached teacher outputs live: ``$COURSE_CACHE_DIR``, default ``<repo>/cache``."""
    return _folder("COURSE_CACHE_DIR", REPO_ROOT / "cache", "cache")


def results_dir() -> Path:
    """Where full-mode notebooks write their measured numbers (``<repo>/results``)."""
    return _folder("COURSE_RESULTS_DIR", REPO_ROOT / "results", "results")


def _canonical(value, where: str = "config"):
    """``value`` as plain JSON data that says everything about it (the input of :func:`config_hash`)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return {"__float__": repr(value)}  # JSON has no nan/inf
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise TypeError(f"config_hash: {where} has a key of type {type(key).__name__}; use str keys")
            out[str(key)] = _canonical(item, f"{where}[{key!r}]")
        if len(out) != len(value):
            raise TypeError(f"config_hash: {where} has keys that collide once written as text (e.g. 1 and '1')")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):  # no order of its own: sort the members' canonical text
        items = [_canonical(item, f"{where} member") for item in value]
        return {"__set__": sorted(items, key=lambda item: json.dumps(item, sort_keys=True))}
    if isinstance(value, (torch.Tensor, np.ndarray)):
        array = np.ascontiguousarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value)
        if array.dtype == object:
            raise TypeError(f"config_hash: {where} is an object array; it has no stable bytes to hash")
        return {"__array__": hashing.sha256_bytes(array.view(np.uint8).reshape(-1) if array.size else b""),
                "dtype": str(value.dtype), "shape": list(array.shape)}
    if isinstance(value, np.generic):
        return _canonical(value.item(), where)
    if isinstance(value, (Path, torch.dtype, torch.device)):
        return str(value)
    kind = "a function" if callable(value) else f"a {type(value).__name__}"
    raise TypeError(f"config_hash: {where} is {kind} ({value!r:.60}), which has no stable value to hash. "
                    "Put what decides it (its name, its numbers) in the config instead.")


def config_hash(config: dict, length: int = 12) -> str:
    """A short, stable hash of a config: the key of a cached artefact (introduced in lesson 00).

    Keys are sorted, so ``{"a": 1, "b": 2}`` and ``{"b": 2, "a": 1}`` give the same hash. Beyond JSON
    values it accepts tuples (as lists), sets (order-free), paths, dtypes, and tensors or NumPy
    arrays (hashed by their dtype, shape and *every* byte, not a printed summary). Anything else,
    such as a lambda, raises ``TypeError``: it has no value that a later run could compare.
    """
    return hashing.sha256_bytes(canonical_json(config).encode("utf-8"))[:length]


def canonical_json(config) -> str:
    """The text :func:`config_hash` hashes: a cached artefact stores it to prove which config made it."""
    return json.dumps(_canonical(config), sort_keys=True)
