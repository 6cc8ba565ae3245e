"""Checks for lesson 01 (soft targets): reading a probability exactly, and the dark-knowledge matrix.

The softmax with temperature (exercise 1.1) is checked by ``lesson02.check_softmax_with_temperature``,
where the loss that uses it lives. Right answers are computed here in float64, independently of
``course_lib.losses``; each check also computes what the typical mistakes give and names the match.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..answers import lesson01 as answers
from ._core import call_learner, inputs_compared_by_check, learner_check

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
    "ft_first_only": "You stopped after the first temperature: when it does not pass, go on to the next one "
                     "(return None only after the loop has tried them all).",
    "ft_smallest": "Return the first passing temperature in the order given, not the smallest: the caller may "
                   "list them in any order (here they are not sorted).",
    "ft_cls": "Read the probability of the class you were given (index cls), not a fixed class.",
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
    "dk_type": "Return a torch.Tensor (torch.stack the rows): the lesson's next cell calls .clone() and other "
               "tensor methods on the matrix, which a NumPy array or a list does not have.",
    "dk_missing_class": "Make one row for every class in range(num_classes), also for a class with no examples in "
                        "this batch (labels.unique() or the labels present leave it out, and every row after it "
                        "moves up); that row has no mean: leave it nan (the mean of nothing) or zeros.",
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


def _probs64(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits.to(torch.float64) / temperature, dim=-1)


def _first(temperatures, passes) -> float | None:
    return next((t for t in temperatures if passes(t)), None)


# (logits, cls, share, temperatures): an answer in the middle of the list (6, at index 3; every mistake gives
# its own answer); the top class with temperatures out of order (the first passing is neither the smallest nor
# the last); the lesson's question (answer 20, not 8); a share with four decimals that a rounded probability
# passes too early (0.2996 rounds to 0.30 > 0.2998); an exact tie (answer None); a class that never gets there
# (None); a third class whose answer comes after a failing first temperature.
_SHARE_CASES = [
    ([4.0, 0.0, -2.0], 1, 0.2, [0.5, 1.5, 2.5, 6.0, 12.0]),
    ([2.0, 1.0, 0.0], 0, 0.6, [3.0, 1.0, 0.25, 0.5]),
    ([5.0, 2.0, 1.0], 1, 0.3, [1.0, 2.0, 4.0, 8.0, 20.0]),
    ([5.0, 2.0, 1.0], 1, 0.2998, [1.0, 2.0, 4.0, 8.0, 20.0]),
    ([0.0, 0.0, 0.0, 0.0], 0, 0.25, [1.0, 2.0]),
    ([5.0, 2.0, 1.0], 2, 0.5, [1.0, 10.0]),
    ([1.0, 3.0, 0.5, -1.0], 2, 0.23, [6.0, 2.0, 10.0, 1.0]),
]


_NA = object()  # a mistake that cannot be made on this case
_MAX_CLASSES = max(len(case[0]) for case in _SHARE_CASES)


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
        "ft_first_only": [temperatures[0] if p[temperatures[0]] > share else None],
        "ft_smallest": [min((t for t in temperatures if p[t] > share), default=None)],
        # by class index (the same index in every case, so a fixed class is ruled out by number); _NA where
        # the case has no such other class
        "ft_cls": [first(lambda t, c=c: _probs64(logits, t)[c].item() > share) if c != cls and c < len(logits)
                   else _NA for c in range(_MAX_CLASSES)],
    }
    if expected is not None:
        variants["ft_index"] = [float(temperatures.index(expected))]
        variants["ft_probability"] = [p[expected]]
    else:
        variants["ft_none"] = [temperatures[-1], -1.0, 0.0, float(len(temperatures))]
    return variants


def _same_answer(a, b) -> bool:
    if a is _NA or b is _NA:
        return False
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-5))


@learner_check("first_temperature_above", solution=answers.first_temperature_above)
def check_first_temperature_above(fn: Callable) -> None:
    """Check ``fn(logits, cls, share, temperatures)``: the first temperature giving class ``cls`` more than
    ``share`` of the probability, or None (exercise 1.2)."""
    ruled_out: set = set()  # variants a right answer on some case excludes: never named
    failures = []  # (message, the variants that give the learner's answer on that case)
    for logits_list, cls, share, temperatures in _SHARE_CASES:  # every case, always: a mistake is named from all
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
            ruled_out |= {sub for sub, v in subs.items() if v is not _NA and not _same_answer(v, expected)}
            continue
        shown, want = "None" if value is None else f"{value:g}", "None" if expected is None else f"{expected:g}"
        failures.append((f"{what}: got {shown}, expected {want}",
                         {sub for sub, v in subs.items() if _same_answer(v, value) and not _same_answer(v, expected)}))
    if failures:
        # the variants that explain every wrong answer; else those that explain the first one
        common = set.intersection(*(subs for _, subs in failures)) - ruled_out
        subs = common or failures[0][1] - ruled_out
        keys = [k for k in HINTS if any(sub[0] == k for sub in subs)]
        _fail(failures[0][0], *(keys or ["ft_other"]))


# ----------------------------------------------------------------------------- exercise 1.3


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
    """(logits, labels, temperature, num_classes): 4 classes with 3, 1, 4 and 2 examples, some misclassified by the
    teacher; then 5 classes, one of them without examples."""
    g = torch.Generator().manual_seed(11)
    labels = torch.tensor([0, 2, 1, 2, 0, 3, 2, 0, 3, 2])
    logits = torch.randn(len(labels), 4, generator=g) * 1.5
    logits[torch.arange(len(labels)), labels] += 2.0
    logits[1] = torch.tensor([3.0, 0.5, 1.0, -1.0])  # a 2 the teacher calls a 0
    logits[5] = torch.tensor([0.0, 2.5, -1.0, 1.0])  # a 3 the teacher calls a 1
    logits[8] = torch.tensor([0.0, 1.0, 0.5, 3.0])  # a 3 it gets right: every class is predicted at least once
    # a third case with 5 classes of which class 3 has no example (and 4 comes after it)
    wide = torch.cat([logits, torch.randn(len(labels), 1, generator=g)], dim=1)
    wide_labels = torch.where(labels == 3, torch.tensor(4), labels)
    return [(logits, labels, 2.5, 4), (logits * 0.5, labels, 1.0, 4), (wide, wide_labels, 2.0, 5)]


@learner_check("dark_knowledge_matrix", solution=answers.dark_knowledge_matrix)
def check_dark_knowledge_matrix(fn: Callable) -> None:
    """Check ``fn(teacher_logits, labels, temperature, num_classes)``: row i is the mean of
    softmax(teacher_logits / temperature) over the examples whose true label is i (exercise 1.3).

    A torch.Tensor of shape (num_classes, num_classes); the row of a class without examples (the third case
    has one) may be nan or zeros.
    """
    for logits, labels, temperature, classes in _dark_cases():
        before = logits.clone()
        what = (f"dark_knowledge_matrix at temperature {temperature:g} on {len(labels)} examples of {classes} "
                f"classes")
        empty = [c for c in range(classes) if not (labels == c).any()]
        if empty:
            what += f" (class {empty[0]} has no examples)"
        with inputs_compared_by_check():
            out = call_learner(fn, logits, labels.clone(), temperature, classes)
        if not torch.equal(logits, before):
            _fail(what, "dk_in_place")
        if not isinstance(out, torch.Tensor):
            _fail(f"{what}: got a {type(out).__name__}", "dk_type")
        matrix = _as_matrix(out)
        if matrix is None or tuple(matrix.shape) != (classes, classes):
            shape = None if matrix is None else tuple(matrix.shape)
            key = "dk_missing_class" if empty and shape == (classes - len(empty), classes) else "dk_shape"
            _fail(f"{what}: got shape {shape}", key)
        present = [c for c in range(classes) if c not in empty]
        for c in empty:
            row = matrix[c]
            if not (torch.isnan(row).all() or (row == 0).all()):
                _fail(f"{what}: row {c} is {[round(v, 4) for v in row.tolist()]}", "dk_missing_class")
        expected = _matrix64(logits, labels, temperature, classes)[present]
        matrix = matrix[present]
        if torch.allclose(matrix, expected, atol=1e-5, rtol=1e-4):
            continue
        predicted = logits.argmax(dim=1)
        mean_logits = torch.stack([logits[labels == c].to(torch.float64).mean(0) for c in present])
        variants = {
            "dk_temperature_ignored": _matrix64(logits, labels, 1.0, classes)[present],
            "dk_multiply": _matrix64(logits * temperature * temperature, labels, temperature, classes)[present],
            "dk_predicted": _matrix64(logits, predicted, temperature, classes)[present],
            "dk_transposed": _matrix64(logits, labels, temperature, classes).T[present],
            "dk_sum": _matrix64(logits, labels, temperature, classes, reduce="sum")[present],
            "dk_divide_by_all": _matrix64(logits, labels, temperature, classes, reduce="all")[present],
            "dk_mean_logits": torch.softmax(mean_logits / temperature, dim=-1),
            "dk_wrong_axis": _matrix64(logits, labels, temperature, classes, dim=0)[present],
        }
        keys = [k for k, v in variants.items() if torch.isfinite(matrix).all() and torch.isfinite(v).all()
                and torch.allclose(matrix, v, atol=1e-5, rtol=1e-4) and not torch.allclose(v, expected, atol=1e-5)]
        err = (matrix - expected).abs().max().item()
        _fail(f"{what}: wrong values (largest difference {err:.3g})", *(keys or ["dk_other"]))
