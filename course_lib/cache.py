"""The course's one verified store: checkpoints, cached tensors and sealed files (introduced in lesson 00).

Every file the course writes and reads back goes through here:

* **tensors** (cached models, a teacher's logits, the fine-tuned teacher, a saved :class:`NgramStudent`):
  :func:`save_verified` writes one ``safetensors`` file (no pickle) whose header carries proof of what
  it is: the store's :data:`FORMAT`, the key it was made from (a config, as canonical JSON), free
  metadata, and a checksum over all of them and every tensor's name, dtype, shape and bytes.
  :func:`load_verified` checks the format, the key, the checksum and the shapes and dtypes the caller
  expects, and raises :class:`CacheError` naming the file and the cause; :func:`load_or_move_aside`
  instead moves a bad file aside (``.corrupt``, ``.corrupt1``... never overwriting an earlier one) with
  a warning and returns None, so the caller rebuilds it: a wrong file is never used silently.
* **other files and folders** (lesson 06's ONNX files, the grader's seed cache): :func:`seal` writes a
  sidecar ``<name>.sha256`` with the sha256 of the file (or of each file in the folder);
  :func:`verify_sealed` checks it before the file is used.
* :func:`cached_model` and :func:`cached_tensors` build an artefact once, under
  ``cache_dir()/<name>-<config_hash>.safetensors``, and load it afterwards.
* :func:`usage_summary`: what this process loaded from the cache folder and what it wrote there (each lesson
  prints it at its end, so a rerun with the cache warm says it used it).

Two processes (two notebooks, two learners on one machine) can fill the same cache at once: files
are written under a temporary name that holds the writer's process id, then renamed into place
(atomic), and a lock file per artefact makes the second process wait for the first, then load its
result. A temporary file left by a killed writer (its process is gone, or it is over an hour old)
is removed the next time the store writes to, or reads from, its folder.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from . import config, hashing

try:  # POSIX file locks; elsewhere the cache still works, without protection against a second process
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

#: The store's on-disk format. Format 2 (``torch.save`` of a dict, ``.pt`` files) is no longer read:
#: those cache files are never looked at again (the new files have a new suffix) and are rebuilt.
FORMAT = 3
#: ``{tensor name: (shape, dtype)}``; ``None`` in a shape accepts any size along that dimension, and a
#: final ``...`` any number of further dimensions (``(n, ...)``).
Expected = Mapping[str, tuple[Optional[Sequence[Optional[int]]], Optional[torch.dtype]]]
STALE_TMP_SECONDS = 3600  # a temporary file this old is a dead write's, whoever wrote it
_TMP_NAME = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[a-z0-9_]{8}\.tmp$")
#: Every verified file under ``config.cache_dir()`` this process loaded or wrote, in order:
#: ``(artefact name, "loaded" | "built")`` (read by :func:`usage_summary`).
_USAGE: list[tuple[str, str]] = []
_HASH_SUFFIX = re.compile(r"-[0-9a-f]{12}$")


class CacheError(ValueError):
    """A cached or saved file is not what it claims to be: ``path`` names it, ``reason`` says which check failed.

    ``reason`` is one of ``"missing"``, ``"unreadable"``, ``"format"``, ``"key"``, ``"checksum"``,
    ``"expected"`` (names, shapes or dtypes), ``"seal"`` (a sealed file or folder), ``"aside"``.
    """

    def __init__(self, message: str, path: Optional[Path] = None, reason: str = ""):
        super().__init__(message)
        self.path, self.reason = path, reason


def artefact_path(name: str, cfg: dict) -> Path:
    """Where the artefact ``name`` made by ``cfg`` is cached."""
    return config.cache_dir() / f"{name}-{config.config_hash(cfg)}.safetensors"


# ----------------------------------------------------------------------------- checks
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


# ----------------------------------------------------------------------------- files: write, clean, move aside, lock
def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a unique temporary file beside ``path``, then rename it to ``path``.

    A reader never sees a half-written file, and two writers never share a temporary name. The
    temporary name (``.<name>.<pid>-<random>.tmp``) holds the writer's process id, so a later run
    can tell a dead write's leftover from a live one's (:func:`remove_stale_tmp`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is shared like any other file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_tmp(folder: Path, max_age: float = STALE_TMP_SECONDS) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write` in ``folder`` that no live writer owns; returns them.

    One is removed when the process named in it is gone, or when it is older than ``max_age``
    seconds (a write takes seconds; names without a process id, from earlier versions, go by age
    only). Another process's write in progress is never touched.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TMP_NAME.match(entry.name)
        if not match:
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > max_age
            dead = match["pid"] is not None and not _process_alive(int(match["pid"]))
            if (old or dead) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone already (its writer renamed it, or another cleaner removed it)
            continue
    return removed


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
    raise CacheError(f"could not move {path} aside: 1000 earlier .corrupt copies are in the way", path, "aside")


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


# ----------------------------------------------------------------------------- the verified store: tensors
def _key_json(key) -> str:
    return "" if key is None else config.canonical_json(key)


def _checksum(tensors: Mapping[str, torch.Tensor], key: str, meta: str) -> str:
    return hashing.tensors_sha256(tensors, header=f"course_format={FORMAT}\nkey={key}\nmeta={meta}\n")


def save_verified(path: Path, tensors: Mapping[str, torch.Tensor], key=None, meta: Optional[dict] = None) -> Path:
    """Write ``tensors`` to ``path`` (one safetensors file, atomic) with ``key``, ``meta`` and their checksum.

    Args:
        key: what the tensors were made from (a JSON-able config); :func:`load_verified` can require it.
        meta: a small JSON-able dict returned by :func:`load_verified` (covered by the checksum too).
    Returns:
        ``path``.
    """
    from safetensors.torch import save

    path = Path(path)
    why = check_expected(tensors, None)
    if why:
        raise TypeError(f"save_verified({path}): {why}")
    # A copy of each tensor: safetensors refuses tensors that share memory (tied weights, views).
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    key_json, meta_json = _key_json(key), json.dumps(meta or {}, sort_keys=True)
    header = {"course_format": str(FORMAT), "key": key_json, "meta": meta_json,
              "checksum": _checksum(tensors, key_json, meta_json)}
    data = save(tensors, metadata=header)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    _record(path, "built")
    return path


def _read_header(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors file's bytes; ``ValueError`` when the header cannot be parsed."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes, shorter than a safetensors header")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise ValueError(f"its header claims {size} bytes, the file has {len(data) - 8} after it")
    try:
        header = json.loads(data[8:8 + size])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"its header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    meta = header.get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def _refuse(path: Path, reason: str, why: str) -> CacheError:
    return CacheError(f"refusing to load {path}: {why}", path, reason)


def load_verified(path: Path, key=None, expected: Optional[Expected] = None) -> tuple[dict, dict]:
    """``(tensors, meta)`` of a file written by :func:`save_verified`, after every check passed.

    Checked in this order: the file is a readable safetensors file of this store's :data:`FORMAT`;
    its key equals ``key`` (skipped when ``key`` is None); its checksum matches its key, meta and
    tensors; the tensors have the names, shapes and dtypes in ``expected`` (if given).
    Raises :class:`CacheError` (a ``ValueError``) naming the file and the failed check; the file
    is left where it is.
    """
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CacheError(f"no file at {path}" + (" (it is a folder)" if path.is_dir() else ""), path, "missing")
    try:
        data = path.read_bytes()
        header = _read_header(data)
    except (OSError, ValueError) as exc:
        raise _refuse(path, "unreadable", f"it cannot be read (truncated or corrupted: {str(exc)[:160]})") from None
    if "course_format" not in header:
        raise _refuse(path, "format", "it is not a verified course file (an earlier format of the course, "
                                      "or another program's file)")
    if header["course_format"] != str(FORMAT):
        raise _refuse(path, "format", f"it is in the store's format {header['course_format']!r}, "
                                      f"this version reads format {FORMAT}")
    if key is not None and header.get("key") != _key_json(key):
        raise _refuse(path, "key", f"it was made from another config (stored key {str(header.get('key'))[:80]}...)")
    try:
        tensors = load(data)
        meta = json.loads(header.get("meta") or "{}")
    except Exception as exc:  # SafetensorError: bad offsets, dtype, a cut data section; bad meta JSON
        raise _refuse(path, "unreadable", f"it cannot be read (truncated or corrupted: {str(exc)[:160]})") from None
    if header.get("checksum") != _checksum(tensors, header.get("key", ""), header.get("meta", "")):
        raise _refuse(path, "checksum", "its checksum does not match its contents (the file is corrupted "
                                        "or was changed)")
    why = check_expected(tensors, expected)
    if why:
        raise _refuse(path, "expected", why)
    return tensors, meta


def load_or_move_aside(path: Path, key=None, expected: Optional[Expected] = None) -> Optional[dict]:
    """The tensors at ``path`` if :func:`load_verified` accepts them; else None, the bad file moved aside with a warning.

    A missing file is None without a warning. Stale temporary files in the folder are removed first.
    """
    path = Path(path)
    remove_stale_tmp(path.parent)
    try:
        tensors = load_verified(path, key, expected)[0]
        _record(path, "loaded")
        return tensors
    except CacheError as err:
        if err.reason == "missing" and not path.exists():
            return None
        why = str(err).removeprefix(f"refusing to load {path}: ")
    try:
        aside = move_aside(path)
    except OSError as exc:
        raise CacheError(f"{path} is not usable ({why}) and cannot be moved aside ({exc}); delete it, "
                         "or set COURSE_CACHE_DIR to a writable folder", path, "aside") from None
    warnings.warn(f"not using the cached {path.name}: {why}; moved it to {aside} and will rebuild it",
                  stacklevel=3)
    return None


def _record(path: Path, what: str) -> None:
    """Note a load or a write of a file under the cache folder (other files, e.g. a saved student, are not noted)."""
    try:
        relative = Path(path).resolve().relative_to(config.cache_dir().resolve())
    except (ValueError, OSError):
        return
    name = _HASH_SUFFIX.sub("", relative.with_suffix("").as_posix())
    _USAGE.append((name, what))


def usage_summary() -> str:
    """One sentence: which cached artefacts this process (a lesson's kernel) loaded and which it built and cached.

    A lesson prints it at its end: a first run says what it built and that the next run will load it, a rerun
    with the cache warm says what it loaded instead of recomputing.
    """
    events = list(_USAGE)
    loaded = list(dict.fromkeys(name for name, what in events if what == "loaded"))
    built = list(dict.fromkeys(name for name, what in events if what == "built"))
    if not loaded and not built:
        return f"cache ({config.cache_dir()}): this run neither loaded nor built a cached artefact."
    parts = []
    if loaded:
        parts.append(f"loaded from the cache instead of recomputed: {', '.join(loaded)}")
    if built:
        parts.append(f"built in this run and cached for the next one: {', '.join(built)}")
    return f"cache ({config.cache_dir()}): " + "; ".join(parts) + "."


# ----------------------------------------------------------------------------- the verified store: sealed files
def _seal_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _digests(path: Path) -> dict:
    """sha256 of a file (``{"": digest}``), or of each regular file under a folder (lock files left out)."""
    if path.is_file():
        return {"": hashing.sha256_file(path)}
    found = {}
    for item in sorted(path.rglob("*")):
        rel = str(item.relative_to(path))
        if item.is_symlink() or not item.is_file():
            if not item.is_dir() or item.is_symlink():
                found[rel] = "not a regular file"
            continue
        if not item.name.endswith(".lock"):
            found[rel] = hashing.sha256_file(item)
    return found


def seal(path: Path, key=None) -> Path:
    """Write ``<path>.sha256`` beside a file or folder: its sha256 (each file's, for a folder) and ``key``.

    For files the store cannot read itself (ONNX models, the grader's seed cache): check them with
    :func:`verify_sealed` before use. Returns the seal's path.
    """
    path = Path(path)
    digests = _digests(path)
    if any(d == "not a regular file" for d in digests.values()):
        raise CacheError(f"cannot seal {path}: it holds links or special files", path, "seal")
    note = {"course_format": FORMAT, "key": _key_json(key), "sha256": digests}
    target = _seal_path(path)
    atomic_write(target, lambda tmp: tmp.write_text(json.dumps(note, indent=1, sort_keys=True)))
    return target


def verify_sealed(path: Path, key=None) -> None:
    """Raise :class:`CacheError` naming ``path`` unless it matches the seal :func:`seal` wrote beside it.

    A changed, added or removed byte or file, a missing or unreadable seal, or another ``key``
    (when given) is refused.
    """
    path, target = Path(path), _seal_path(Path(path))
    if not path.exists():
        raise CacheError(f"no file at {path}", path, "missing")
    try:
        note = json.loads(target.read_text(encoding="utf-8"))
        stored = note["sha256"]
        assert note["course_format"] == FORMAT and isinstance(stored, dict)
    except FileNotFoundError:
        raise CacheError(f"refusing to use {path}: it has no seal {target.name} beside it (written by "
                         "another program, or its write was cut short); write it again with the course's "
                         "function, or call course_lib.cache.seal on it if you trust it", path, "seal") from None
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise CacheError(f"refusing to use {path}: its seal {target.name} is unreadable or of another format; "
                         "write the file again", path, "seal") from None
    if key is not None and note.get("key") != _key_json(key):
        raise CacheError(f"refusing to use {path}: it was made from another config", path, "key")
    actual = _digests(path)
    changed = sorted(set(stored) ^ set(actual) | {k for k in stored if k in actual and stored[k] != actual[k]})
    if changed:
        what = "its sha256 does not match its seal" if changed == [""] else f"files differ from its seal: {changed[:5]}"
        raise CacheError(f"refusing to use {path}: {what} (corrupted or changed since it was written)",
                         path, "checksum")


# ----------------------------------------------------------------------------- cached artefacts and checkpoints
def _warn_if_read_only(path: Path) -> bool:
    """Before any work: say so when the result cannot be saved. Returns whether it can."""
    if writable_folder(path.parent):
        return True
    warnings.warn(f"the cache folder {path.parent} is not writable: {path.name} will be computed but not "
                  "saved (set COURSE_CACHE_DIR to a writable folder to keep it)", stacklevel=3)
    return False


def _state_expected(model: nn.Module) -> dict:
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


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
    can_save = _warn_if_read_only(path)
    with file_lock(path, f"{name} (a model being trained)"):
        payload = load_or_move_aside(path, cfg, _state_expected(model))
        if payload is not None:
            model.load_state_dict(payload)
            return model.eval(), True
        train(model)
        if can_save:
            save_verified(path, model.state_dict(), key=cfg)
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
        payload = load_or_move_aside(path, cfg, expected)
        if payload is not None:
            return payload, True
        tensors = compute()
        why = check_expected(tensors, expected)
        if why:
            raise TypeError(f"compute() for {name} returned the wrong tensors: {why}")
        if can_save:
            save_verified(path, tensors, key=cfg)
    return tensors, False


def save_checkpoint(model: nn.Module, path: Path, cfg: Optional[dict] = None) -> Path:
    """Save ``model``'s weights with the config that made them and their checksum (:func:`save_verified`)."""
    return save_verified(Path(path), model.state_dict(), key=cfg or {})


def load_checkpoint(model: nn.Module, path: Path, cfg: Optional[dict] = None) -> nn.Module:
    """Load weights saved by :func:`save_checkpoint` into ``model``, after verifying them (no pickle).

    Raises ``CacheError`` naming the problem when the checksum, the config (if ``cfg`` is given)
    or the parameter names, shapes and dtypes do not match. The file is left where it is.
    """
    tensors, _ = load_verified(Path(path), cfg, _state_expected(model))
    model.load_state_dict(tensors)
    return model
