"""Scoring traffic with the teacher (course_lib.router.scoring): shards, resume after a kill, bad shards, Ray.

One small frozen teacher (MiniLM + a logistic-regression head fitted on 60 synthetic emails) scores
a few hundred short synthetic emails in shards of a few dozen rows.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import save_file

from course_lib import emails, timing
from course_lib.router import TextTeacher
from course_lib.router.scoring import score_traffic

SHARD = 16


@pytest.fixture(scope="module")
def teacher():
    texts, labels = emails.texts_and_labels(emails.generate_emails(60, seed=0, style="archive"))
    with timing.pinned_threads(1):
        return TextTeacher(len(emails.QUEUES), progress=False, use_cache=False).fit(texts, labels)


@pytest.fixture(scope="module")
def traffic():
    texts, _ = emails.texts_and_labels(emails.generate_emails(160, seed=5, style="traffic"))
    return [text[:120] for text in texts]


def parts(folder):
    return sorted(p.name for p in folder.glob("part-*.parquet"))


# ---- the local engine -------------------------------------------------------------
def test_local_engine_gives_the_teachers_logits_in_shards(teacher, traffic, tmp_path, capsys):
    scores = score_traffic(teacher, traffic, tmp_path, shard_rows=SHARD, progress=False)
    assert scores.shape == (160, len(emails.QUEUES)) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, teacher.predict_logits(traffic), atol=1e-5, rtol=0)  # other batches
    assert parts(tmp_path) == [f"part-{i:05d}.parquet" for i in range(10)]
    for i in range(10):  # each shard holds exactly its rows, in order, with their logits
        shard = pd.read_parquet(tmp_path / f"part-{i:05d}.parquet")
        assert shard["row"].tolist() == list(range(i * SHARD, (i + 1) * SHARD))
        np.testing.assert_array_equal(np.stack(shard["logits"].to_numpy()), scores[i * SHARD:(i + 1) * SHARD])
    every = pd.read_parquet(sorted(tmp_path.glob("part-*.parquet")))  # every row once
    assert sorted(every["row"]) == list(range(160))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["key"]["rows"] == 160 and manifest["key"]["shard_rows"] == SHARD and manifest["complete"]
    out = capsys.readouterr().out
    assert "resumed:" not in out and "emails/s" in out
    # a last, shorter shard
    scores = score_traffic(teacher, traffic[:40], tmp_path / "short", shard_rows=SHARD, progress=False)
    assert pd.read_parquet(tmp_path / "short" / "part-00002.parquet")["row"].tolist() == list(range(32, 40))


def test_bad_arguments_are_refused_clearly(teacher, traffic, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="empty"):
        score_traffic(teacher, [], tmp_path)
    with pytest.raises(ValueError, match="engine must be one of"):
        score_traffic(teacher, traffic, tmp_path, engine="spark")
    for workers in (0, -1, 1.5):
        with pytest.raises(ValueError, match="workers must be"):
            score_traffic(teacher, traffic, tmp_path, workers=workers)
    with pytest.raises(ValueError, match="engine='ray'"):
        score_traffic(teacher, traffic, tmp_path, workers=2)
    with pytest.raises(ValueError, match="shard_rows"):
        score_traffic(teacher, traffic, tmp_path, shard_rows=0)
    with pytest.raises(ValueError, match="single string"):
        score_traffic(teacher, "one email", tmp_path)
    with pytest.raises(ValueError, match="not fitted"):
        score_traffic(TextTeacher(3, progress=False), traffic, tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    with pytest.raises(ImportError, match=r'pip install "ray\[data\]==2.60.0"'):
        score_traffic(teacher, traffic, tmp_path, engine="ray", workers=2)
    assert not list(tmp_path.iterdir())  # nothing written


# ---- resume -----------------------------------------------------------------------
CHILD = textwrap.dedent("""
    import json, sys, time
    from safetensors.torch import load_file
    from course_lib import timing
    from course_lib.router import TextTeacher
    from course_lib.router.scoring import score_traffic

    head, texts, out = sys.argv[1:4]
    teacher = TextTeacher(6, progress=False, use_cache=False)
    teacher.head.load_state_dict(load_file(head))
    teacher._fitted = True
    predict = teacher.predict_logits
    def slow(batch):  # a slow teacher, so that the parent can kill it half-way
        time.sleep(0.5)
        return predict(batch)
    teacher.predict_logits = slow
    with timing.pinned_threads(1):
        score_traffic(teacher, json.load(open(texts)), out, shard_rows=%d, progress=False)
""" % SHARD)


def test_a_killed_run_resumes_from_its_finished_shards(teacher, traffic, tmp_path, capsys, pinned_one_thread):
    save_file(teacher.head.state_dict(), tmp_path / "head.safetensors")
    (tmp_path / "texts.json").write_text(json.dumps(traffic))
    out = tmp_path / "scores"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "head.safetensors"),
                              str(tmp_path / "texts.json"), str(out)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 180
        while not (out / "part-00001.parquet").exists():
            assert child.poll() is None, "the scoring process ended before writing two shards"
            assert time.monotonic() < deadline, "no shard after 180 s"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    done = parts(out)
    assert 2 <= len(done) < 10, done  # killed half-way
    (out / f".part-00009.parquet.{2 ** 22 + 7}-abcd1234.tmp").write_bytes(b"half a shard")  # a dead writer's leftover
    capsys.readouterr()

    resumed = score_traffic(teacher, traffic, out, shard_rows=SHARD, progress=False)
    said = capsys.readouterr().out
    assert f"resumed: {SHARD * len(done)} of 160 rows already scored ({len(done)} of 10 shards" in said
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert parts(out) == [f"part-{i:05d}.parquet" for i in range(10)]
    uninterrupted = score_traffic(teacher, traffic, tmp_path / "again", shard_rows=SHARD, progress=False)
    np.testing.assert_array_equal(resumed, uninterrupted)  # bitwise: same threads, same shards
    score_traffic(teacher, traffic, out, shard_rows=SHARD, progress=False)  # all done: nothing rescored
    assert "resumed: 160 of 160 rows" in capsys.readouterr().out


def test_corrupt_shards_are_moved_aside_and_scored_again(teacher, traffic, tmp_path, capsys):
    first = score_traffic(teacher, traffic[:64], tmp_path, shard_rows=SHARD, progress=False)
    flipped = bytearray((tmp_path / "part-00001.parquet").read_bytes())
    flipped[len(flipped) // 3] ^= 0x01
    (tmp_path / "part-00001.parquet").write_bytes(bytes(flipped))
    truncated = (tmp_path / "part-00002.parquet").read_bytes()
    (tmp_path / "part-00002.parquet").write_bytes(truncated[:len(truncated) // 2])
    (tmp_path / "part-00003.parquet").write_bytes((tmp_path / "part-00000.parquet").read_bytes())  # wrong rows
    (tmp_path / "part-00007.parquet").write_bytes((tmp_path / "part-00000.parquet").read_bytes())  # past the end
    capsys.readouterr()
    again = score_traffic(teacher, traffic[:64], tmp_path, shard_rows=SHARD, progress=False)
    said = capsys.readouterr().out
    assert "resumed: 16 of 64 rows already scored (1 of 4 shards" in said
    assert said.count("unusable") == 3
    assert sorted(p.name for p in tmp_path.glob("*.corrupt*")) == [
        f"part-0000{i}.parquet.corrupt" for i in (1, 2, 3, 7)]
    np.testing.assert_array_equal(again, first)
    assert parts(tmp_path) == [f"part-{i:05d}.parquet" for i in range(4)]


def test_another_teacher_or_other_texts_never_reuse_old_shards(teacher, traffic, tmp_path, capsys):
    score_traffic(teacher, traffic[:32], tmp_path, shard_rows=SHARD, progress=False)
    texts, labels = emails.texts_and_labels(emails.generate_emails(60, seed=1, style="archive"))
    other = TextTeacher(len(emails.QUEUES), progress=False, use_cache=False).fit(texts, labels)
    capsys.readouterr()
    scores = score_traffic(other, traffic[:32], tmp_path, shard_rows=SHARD, progress=False)
    said = capsys.readouterr().out
    assert "resumed:" not in said and "another teacher or traffic (2 shards)" in said
    np.testing.assert_allclose(scores, other.predict_logits(traffic[:32]), atol=1e-5, rtol=0)
    assert len(list(tmp_path.glob("part-*.parquet.corrupt"))) == 2
    changed = traffic[:31] + ["a different last email"]
    scores = score_traffic(other, changed, tmp_path, shard_rows=SHARD, progress=False)
    assert "resumed:" not in capsys.readouterr().out
    np.testing.assert_allclose(scores, other.predict_logits(changed), atol=1e-5, rtol=0)
    score_traffic(other, changed, tmp_path, shard_rows=8, progress=False)  # another shard size: another layout
    assert "resumed:" not in capsys.readouterr().out


# ---- Ray --------------------------------------------------------------------------
def test_ray_engine_with_two_workers_gives_the_local_scores(teacher, traffic, tmp_path, capsys):
    ray = pytest.importorskip("ray", reason="Ray Data is not installed")
    texts = traffic[:96]
    local = score_traffic(teacher, texts, tmp_path / "local", shard_rows=SHARD, progress=False)
    for i in (1, 4):  # a partly scored folder: Ray scores the missing shards only
        (tmp_path / "local" / f"part-{i:05d}.parquet").unlink()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    try:
        capsys.readouterr()
        on_ray = score_traffic(teacher, texts, tmp_path / "ray", engine="ray", workers=2, shard_rows=SHARD,
                               progress=False)
        assert "engine ray, 2 workers" in capsys.readouterr().out
        np.testing.assert_allclose(on_ray, local, atol=1e-4, rtol=0)
        for i in range(6):
            shard = pd.read_parquet(tmp_path / "ray" / f"part-{i:05d}.parquet")
            assert shard["row"].tolist() == list(range(i * SHARD, (i + 1) * SHARD))
        filled = score_traffic(teacher, texts, tmp_path / "local", engine="ray", workers=2, shard_rows=SHARD,
                               progress=False)
        assert "resumed: 64 of 96 rows" in capsys.readouterr().out
        np.testing.assert_allclose(filled, local, atol=1e-4, rtol=0)
        assert ray.is_initialized()  # a Ray the caller started is left running
    finally:
        ray.shutdown()
