"""Measuring what a model costs: timed calls, their median and spread, and the threads they run on.

* :class:`Timing`, :func:`quartiles`: wall and CPU seconds of repeated calls, summarised by the
  median and the interquartile range (introduced in lesson 03).
* :func:`time_calls`, :func:`time_interleaved`: warm-up calls first, then many timed calls;
  several functions interleaved on the same inputs so background load slows them alike.
* :func:`summarize_timing`, :func:`benchmark_predict`, :func:`benchmark_interleaved`: per-item
  latency and throughput of batched predict functions (introduced in lesson 04; lesson 06 uses
  them for MNIST and the router alike).
* :func:`pinned_threads`: the one place that sets how many threads a measurement runs on, for
  torch, ONNX Runtime (:func:`pinned_count`, read by ``compress.OnnxModel``) and the Hugging Face
  fast tokenizer. Models never set threads themselves; the code that measures pins them.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import torch

#: The environment variable the Hugging Face ``tokenizers`` library reads on every batch call
#: ("false": encode on the calling thread; unset or "true": spread over its rayon pool).
TOKENIZERS_PARALLELISM = "TOKENIZERS_PARALLELISM"

_pinned: Optional[int] = None  # the count set by the innermost pinned_threads block, None outside one


@contextmanager
def pinned_threads(n: int = 1) -> Iterator[int]:
    """Run torch, ONNX Runtime and the fast tokenizer on ``n`` CPU threads inside the block; restore after.

    * torch: ``torch.set_num_threads(n)``;
    * ONNX Runtime: :func:`pinned_count` returns ``n``, and ``compress.OnnxModel`` runs a session
      with ``n`` intra-op threads (one session per thread count, built on first use);
    * the Hugging Face fast tokenizer (the teacher's): with ``n == 1`` the environment variable
      ``TOKENIZERS_PARALLELISM`` is ``"false"``, which the tokenizer reads on every batch call, so
      it encodes on the calling thread instead of its rayon pool (measured: 3 threads busy while
      tokenising 4,000 emails unpinned on 2 cores, 1 inside the block). Its pool's size is fixed
      when first used, so with ``n > 1`` the tokenizer is left as the caller set it.

    Everything (the thread count, the environment variable, the pinned count) is restored on exit,
    also when the block raises; blocks nest. Yields ``n``. ``n`` must be an integer >= 1.
    """
    global _pinned
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"pinned_threads needs a whole number of threads >= 1, got {n!r}")
    previous = torch.get_num_threads(), os.environ.get(TOKENIZERS_PARALLELISM), _pinned
    torch.set_num_threads(n)
    if n == 1:
        os.environ[TOKENIZERS_PARALLELISM] = "false"
    _pinned = n
    try:
        yield n
    finally:
        threads, parallelism, _pinned = previous
        torch.set_num_threads(threads)
        if parallelism is None:
            os.environ.pop(TOKENIZERS_PARALLELISM, None)
        else:
            os.environ[TOKENIZERS_PARALLELISM] = parallelism


def pinned_count() -> Optional[int]:
    """The thread count of the innermost :func:`pinned_threads` block, or None outside one."""
    return _pinned


@dataclass
class Timing:
    """Wall and CPU seconds of repeated calls, summarised by the median and the interquartile range.

    A single timing misleads on a shared machine: report the median (robust to the odd
    slow call) with its spread, ``q1``-``q3``.
    """

    wall: list
    cpu: list

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def q1(self) -> float:
        return quartiles(self.wall)[0]

    @property
    def q3(self) -> float:
        return quartiles(self.wall)[2]

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def as_dict(self, per: float = 1.0) -> dict:
        """Median, quartiles and IQR of wall seconds (and median CPU seconds), each divided by ``per``."""
        return {"median": self.median / per, "q1": self.q1 / per, "q3": self.q3 / per, "iqr": self.iqr / per,
                "cpu_median": self.cpu_median / per, "n": len(self.wall)}


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """``(q1, median, q3)`` of ``values`` with linear interpolation (numpy's default); one value gives it thrice.

    No values, or a NaN or infinite one, is a ``ValueError`` (a NaN would make every quartile NaN).
    """
    if len(values) == 0:
        raise ValueError("quartiles needs at least one value, got none: time at least one call")
    bad = [v for v in values if not math.isfinite(float(v))]
    if bad:
        raise ValueError(f"quartiles needs finite numbers, got {bad[0]!r} among {len(values)} values: "
                         "drop the failed measurements first")
    if len(values) == 1:
        return (float(values[0]),) * 3
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def time_calls(fn: Callable[[Any], object], inputs: Sequence[Any], warmup: int = 3) -> Timing:
    """Call ``fn`` on each input; time all but the first ``warmup`` calls (introduced in lesson 04).

    Warm-up calls pay for lazy initialisation and allocation, so they are never timed.
    Returns a :class:`Timing` (one wall and one CPU time per timed call): report its median and IQR.
    """
    return time_interleaved({"fn": fn}, inputs, warmup)["fn"]


def time_interleaved(fns: Mapping[str, Callable[[Any], object]], inputs: Sequence[Any],
                     warmup: int = 3) -> dict:
    """Time several functions on the same inputs, interleaved: ``{name: Timing}`` (introduced in lesson 03).

    For each input every function is called once, in an order that rotates from input to
    input, so a burst of background load slows all of them alike and their *ratio* stays
    stable enough to quote. The first ``warmup`` inputs are called but not timed.
    """
    if not fns:
        raise ValueError("time_interleaved needs at least one function")
    if warmup < 0 or len(inputs) <= warmup:
        raise ValueError(f"need more inputs ({len(inputs)}) than warm-up calls ({warmup})")
    names = list(fns)
    walls = {name: [] for name in names}
    cpus = {name: [] for name in names}
    for i, item in enumerate(inputs):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            wall, cpu = time.perf_counter(), time.process_time()
            fns[name](item)
            if i >= warmup:
                walls[name].append(time.perf_counter() - wall)
                cpus[name].append(time.process_time() - cpu)
    return {name: Timing(walls[name], cpus[name]) for name in names}


# --- Batched predict functions: per-item latency and throughput (introduced in lesson 04) ---------

def _batches(items: Sequence[Any], batch_size: int, count: int) -> list[list[Any]]:
    """``count`` batches of ``batch_size`` items, cycling through ``items``."""
    items = list(items)
    if not items:
        raise ValueError("a benchmark needs at least one input")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    needed = batch_size * count
    pool = (items * (needed // len(items) + 1))[:needed]
    return [pool[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def summarize_timing(timing: Timing, batch_size: int) -> dict:
    """Per-email latency and throughput of batched calls: median, quartiles and IQR (introduced in lesson 04).

    Returns ``{"batch_size", "calls", "ms_per_email", "ms_per_email_q1", "ms_per_email_q3",
    "ms_per_email_iqr", "emails_per_s", "emails_per_s_q1", "emails_per_s_q3", "emails_per_s_iqr",
    "cpu_s_per_million"}``. Throughput quartiles come from the latency quartiles (a slow call is a
    low throughput), so ``emails_per_s_q1 = batch_size / q3 seconds``.
    """
    ms = 1000 / batch_size
    return {
        "batch_size": batch_size,
        "calls": len(timing.wall),
        "ms_per_email": timing.median * ms,
        "ms_per_email_q1": timing.q1 * ms,
        "ms_per_email_q3": timing.q3 * ms,
        "ms_per_email_iqr": timing.iqr * ms,
        "emails_per_s": batch_size / timing.median,
        "emails_per_s_q1": batch_size / timing.q3,
        "emails_per_s_q3": batch_size / timing.q1,
        "emails_per_s_iqr": batch_size / timing.q1 - batch_size / timing.q3,
        "cpu_s_per_million": 1e6 * timing.cpu_median / batch_size,
    }


def benchmark_predict(predict_fn: Callable[[list], object], texts: Sequence[Any], batch_size: int,
                      warmup: int = 3, repeats: int = 20) -> dict:
    """Time ``predict_fn`` on batches of ``batch_size`` inputs, after warm-up (introduced in lesson 04).

    Args:
        predict_fn: takes a list of inputs (texts), returns anything (e.g. ``model.predict_proba``).
        texts: inputs to cycle through; call ``k`` gets the next ``batch_size`` of them.
        batch_size: inputs per call (1 = one email at a time, as a live router sees them).
        warmup: untimed calls first (lazy initialisation, caches, allocator).
        repeats: timed calls, summarised by their median and IQR.

    Returns:
        :func:`summarize_timing`'s dict. Threads are the caller's: time inside :func:`pinned_threads`.
    """
    timing = time_calls(predict_fn, _batches(texts, batch_size, warmup + repeats), warmup)
    return summarize_timing(timing, batch_size)


def benchmark_interleaved(predict_fns: Mapping[str, Callable[[list], object]], texts: Sequence[Any],
                          batch_size: int, warmup: int = 3, repeats: int = 20,
                          baseline: str | None = None) -> dict:
    """Time several models on the same batches, interleaved (introduced in lesson 04).

    Each batch goes to every model in turn (:func:`time_interleaved`), so background load slows
    them alike and their ratio is stable enough to quote.

    Args:
        predict_fns: ``{name: predict_fn}``.
        texts, batch_size, warmup, repeats: as in :func:`benchmark_predict`.
        baseline: a name in ``predict_fns``; each model's summary then also has ``"speedup"``:
            the median, ``q1`` and ``q3`` over batches of ``baseline's seconds / this model's
            seconds`` on the *same* batch.

    Returns:
        ``{name: summary}`` with :func:`summarize_timing`'s keys (plus ``"speedup"``).
    """
    if baseline is not None and baseline not in predict_fns:
        raise ValueError(f"baseline {baseline!r} is not one of {list(predict_fns)}")
    timings = time_interleaved(predict_fns, _batches(texts, batch_size, warmup + repeats), warmup)
    out = {name: summarize_timing(timing, batch_size) for name, timing in timings.items()}
    if baseline is not None:
        for name, timing in timings.items():
            ratios = [b / t for b, t in zip(timings[baseline].wall, timing.wall)]
            q1, median, q3 = quartiles(ratios)
            out[name]["speedup"] = {"median": median, "q1": q1, "q3": q3}
    return out


# --- How long a lesson takes (each lesson's first code cell prints it) ----------------------------------------

def _duration(seconds: float) -> str:
    """``"about 19 min"`` (or ``"about 45 s"`` under two minutes)."""
    return f"about {seconds:.0f} s" if seconds < 120 else f"about {seconds / 60:.0f} min"


def lesson_duration_note(notebook: str, read: str, timings_path=None) -> str:
    """What a lesson's first code cell prints: how long its full mode took when last measured, and what to read meanwhile.

    Read from ``results/course_timings.json`` (written by ``make course``), never typed: the full-mode time on
    a CPU, the machine's core count and what the run found in the cache. In FAST mode it also gives the FAST time.

    Args:
        notebook: the lesson's file name, e.g. ``"02_hinton_distillation.ipynb"``.
        read: what to read while it runs (the sections below, a paper).
        timings_path: another timings file (tests); default ``config.results_dir() / "course_timings.json"``.
    """
    import json
    from pathlib import Path

    from . import config

    path = Path(timings_path) if timings_path is not None else config.results_dir() / "course_timings.json"
    try:
        timings = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        timings = {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the lesson timings in {path} ({exc}); `make course` writes it again") from None
    if not isinstance(timings, dict) or not isinstance(timings.get(notebook, {}), dict):
        raise ValueError(f"{path} is not a table of lesson timings; `make course` writes it again")
    row = timings.get(notebook, {})
    full = row.get("full_cpu_s")
    if full is None:
        note = "Full mode has not been timed on a CPU yet (`make course` records it)."
    else:
        cores = row.get("full_cpu_cores")
        where = f"a {cores}-core CPU" if cores else "a CPU"
        note = f"Full mode takes {_duration(full)} on {where} (the last `make course` run"
        cache = row.get("full_cpu_cache")
        note += f"; cache: {cache})." if cache else ")."
        note += (" A rerun loads the models and signals this lesson caches instead of recomputing them;"
                 " the cell before its questions prints which.")
    if config.is_fast() and row.get("fast_cpu_s") is not None:
        note = f"This FAST run takes {_duration(row['fast_cpu_s'])}. " + note
    return note + f"\nWhile it runs, read: {read}"
