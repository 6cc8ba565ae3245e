import os
import pickle
import shutil
import struct

import pytest
import torch

from course_lib import cache, models


def test_cached_model_trains_once_then_loads(tmp_course_dirs):
    calls = []

    def train_fn(model):
        calls.append(1)
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(0.5)

    cfg = {"hidden": [4], "epochs": 1}
    build = lambda: models.MLP(hidden=(4,), in_features=3, num_classes=2)  # noqa: E731
    m1, hit1 = cache.cached_model("toy", cfg, build, train_fn)
    m2, hit2 = cache.cached_model("toy", cfg, build, train_fn)
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    _, hit3 = cache.cached_model("toy", {**cfg, "epochs": 2}, build, train_fn)
    assert not hit3 and len(calls) == 2
    assert cache.artefact_path("toy", cfg).name.startswith("toy-")


def test_corrupted_cache_is_moved_aside_and_rebuilt(tmp_course_dirs):
    cfg = {"n": 3}
    tensors, hit = cache.cached_tensors("logits", cfg, lambda: {"logits": torch.arange(3.0)})
    assert not hit
    path = cache.artefact_path("logits", cfg)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.warns(UserWarning, match="moved it to"):
        again, hit = cache.cached_tensors("logits", cfg, lambda: {"logits": torch.arange(3.0)})
    assert not hit and torch.equal(again["logits"], torch.arange(3.0))
    assert path.with_name(path.name + ".corrupt").exists()


def test_load_checkpoint_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        cache.load_checkpoint(models.MLP(hidden=(2,), in_features=2, num_classes=2), path)


def test_save_and_load_checkpoint_round_trip(tmp_path):
    a = models.MLP(hidden=(5,), in_features=3, num_classes=2)
    b = models.MLP(hidden=(5,), in_features=3, num_classes=2)
    cache.save_checkpoint(a, tmp_path / "m.pt", {"hidden": [5]})
    cache.load_checkpoint(b, tmp_path / "m.pt")
    x = torch.rand(4, 3)
    assert torch.equal(a(x), b(x))


# ----------------------------------------------------------------------------- verified artefacts (issue 9)
def _toy_build():
    return models.MLP(hidden=(4,), in_features=3, num_classes=2)


def _fill(value):
    def train_fn(model):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(value)
    return train_fn


def test_four_changed_bytes_in_a_cached_model_are_caught_and_retrained(tmp_course_dirs):
    cfg = {"hidden": [4], "seed": 3}
    cache.cached_model("toy", cfg, _toy_build, _fill(0.375))
    path = cache.artefact_path("toy", cfg)
    blob = path.read_bytes()
    pattern = struct.pack("<f", 0.375) * 3
    at = blob.index(pattern)
    path.write_bytes(blob[:at] + struct.pack("<f", 1e9) + blob[at + 4:])  # one weight, 4 bytes
    with pytest.warns(UserWarning, match="checksum"):
        model, hit = cache.cached_model("toy", cfg, _toy_build, _fill(0.375))
    assert not hit and all(bool((p == 0.375).all()) for p in model.parameters())
    assert path.with_name(path.name + ".corrupt").read_bytes() != path.read_bytes()


def test_another_configs_checkpoint_copied_over_is_refused(tmp_course_dirs):
    a, b = {"hidden": [4], "lr": 0.1}, {"hidden": [4], "lr": 0.2}
    cache.cached_model("toy", a, _toy_build, _fill(0.25))
    cache.cached_model("toy", b, _toy_build, _fill(0.75))
    shutil.copy(cache.artefact_path("toy", a), cache.artefact_path("toy", b))
    with pytest.warns(UserWarning, match="another config"):
        model, hit = cache.cached_model("toy", b, _toy_build, _fill(0.75))
    assert not hit and all(bool((p == 0.75).all()) for p in model.parameters())


def test_a_checkpoint_for_another_architecture_is_refused(tmp_course_dirs):
    cfg = {"name": "same key, other shapes"}
    cache.cached_model("toy", cfg, _toy_build, _fill(0.5))
    wider = lambda: models.MLP(hidden=(6,), in_features=3, num_classes=2)  # noqa: E731
    with pytest.warns(UserWarning, match="shape"):
        model, hit = cache.cached_model("toy", cfg, wider, _fill(0.5))
    assert not hit and model.head.weight.shape == (2, 6)


@pytest.mark.parametrize("bad, cause", [
    ({"logits": torch.zeros(5, 10)}, "shape"),
    ({"logits": torch.zeros(3, 10, dtype=torch.float64)}, "dtype"),
    ({"logits": torch.zeros(3, 10), "extra": torch.zeros(1)}, "holds tensors"),
])
def test_cached_tensors_of_the_wrong_shape_dtype_or_keys_are_refused(tmp_course_dirs, bad, cause):
    cfg = {"inputs": "three rows"}
    expected = {"logits": ((3, 10), torch.float32)}
    right = {"logits": torch.arange(30.0).reshape(3, 10)}
    cache._save_artefact(cache.artefact_path("logits", cfg), "logits", cfg, bad)  # valid key and checksum
    with pytest.warns(UserWarning, match=cause):
        got, hit = cache.cached_tensors("logits", cfg, lambda: right, expected)
    assert not hit and torch.equal(got["logits"], right["logits"])
    again, hit = cache.cached_tensors("logits", cfg, lambda: right, expected)
    assert hit and torch.equal(again["logits"], right["logits"])


def test_compute_returning_the_wrong_shape_is_an_error_not_a_cache_entry(tmp_course_dirs):
    with pytest.raises(TypeError, match="shape"):
        cache.cached_tensors("logits", {"n": 4}, lambda: {"logits": torch.zeros(5, 2)}, {"logits": ((4, 2), None)})
    assert not cache.artefact_path("logits", {"n": 4}).exists()


def test_an_old_format_file_is_moved_aside(tmp_course_dirs):
    cfg = {"n": 2}
    path = cache.artefact_path("logits", cfg)
    torch.save({"logits": torch.ones(2)}, path)  # the unverified layout of earlier versions
    with pytest.warns(UserWarning, match="not a verified course artefact"):
        _, hit = cache.cached_tensors("logits", cfg, lambda: {"logits": torch.zeros(2)})
    assert not hit


def test_a_second_corruption_keeps_the_first_corrupt_file(tmp_course_dirs):
    cfg = {"n": 3}
    path = cache.artefact_path("logits", cfg)
    for junk in [b"first junk", b"second junk", b"third junk"]:
        path.write_bytes(junk)
        with pytest.warns(UserWarning, match="cannot be read"):
            cache.cached_tensors("logits", cfg, lambda: {"logits": torch.arange(3.0)})
        path.unlink()
    kept = sorted(p.name for p in path.parent.glob(path.name + ".corrupt*"))
    assert kept == [path.name + s for s in (".corrupt", ".corrupt1", ".corrupt2")]
    assert {p.read_bytes() for p in path.parent.glob(path.name + ".corrupt*")} == {
        b"first junk", b"second junk", b"third junk"}


def test_a_read_only_cache_folder_is_reported_before_training(tmp_course_dirs, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", "/proc/self/fdinfo")  # exists, and nobody (not even root) can write
    events = []
    monkeypatch.setattr(cache.warnings, "warn", lambda message, *a, **k: events.append(("warn", str(message))))
    model, hit = cache.cached_model("toy", {"n": 1}, _toy_build, lambda m: events.append(("train", "")))
    assert [kind for kind, _ in events] == ["warn", "train"] and "not writable" in events[0][1]
    assert not hit


def test_load_checkpoint_verifies_checksum_config_and_shapes(tmp_path):
    path = tmp_path / "m.pt"
    a = models.MLP(hidden=(5,), in_features=3, num_classes=2)
    cache.save_checkpoint(a, path, {"hidden": [5]})
    with pytest.raises(cache.CacheError, match="another config"):
        cache.load_checkpoint(models.MLP(hidden=(5,), in_features=3, num_classes=2), path, {"hidden": [6]})
    with pytest.raises(cache.CacheError, match="shape"):
        cache.load_checkpoint(models.MLP(hidden=(7,), in_features=3, num_classes=2), path)
    blob = torch.load(path, weights_only=True)
    first = next(iter(blob["payload"]))
    blob["payload"][first] = blob["payload"][first] + 1
    torch.save(blob, path)
    with pytest.raises(cache.CacheError, match="checksum"):
        cache.load_checkpoint(models.MLP(hidden=(5,), in_features=3, num_classes=2), path)


def test_two_processes_filling_one_cache_entry_both_succeed(tmp_path):
    """Two real processes ask for the same missing entry at once: one computes, the other waits and loads it."""
    import subprocess
    import sys

    script = (
        "import os, sys, time, torch\n"
        "from course_lib import cache\n"
        "def compute():\n"
        "    time.sleep(1.0)\n"
        "    return {'logits': torch.arange(12.0).reshape(3, 4)}\n"
        "t, hit = cache.cached_tensors('shared', {'n': 3}, compute, {'logits': ((3, 4), torch.float32)})\n"
        "assert torch.equal(t['logits'], torch.arange(12.0).reshape(3, 4))\n"
        "sys.stdout.write('hit' if hit else 'computed')\n")
    env = {**os.environ, "COURSE_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.Popen([sys.executable, "-W", "error::UserWarning", "-c", script], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sorted(out for out, _ in outputs) == ["computed", "hit"]
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len([f for f in files if f.endswith(".pt")]) == 1 and not [f for f in files if "corrupt" in f or f.endswith(".tmp")]
