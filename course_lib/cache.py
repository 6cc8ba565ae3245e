"""Checkpoints and cached tensors, verified before every use (introduced in lesson 00).

A cached artefact lives at ``cache_dir()/<name>-<config_hash>.pt``. It is written with
``torch.save`` and read back with ``torch.load(weights_only=True)``, which refuses arbitrary
pickled objects. Each file carries proof of what it is::

    {"format": 2, "name": ..., "key": <the full config, as canonical JSON>,
     "checksum": <sha256 of every tensor's name, dtype, shape and bytes>, "payload": {name: tensor}}

On load the key, the checksum and the shapes and dtypes the caller expects are all checked.
A file that fails any check, or cannot be read at all, is moved aside (``.corrupt``,
``.corrupt1``, ... never overwriting an earlier one) with a warning naming the cause, and
rebuilt: a wrong file is never used silently.

Two processes (two notebooks, two learners on one machine) can fill the same cache at once:
files are written under a unique temporary name and renamed into place (atomic), and a lock
file per artefact makes the second process wait for the first, then load its result.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from . import config

try:  # POSIX file locks; elsewhere the cache still works, without protection against a second process
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

FORMAT = 2
#: ``{tensor name: (shape, dtype)}``; ``None`` in a shape accepts any size along that dimension, and a
#: final ``...`` any number of further dimensions (``(n, ...)``).
Expected = Mapping[str, tuple[Optional[Sequence[Optional[int]]], Optional[torch.dtype]]]


class CacheError(RuntimeError):
    """A cached or saved artefact is not what it claims to be."""


def artefact_path(name: str, cfg: dict) -> Path:
    """Where the artefact ``name`` made by ``cfg`` is cached."""
    return config.cache_dir() / f"{name}-{config.config_hash(cfg)}.pt"


# ----------------------------------------------------------------------------- checksums and checks
def payload_checksum(payload: Mapping[str, torch.Tensor]) -> str:
    """sha256 over each tensor's name, dtype, shape and raw bytes, in name order."""
    digest = hashlib.sha256()
    for key in sorted(payload):
        tensor = payload[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _shape_matches(shape: tuple, expected: Optional[Sequence]) -> bool:
    if expected is None:
        return True
    expected = tuple(expected)
    if expected and expected[-1] is Ellipsis:  # (n, ...): the first dims fixed, any number after them
        expected = expected[:-1]
        shape = shape[:len(expected)] if len(shape) >= len(expected) else shape + (-1,)
    return len(shape) == len(expected) and all(want is None or want == got for got, want in zip(shape, expected))


def check_expected(payload: Mapping[str, torch.Tensor], expected: Optional[Expected]) -> Optional[str]:
    """Why ``payload`` does not have the tensors, shapes and dtypes in ``expected`` (None when it does)."""
    if not isinstance(payload, Mapping) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        return "it does not hold a dict of tensors"
    if expected is None:
        return None
    if set(payload) != set(expected):
        return f"it holds tensors {sorted(payload)}, expected {sorted(expected)}"
    for key, (shape, dtype) in expected.items():
        tensor = payload[key]
        if not _shape_matches(tuple(tensor.shape), shape):
            want = ", ".join("..." if d is Ellipsis else "any" if d is None else str(d) for d in shape)
            return f"{key!r} has shape {tuple(tensor.shape)}, expected ({want})"
        if dtype is not None and tensor.dtype != dtype:
            return f"{key!r} has dtype {tensor.dtype}, expected {dtype}"
    return None


# ----------------------------------------------------------------------------- files: write, move aside, lock
def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a unique temporary file beside ``path``, then rename it to ``path``.

    A reader never sees a half-written file, and two writers never share a temporary name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is shared like any other file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def move_aside(path: Path) -> Optional[Path]:
    """Rename ``path`` to ``<name>.corrupt`` (or ``.corrupt1``, ``.corrupt2``...), never over an earlier one.

    Returns the new path, or None when ``path`` had already gone (another process moved it).
    """
    path = Path(path)
    for n in range(1000):
        target = path.with_name(f"{path.name}.corrupt{n or ''}")
        try:
            if path.is_dir():
                if target.exists():
                    continue
                path.rename(target)
            else:
                os.link(path, target)  # fails if target exists: no earlier .corrupt is ever overwritten
                os.unlink(path)
            return target
        except FileExistsError:
            continue
        except FileNotFoundError:
            return None
    raise CacheError(f"could not move {path} aside: 1000 earlier .corrupt copies are in the way")


def writable_folder(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (created if missing): tried, not guessed from permissions."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def file_lock(path: Path, what: str = ""):
    """Hold an exclusive lock on ``<path>.lock`` for the block (other processes wait; no-op if impossible).

    The lock file stays in place afterwards: deleting it would let a third process lock a new file.
    """
    lock_path = Path(path).with_name(Path(path).name + ".lock")
    handle = None
    if fcntl is not None and writable_folder(lock_path.parent):
        try:
            handle = open(lock_path, "a+b")
        except OSError:
            handle = None
    if handle is None:
        yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process to finish {what or Path(path).name} ...", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()  # closing releases the lock


# ----------------------------------------------------------------------------- verified artefacts
def _save_artefact(path: Path, name: str, cfg, payload: Mapping[str, torch.Tensor]) -> None:
    payload = {k: v.detach().cpu() for k, v in payload.items()}
    blob = {"format": FORMAT, "name": name, "key": config.canonical_json(cfg),
            "checksum": payload_checksum(payload), "payload": payload}
    atomic_write(path, lambda tmp: torch.save(blob, tmp))


def _why_invalid(blob, key: Optional[str], expected: Optional[Expected]) -> Optional[str]:
    """Why ``blob`` must not be used (None when it can); ``key=None`` skips the config comparison."""
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or "payload" not in blob:
        return "it is not a verified course artefact (an older format, or another file)"
    if key is not None and blob.get("key") != key:
        return f"it was made from another config (stored key {str(blob.get('key'))[:80]}...)"
    why = check_expected(blob["payload"], None)
    if why:
        return why
    if blob.get("checksum") != payload_checksum(blob["payload"]):
        return "its checksum does not match its contents (the file is corrupted)"
    return check_expected(blob["payload"], expected)


def _load_verified(path: Path, cfg, expected: Optional[Expected]) -> Optional[dict]:
    """The payload at ``path`` if every check passes; otherwise None (a bad file is moved aside, with a warning)."""
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle opcode, refused global, a directory...
        why = f"it cannot be read ({type(exc).__name__}: {str(exc)[:120]})"
    else:
        why = _why_invalid(blob, config.canonical_json(cfg), expected)
        if why is None:
            return blob["payload"]
    try:
        aside = move_aside(path)
    except OSError as exc:
        raise CacheError(f"{path} is not usable ({why}) and cannot be moved aside ({exc}); delete it, "
                         "or set COURSE_CACHE_DIR to a writable folder") from None
    warnings.warn(f"not using the cached {path.name}: {why}; moved it to {aside} and will rebuild it",
                  stacklevel=3)
    return None


def _warn_if_read_only(path: Path) -> bool:
    """Before any work: say so when the result cannot be saved. Returns whether it can."""
    if writable_folder(path.parent):
        return True
    warnings.warn(f"the cache folder {path.parent} is not writable: {path.name} will be computed but not "
                  "saved (set COURSE_CACHE_DIR to a writable folder to keep it)", stacklevel=3)
    return False


def cached_model(name: str, cfg: dict, build: Callable[[], nn.Module],
                 train: Callable[[nn.Module], object]) -> tuple[nn.Module, bool]:
    """Return ``(model, from_cache)``: load the verified model made by ``cfg``, or build, train and save it.

    The cached weights must match ``cfg`` (the full key), their checksum, and the names,
    shapes and dtypes of ``build()``'s parameters; otherwise they are moved aside and retrained.

    Args:
        build: makes an untrained model; train: trains it in place (its return value is ignored).
    """
    path = artefact_path(name, cfg)
    model = build()
    expected = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    can_save = _warn_if_read_only(path)
    with file_lock(path, f"{name} (a model being trained)"):
        payload = _load_verified(path, cfg, expected)
        if payload is not None:
            model.load_state_dict(payload)
            return model.eval(), True
        train(model)
        if can_save:
            _save_artefact(path, name, cfg, model.state_dict())
    return model.eval(), False


def cached_tensors(name: str, cfg: dict, compute: Callable[[], dict],
                   expected: Optional[Expected] = None) -> tuple[dict, bool]:
    """Return ``(tensors, from_cache)``: a dict of tensors made by ``cfg``, computed once then loaded.

    Use it for a teacher's logits on a transfer set ("scoring old examples" once).

    Args:
        expected: ``{name: (shape, dtype)}`` the tensors must have (``None`` in a shape: any size);
            checked on the cached file and on what ``compute()`` returns.
    """
    path = artefact_path(name, cfg)
    can_save = _warn_if_read_only(path)
    with file_lock(path, name):
        payload = _load_verified(path, cfg, expected)
        if payload is not None:
            return payload, True
        tensors = compute()
        why = check_expected(tensors, expected)
        if why:
            raise TypeError(f"compute() for {name} returned the wrong tensors: {why}")
        if can_save:
            _save_artefact(path, name, cfg, tensors)
    return tensors, False


def save_checkpoint(model: nn.Module, path: Path, cfg: Optional[dict] = None) -> Path:
    """Save ``model``'s weights with the config that made them and their checksum (atomic write)."""
    path = Path(path)
    _save_artefact(path, "checkpoint", cfg or {}, model.state_dict())
    return path


def load_checkpoint(model: nn.Module, path: Path, cfg: Optional[dict] = None) -> nn.Module:
    """Load weights saved by :func:`save_checkpoint` into ``model`` (``weights_only=True``), after verifying them.

    Raises ``CacheError`` naming the problem when the checksum, the config (if ``cfg`` is given)
    or the parameter names, shapes and dtypes do not match. The file is left where it is.
    """
    path = Path(path)
    if not path.is_file():
        raise CacheError(f"no checkpoint file at {path}" + (" (it is a directory)" if path.is_dir() else ""))
    blob = torch.load(path, map_location="cpu", weights_only=True)
    expected = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    why = _why_invalid(blob, None if cfg is None else config.canonical_json(cfg), expected)
    if why:
        raise CacheError(f"refusing to load {path}: {why}")
    model.load_state_dict(blob["payload"])
    return model

