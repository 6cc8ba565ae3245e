"""Course-wide settings: FAST mode, seeding, device and folders (introduced in lesson 00).

FAST mode is read here and nowhere else. Notebooks and library functions that
shrink their work in FAST mode call :func:`is_fast` (or read :data:`FAST`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

#: True when the environment variable ``COURSE_FAST`` is ``1``; CI and ``make test`` set it.
FAST: bool = os.environ.get("COURSE_FAST", "0").strip().lower() in {"1", "true", "yes"}

REPO_ROOT = Path(__file__).resolve().parents[1]


def is_fast() -> bool:
    """FAST mode, read from this module so tests can switch it with ``monkeypatch``."""
    return FAST


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


def data_dir() -> Path:
    """Where data sets live: ``$COURSE_DATA_DIR``, default ``<repo>/data`` (git-ignored). Created if missing."""
    path = Path(os.environ.get("COURSE_DATA_DIR") or REPO_ROOT / "data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Where checkpoints and cached teacher outputs live: ``$COURSE_CACHE_DIR``, default ``<repo>/cache``."""
    path = Path(os.environ.get("COURSE_CACHE_DIR") or REPO_ROOT / "cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """Where full-mode notebooks write their measured numbers (``<repo>/results``)."""
    path = Path(os.environ.get("COURSE_RESULTS_DIR") or REPO_ROOT / "results")
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_hash(config: dict, length: int = 12) -> str:
    """A short, stable hash of a JSON-able config: the key of a cached artefact.

    Keys are sorted, so ``{"a": 1, "b": 2}`` and ``{"b": 2, "a": 1}`` give the same hash.
    """
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
