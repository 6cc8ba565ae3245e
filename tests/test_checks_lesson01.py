"""The lesson 01 checks (exercises 1.2 and 1.3) accept right answers and name each typical mistake."""
import functools

import numpy as np
import pytest
import torch

from course_lib.checks import run_check
from course_lib.checks.lesson01 import HINTS, check_dark_knowledge_matrix, check_first_temperature_above
import hint_checks


assert_hints = functools.partial(hint_checks.assert_hints, HINTS)


def test_hints_are_distinct():
    assert len(set(HINTS.values())) == len(HINTS)


# ---- 1.2: the first temperature above a share ------------------------------------------------------
def first_above(logits, cls, share, temperatures, compare=lambda p, s: p > s, probs=None, pick=None):
    probs = probs or (lambda t: torch.softmax(logits / t, dim=-1))
    passing = [t for t in temperatures if compare(float(probs(t)[cls]), share)]
    if pick:
        return pick(passing, temperatures, probs)
    return passing[0] if passing else None


def ft_rounded(logits, cls, share, temperatures):
    return first_above(logits, cls, share, temperatures, compare=lambda p, s: round(p, 3) >= s)


def ft_rounded_strict(logits, cls, share, temperatures):
    return first_above(logits, cls, share, temperatures, compare=lambda p, s: round(p, 1) > s)


def ft_at_least(logits, cls, share, temperatures):
    return first_above(logits, cls, share, temperatures, compare=lambda p, s: p >= s)


def ft_index(logits, cls, share, temperatures):
    t = first_above(logits, cls, share, temperatures)
    return None if t is None else temperatures.index(t)


def ft_probability(logits, cls, share, temperatures):
    t = first_above(logits, cls, share, temperatures)
    return None if t is None else float(torch.softmax(logits / t, dim=-1)[cls])


def ft_never_none(logits, cls, share, temperatures):
    t = first_above(logits, cls, share, temperatures)
    return temperatures[-1] if t is None else t


def ft_last(logits, cls, share, temperatures):
    return first_above(logits, cls, share, temperatures, pick=lambda passing, ts, probs: passing[-1] if passing
                       else None)


def ft_multiplies(logits, cls, share, temperatures):
    return first_above(logits, cls, share, temperatures, probs=lambda t: torch.softmax(logits * t, dim=-1))


def test_first_temperature_above_accepts_right_answers():
    assert check_first_temperature_above(first_above) is True
    assert check_first_temperature_above(lambda *a: (lambda t: None if t is None else np.float32(t))(first_above(*a)))


@pytest.mark.parametrize("fn,key", [
    (ft_rounded, "ft_rounded"), (ft_rounded_strict, "ft_rounded"), (ft_at_least, "ft_at_least"),
    (ft_index, "ft_index"), (ft_probability, "ft_probability"), (ft_never_none, "ft_none"), (ft_last, "ft_last"),
    (ft_multiplies, "ft_multiply"),
])
def test_first_temperature_above_names_each_mistake(fn, key):
    assert_hints(check_first_temperature_above, fn, key)


# ---- 1.3: the dark-knowledge matrix ------------------------------------------------------------------
def dark(teacher_logits, labels, temperature, num_classes, dim=-1, group=None, reduce="mean"):
    probs = torch.softmax(teacher_logits / temperature, dim=dim)
    group = labels if group is None else group
    rows = []
    for c in range(num_classes):
        members = probs[group == c]
        rows.append({"mean": members.mean(0), "sum": members.sum(0), "all": members.sum(0) / len(probs)}[reduce])
    return torch.stack(rows)


def dark_numpy(teacher_logits, labels, temperature, num_classes):
    z = teacher_logits.numpy() / temperature
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return np.stack([p[labels.numpy() == c].mean(axis=0) for c in range(num_classes)])


def dk_in_place(teacher_logits, labels, temperature, num_classes):
    teacher_logits /= temperature
    return dark(teacher_logits, labels, 1.0, num_classes)


@pytest.mark.parametrize("fn,key", [
    (lambda lg, lb, t, c: dark(lg, lb, 1.0, c), "dk_temperature_ignored"),
    (lambda lg, lb, t, c: dark(lg * t * t, lb, t, c), "dk_multiply"),
    (lambda lg, lb, t, c: dark(lg, lb, t, c, group=lg.argmax(1)), "dk_predicted"),
    (lambda lg, lb, t, c: dark(lg, lb, t, c).T, "dk_transposed"),
    (lambda lg, lb, t, c: dark(lg, lb, t, c, reduce="sum"), "dk_sum"),
    (lambda lg, lb, t, c: dark(lg, lb, t, c, reduce="all"), "dk_divide_by_all"),
    (lambda lg, lb, t, c: torch.softmax(torch.stack([lg[lb == k].mean(0) for k in range(c)]) / t, -1),
     "dk_mean_logits"),
    (lambda lg, lb, t, c: dark(lg, lb, t, c, dim=0), "dk_wrong_axis"),
    (lambda lg, lb, t, c: dark(lg, lb, t, c)[:3], "dk_shape"),
    (dk_in_place, "dk_in_place"),
])
def test_dark_knowledge_matrix_names_each_mistake(fn, key):
    assert_hints(check_dark_knowledge_matrix, fn, key)


def test_dark_knowledge_matrix_accepts_torch_and_numpy():
    assert check_dark_knowledge_matrix(dark) is True
    assert check_dark_knowledge_matrix(dark_numpy) is True
    assert run_check(check_dark_knowledge_matrix, dark, time_limit_s=30).passed
