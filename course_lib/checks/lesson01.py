"""Checks for lesson 01 (soft targets): reading a probability exactly, and the dark-knowledge matrix.

The softmax with temperature (exercise 1.1) is checked by ``lesson02.check_softmax_with_temperature``,
where the loss that uses it lives. Right answers are computed here in float64, independently of
``course_lib.losses``; each check also computes what the typical mistakes give and names the match.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ._core import call_learner, learner_check

#: One hint per typical mistake; a failing check's message contains the matching one(s).
HINTS: dict[str, str] = {
    "ft_rounded": "You compared a rounded probability: at T = 8 the second class gets 0.2996, which prints as 0.3 "
                  "with three decimals but is not above 0.3. Compare the exact value.",
    "ft_at_least": "'More than' means >, not >=: a probability exactly equal to the share does not count.",
    "ft_index": "Return the temperature itself, not its position in temperatures.",
    "ft_probability": "Return the temperature, not the probability it gives.",
    "ft_none": "When no temperature in the list gives the class more than the share, return None.",
    "ft_last": "Return the first temperature (in the order given) that passes, not the last one tried.",
    "ft_multiply": "Divide the logits by the temperature (softmax(logits / T)), do not multiply.",
    "ft_other": "Return the first T in temperatures with softmax(logits / T)[cls] > share, or None.",
    "dk_shape": "Return a (num_classes, num_classes) matrix: row i is the mean soft target of the examples "
                "whose true label is i.",
    "dk_temperature_ignored": "Apply the temperature: the soft targets are softmax(teacher_logits / temperature).",
    "dk_multiply": "Divide the logits by the temperature, do not multiply.",
    "dk_predicted": "Group the rows by the true label (labels == i), not by the teacher's prediction (argmax): the "
                    "matrix shows what the teacher thinks of a real i, mistakes included.",
    "dk_transposed": "Row i (first index) is the true digit, column j the class given probability: you built "
                     "the transpose.",
    "dk_sum": "Average over the examples of each class (.mean(0)), not sum: classes have different numbers of "
              "examples, and each row must sum to 1.",
    "dk_divide_by_all": "Divide by the number of examples of that class, not by all examples: each row must "
                        "sum to 1.",
    "dk_mean_logits": "Average the probabilities, not the logits: softmax of the mean logit is not the mean "
                      "soft target.",
    "dk_wrong_axis": "Softmax over the classes (dim=-1), not over the examples (dim=0).",
    "dk_in_place": "You changed the caller's teacher_logits: compute teacher_logits / temperature as a new tensor "
                   "(not /=).",
    "dk_other": "Row i should be softmax(teacher_logits[labels == i] / temperature).mean(0).",
}


def _fail(what: str, *keys: str) -> None:
    raise AssertionError(f"{what}. " + " ".join(HINTS[k] for k in keys))


def _scalar(x) -> float | None:
    try:
        return float(x.item() if hasattr(x, "item") else x)
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- exercise 1.2
def _first_temperature_above(logits, cls, share, temperatures):
    """The course's solution (exercise 1.2)."""
    for temperature in temperatures:
        if torch.softmax(logits / temperature, dim=-1)[cls] > share:
            return temperature
    return None


def _probs64(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits.to(torch.float64) / temperature, dim=-1)


def _first(temperatures, passes) -> float | None:
    return next((t for t in temperatures if passes(t)), None)


# (logits, cls, share, temperatures): an answer in the middle of the list (6, at index 3; every mistake gives
# its own answer), the lesson's question (answer 20, not 8), an exact tie (answer None), and a class that
# never gets there (None).
_SHARE_CASES = [
    ([4.0, 0.0, -2.0], 1, 0.2, [0.5, 1.5, 2.5, 6.0, 12.0]),
    ([5.0, 2.0, 1.0], 1, 0.3, [1.0, 2.0, 4.0, 8.0, 20.0]),
    ([0.0, 0.0, 0.0, 0.0], 0, 0.25, [1.0, 2.0]),
    ([5.0, 2.0, 1.0], 2, 0.5, [1.0, 10.0]),
]


def _share_variants(logits: torch.Tensor, cls: int, share: float, temperatures: list, p: dict, expected) -> dict:
    """What each typical mistake returns on one case: {hint key: [answers of its variants]}."""
    def first(passes):
        return _first(temperatures, passes)

    variants = {
        "ft_rounded": [first(lambda t, d=d, ge=ge: (round(p[t], d) >= share) if ge else (round(p[t], d) > share))
                       for d in (1, 2, 3) for ge in (True, False)],
        "ft_at_least": [first(lambda t: p[t] >= share)],
        "ft_multiply": [first(lambda t: _probs64(logits * t * t, t)[cls].item() > share)],
        "ft_last": [[t for t in temperatures if p[t] > share][-1] if expected is not None else None],
    }
    if expected is not None:
        variants["ft_index"] = [float(temperatures.index(expected))]
        variants["ft_probability"] = [p[expected]]
    else:
        variants["ft_none"] = [temperatures[-1], -1.0, 0.0, float(len(temperatures))]
    return variants


def _same_answer(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-5))


@learner_check("first_temperature_above", solution=_first_temperature_above)
def check_first_temperature_above(fn: Callable) -> None:
    """Check ``fn(logits, cls, share, temperatures)``: the first temperature giving class ``cls`` more than
    ``share`` of the probability, or None (exercise 1.2)."""
    ruled_out: set = set()  # variants an earlier case would have caught: never named later
    for logits_list, cls, share, temperatures in _SHARE_CASES:
        logits = torch.tensor(logits_list)
        p = {t: _probs64(logits, t)[cls].item() for t in temperatures}
        expected = _first(temperatures, lambda t, p=p, share=share: p[t] > share)
        what = f"first_temperature_above({logits_list}, cls={cls}, share={share}, temperatures={temperatures})"
        out = call_learner(fn, logits.clone(), cls, share, list(temperatures))
        value = _scalar(out) if out is not None else None
        if out is not None and value is None:
            _fail(f"{what}: got {out!r}", "ft_other")
        variants = _share_variants(logits, cls, share, temperatures, p, expected)
        subs = {(k, i): v for k, vals in variants.items() for i, v in enumerate(vals)}  # each variant of a mistake
        if _same_answer(value, expected):
            ruled_out |= {sub for sub, v in subs.items() if not _same_answer(v, expected)}
            continue
        keys = list(dict.fromkeys(k for (k, i), v in subs.items() if (k, i) not in ruled_out
                                  and _same_answer(v, value) and not _same_answer(v, expected)))
        shown, want = "None" if value is None else f"{value:g}", "None" if expected is None else f"{expected:g}"
        _fail(f"{what}: got {shown}, expected {want}", *(keys or ["ft_other"]))


# ----------------------------------------------------------------------------- exercise 1.3
def _dark_knowledge_matrix(teacher_logits, labels, temperature, num_classes):
    """The course's solution (exercise 1.3)."""
    probs = torch.softmax(teacher_logits / temperature, dim=-1)
    return torch.stack([probs[labels == c].mean(dim=0) for c in range(num_classes)])


def _matrix64(logits: torch.Tensor, groups: torch.Tensor, temperature: float, classes: int, dim: int = -1,
              reduce: str = "mean") -> torch.Tensor:
    probs = torch.softmax(logits.to(torch.float64) / temperature, dim=dim)
    rows = []
    for c in range(classes):
        members = probs[groups == c]
        rows.append({"mean": members.mean(0), "sum": members.sum(0), "all": members.sum(0) / len(probs)}[reduce])
    return torch.stack(rows)


def _as_matrix(out) -> torch.Tensor | None:
    try:
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(out)
        return out.detach().to(torch.float64).cpu()
    except (TypeError, ValueError, RuntimeError):
        return None


def _dark_cases() -> list:
    """(logits, labels, temperature): 4 classes with 3, 1, 4 and 2 examples, some misclassified by the teacher."""
    g = torch.Generator().manual_seed(11)
    labels = torch.tensor([0, 2, 1, 2, 0, 3, 2, 0, 3, 2])
    logits = torch.randn(len(labels), 4, generator=g) * 1.5
    logits[torch.arange(len(labels)), labels] += 2.0
    logits[1] = torch.tensor([3.0, 0.5, 1.0, -1.0])  # a 2 the teacher calls a 0
    logits[5] = torch.tensor([0.0, 2.5, -1.0, 1.0])  # a 3 the teacher calls a 1
    logits[8] = torch.tensor([0.0, 1.0, 0.5, 3.0])  # a 3 it gets right: every class is predicted at least once
    return [(logits, labels, 2.5), (logits * 0.5, labels, 1.0)]


@learner_check("dark_knowledge_matrix", solution=_dark_knowledge_matrix)
def check_dark_knowledge_matrix(fn: Callable) -> None:
    """Check ``fn(teacher_logits, labels, temperature, num_classes)``: row i is the mean of
    softmax(teacher_logits / temperature) over the examples whose true label is i (exercise 1.3)."""
    for logits, labels, temperature in _dark_cases():
        classes = 4
        before = logits.clone()
        what = f"dark_knowledge_matrix at temperature {temperature:g} on 10 examples of 4 classes"
        out = call_learner(fn, logits, labels.clone(), temperature, classes)
        if not torch.equal(logits, before):
            _fail(what, "dk_in_place")
        matrix = _as_matrix(out)
        if matrix is None or tuple(matrix.shape) != (classes, classes):
            shape = None if matrix is None else tuple(matrix.shape)
            _fail(f"{what}: got shape {shape}", "dk_shape")
        expected = _matrix64(logits, labels, temperature, classes)
        if torch.allclose(matrix, expected, atol=1e-5, rtol=1e-4):
            continue
        predicted = logits.argmax(dim=1)
        mean_logits = torch.stack([logits[labels == c].to(torch.float64).mean(0) for c in range(classes)])
        variants = {
            "dk_temperature_ignored": _matrix64(logits, labels, 1.0, classes),
            "dk_multiply": _matrix64(logits * temperature * temperature, labels, temperature, classes),
            "dk_predicted": _matrix64(logits, predicted, temperature, classes),
            "dk_transposed": expected.T,
            "dk_sum": _matrix64(logits, labels, temperature, classes, reduce="sum"),
            "dk_divide_by_all": _matrix64(logits, labels, temperature, classes, reduce="all"),
            "dk_mean_logits": torch.softmax(mean_logits / temperature, dim=-1),
            "dk_wrong_axis": _matrix64(logits, labels, temperature, classes, dim=0),
        }
        keys = [k for k, v in variants.items() if torch.isfinite(matrix).all()
                and torch.allclose(matrix, v, atol=1e-5, rtol=1e-4) and not torch.allclose(v, expected, atol=1e-5)]
        err = (matrix - expected).abs().max().item()
        _fail(f"{what}: wrong values (largest difference {err:.3g})", *(keys or ["dk_other"]))
