"""Measuring a router's cost: latency, throughput and CPU time, with their spread (introduced in lesson 04).

Built on :func:`course_lib.evaluate.time_calls` and :func:`course_lib.evaluate.time_interleaved`
(warm-up calls first, then the median and the interquartile range of many timed calls).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Mapping, Sequence

import torch

from ..evaluate import Timing, quartiles, time_calls, time_interleaved


@contextmanager
def one_thread():
    """Run torch on one CPU thread inside the block (introduced in lesson 04).

    The student's operations are tiny: waking a pool of threads costs more than the work
    (milliseconds on a busy machine), so it trains and predicts on one core.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _batches(texts: Sequence[str], batch_size: int, count: int) -> list[list[str]]:
    """``count`` batches of ``batch_size`` texts, cycling through ``texts``."""
    texts = list(texts)
    if not texts:
        raise ValueError("a benchmark needs at least one text")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    needed = batch_size * count
    pool = (texts * (needed // len(texts) + 1))[:needed]
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


def benchmark_predict(predict_fn: Callable[[list[str]], object], texts: Sequence[str], batch_size: int,
                      warmup: int = 3, repeats: int = 20) -> dict:
    """Time ``predict_fn`` on batches of ``batch_size`` texts, after warm-up (introduced in lesson 04).

    Args:
        predict_fn: takes a list of texts, returns anything (e.g. ``model.predict_proba``).
        texts: texts to cycle through; call ``k`` gets the next ``batch_size`` of them.
        batch_size: texts per call (1 = one email at a time, as a live router sees them).
        warmup: untimed calls first (lazy initialisation, caches, allocator).
        repeats: timed calls, summarised by their median and IQR.

    Returns:
        :func:`summarize_timing`'s dict.
    """
    timing = time_calls(predict_fn, _batches(texts, batch_size, warmup + repeats), warmup)
    return summarize_timing(timing, batch_size)


def benchmark_interleaved(predict_fns: Mapping[str, Callable[[list[str]], object]], texts: Sequence[str],
                          batch_size: int, warmup: int = 3, repeats: int = 20,
                          baseline: str | None = None) -> dict:
    """Time several models on the same batches, interleaved (introduced in lesson 04).

    Each batch goes to every model in turn (:func:`course_lib.evaluate.time_interleaved`), so
    background load slows them alike and their ratio is stable enough to quote.

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
