"""Checks for lesson 00: the warm-up exercise, and the softmax check that lesson 00 uses to show how checks work."""
from __future__ import annotations

from typing import Callable

import torch

from ._core import assert_close, assert_not_in_place, call_learner, learner_check


def _reference_softmax(logits: torch.Tensor) -> torch.Tensor:
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    e = shifted.exp()
    return e / e.sum(dim=-1, keepdim=True)


def _count_errors(logits: torch.Tensor, labels: torch.Tensor) -> int:
    return int((logits.argmax(dim=1) != labels).sum())


@learner_check("stable_softmax", solution=_reference_softmax)
def check_stable_softmax(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check a numerically stable softmax over the last dimension.

    Not an exercise of its own (the stable softmax is part of exercise 1.1, softmax with temperature):
    lesson 00 calls it through ``run_check`` to show a check rejecting a naive softmax.
    """
    x = torch.tensor([1.0, 2.0, 3.0])
    expected = torch.tensor([0.09003057, 0.24472847, 0.66524096])
    out = call_learner(fn, x.clone())
    assert_close(out, expected, "softmax([1, 2, 3])",
                 "Divide exp(x) by the sum of exp(x) over the last dimension.")

    batch = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    out = call_learner(fn, batch.clone())
    hint_axis = ("Each row should sum to 1: normalise along the last dimension "
                 "(dim=-1, keepdim=True), not over the whole tensor or along dim 0.")
    assert_close(out, _reference_softmax(batch), "softmax of a batch of two rows", hint_axis)

    big = torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, -1000.0, -1000.0]])
    out = call_learner(fn, big.clone())
    assert_close(out, _reference_softmax(big), "softmax of logits around +-1000",
                 "exp(1000) overflows to inf: subtract each row's maximum before exp "
                 "(softmax does not change when you add a constant to every logit).")

    assert_not_in_place(fn, batch, what="its input", fix="e.g. `x - x.max(...)`, not `x -= ...`")


@learner_check("count_errors", solution=_count_errors)
def check_count_errors(fn: Callable[[torch.Tensor, torch.Tensor], int]) -> None:
    """Check a function counting wrong argmax predictions (exercise 0.1)."""
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.2, 0.9], [1.0, 0.0, 4.0], [0.1, 0.8, 0.3]])
    labels = torch.tensor([0, 2, 2, 1, 1])
    expected = 2  # rows 1 and 3 are wrong; argmax over dim 0 would give a different count
    out = call_learner(fn, logits, labels)
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise AssertionError(f"count_errors returned a tensor of shape {tuple(out.shape)}: "
                                 "sum the wrong predictions into one number.")
        out = out.item()
    if out == len(labels) - expected:
        raise AssertionError(f"count_errors returned {out}, the number of RIGHT predictions: "
                             "count where argmax differs from the label (!=), not where it matches.")
    if out != expected:
        hint = ("Take the argmax over the class dimension (dim=1), one prediction per row."
                if out in (0, 1, 4, 5) else "Compare predictions = logits.argmax(dim=1) with labels.")
        raise AssertionError(f"count_errors gave {out} on a batch with {expected} errors. {hint}")
    if not isinstance(out, (int,)) and not float(out).is_integer():
        raise AssertionError("count_errors should return a whole number.")
