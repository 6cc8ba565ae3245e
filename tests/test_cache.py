import os
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
    with pytest.raises(cache.CacheError, match="evil.pt: it cannot be read") as err:  # never unpickled
        cache.load_checkpoint(models.MLP(hidden=(2,), in_features=2, num_classes=2), path)
    assert err.value.reason == "unreadable" and isinstance(err.value, ValueError)


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
    cache.save_verified(cache.artefact_path("logits", cfg), bad, key=cfg)  # valid key and checksum
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
    """A safetensors file without the store's record (an earlier course, another program) is refused."""
    from safetensors.torch import save_file

    cfg = {"n": 2}
    path = cache.artefact_path("logits", cfg)
    save_file({"logits": torch.ones(2)}, str(path))
    with pytest.warns(UserWarning, match="not a verified course file"):
        got, hit = cache.cached_tensors("logits", cfg, lambda: {"logits": torch.zeros(2)})
    assert not hit and torch.equal(got["logits"], torch.zeros(2))


def test_format_2_cache_files_are_never_read_and_the_entry_is_rebuilt(tmp_course_dirs):
    """FORMAT 2 wrote ``torch.save`` blobs to ``<name>-<hash>.pt``; format 3 looks only for ``.safetensors``."""
    cfg = {"n": 2}
    path = cache.artefact_path("logits", cfg)
    assert cache.FORMAT == 3 and path.suffix == ".safetensors"
    old = path.with_suffix(".pt")
    torch.save({"format": 2, "key": "{}", "checksum": "", "payload": {"logits": torch.ones(2)}}, old)
    got, hit = cache.cached_tensors("logits", cfg, lambda: {"logits": torch.zeros(2)})
    assert not hit and torch.equal(got["logits"], torch.zeros(2)) and path.is_file()


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
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        record = f.metadata()
    tensors = load_file(str(path))
    first = next(iter(tensors))
    save_file({**tensors, first: tensors[first] + 1}, str(path), metadata=record)  # the old record, new weights
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
    assert len([f for f in files if f.endswith(".safetensors")]) == 1
    assert not [f for f in files if "corrupt" in f or f.endswith(".tmp")]


# ----------------------------------------------------------------------------- the one verified store (issue 23)
def _verified_file(tmp_path):
    tensors = {"w": torch.arange(12.0).reshape(3, 4), "ids": torch.arange(5), "mask": torch.tensor([True, False])}
    path = cache.save_verified(tmp_path / "sub" / "t.safetensors", tensors, key={"n": 3}, meta={"note": "hi"})
    return path, tensors


def test_save_verified_writes_plain_safetensors_with_its_record(tmp_path):
    """Any safetensors reader sees the same tensors; the record is the store's format, key, meta and checksum."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from course_lib import config, hashing

    path, tensors = _verified_file(tmp_path)
    plain = load_file(str(path))
    assert set(plain) == set(tensors) and all(torch.equal(plain[k], v) for k, v in tensors.items())
    with safe_open(str(path), framework="pt") as f:
        record = f.metadata()
    key = config.canonical_json({"n": 3})
    assert record["course_format"] == "3" and record["key"] == key and record["meta"] == '{"note": "hi"}'
    assert record["checksum"] == hashing.tensors_sha256(
        tensors, header=f"course_format=3\nkey={key}\nmeta={record['meta']}\n")
    got, meta = cache.load_verified(path, key={"n": 3}, expected={"w": ((3, 4), torch.float32), "ids": ((5,), None),
                                                                  "mask": (None, torch.bool)})
    assert meta == {"note": "hi"} and all(torch.equal(got[k], v) for k, v in tensors.items())


def test_save_verified_copes_with_tied_and_strided_tensors(tmp_path):
    base = torch.arange(6.0).reshape(2, 3)
    path = cache.save_verified(tmp_path / "t.safetensors", {"a": base, "tied": base, "t": base.T})
    got, _ = cache.load_verified(path)
    assert torch.equal(got["t"], base.T) and torch.equal(got["tied"], base)


@pytest.mark.parametrize("spoil, reason", [
    (lambda b: b[:-3], "unreadable"),
    (lambda b: b[: len(b) // 2], "unreadable"),
    (lambda b: b[:4], "unreadable"),
    (lambda b: b"", "unreadable"),
    (lambda b: b + b"\x00", "unreadable"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum"),  # one bit of the last tensor
    (lambda b: b.replace(b'\\"hi\\"', b'\\"ho\\"'), "checksum"),  # the meta in the header
    (lambda b: b.replace(b'\\"n\\": 3', b'\\"n\\": 4'), "key"),  # the key in the header
    (lambda b: b.replace(b'"course_format":"3"', b'"course_format":"2"'), "format"),
])
def test_load_verified_refuses_a_spoiled_file_by_name(tmp_path, spoil, reason):
    path, _ = _verified_file(tmp_path)
    spoiled = spoil(path.read_bytes())
    assert spoiled != path.read_bytes()
    path.write_bytes(spoiled)
    with pytest.raises(cache.CacheError) as err:
        cache.load_verified(path, key={"n": 3})
    assert err.value.reason == reason and str(path) in str(err.value) and err.value.path == path


def test_load_verified_checks_every_data_byte(tmp_path):
    """Any single changed byte after the header is refused (every tensor byte is in the checksum)."""
    path, _ = _verified_file(tmp_path)
    blob = path.read_bytes()
    start = 8 + struct.unpack("<Q", blob[:8])[0]
    for at in range(start, len(blob)):
        path.write_bytes(blob[:at] + bytes([blob[at] ^ 0x10]) + blob[at + 1:])
        with pytest.raises(cache.CacheError, match="checksum"):
            cache.load_verified(path)


def test_load_verified_on_missing_and_folder(tmp_path):
    with pytest.raises(cache.CacheError, match="no file at") as err:
        cache.load_verified(tmp_path / "nothing.safetensors")
    assert err.value.reason == "missing"
    with pytest.raises(cache.CacheError, match="it is a folder"):
        cache.load_verified(tmp_path)


# ----------------------------------------------------------------------------- sealed files and folders
def test_a_sealed_file_is_refused_after_a_changed_byte_and_without_its_seal(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07" * 1000)
    seal = cache.seal(path, key="k")
    assert seal == tmp_path / "model.onnx.sha256"
    cache.verify_sealed(path)
    cache.verify_sealed(path, key="k")
    with pytest.raises(cache.CacheError, match="another config"):
        cache.verify_sealed(path, key="other")
    path.write_bytes(b"\x08\x07" * 999 + b"\x08\x06")
    with pytest.raises(cache.CacheError, match="model.onnx: its sha256 does not match its seal"):
        cache.verify_sealed(path)
    seal.write_text("{not json")
    with pytest.raises(cache.CacheError, match="seal model.onnx.sha256 is unreadable"):
        cache.verify_sealed(path)
    seal.unlink()
    with pytest.raises(cache.CacheError, match="has no seal model.onnx.sha256"):
        cache.verify_sealed(path)


def test_a_sealed_folder_catches_a_changed_added_or_removed_file(tmp_path):
    folder = tmp_path / "seed"
    (folder / "teachers").mkdir(parents=True)
    (folder / "a.safetensors").write_bytes(b"a")
    (folder / "teachers" / "b.safetensors").write_bytes(b"b")
    (folder / "a.safetensors.lock").write_bytes(b"")
    cache.seal(folder)
    (folder / "c.safetensors.lock").write_bytes(b"")  # lock files are not content
    cache.verify_sealed(folder)
    for spoil, named in [(lambda: (folder / "teachers" / "b.safetensors").write_bytes(b"B"), "teachers/b.safetensors"),
                         (lambda: (folder / "planted.txt").write_text("x"), "planted.txt"),
                         (lambda: (folder / "a.safetensors").unlink(), "a.safetensors")]:
        cache.seal(folder)
        spoil()
        with pytest.raises(cache.CacheError, match=named):
            cache.verify_sealed(folder)


# ----------------------------------------------------------------------------- a dead write's leftovers
def _tmp_of(folder, pid, name="x.safetensors"):
    path = folder / f".{name}.{pid}-abcd_123.tmp"
    path.write_bytes(b"half a file")
    return path


def test_stale_tmp_of_a_dead_writer_is_removed_a_live_ones_kept(tmp_path):
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _tmp_of(tmp_path, dead_pid)
        mine, other_live = _tmp_of(tmp_path, os.getpid()), _tmp_of(tmp_path, live.pid, "y.onnx")
        legacy_old, legacy_new = tmp_path / ".z.pt.k2j4_x9q.tmp", tmp_path / ".z.pt.aaaa1111.tmp"
        legacy_old.write_bytes(b"old")
        os.utime(legacy_old, (0, 0))
        legacy_new.write_bytes(b"new")
        unrelated = tmp_path / "notes.tmp"
        unrelated.write_bytes(b"mine")
        os.utime(unrelated, (0, 0))
        assert sorted(cache.remove_stale_tmp(tmp_path)) == sorted([dead, legacy_old])
        assert mine.exists() and other_live.exists() and legacy_new.exists() and unrelated.exists()
        os.utime(other_live, (0, 0))  # over an hour old: no write takes that long, whoever holds the pid
        assert cache.remove_stale_tmp(tmp_path) == [other_live]
    finally:
        live.kill()
        live.wait()


def test_a_killed_write_leaves_a_tmp_that_the_next_run_removes(tmp_course_dirs):
    """A writer killed mid-write (SIGKILL) leaves its .tmp; the next use of the cache removes it."""
    import signal
    import subprocess
    import sys

    folder = cache.config.cache_dir()
    script = ("import sys, time\nfrom pathlib import Path\nfrom course_lib import cache\n"
              "def write(tmp):\n    tmp.write_bytes(b'x' * 1_000_000)\n    print('writing', flush=True)\n"
              "    time.sleep(60)\n"
              "cache.atomic_write(Path(sys.argv[1]) / 'big.safetensors', write)\n")
    writer = subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "COURSE_CACHE_DIR": str(folder)})
    assert writer.stdout.readline().strip() == "writing"
    leftovers = list(folder.glob(".big.safetensors.*.tmp"))
    assert len(leftovers) == 1 and str(writer.pid) in leftovers[0].name
    cache.remove_stale_tmp(folder)
    assert leftovers[0].exists()  # its writer is alive: kept
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert leftovers[0].exists()
    cache.cached_tensors("logits", {"n": 1}, lambda: {"logits": torch.zeros(1)})
    assert not leftovers[0].exists() and not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))


def test_two_processes_saving_one_file_at_once_leave_one_whole_file(tmp_path):
    """No lock around save_verified: each writes its own .tmp and renames; the file is one writer's, whole."""
    import subprocess
    import sys

    script = ("import sys, torch\nfrom course_lib import cache\n"
              "v = float(sys.argv[2])\n"
              "for _ in range(30):\n"
              "    cache.save_verified(sys.argv[1], {'w': torch.full((200_000,), v)}, key={'k': 1})\n")
    path = tmp_path / "shared.safetensors"
    runs = [subprocess.Popen([sys.executable, "-c", script, str(path), str(v)], stderr=subprocess.PIPE, text=True)
            for v in (1.0, 2.0)]
    reads = 0
    while any(run.poll() is None for run in runs):
        if path.exists():
            got, _ = cache.load_verified(path, key={"k": 1})  # never half a file, never a mix of both
            assert got["w"].unique().tolist() in ([1.0], [2.0])
            reads += 1
    assert [run.wait() for run in runs] == [0, 0], [run.stderr.read()[-2000:] for run in runs]
    assert reads > 0 and sorted(p.name for p in tmp_path.iterdir()) == ["shared.safetensors"]


def test_usage_summary_says_what_was_built_then_what_a_warm_rerun_loaded(tmp_course_dirs, monkeypatch):
    """A first run lists what it built; a rerun with the cache warm lists the same artefacts as loaded."""
    monkeypatch.setattr(cache, "_USAGE", [])
    assert "neither loaded nor built" in cache.usage_summary()
    build = lambda: models.MLP(hidden=(4,), in_features=3, num_classes=2)  # noqa: E731
    cache.cached_model("toy-teacher", {"epochs": 1}, build, lambda m: None)
    cache.cached_tensors("toy-logits", {"n": 3}, lambda: {"logits": torch.ones(3, 2)})
    first = cache.usage_summary()
    assert "built in this run and cached for the next one: toy-teacher, toy-logits" in first
    assert "loaded" not in first
    monkeypatch.setattr(cache, "_USAGE", [])  # a fresh kernel
    cache.cached_model("toy-teacher", {"epochs": 1}, build, lambda m: None)
    cache.cached_tensors("toy-logits", {"n": 3}, lambda: {"logits": torch.ones(3, 2)})
    cache.cached_tensors("toy-logits", {"n": 3}, lambda: {"logits": torch.ones(3, 2)})  # listed once
    again = cache.usage_summary()
    assert again.endswith("loaded from the cache instead of recomputed: toy-teacher, toy-logits.")
    assert "built" not in again


def test_usage_summary_ignores_files_outside_the_cache_folder(tmp_course_dirs, monkeypatch):
    monkeypatch.setattr(cache, "_USAGE", [])
    path = cache.save_verified(tmp_course_dirs / "student.safetensors", {"w": torch.zeros(2)})
    cache.load_or_move_aside(path)
    assert "neither loaded nor built" in cache.usage_summary()
