"""The lesson 06 checks accept correct answers and reject each typical mistake with its own hint."""
import gzip
import os
import statistics
import tempfile
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from course_lib import compress, train
from course_lib.checks import run_check
from course_lib.checks.lesson06 import (check_fine_tune_pruned, check_median_latency_ms, check_size_on_disk,
                                        solution_fine_tune_pruned, solution_median_latency_ms, solution_size_on_disk)
from course_lib.losses import distillation_loss
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


@pytest.mark.parametrize("fn", [solution_size_on_disk, by_hand_size])
def test_size_accepts_correct(fn):
    assert check_size_on_disk(fn) is True


@pytest.mark.parametrize("fn, words", [(parameter_count, "number of parameters"), (four_bytes_each, "4 bytes x"),
                                       (no_gzip, "gzip")])
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


def no_warmup(predict_fn, batches, warmup=3):
    return statistics.mean(_seconds_after_warmup(predict_fn, batches, 0)) * 1e3


def mean_after_warmup(predict_fn, batches, warmup=3):
    return statistics.mean(_seconds_after_warmup(predict_fn, batches, warmup)) * 1e3


def seconds(predict_fn, batches, warmup=3):
    return by_hand_latency(predict_fn, batches, warmup) / 1e3


@pytest.mark.parametrize("fn", [solution_median_latency_ms, by_hand_latency])
def test_latency_accepts_correct(fn):
    assert check_median_latency_ms(fn) is True


@pytest.mark.parametrize("fn, words", [(no_warmup, "warm-up"), (mean_after_warmup, "mean"), (seconds, "seconds")])
def test_latency_rejects_mistakes(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_median_latency_ms(fn)


# ---- 6.3 prune, then fine-tune with the distillation loss ---------------------
def by_hand_fine_tune(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    import copy

    pruned = copy.deepcopy(student)
    layers = [(m, "weight") for m in pruned.modules() if isinstance(m, nn.Linear)]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=amount)
    loss = lambda out, t, y: distillation_loss(out, t, y, temperature, alpha)  # noqa: E731
    train.fit(pruned, x, (teacher_logits, labels), loss, epochs=epochs, lr=lr, progress=False)
    for module, name in layers:
        prune.remove(module, name)
    return pruned


def masks_left(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    pruned = compress.prune_magnitude(student, amount, permanent=False)
    loss = lambda out, t, y: distillation_loss(out, t, y, temperature, alpha)  # noqa: E731
    train.fit(pruned, x, (teacher_logits, labels), loss, epochs=epochs, lr=lr, progress=False)
    return pruned


def hard_labels(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    pruned = compress.prune_magnitude(student, amount, permanent=False)
    train.fit(pruned, x, labels, train.cross_entropy_loss, epochs=epochs, lr=lr, progress=False)
    return compress.make_permanent(pruned)


def regrown(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    pruned = compress.prune_magnitude(student, amount)  # masks folded in *before* training
    loss = lambda out, t, y: distillation_loss(out, t, y, temperature, alpha)  # noqa: E731
    train.fit(pruned, x, (teacher_logits, labels), loss, epochs=epochs, lr=lr, progress=False)
    return pruned


def not_trained(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    return compress.prune_magnitude(student, amount)


@pytest.mark.parametrize("fn", [solution_fine_tune_pruned, by_hand_fine_tune])
def test_fine_tune_accepts_correct(fn):
    assert check_fine_tune_pruned(fn) is True


@pytest.mark.parametrize("fn, words", [(masks_left, "masks"), (hard_labels, "hard labels"), (regrown, "grew back"),
                                       (not_trained, "nothing was fine-tuned")])
def test_fine_tune_rejects_mistakes(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_fine_tune_pruned(fn)


@pytest.mark.parametrize("check", [check_size_on_disk, check_median_latency_ms, check_fine_tune_pruned])
def test_stub_is_not_implemented(check, capsys):
    assert check(stub) is False
    assert "not implemented yet" in capsys.readouterr().out


def test_run_check_reports_a_mistake_without_raising():
    result = run_check(check_size_on_disk, parameter_count)
    assert not result.passed and "parameters" in result.message
    assert os.getpid()  # the grader process is still here
