"""Checkpoints and cached tensors, keyed by the config that made them (introduced in lesson 00).

Files are written with ``torch.save`` and read back with ``torch.load(weights_only=True)``,
which refuses arbitrary pickled objects. A cached artefact lives at
``cache_dir()/<name>-<config_hash>.pt``: change the config and it is rebuilt. A file that
cannot be read (truncated, corrupted) is moved aside, never silently used, and rebuilt.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from . import config


def artefact_path(name: str, cfg: dict) -> Path:
    """Where the artefact ``name`` made by ``cfg`` is cached."""
    return config.cache_dir() / f"{name}-{config.config_hash(cfg)}.pt"


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _safe_load(path: Path):
    """``torch.load(weights_only=True)``; an unreadable file is moved aside and None returned."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle opcode, refused global...
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        warnings.warn(f"could not read {path} ({type(exc).__name__}); moved it to {aside} and will rebuild it", stacklevel=2)
        return None


def save_checkpoint(model: nn.Module, path: Path, cfg: Optional[dict] = None) -> Path:
    """Save ``model``'s weights (and the JSON-able ``cfg`` that made it) to ``path``."""
    _atomic_save({"state_dict": model.state_dict(), "config": json.dumps(cfg or {}, sort_keys=True, default=str)},
                 Path(path))
    return Path(path)


def load_checkpoint(model: nn.Module, path: Path) -> nn.Module:
    """Load weights saved by :func:`save_checkpoint` into ``model`` (``weights_only=True``)."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    model.load_state_dict(blob["state_dict"])
    return model


def cached_model(name: str, cfg: dict, build: Callable[[], nn.Module],
                 train: Callable[[nn.Module], object]) -> tuple[nn.Module, bool]:
    """Return ``(model, from_cache)``: load the model made by ``cfg``, or build, train and save it.

    Args:
        build: makes an untrained model; train: trains it in place (its return value is ignored).
    """
    path = artefact_path(name, cfg)
    model = build()
    if path.exists():
        blob = _safe_load(path)
        if blob is not None:
            model.load_state_dict(blob["state_dict"])
            return model.eval(), True
    train(model)
    save_checkpoint(model, path, cfg)
    return model.eval(), False


def cached_tensors(name: str, cfg: dict, compute: Callable[[], dict]) -> tuple[dict, bool]:
    """Return ``(tensors, from_cache)``: a dict of tensors made by ``cfg``, computed once then loaded.

    Use it for a teacher's logits on a transfer set ("scoring old examples" once).
    """
    path = artefact_path(name, cfg)
    if path.exists():
        blob = _safe_load(path)
        if blob is not None:
            return blob, True
    tensors = compute()
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise TypeError("compute() must return a dict of tensors")
    _atomic_save(tensors, path)
    return tensors, False
