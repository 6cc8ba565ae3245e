"""Tests for the lesson 08 check: the answer key passes, a stub is 'not implemented yet', and each typical
mistake of the listwise ranking KD loss (written out below) fails with its own hint."""
from __future__ import annotations

import functools
import warnings

import pytest
import torch

from course_lib.answers.lesson08 import listwise_kd_loss as answer
from course_lib.checks._core import run_check
from course_lib.checks.lesson08 import _CASES, HINTS, _case, check_listwise_kd_loss
import hint_checks
from hint_checks import stub

assert_hints = functools.partial(hint_checks.assert_hints, HINTS)
NEG = float("-inf")


def written_out(student_scores, teacher_scores, mask, temperature=1.0):
    """The loss with torch, without kd_loss: where the learner writes it out."""
    log_p = torch.log_softmax(teacher_scores.detach().masked_fill(~mask, NEG) / temperature, dim=-1)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, NEG) / temperature, dim=-1)
    p = log_p.exp()
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return terms.sum(dim=-1).mean() * temperature**2


def big_negative(student_scores, teacher_scores, mask, temperature=1.0):
    """-1e9 instead of -inf: the same numbers, and a fine answer."""
    log_p = torch.log_softmax(teacher_scores.detach().masked_fill(~mask, -1e9) / temperature, dim=-1)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, -1e9) / temperature, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean() * temperature**2


@pytest.mark.parametrize("fn", [answer, written_out, big_negative])
def test_right_answers_pass_and_a_stub_is_not_implemented(fn, capsys):
    assert check_listwise_kd_loss(fn) is True
    assert "all checks passed" in capsys.readouterr().out
    assert check_listwise_kd_loss(stub) is False
    assert "not implemented yet" in capsys.readouterr().out
    assert run_check(check_listwise_kd_loss, lambda *a, **k: 1 / 0).status == "failed"


def test_hints_are_distinct():
    assert len(set(HINTS.values())) == len(HINTS)


def test_the_expected_value_is_the_kl_summed_per_query_written_out_by_hand():
    """The check's reference against a loop over queries and candidates, float64, no softmax helpers."""
    import math

    from course_lib.checks.lesson08 import _variants

    for queries, candidates, temperature, counts, seed in _CASES:
        s, t, m = _case(queries, candidates, counts, seed)
        temperature = temperature or 1.0
        total = 0.0
        for i in range(queries):
            valid = [c for c in range(candidates) if m[i, c]]
            zt = [float(t[i, c]) / temperature for c in valid]
            zs = [float(s[i, c]) / temperature for c in valid]
            lt = math.log(sum(math.exp(z - max(zt)) for z in zt)) + max(zt)
            ls = math.log(sum(math.exp(z - max(zs)) for z in zs)) + max(zs)
            total += sum(math.exp(a - lt) * ((a - lt) - (b - ls)) for a, b in zip(zt, zs))
        assert _variants(s, t, m, temperature)[0] == pytest.approx(total / queries * temperature**2, rel=1e-12)


def test_the_cases_make_the_masked_entries_count():
    """Ragged masks with the own row and padding masked, every candidate valid for some query, large masked scores."""
    for queries, candidates, _, counts, seed in _CASES:
        s, t, m = _case(queries, candidates, counts, seed)
        assert not m.diagonal().any() and m.any(dim=0).all()
        assert len(set(m.sum(-1).tolist())) > 1
        assert (t[~m].abs() > t[m].abs().max()).any() and s[~m].min() > s[m].median()


# --- the typical mistakes, each a learner's plausible code ---------------------------------------------

def mask_ignored(student_scores, teacher_scores, mask, temperature=1.0):
    return answer(student_scores, teacher_scores, torch.ones_like(mask), temperature)


def mask_zero(student_scores, teacher_scores, mask, temperature=1.0):
    from course_lib.losses import kd_loss
    return kd_loss(student_scores.masked_fill(~mask, 0.0), teacher_scores.masked_fill(~mask, 0.0), temperature)


def mask_inverted(student_scores, teacher_scores, mask, temperature=1.0):
    return answer(student_scores, teacher_scores, ~mask, temperature)


def direction_reversed(student_scores, teacher_scores, mask, temperature=1.0):
    log_p = torch.log_softmax(teacher_scores.detach().masked_fill(~mask, NEG) / temperature, dim=-1)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, NEG) / temperature, dim=-1)
    q = log_q.exp()
    return torch.where(q > 0, q * (log_q - log_p), torch.zeros_like(q)).sum(-1).mean() * temperature**2


def swapped(student_scores, teacher_scores, mask, temperature=1.0):
    return answer(teacher_scores, student_scores, mask, temperature)


def no_t_squared(student_scores, teacher_scores, mask, temperature=1.0):
    return answer(student_scores, teacher_scores, mask, temperature) / temperature**2


def temperature_student_only(student_scores, teacher_scores, mask, temperature=1.0):
    log_p = torch.log_softmax(teacher_scores.detach().masked_fill(~mask, NEG), dim=-1)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, NEG) / temperature, dim=-1)
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1).mean() * temperature**2


def temperature_teacher_only(student_scores, teacher_scores, mask, temperature=1.0):
    log_p = torch.log_softmax(teacher_scores.detach().masked_fill(~mask, NEG) / temperature, dim=-1)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, NEG), dim=-1)
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1).mean()


def temperature_ignored(student_scores, teacher_scores, mask, temperature=1.0):
    return answer(student_scores, teacher_scores, mask)


def sum_over_queries(student_scores, teacher_scores, mask, temperature=1.0):
    return answer(student_scores, teacher_scores, mask, temperature) * len(mask)


def mean_over_candidates(student_scores, teacher_scores, mask, temperature=1.0):
    log_p = torch.log_softmax(teacher_scores.detach().masked_fill(~mask, NEG) / temperature, dim=-1)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, NEG) / temperature, dim=-1)
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).mean() * temperature**2


def mean_over_valid_candidates(student_scores, teacher_scores, mask, temperature=1.0):
    log_p = torch.log_softmax(teacher_scores.detach().masked_fill(~mask, NEG) / temperature, dim=-1)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, NEG) / temperature, dim=-1)
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))[mask].mean() * temperature**2


def kl_div_mean(student_scores, teacher_scores, mask, temperature=1.0):
    """F.kl_div with reduction="mean" (an elementwise mean over Q * C entries)."""
    log_p = torch.log_softmax(teacher_scores.detach().masked_fill(~mask, -1e9) / temperature, dim=-1)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, -1e9) / temperature, dim=-1)
    with warnings.catch_warnings():  # PyTorch warns that "mean" is not "batchmean"; the learner may not read it
        warnings.simplefilter("ignore", UserWarning)
        return torch.nn.functional.kl_div(log_q, log_p, log_target=True, reduction="mean") * temperature**2


def teacher_not_detached(student_scores, teacher_scores, mask, temperature=1.0):
    log_p = torch.log_softmax(teacher_scores.masked_fill(~mask, -1e9) / temperature, dim=-1)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, -1e9) / temperature, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature**2


def softmax_over_queries(student_scores, teacher_scores, mask, temperature=1.0):
    log_p = torch.log_softmax(teacher_scores.detach().masked_fill(~mask, NEG) / temperature, dim=0)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, NEG) / temperature, dim=0)
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1).mean() * temperature**2


def kd_loss_transposed(student_scores, teacher_scores, mask, temperature=1.0):
    return answer(student_scores.T, teacher_scores.T, mask.T, temperature)


def returns_item(student_scores, teacher_scores, mask, temperature=1.0):
    return answer(student_scores, teacher_scores, mask, temperature).item()


def returns_per_query(student_scores, teacher_scores, mask, temperature=1.0):
    log_p = torch.log_softmax(teacher_scores.detach().masked_fill(~mask, NEG) / temperature, dim=-1)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, NEG) / temperature, dim=-1)
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(-1) * temperature**2


def student_detached(student_scores, teacher_scores, mask, temperature=1.0):
    return answer(student_scores.detach(), teacher_scores, mask, temperature)


def naive_nan(student_scores, teacher_scores, mask, temperature=1.0):
    log_p = torch.log_softmax(teacher_scores.detach().masked_fill(~mask, NEG) / temperature, dim=-1)
    log_q = torch.log_softmax(student_scores.masked_fill(~mask, NEG) / temperature, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * temperature**2


def masked_fill_in_place(student_scores, teacher_scores, mask, temperature=1.0):
    student_scores.masked_fill_(~mask, NEG)
    return answer(student_scores, teacher_scores, mask, temperature)


def in_place_on_detached_teacher(student_scores, teacher_scores, mask, temperature=1.0):
    teacher = teacher_scores.detach()
    teacher.masked_fill_(~mask, NEG)  # detach() shares memory: the caller's teacher_scores change
    return answer(student_scores, teacher, mask, temperature)


def mask_in_place(student_scores, teacher_scores, mask, temperature=1.0):
    hidden = mask.logical_not_()  # flips the caller's mask
    return answer(student_scores, teacher_scores, ~hidden, temperature)


@pytest.mark.parametrize("fn, key", [
    (mask_ignored, "lw_mask_ignored"),
    (mask_zero, "lw_mask_zero"),
    (mask_inverted, "lw_mask_inverted"),
    (direction_reversed, "lw_direction"),
    (swapped, "lw_swapped"),
    (no_t_squared, "lw_t_squared"),
    (temperature_student_only, "lw_one_side"),
    (temperature_teacher_only, "lw_one_side"),
    (temperature_ignored, "lw_temperature_ignored"),
    (sum_over_queries, "lw_sum"),
    (mean_over_candidates, "lw_mean"),
    (mean_over_valid_candidates, "lw_mean"),
    (kl_div_mean, "lw_mean"),
    (teacher_not_detached, "lw_teacher_grad"),
    (softmax_over_queries, "lw_dim"),
    (kd_loss_transposed, "lw_dim"),
    (returns_item, "lw_float"),
    (returns_per_query, "lw_not_scalar"),
    (student_detached, "lw_no_grad"),
    (naive_nan, "lw_nan"),
    (masked_fill_in_place, "lw_in_place"),
    (in_place_on_detached_teacher, "lw_in_place"),
    (mask_in_place, "lw_in_place"),
])
def test_each_mistake_gets_its_own_hint(fn, key):
    assert_hints(check_listwise_kd_loss, fn, key)


def test_a_function_without_a_temperature_argument_is_reported():
    message = hint_checks.failure_message(check_listwise_kd_loss, lambda s, t, m: answer(s, t, m))
    assert "temperature" in message and "TypeError" in message


def test_the_check_leaves_the_callers_global_rng_alone():
    state = torch.get_rng_state()
    check_listwise_kd_loss(answer)
    assert torch.equal(state, torch.get_rng_state())
