"""course_lib.timing: timed calls and their quartiles, batched benchmarks, and pinned_threads."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import compress, timing

def test_time_calls_skips_warmup_and_times_the_rest():
    seen = []

    def fn(item):
        seen.append(item)
        time.sleep(0.01 if item >= 2 else 0.0)

    result = timing.time_calls(fn, [0, 1, 2, 3, 4], warmup=2)
    assert isinstance(result, timing.Timing)
    assert seen == [0, 1, 2, 3, 4]
    assert len(result.wall) == len(result.cpu) == 3
    assert all(w >= 0.009 for w in result.wall)  # each timed call slept 10 ms
    assert all(c < w for c, w in zip(result.cpu, result.wall))  # sleeping uses wall time, not CPU time
    with pytest.raises(ValueError, match="warm-up"):
        timing.time_calls(fn, [0, 1], warmup=2)


@pytest.mark.parametrize("wall", [[0.003, 0.001, 0.002, 0.1], [5.0], [1.0, 2.0], [0.3, 0.1, 0.9, 0.2, 10.0, 0.4, 0.5]])
def test_timing_median_and_quartiles_match_numpy(wall):
    result = timing.Timing(wall=list(wall), cpu=[w / 2 for w in wall])
    assert result.median == pytest.approx(float(np.median(wall)))  # not the mean: one slow call must not count
    assert result.q1 == pytest.approx(float(np.percentile(wall, 25)))
    assert result.q3 == pytest.approx(float(np.percentile(wall, 75)))
    assert result.iqr == pytest.approx(float(np.percentile(wall, 75) - np.percentile(wall, 25)))
    assert result.cpu_median == pytest.approx(float(np.median(wall)) / 2)
    d = result.as_dict(per=1e-3)  # in milliseconds
    assert d["median"] == pytest.approx(1000 * float(np.median(wall))) and d["n"] == len(wall)
    assert d["iqr"] == pytest.approx(1000 * result.iqr)


def test_time_interleaved_rotates_the_order_and_times_each_function():
    calls = []
    fns = {name: (lambda item, name=name: calls.append((item, name))) for name in "abc"}
    timings = timing.time_interleaved(fns, [0, 1, 2, 3, 4], warmup=1)
    assert calls == [(0, "a"), (0, "b"), (0, "c"), (1, "b"), (1, "c"), (1, "a"), (2, "c"), (2, "a"), (2, "b"),
                     (3, "a"), (3, "b"), (3, "c"), (4, "b"), (4, "c"), (4, "a")]
    assert list(timings) == ["a", "b", "c"] and all(len(t.wall) == 4 for t in timings.values())
    with pytest.raises(ValueError, match="at least one"):
        timing.time_interleaved({}, [0, 1])


def test_time_interleaved_keeps_fast_and_slow_apart():
    timings = timing.time_interleaved({"slow": lambda _: time.sleep(0.02), "fast": lambda _: None}, range(6), 1)
    assert timings["slow"].median >= 0.019 and timings["fast"].median < 0.005



def test_quartiles_match_numpy_linear_percentiles():
    for values in ([3.0], [2.0, 9.0], [5.0, 1.0, 4.0], [0.3, 7.1, 2.2, 9.9, 4.4, 1.0, 8.5]):
        expected = np.percentile(values, [25, 50, 75])
        assert timing.quartiles(values) == pytest.approx(tuple(expected))

def test_benchmark_predict_warms_up_and_reports():
    calls = []
    out = timing.benchmark_predict(lambda batch: calls.append(len(batch)), ["a", "b", "c"], batch_size=4,
                                   warmup=2, repeats=5)
    assert calls == [4] * 7
    assert out["calls"] == 5
    assert out["ms_per_email_q1"] <= out["ms_per_email"] <= out["ms_per_email_q3"]
    assert out["ms_per_email_iqr"] == pytest.approx(out["ms_per_email_q3"] - out["ms_per_email_q1"])
    assert out["emails_per_s"] == pytest.approx(1000 / out["ms_per_email"])
    assert out["emails_per_s_q1"] <= out["emails_per_s"] <= out["emails_per_s_q3"]


def test_benchmark_interleaved_times_the_same_batches():
    seen = {"slow": [], "fast": []}

    def slow(batch):
        seen["slow"].append(tuple(batch))
        sum(range(20_000))

    def fast(batch):
        seen["fast"].append(tuple(batch))

    out = timing.benchmark_interleaved({"slow": slow, "fast": fast}, list("abcdefg"), batch_size=2,
                                       warmup=1, repeats=9, baseline="slow")
    assert seen["slow"] == seen["fast"] and len(seen["slow"]) == 10
    assert out["slow"]["speedup"]["median"] == pytest.approx(1.0)
    assert out["fast"]["speedup"]["q1"] <= out["fast"]["speedup"]["median"] <= out["fast"]["speedup"]["q3"]
    assert out["fast"]["speedup"]["median"] > 2
    with pytest.raises(ValueError, match="baseline"):
        timing.benchmark_interleaved({"a": fast}, ["x"], 1, warmup=0, repeats=2, baseline="b")


def test_pinned_threads_sets_torch_and_restores():
    before = torch.get_num_threads()
    with timing.pinned_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# --- pinned_threads: torch, ONNX Runtime and the tokenizer, restored on exit --------------------------

def test_pinned_threads_restores_after_an_exception_and_nests():
    before, env = torch.get_num_threads(), os.environ.get(timing.TOKENIZERS_PARALLELISM)
    with pytest.raises(RuntimeError, match="inside"):
        with timing.pinned_threads(1):
            assert torch.get_num_threads() == 1 and timing.pinned_count() == 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before and timing.pinned_count() is None
    assert os.environ.get(timing.TOKENIZERS_PARALLELISM) == env
    with timing.pinned_threads(2) as n:
        assert n == 2 and torch.get_num_threads() == 2 and timing.pinned_count() == 2
        with timing.pinned_threads(1):
            assert torch.get_num_threads() == 1 and timing.pinned_count() == 1
        assert torch.get_num_threads() == 2 and timing.pinned_count() == 2
    assert torch.get_num_threads() == before and timing.pinned_count() is None


@pytest.mark.parametrize("previous", [None, "true", "false"])
def test_pinned_threads_makes_the_tokenizer_serial_and_restores_its_variable(monkeypatch, previous):
    if previous is None:
        monkeypatch.delenv(timing.TOKENIZERS_PARALLELISM, raising=False)
    else:
        monkeypatch.setenv(timing.TOKENIZERS_PARALLELISM, previous)
    with pytest.raises(KeyError):
        with timing.pinned_threads(1):
            assert os.environ[timing.TOKENIZERS_PARALLELISM] == "false"
            raise KeyError("boom")
    assert os.environ.get(timing.TOKENIZERS_PARALLELISM) == previous
    with timing.pinned_threads(2):  # the tokenizer's pool size is fixed: more than one thread leaves it alone
        assert os.environ.get(timing.TOKENIZERS_PARALLELISM) == previous


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_pinned_threads_refuses_what_is_not_a_thread_count(bad):
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="threads"):
        with timing.pinned_threads(bad):
            pass
    assert torch.get_num_threads() == before and timing.pinned_count() is None


def test_onnx_sessions_use_the_pinned_count(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.rand(50, 8)
    onnx = compress.OnnxModel(compress.export_onnx(model, x[:2], tmp_path / "m.onnx"))

    def threads_of_session():
        return onnx.session.get_session_options().intra_op_num_threads

    with timing.pinned_threads(1):
        assert threads_of_session() == 1
        one = onnx.predict_logits(x)
    with timing.pinned_threads(2):
        assert threads_of_session() == 2
        two = onnx.predict_logits(x)
    assert threads_of_session() == torch.get_num_threads()  # outside a block: torch's count
    with timing.pinned_threads(1):
        assert onnx.session is onnx.session  # one session per count, kept
    assert sorted(onnx._sessions) == sorted({1, 2, torch.get_num_threads()})
    with torch.no_grad():
        torch.testing.assert_close(one, model(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(two, one, atol=1e-6, rtol=1e-6)


#: Run in a fresh process (no torch or OpenMP threads spinning from earlier tests): tokenise a few thousand
#: emails with the teacher's fast tokenizer and count the process's OS threads that gained CPU time.
_COUNT_TOKENIZER_THREADS = textwrap.dedent("""
    import os, random, sys
    from transformers import AutoTokenizer
    from course_lib import timing
    from course_lib.router import packaged_encoder_path

    def cpu_ticks():
        ticks = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            ticks[tid] = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks

    tokenizer = AutoTokenizer.from_pretrained(str(packaged_encoder_path()), local_files_only=True)
    rng = random.Random(0)
    words = "refund invoice charged twice password reset account locked parcel late order cancel".split()
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(20, 120))) for _ in range(4000)]

    def busy_threads():
        before = cpu_ticks()
        for i in range(0, len(texts), 256):
            tokenizer(texts[i:i + 256], padding=True, truncation=True, max_length=128)
        after = cpu_ticks()
        return sum(1 for tid, t in after.items() if t > before.get(tid, 0))

    free = busy_threads()
    with timing.pinned_threads(1):
        pinned = busy_threads()
    print(free, pinned, busy_threads())
""")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc (Linux)")
def test_pinned_threads_keeps_the_teachers_tokenizer_on_one_thread():
    env = {k: v for k, v in os.environ.items() if k != timing.TOKENIZERS_PARALLELISM}
    out = subprocess.run([sys.executable, "-c", _COUNT_TOKENIZER_THREADS], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    free, pinned, after = map(int, out.stdout.split()[-3:])
    assert pinned == 1  # only the calling thread worked inside the block
    if (os.cpu_count() or 1) > 1:  # the measurement can see the pool: unpinned, and again after the block
        assert free > 1 and after > 1


def test_lesson_duration_note_reads_the_measured_time_cores_and_cache(tmp_path, monkeypatch):
    """The first cell's note comes from course_timings.json, never typed; FAST runs add their own time."""
    import json

    from course_lib import config

    path = tmp_path / "course_timings.json"
    path.write_text(json.dumps({"02_x.ipynb": {"full_cpu_s": 1162.5, "full_cpu_cores": 2, "fast_cpu_s": 16.7,
                                               "full_cpu_cache": "warm (nothing built)"},
                                "03_y.ipynb": {"full_cpu_s": 95.0}}))
    monkeypatch.setattr(config, "FAST", False)
    note = timing.lesson_duration_note("02_x.ipynb", "the loss section", timings_path=path)
    assert note.startswith("Full mode takes about 19 min on a 2-core CPU (the last `make course` run; "
                           "cache: warm (nothing built)).")
    assert note.endswith("\nWhile it runs, read: the loss section") and "FAST" not in note
    assert timing.lesson_duration_note("03_y.ipynb", "r", timings_path=path).startswith(
        "Full mode takes about 95 s on a CPU (the last `make course` run).")
    assert "not been timed" in timing.lesson_duration_note("09_z.ipynb", "r", timings_path=path)
    assert "not been timed" in timing.lesson_duration_note("02_x.ipynb", "r", timings_path=tmp_path / "none.json")
    monkeypatch.setattr(config, "FAST", True)
    assert timing.lesson_duration_note("02_x.ipynb", "r", timings_path=path).startswith(
        "This FAST run takes about 17 s. Full mode takes about 19 min")


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"02_x.ipynb": 5}'])
def test_lesson_duration_note_on_a_broken_timings_file_says_how_to_remake_it(tmp_path, content):
    path = tmp_path / "course_timings.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="make course"):
        timing.lesson_duration_note("02_x.ipynb", "r", timings_path=path)
