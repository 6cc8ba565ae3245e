"""The lesson 06 checks accept correct answers and reject each typical mistake with its own hint."""
import functools
import gzip
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import timeit
import torch
from torch import nn
from torch.nn.utils import prune

from course_lib import compress, losses, train
from course_lib.checks import run_check
from course_lib.answers.lesson06 import fine_tune_pruned as solution_fine_tune_pruned
from course_lib.answers.lesson06 import median_latency_ms as solution_median_latency_ms
from course_lib.answers.lesson06 import size_on_disk as solution_size_on_disk
from course_lib.checks.lesson06 import (LATENCY_HINTS, PRUNE_HINTS, check_fine_tune_pruned, check_median_latency_ms,
                                        check_size_on_disk)
from course_lib.losses import distillation_loss
import hint_checks
from hint_checks import stub


# ---- 6.1 size on disk ---------------------------------------------------------
def by_hand_size(model_or_path):  # written out without course_lib
    if isinstance(model_or_path, nn.Module):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "some_other_name.pt"
            torch.save(model_or_path.state_dict(), path)
            data = path.read_bytes()
    else:
        data = Path(model_or_path).read_bytes()
    return len(data), len(gzip.compress(data))


def parameter_count(model_or_path):
    if isinstance(model_or_path, nn.Module):
        n = sum(p.numel() for p in model_or_path.parameters())
        return n, n
    return solution_size_on_disk(model_or_path)


def four_bytes_each(model_or_path):
    if isinstance(model_or_path, nn.Module):
        n = 4 * sum(p.numel() for p in model_or_path.parameters())
        return n, n
    return solution_size_on_disk(model_or_path)


def no_gzip(model_or_path):
    size, _ = solution_size_on_disk(model_or_path)
    return size, size


def long_name_size(model_or_path):  # a descriptive file name of 60+ characters (issue 21: it was refused)
    if not isinstance(model_or_path, nn.Module):
        return solution_size_on_disk(model_or_path)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "student_mlp_pruned_60_percent_then_fine_tuned_with_kd_at_T3.pt"
        torch.save(model_or_path.state_dict(), path)
        data = path.read_bytes()
    return len(data), len(gzip.compress(data))


def whole_model_size(model_or_path):  # torch.save(model): a file a service could load too, a few bytes bigger
    if not isinstance(model_or_path, nn.Module):
        return solution_size_on_disk(model_or_path)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.pt"
        torch.save(model_or_path, path)
        data = path.read_bytes()
    return len(data), len(gzip.compress(data))


def path_length(model_or_path):
    size, zipped = solution_size_on_disk(model_or_path)
    return (len(str(model_or_path)), zipped) if not isinstance(model_or_path, nn.Module) else (size, zipped)


def kilobytes(model_or_path):
    size, zipped = solution_size_on_disk(model_or_path)
    return size / 1024, zipped / 1024


def zipped_first(model_or_path):
    size, zipped = solution_size_on_disk(model_or_path)
    return zipped, size


def numpy_bytes(model_or_path):
    if not isinstance(model_or_path, nn.Module):
        return solution_size_on_disk(model_or_path)
    n = sum(t.numel() * t.element_size() for t in model_or_path.state_dict().values())
    return n, n


@pytest.mark.parametrize("fn", [solution_size_on_disk, by_hand_size, long_name_size, whole_model_size])
def test_size_accepts_correct(fn):
    assert check_size_on_disk(fn) is True


@pytest.mark.parametrize("fn, words", [
    (parameter_count, "number of parameters"), (four_bytes_each, "4 bytes x"), (no_gzip, "gzip"),
    (path_length, "file of 10,000 bytes"),
    (kilobytes, "file of 10,000 bytes"), (zipped_first, "file of 10,000 bytes"), (numpy_bytes, "torch.save"),
    (lambda m: 100, "pair"), (lambda m: (1, 2, 3), "pair"),
])
def test_size_rejects_mistakes(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_size_on_disk(fn)


# ---- 6.2 latency after warm-up ------------------------------------------------
def _seconds_after_warmup(predict_fn, batches, warmup):
    """Each call's seconds, the first ``warmup`` calls run but not timed."""
    for batch in batches[:warmup]:
        predict_fn(batch)
    times = []
    for batch in batches[warmup:]:
        start = time.perf_counter()
        predict_fn(batch)
        times.append(time.perf_counter() - start)
    return times


def by_hand_latency(predict_fn, batches, warmup=3):
    return statistics.median(_seconds_after_warmup(predict_fn, batches, warmup)) * 1e3


def latency(aggregate=statistics.median, scale=1e3, warmup_used=None, clock=None, same_batch=False):
    """A median_latency_ms with one piece replaced, to write each mistake (or another right answer)."""
    def median_latency_ms(predict_fn, batches, warmup=3):
        w = warmup if warmup_used is None else warmup_used(warmup)
        for batch in batches[:w]:
            predict_fn(batch)
        times = []
        for batch in batches[w:]:
            start = (clock or time.perf_counter)()
            predict_fn(batches[0] if same_batch else batch)
            times.append((clock or time.perf_counter)() - start)
        return aggregate(times) * scale
    return median_latency_ms


def timeit_latency(predict_fn, batches, warmup=3):
    for batch in batches[:warmup]:
        predict_fn(batch)
    return 1e3 * statistics.median(timeit.timeit(lambda b=b: predict_fn(b), number=1) for b in batches[warmup:])


@pytest.mark.parametrize("fn", [
    solution_median_latency_ms, by_hand_latency, timeit_latency,
    latency(aggregate=lambda t: np.float32(np.median(t))),  # a NumPy scalar (issue 21: it was refused)
    latency(aggregate=lambda t: torch.tensor(t, dtype=torch.float64).quantile(0.5)),
    latency(clock=time.monotonic), latency(clock=lambda: time.perf_counter_ns() / 1e9),
])
def test_latency_accepts_correct(fn):
    assert check_median_latency_ms(fn) is True


@pytest.mark.parametrize("fn, key", [
    (latency(scale=1.0), "seconds"), (latency(scale=1e6), "microseconds"),
    (latency(warmup_used=lambda w: 0), "warmup_timed"), (latency(warmup_used=lambda w: w + 1), "warmup_extra"),
    (latency(warmup_used=lambda w: w - 1), "warmup_short"), (latency(aggregate=statistics.mean), "mean"),
    (latency(aggregate=max), "max"), (latency(aggregate=min), "min"), (latency(aggregate=sum), "total"),
    (latency(aggregate=lambda t: torch.tensor(t).median().item()), "middle"),
    (latency(aggregate=statistics.median_high), "middle"), (latency(aggregate=lambda t: sorted(t)[len(t) // 2]),
                                                             "middle"),
    (latency(clock=time.process_time), "cpu"), (latency(clock=time.thread_time), "cpu"),
])
def test_latency_names_each_mistake(fn, key):
    message = hint_checks.failure_message(check_median_latency_ms, fn)
    assert [k for k, text in LATENCY_HINTS.items() if text in message] == [key], message


def test_latency_refuses_timing_one_batch_over_and_over():
    with pytest.raises(AssertionError, match="timing batches\\[0\\] over and over"):
        check_median_latency_ms(latency(same_batch=True))


# ---- 6.3 prune, then fine-tune with the distillation loss ---------------------
def by_hand_fine_tune(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    import copy

    pruned = copy.deepcopy(student)
    layers = [(m, "weight") for m in pruned.modules() if isinstance(m, nn.Linear)]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=amount)
    loss = functools.partial(distillation_loss, temperature=temperature, alpha=alpha)
    train.fit(pruned, x, (teacher_logits, labels), loss, epochs=epochs, lr=lr, progress=False)
    for module, name in layers:
        prune.remove(module, name)
    return pruned


def masks_left(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    pruned = compress.prune_magnitude(student, amount, permanent=False)
    loss = functools.partial(distillation_loss, temperature=temperature, alpha=alpha)
    train.fit(pruned, x, (teacher_logits, labels), loss, epochs=epochs, lr=lr, progress=False)
    return pruned


def hard_labels(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    pruned = compress.prune_magnitude(student, amount, permanent=False)
    train.fit(pruned, x, labels, losses.cross_entropy_loss, epochs=epochs, lr=lr, progress=False)
    return compress.make_permanent(pruned)


def regrown(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    pruned = compress.prune_magnitude(student, amount)  # masks folded in *before* training
    loss = functools.partial(distillation_loss, temperature=temperature, alpha=alpha)
    train.fit(pruned, x, (teacher_logits, labels), loss, epochs=epochs, lr=lr, progress=False)
    return pruned


def not_trained(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    return compress.prune_magnitude(student, amount)


def make_fine_tune(prune_fn=None, temperature_used=None, alpha_used=None, epochs_used=None, fold=True):
    """fine_tune_pruned with one piece replaced, to write each mistake."""
    def fine_tune_pruned(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
        pruned = (prune_fn or (lambda s, a: compress.prune_magnitude(s, a, permanent=False)))(student, amount)
        t = temperature if temperature_used is None else temperature_used
        a = alpha if alpha_used is None else alpha_used
        loss = functools.partial(distillation_loss, temperature=t, alpha=a)
        train.fit(pruned, x, (teacher_logits, labels), loss, epochs=epochs_used or epochs, lr=lr, progress=False)
        return compress.make_permanent(pruned) if fold else pruned
    return fine_tune_pruned


def prune_in_place(student, amount):
    layers = [(m, "weight") for m in student.modules() if isinstance(m, nn.Linear)]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=amount)
    return student


def prune_again(student, amount):  # pruning the same amount twice is harmless (the zeros go first); more is not
    return compress.prune_magnitude(compress.prune_magnitude(student, amount), amount + 0.15, permanent=False)


def own_loss_fixed_alpha(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    from course_lib.losses import kd_loss
    pruned = compress.prune_magnitude(student, amount, permanent=False)
    train.fit(pruned, x, teacher_logits, lambda out, tb: kd_loss(out, tb, temperature), epochs=epochs, lr=lr,
              progress=False)
    return compress.make_permanent(pruned)


@pytest.mark.parametrize("fn", [solution_fine_tune_pruned, by_hand_fine_tune])
def test_fine_tune_accepts_correct(fn):
    assert check_fine_tune_pruned(fn) is True


@pytest.mark.parametrize("fn, key", [
    (masks_left, "masks"), (hard_labels, "hard_labels"), (regrown, "grew_back"), (not_trained, "not_tuned"),
    (make_fine_tune(prune_fn=prune_in_place), "in_place"), (make_fine_tune(prune_fn=prune_again), "over_pruned"),
    (make_fine_tune(prune_fn=lambda s, a: compress.prune_magnitude(s, min(a + 0.2, 0.95), permanent=False)),
     "over_pruned"),
    (make_fine_tune(temperature_used=2.0), "args"), (make_fine_tune(alpha_used=1.0), "args"),
    (make_fine_tune(temperature_used=1.0, alpha_used=0.5), "args"), (own_loss_fixed_alpha, "alpha_ignored"),
])
def test_fine_tune_names_each_mistake(fn, key):
    message = hint_checks.failure_message(check_fine_tune_pruned, fn)
    assert [k for k, text in PRUNE_HINTS.items() if text in message] == [key], message


@pytest.mark.parametrize("check", [check_size_on_disk, check_median_latency_ms, check_fine_tune_pruned])
def test_stub_is_not_implemented(check, capsys):
    assert check(stub) is False
    assert "not implemented yet" in capsys.readouterr().out


def test_run_check_reports_a_mistake_without_raising():
    result = run_check(check_size_on_disk, parameter_count)
    assert not result.passed and "parameters" in result.message
    assert os.getpid()  # the grader process is still here
