"""The lesson 01 checks (exercises 1.1, 1.2 and 1.3) accept right answers and name each typical mistake."""
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.checks import lesson02, run_check
from course_lib.checks.lesson01 import HINTS, check_dark_knowledge_matrix, check_first_temperature_above
from course_lib.checks.lesson02 import check_softmax_with_temperature
import hint_checks


assert_hints = functools.partial(hint_checks.assert_hints, HINTS)


def test_hints_are_distinct():
    assert len(set(HINTS.values())) == len(HINTS)


# ---- 1.1: softmax with temperature, on any shape and along any dim ----------------------------------
def sm_manual(logits, temperature=1.0, dim=-1):
    z = logits / temperature
    z = z - z.amax(dim=dim, keepdim=True)
    return z.exp() / z.exp().sum(dim=dim, keepdim=True)


@pytest.mark.parametrize("fn", [
    sm_manual,
    lambda logits, temperature=1.0, dim=-1: torch.softmax(logits / temperature, dim=dim),
    lambda logits, temperature=1.0, dim=-1: F.softmax(logits / temperature, dim),
    lambda logits, temperature=1.0, dim=-1: torch.log_softmax(logits.double() / temperature, dim=dim).exp(),
    lambda logits, temperature=1.0, dim=-1: (logits / temperature).softmax(dim).float(),
])
def test_softmax_accepts_right_answers(fn):
    assert check_softmax_with_temperature(fn) is True


@pytest.mark.parametrize("fn,key", [
    (lambda logits, temperature=1.0, dim=-1: torch.softmax(logits / temperature, dim=1), "softmax_dim_fixed"),
    (lambda logits, temperature=1.0, dim=-1: sm_manual(logits, temperature, dim=1), "softmax_dim_fixed"),
    (lambda logits, temperature=1.0, dim=-1: F.softmax(logits / temperature), "softmax_no_dim"),
    (lambda logits, temperature=1.0, dim=-1: torch.softmax(logits / temperature, dim=-1), "softmax_dim_ignored"),
    (lambda logits, temperature=1.0: torch.softmax(logits / temperature, dim=-1), "softmax_dim_ignored"),
    (lambda logits, temperature=1.0, dim=-1: torch.softmax(logits / temperature, dim=0), "softmax_dim"),
    (lambda logits, temperature=1.0, dim=-1: torch.softmax(logits * temperature, dim=dim), "softmax_multiply"),
    (lambda logits, temperature=1.0, dim=-1: torch.softmax(logits, dim=dim) / temperature, "softmax_after"),
    (lambda logits, temperature=1.0, dim=-1: torch.softmax(logits, dim=dim), "softmax_ignored"),
    (lambda logits, temperature=1.0, dim=-1: torch.exp(logits / temperature)
     / torch.exp(logits / temperature).sum(dim, keepdim=True), "softmax_overflow"),
    (lambda logits, temperature=1.0, dim=-1: torch.softmax(logits / (temperature + 1), dim=dim), "softmax_other"),
])
def test_softmax_names_each_mistake(fn, key):
    hint_checks.assert_hints(lesson02.HINTS, check_softmax_with_temperature, fn, key)


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


def first_while(logits, cls, share, temperatures):
    i = 0
    while i < len(temperatures):
        if F.softmax(logits / temperatures[i], dim=0)[cls].item() > share:
            return temperatures[i]
        i += 1
    return None


def test_first_temperature_above_accepts_right_answers():
    assert check_first_temperature_above(first_above) is True
    assert check_first_temperature_above(lambda *a: (lambda t: None if t is None else np.float32(t))(first_above(*a)))
    assert check_first_temperature_above(first_while) is True
    assert check_first_temperature_above(lambda lg, c, s, ts: next(
        (t for t in ts if torch.softmax(lg.double() / t, -1)[c] > s), None)) is True


@pytest.mark.parametrize("fn,key", [
    (ft_rounded, "ft_rounded"), (ft_rounded_strict, "ft_rounded"), (ft_at_least, "ft_at_least"),
    (ft_index, "ft_index"), (ft_probability, "ft_probability"), (ft_never_none, "ft_none"), (ft_last, "ft_last"),
    (ft_multiplies, "ft_multiply"),
    (lambda lg, cls, share, ts: first_above(lg, 1, share, ts), "ft_cls"),  # a fixed class
    (lambda lg, cls, share, ts: first_above(lg, 0, share, ts), "ft_cls"),
    (lambda lg, cls, share, ts: first_above(lg, cls, share, sorted(ts)), "ft_smallest"),
    (lambda lg, cls, share, ts: min((t for t in ts if torch.softmax(lg / t, -1)[cls] > share), default=None),
     "ft_smallest"),
    (lambda lg, cls, share, ts: first_above(lg, cls, share, ts, compare=lambda p, s: round(p, 2) > s), "ft_rounded"),
    (lambda lg, cls, share, ts: first_above(lg, cls, share, ts[:1]), "ft_first_only"),
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
    (lambda lg, lb, t, c: torch.stack([torch.softmax(lg / t, -1)[lb == k].mean(0) for k in lb.unique()]),
     "dk_missing_class"),
    (lambda lg, lb, t, c: torch.stack([torch.softmax(lg / t, -1)[lb == k].mean(0) for k in range(int(lb.max()))]),
     "dk_shape"),
    (dark_numpy, "dk_type"),
    (lambda lg, lb, t, c: dark(lg, lb, t, c).tolist(), "dk_type"),
    (lambda lg, lb, t, c: torch.nan_to_num(dark(lg, lb, t, c), nan=1.0 / c), "dk_missing_class"),
])
def test_dark_knowledge_matrix_names_each_mistake(fn, key):
    assert_hints(check_dark_knowledge_matrix, fn, key)


def dark_loop(teacher_logits, labels, temperature, num_classes):
    probs = torch.softmax(teacher_logits / temperature, dim=1)
    matrix = torch.zeros(num_classes, num_classes)
    counts = torch.zeros(num_classes)
    for p, y in zip(probs, labels):
        matrix[y] += p
        counts[y] += 1
    return matrix / counts.clamp(min=1).unsqueeze(1)  # zeros for a class without examples


def dark_index_add(teacher_logits, labels, temperature, num_classes):
    probs = torch.softmax(teacher_logits / temperature, dim=-1)
    sums = torch.zeros(num_classes, probs.shape[1]).index_add_(0, labels, probs)
    return sums / torch.bincount(labels, minlength=num_classes).unsqueeze(1)  # nan for an empty class


@pytest.mark.parametrize("fn", [dark, dark_loop, dark_index_add,
                                lambda lg, lb, t, c: torch.from_numpy(dark_numpy(lg, lb, t, c))])
def test_dark_knowledge_matrix_accepts_right_answers(fn):
    assert check_dark_knowledge_matrix(fn) is True
    assert run_check(check_dark_knowledge_matrix, fn, time_limit_s=30).passed
