"""The lesson 04 checks accept correct answers and reject each typical mistake with its hint."""
import statistics
import time

import pytest
import torch

from course_lib.checks import run_check
from course_lib.checks.lesson04 import check_median_latency, check_soft_label_loss, check_soft_targets


# ---- soft targets ---------------------------------------------------------
def good_soft_targets(teacher_logits, temperature):
    return torch.softmax(teacher_logits / temperature, dim=-1)


def powered_probs(teacher_logits, temperature):  # p ** (1/temperature), renormalised: also correct
    p = torch.softmax(teacher_logits, dim=-1) ** (1.0 / temperature)
    return p / p.sum(-1, keepdim=True)


def temperature_on_probs(teacher_logits, temperature):
    return torch.softmax(torch.softmax(teacher_logits, dim=-1) / temperature, dim=-1)


def unnormalised(teacher_logits, temperature):
    return torch.exp(teacher_logits / temperature)


def wrong_axis(teacher_logits, temperature):
    e = torch.exp(teacher_logits / temperature)
    return e / e.sum(dim=0, keepdim=True)


def multiplied(teacher_logits, temperature):
    return torch.softmax(teacher_logits * temperature, dim=-1)


def unstable(teacher_logits, temperature):
    e = torch.exp(teacher_logits / temperature)
    return e / e.sum(-1, keepdim=True)


def in_place(teacher_logits, temperature):
    teacher_logits /= temperature
    return torch.softmax(teacher_logits, dim=-1)


def stub(*args):
    raise NotImplementedError("Exercise 4.1: soft_targets")


@pytest.mark.parametrize("fn", [good_soft_targets, powered_probs])
def test_soft_targets_accepts_correct(fn):
    assert check_soft_targets(fn) is True


@pytest.mark.parametrize("fn, words", [
    (temperature_on_probs, "logits"), (unnormalised, "sum to"), (wrong_axis, "sum to"),
    (multiplied, "multiplied"), (unstable, "overflows"), (in_place, "in place"),
])
def test_soft_targets_rejects_mistakes(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_soft_targets(fn)


def test_soft_targets_stub_is_not_implemented():
    assert check_soft_targets(stub) is False
    assert run_check(check_soft_targets, stub).status == "not implemented"
    assert run_check(check_soft_targets, temperature_on_probs).status == "failed"


# ---- soft-label loss --------------------------------------------------------
def good_loss(student_logits, targets):
    return -(targets * torch.log_softmax(student_logits, dim=-1)).sum(-1).mean()


def kl_loss(student_logits, targets):  # same gradient as cross-entropy: accepted
    return torch.nn.functional.kl_div(torch.log_softmax(student_logits, -1), targets, reduction="batchmean")


def summed(student_logits, targets):
    return -(targets * torch.log_softmax(student_logits, dim=-1)).sum()


def class_mean(student_logits, targets):
    return -(targets * torch.log_softmax(student_logits, dim=-1)).mean()


def no_minus(student_logits, targets):
    return (targets * torch.log_softmax(student_logits, dim=-1)).sum(-1).mean()


def log_of_softmax(student_logits, targets):
    return -(targets * torch.softmax(student_logits, -1).log()).sum(-1).mean()


def detached(student_logits, targets):
    return good_loss(student_logits.detach(), targets)


@pytest.mark.parametrize("fn", [good_loss, kl_loss])
def test_soft_label_loss_accepts_correct(fn):
    assert check_soft_label_loss(fn) is True


@pytest.mark.parametrize("fn, words", [
    (summed, "summed over the batch"), (class_mean, "averaged over classes"), (no_minus, "sign"),
    (log_of_softmax, "log_softmax"), (detached, "detached"),
])
def test_soft_label_loss_rejects_mistakes(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_soft_label_loss(fn)


# ---- latency ----------------------------------------------------------------
def good_latency(predict_fn, batch, warmup=3, repeats=20):
    for _ in range(warmup):
        predict_fn(batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_fn(batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def no_warmup(predict_fn, batch, warmup=3, repeats=20):
    return good_latency(predict_fn, batch, 0, repeats)


def times_warmup_too(predict_fn, batch, warmup=3, repeats=20):
    return good_latency(predict_fn, batch, 0, warmup + repeats)


def mean_latency(predict_fn, batch, warmup=3, repeats=20):
    for _ in range(warmup):
        predict_fn(batch)
    t0 = time.perf_counter()
    for _ in range(repeats):
        predict_fn(batch)
    return (time.perf_counter() - t0) / repeats


def milliseconds(predict_fn, batch, warmup=3, repeats=20):
    return 1000 * good_latency(predict_fn, batch, warmup, repeats)


def test_latency_accepts_correct():
    assert check_median_latency(good_latency) is True


@pytest.mark.parametrize("fn, words", [
    (no_warmup, "no warm-up"), (times_warmup_too, "warm"), (mean_latency, "median"),
    (milliseconds, "milliseconds"),
])
def test_latency_rejects_mistakes(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_median_latency(fn)
