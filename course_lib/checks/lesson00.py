"""Checks for lesson 00: the warm-up exercise, and the softmax check that lesson 00 uses to show how checks work."""
from __future__ import annotations

from typing import Callable

import torch

from ..answers import lesson00 as answers
from ._core import assert_close, assert_not_in_place, call_learner, learner_check, name_mistakes


def _reference_softmax(logits: torch.Tensor) -> torch.Tensor:
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    e = shifted.exp()
    return e / e.sum(dim=-1, keepdim=True)


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


#: One hint per typical mistake of exercise 0.1; a failing check's message contains the matching one(s).
HINTS: dict[str, str] = {
    "ce_right": "You counted the RIGHT predictions: count where argmax differs from the label (!=), not where "
                "it matches.",
    "ce_dim": "Take the argmax over the class dimension (dim=1), one prediction per row.",
    "ce_softmax_dim": "A softmax over the batch (dim=0) changes which class is largest in a row: no softmax is "
                      "needed at all (the argmax of the logits is the argmax of the probabilities), and if you "
                      "take one, take it over the classes (dim=1).",
    "ce_skip_first": "The first row was left out: count over every row (no [1:], no loop starting at 1).",
    "ce_skip_last": "The last row was left out: count over every row (no [:-1], no range(len - 1)).",
    "ce_rate": "You returned the share of wrong rows: return their number (sum, not mean).",
    "ce_not_one_number": "Return one number: sum the wrong predictions (an int, or a tensor of one element).",
    "ce_fixed": "The answer does not depend on the input: compute it from logits and labels.",
    "ce_other": "Compare predictions = logits.argmax(dim=1) with labels and count where they differ.",
}


def _count_errors_cases() -> list:
    """(logits, labels): four shapes with answers 0, 2, 3 and 1; the first row wrong in one, the last in others.

    The first case tells a softmax over the batch apart from a skipped row; each later one rules out more.
    """
    a = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.2, 0.9], [1.0, 0.0, 4.0], [0.1, 0.8, 0.3]])
    g = torch.Generator().manual_seed(7)
    b = torch.randn(9, 4, generator=g) * 2.0
    b_labels = b.argmax(dim=1)
    for row in (3, 5, 8):  # wrong in the middle and at the last row
        b_labels[row] = (b_labels[row] + 1 + row % 3) % 4
    c = torch.tensor([[0.2, 1.5], [3.0, -1.0], [0.7, 0.1], [-2.0, 0.5]])
    return [(c, torch.tensor([1, 0, 0, 1])), (a, torch.tensor([1, 1, 0, 2, 1])), (b, b_labels),
            (c[:2], torch.tensor([1, 1]))]


def _count_variants(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    wrong = logits.argmax(dim=1) != labels
    n = len(labels)
    variants = {
        "ce_right": n - int(wrong.sum()),
        "ce_softmax_dim": int((torch.softmax(logits, dim=0).argmax(dim=1) != labels).sum()),
        "ce_skip_first": int(wrong[1:].sum()),
        "ce_skip_last": int(wrong[:-1].sum()),
        "ce_rate": float(wrong.float().mean()),
    }
    if logits.shape[1] <= n:  # argmax over the batch: one "prediction" per class, compared with the first labels
        variants["ce_dim"] = [int((logits.argmax(dim=0) != labels[:logits.shape[1]]).sum()),
                              int((logits.argmax(dim=0)[:1] != labels).sum())]
    return variants


@learner_check("count_errors", solution=answers.count_errors)
def check_count_errors(fn: Callable[[torch.Tensor, torch.Tensor], int]) -> None:
    """Check a function counting wrong argmax predictions (exercise 0.1).

    Four batches of different shapes and answers (0, 2, 3 and 1 errors), with a wrong first row in one and
    a wrong last row in others, so a fixed answer or a loop that skips a row is caught.
    """
    cases, values = _count_errors_cases(), []
    for logits, labels in cases:
        what = f"count_errors on {len(labels)} rows of {logits.shape[1]} classes"
        out = call_learner(fn, logits.clone(), labels.clone())
        if isinstance(out, torch.Tensor) or hasattr(out, "shape"):
            if getattr(out, "size", 1) != 1 and (not isinstance(out, torch.Tensor) or out.numel() != 1):
                raise AssertionError(f"{what}: got an array of shape {tuple(out.shape)}. {HINTS['ce_not_one_number']}")
            out = out.item()
        try:
            values.append(float(out))
        except (TypeError, ValueError):
            raise AssertionError(f"{what}: got {out!r}; return one whole number.") from None
    expected = [answers.count_errors(logits, labels) for logits, labels in cases]
    if len(set(values)) == 1 and values != expected:
        raise AssertionError(f"count_errors returned {values[0]:g} on all {len(cases)} batches, whose answers are "
                             f"{expected}. {HINTS['ce_fixed']}")
    ruled_out: set = set()
    for (logits, labels), value, right in zip(cases, values, expected):
        keys = name_mistakes(value, right, _count_variants(logits, labels), ruled_out, lambda a, b: abs(a - b) < 1e-9)
        if keys is not None:
            raise AssertionError(f"count_errors on {len(labels)} rows of {logits.shape[1]} classes: got {value:g}, "
                                 f"expected {right}. " + " ".join(HINTS[k] for k in (keys or ["ce_other"])))
