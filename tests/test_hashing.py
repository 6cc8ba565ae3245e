"""course_lib.hashing: every checksum of the course, pinned against hashlib on the same bytes."""
import hashlib
import os

import numpy as np
import pytest
import torch

from course_lib import hashing


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_file_digest_matches_hashlib_on_the_bytes(tmp_path, algorithm):
    path = tmp_path / "blob.bin"
    payload = bytes(range(256)) * 5000  # > 1 MiB: several chunks
    path.write_bytes(payload)
    assert hashing.file_digest(path, algorithm) == hashlib.new(algorithm, payload).hexdigest()
    assert hashing.file_digest(str(path), algorithm) == hashlib.new(algorithm, payload).hexdigest()
    assert hashing.sha256_file(path) == hashlib.sha256(payload).hexdigest()


def test_verify_sha256_accepts_the_right_file_and_names_a_changed_one(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"genuine weights")
    digest = hashlib.sha256(b"genuine weights").hexdigest()
    hashing.verify_sha256(path, digest.upper())  # hex case does not matter
    path.write_bytes(b"Genuine weights")  # same size; a new modification time: read again
    os.utime(path, ns=(1, 1))
    with pytest.raises(ValueError, match=r"checksum mismatch for .*weights\.bin.*reinstall it") as err:
        hashing.verify_sha256(path, digest, hint="reinstall it")
    assert hashlib.sha256(b"Genuine weights").hexdigest() in str(err.value)
    with pytest.raises(FileNotFoundError, match="it is a folder"):
        hashing.verify_sha256(tmp_path, digest)


def test_sha256_strings_is_each_string_then_a_nul_byte():
    texts = ["where is my parcel", "", "caf\u00e9", "lone \ud800 surrogate"]
    expected = hashlib.sha256(b"".join(t.encode("utf-8", "surrogatepass") + b"\x00" for t in texts)).hexdigest()
    assert hashing.sha256_strings(texts) == expected
    assert hashing.sha256_strings(iter(texts)) == expected
    assert hashing.sha256_strings(["ab", "c"]) != hashing.sha256_strings(["a", "bc"])  # boundaries count


def test_tensors_sha256_covers_names_dtypes_shapes_and_bytes():
    a = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([True, False])}
    manual = hashlib.sha256(b"head")
    manual.update(b"b|torch.bool|(2,)\n" + np.array([1, 0], dtype=np.uint8).tobytes())
    manual.update(b"w|torch.float32|(2, 3)\n" + np.arange(6, dtype=np.float32).tobytes())
    assert hashing.tensors_sha256(a, header="head") == manual.hexdigest()
    base = hashing.tensors_sha256(a)
    assert hashing.tensors_sha256({"w": a["w"].T.contiguous().T, "b": a["b"]}) == base  # layout does not matter
    for changed in ({**a, "w": a["w"].reshape(3, 2)}, {**a, "w": a["w"].double()}, {"v": a["w"], "b": a["b"]},
                    {**a, "w": a["w"] + torch.tensor([[0, 0, 1e-6], [0, 0, 0]])}):
        assert hashing.tensors_sha256(changed) != base


def test_sha256_bytes_is_hashlib_on_bytes_and_on_array_buffers():
    assert hashing.sha256_bytes(b"") == hashlib.sha256(b"").hexdigest()
    array = np.arange(7, dtype=np.float32) * 1.5
    assert hashing.sha256_bytes(array.tobytes()) == hashlib.sha256(array.tobytes()).hexdigest()
    assert hashing.sha256_bytes(array.view(np.uint8)) == hashlib.sha256(array.tobytes()).hexdigest()
    assert hashing.sha256_bytes(b"a") != hashing.sha256_bytes(b"b")
