"""Checks for lesson 04 (the email router): soft targets, the soft-label loss, latency."""
from __future__ import annotations

import math
import time
from typing import Callable

import torch

from ._core import assert_close, assert_not_in_place, call_learner, learner_check


def _softmax(x: torch.Tensor) -> torch.Tensor:
    shifted = x - x.max(dim=-1, keepdim=True).values
    e = shifted.exp()
    return e / e.sum(dim=-1, keepdim=True)


def _close(actual, expected: torch.Tensor, atol: float = 1e-5) -> bool:
    return (isinstance(actual, torch.Tensor) and actual.shape == expected.shape
            and torch.allclose(actual.detach().double(), expected.double(), atol=atol, rtol=1e-4))


@learner_check("soft_targets")
def check_soft_targets(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """Check ``fn(teacher_logits, temperature) == softmax(teacher_logits / temperature)`` (exercise 4.1)."""
    teacher_logits = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.5, 0.5, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    for temperature in (1.0, 2.0, 4.0, 0.5):
        expected = _softmax(teacher_logits / temperature)
        out = call_learner(fn, teacher_logits.clone(), temperature)
        if not isinstance(out, torch.Tensor):
            raise AssertionError(f"soft_targets returned a {type(out).__name__}; return a torch.Tensor.")
        if out.shape != expected.shape:
            raise AssertionError(f"soft_targets returned shape {tuple(out.shape)}, expected "
                                 f"{tuple(expected.shape)}: one probability row per email.")
        if torch.isfinite(out).all():
            sums = out.detach().double().sum(dim=-1)
            if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
                raise AssertionError(
                    f"with temperature={temperature} your rows sum to {[round(v, 4) for v in sums.tolist()]}, "
                    "not 1. Divide exp(...) by its sum over each row (dim=-1, keepdim=True), "
                    "not over the whole tensor or down the columns.")
        if _close(out, _softmax(_softmax(teacher_logits) / temperature)) and temperature != 1.0:
            raise AssertionError(
                "you applied the temperature to probabilities: softmax(softmax(logits) / temperature). "
                "Temperature divides the teacher's *logits*: softmax(teacher_logits / temperature).")
        if temperature != 1.0 and _close(out, _softmax(teacher_logits * temperature)):
            raise AssertionError(
                "you multiplied the logits by the temperature; divide them: a higher temperature must "
                "give *flatter* rows.")
        assert_close(out, expected, f"soft_targets(teacher_logits, temperature={temperature})",
                     "Compute softmax(teacher_logits / temperature) along the last dimension.")

    big = torch.tensor([[1000.0, 990.0, 0.0], [-1000.0, -1000.0, -1001.0]])
    out = call_learner(fn, big.clone(), 2.0)
    assert_close(out, _softmax(big / 2.0), "soft_targets of logits around +-1000",
                 "exp(500) overflows: subtract each row's maximum before exp (or use torch.softmax).")

    assert_not_in_place(fn, teacher_logits, 2.0, what="teacher_logits",
                        fix="`teacher_logits / temperature`, not `teacher_logits /= temperature`")


@learner_check("soft_label_loss")
def check_soft_label_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check the student's cross-entropy against soft targets, averaged over the batch (exercise 4.2)."""
    student_logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    targets = torch.tensor([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]])
    log_p = torch.log_softmax(student_logits, dim=-1)
    per_row = -(targets * log_p).sum(-1)
    expected = per_row.mean()
    entropy = -(targets * targets.clamp_min(1e-12).log()).sum(-1)
    kl = (per_row - entropy).mean()

    out = call_learner(fn, student_logits.clone(), targets.clone())
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"soft_label_loss returned a {type(out).__name__}; return a torch.Tensor.")
    if out.dim() != 0:
        raise AssertionError(f"soft_label_loss returned shape {tuple(out.shape)}: return one number, "
                             "the mean over the batch (`.mean()` after summing over classes).")
    value = float(out)
    if math.isclose(value, float(per_row.sum()), rel_tol=1e-4):
        raise AssertionError("you summed over the batch: average the per-email losses with .mean(), so the "
                             "loss (and the learning rate it needs) does not grow with the batch size.")
    if math.isclose(value, float(-(targets * log_p).mean()), rel_tol=1e-4):
        raise AssertionError("you averaged over classes too: sum over classes (dim=-1), then mean over emails.")
    if math.isclose(value, -float(expected), rel_tol=1e-4):
        raise AssertionError("the sign is wrong: the loss is -sum(targets * log_softmax(student_logits)).")
    if math.isclose(value, float(-(targets * torch.log_softmax(student_logits, dim=0)).sum(0).mean()),
                    rel_tol=1e-4):
        raise AssertionError("log_softmax over the wrong dimension: use dim=-1 (classes), not dim=0 (emails).")
    if not (math.isclose(value, float(expected), rel_tol=1e-4) or math.isclose(value, float(kl), rel_tol=1e-4)):
        raise AssertionError(f"soft_label_loss gave {value:.5f}, expected {float(expected):.5f}: "
                             "-(targets * log_softmax(student_logits, dim=-1)).sum(dim=-1).mean().")

    big = torch.tensor([[1000.0, 0.0, -1000.0]])
    soft = torch.tensor([[0.5, 0.3, 0.2]])
    out = call_learner(fn, big.clone(), soft.clone())
    ref_ce = -(soft * torch.log_softmax(big, -1)).sum(-1).mean()
    ref_kl = ref_ce + (soft * soft.log()).sum(-1).mean()
    if not isinstance(out, torch.Tensor) or not torch.isfinite(out).all():
        raise AssertionError("the loss is inf or nan for logits around +-1000: log(softmax(x)) underflows to "
                             "log(0). Use torch.log_softmax, which is computed stably.")
    if not (math.isclose(float(out), float(ref_ce), rel_tol=1e-4) or math.isclose(float(out), float(ref_kl),
                                                                                  rel_tol=1e-4)):
        raise AssertionError(f"for logits around +-1000 the loss is {float(out):.2f}, expected "
                             f"{float(ref_ce):.2f}: use torch.log_softmax.")

    logits = student_logits.clone().requires_grad_(True)
    loss = call_learner(fn, logits, targets)
    if not loss.requires_grad:
        raise AssertionError("the loss is detached from student_logits (no gradient): avoid .detach(), "
                             ".item() or numpy inside the loss.")
    loss.backward()
    expected_grad = (torch.softmax(student_logits, -1) - targets) / len(targets)
    assert_close(logits.grad, expected_grad, "the gradient of your loss",
                 "The gradient should be (softmax(student_logits) - targets) / batch_size.")


class _FakeModel:
    """A predict function whose first 5 calls are slow (cold start) and whose 8th call hiccups."""

    def __init__(self, cold_calls: int = 5, cold_s: float = 0.03, warm_s: float = 0.002, hiccup_call: int = 8,
                 hiccup_s: float = 0.5):
        self.calls = 0
        self.cold_calls, self.cold_s, self.warm_s = cold_calls, cold_s, warm_s
        self.hiccup_call, self.hiccup_s = hiccup_call, hiccup_s
        self.batches = []

    def __call__(self, batch):
        self.calls += 1
        self.batches.append(batch)
        if self.calls <= self.cold_calls:
            time.sleep(self.cold_s)
        elif self.calls == self.hiccup_call:
            time.sleep(self.hiccup_s)
        else:
            time.sleep(self.warm_s)
        return batch


@learner_check("median_latency")
def check_median_latency(fn: Callable) -> None:
    """Check ``fn(predict_fn, batch, warmup, repeats)``: median seconds per call after warm-up (exercise 4.3)."""
    fake = _FakeModel()
    batch = ["an email"] * 4
    warmup, repeats = 5, 5
    out = call_learner(fn, fake, batch, warmup, repeats)
    try:
        value = float(out)
    except (TypeError, ValueError):
        raise AssertionError(f"median_latency returned a {type(out).__name__}; return one float (seconds).") from None
    if fake.calls == repeats:
        raise AssertionError("your function made no warm-up calls: the first calls of a model are slow (lazy "
                             "set-up, cold caches), so call predict_fn `warmup` times untimed before timing.")
    if fake.calls != warmup + repeats:
        raise AssertionError(f"with warmup={warmup} and repeats={repeats} your function called predict_fn "
                             f"{fake.calls} times, expected {warmup + repeats}: `warmup` untimed calls, then "
                             "`repeats` timed ones.")
    if any(b is not batch and list(b) != batch for b in fake.batches):
        raise AssertionError("pass the same batch to predict_fn on every call.")
    warm = fake.warm_s
    if value > 1.0:
        raise AssertionError(f"median_latency returned {value:.3g}: return seconds, not milliseconds.")
    if value > 0.02:
        if value > fake.cold_s * 0.8 and value < fake.cold_s * 2:
            raise AssertionError(
                f"you measured {value * 1000:.1f} ms per call, but a warm call takes about {warm * 1000:.0f} ms: "
                "the first calls are slow (lazy set-up, cold caches). Make `warmup` untimed calls before timing.")
        raise AssertionError(
            f"you measured {value * 1000:.1f} ms per call, but a warm call takes about {warm * 1000:.0f} ms: "
            "use the *median* of the timed calls (statistics.median), not the mean or the total, so one "
            "hiccup (a garbage collection, another process) does not dominate; and make sure warm-up "
            "calls are not timed.")
    if value < warm * 0.5:
        raise AssertionError(f"you measured {value * 1e6:.0f} us per call, less than the call itself takes: "
                             "did you divide by the number of repeats twice, or by the batch size? "
                             "Return seconds per call.")
    if value > warm * 4:
        raise AssertionError(f"you measured {value * 1000:.1f} ms per call, expected about {warm * 1000:.0f} ms: "
                             "time only predict_fn(batch) with time.perf_counter(), one call at a time.")
