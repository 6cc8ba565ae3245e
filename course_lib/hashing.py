"""Checksums: the one place the course hashes files, strings and tensors (introduced in lesson 00).

* :func:`file_digest` / :func:`sha256_file`: a file's hex digest, read in chunks (the MNIST files in
  lesson 00, the teacher's weights in lesson 04, ONNX files in lesson 06, the grader's seed cache).
* :func:`verify_sha256`: raise a ``ValueError`` unless a file has a pinned sha256.
* :func:`sha256_bytes`: sha256 of bytes (a config's canonical JSON, an array's values: cache keys).
* :func:`sha256_strings`: sha256 of a list of strings (a cache key for texts, a training set's fingerprint).
* :func:`tensors_sha256`: sha256 of named tensors' names, dtypes, shapes and bytes (the verified store's checksum).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Mapping

import torch

_VERIFIED: dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256 already computed in this process


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file (``"md5"``, ``"sha256"``, any ``hashlib`` name), read in chunks (introduced in lesson 00)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of the file at ``path``, read in chunks."""
    return file_digest(path, "sha256")


def verify_sha256(path: str | Path, expected: str, hint: str = "") -> None:
    """Raise ``ValueError`` unless the file at ``path`` has sha256 ``expected`` (introduced in lesson 04).

    ``hint`` (what to do about a mismatch) ends the error message. A file already verified in this
    process, with the same size and modification time, is not read again.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}" + (" (it is a folder)" if path.is_dir() else ""))
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    actual = _VERIFIED.get(key) or sha256_file(path)
    if actual != expected.lower():
        raise ValueError(f"checksum mismatch for {path}: sha256 {actual}, expected {expected}. "
                         f"The file is corrupt or has been tampered with{'; ' + hint if hint else '.'}")
    _VERIFIED[key] = actual


def sha256_bytes(data: bytes | memoryview) -> str:
    """Hex sha256 of ``data`` (bytes, or any buffer such as a contiguous NumPy array)."""
    return hashlib.sha256(data).hexdigest()


def sha256_strings(strings: Iterable[str]) -> str:
    """Hex sha256 of the strings in order, each as UTF-8 (lone surrogates kept) followed by a NUL byte."""
    digest = hashlib.sha256()
    for text in strings:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def tensors_sha256(tensors: Mapping[str, torch.Tensor], header: str = "") -> str:
    """Hex sha256 of ``header`` then each tensor's name, dtype, shape and raw bytes, in name order."""
    digest = hashlib.sha256(header.encode())
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
