"""Tests for the lesson 02 checks: the reference passes, stubs are 'not implemented yet',
and each typical mistake (written out below) fails with its own hint and no other."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from course_lib.checks._core import run_check
from course_lib.checks.lesson02 import (
    _STUDENT, _TEACHER, BIAS_HINTS, HINTS, _kd_variants, check_choose_class_bias, check_distillation_loss, check_kd_loss,
    check_softmax_with_temperature,
)
from course_lib.losses import distillation_loss, kd_loss, softmax_with_temperature


def assert_hints(check, fn, *keys):
    """The check fails, and its message contains exactly the hints ``keys``."""
    with pytest.raises(AssertionError) as info:
        check(fn)
    message = str(info.value)
    present = sorted(k for k, text in HINTS.items() if text in message)
    assert present == sorted(keys), message


def stub(*args, **kwargs):
    raise NotImplementedError("write your code here")


@pytest.mark.parametrize("check,reference", [
    (check_softmax_with_temperature, softmax_with_temperature),
    (check_kd_loss, kd_loss),
    (check_distillation_loss, distillation_loss),
])
def test_check_passes_reference_and_reports_stub(check, reference, capsys):
    assert check(reference) is True
    assert "all checks passed" in capsys.readouterr().out
    assert check(stub) is False
    assert "not implemented yet" in capsys.readouterr().out
    assert run_check(check, lambda *a: 1 / 0).status == "failed"


def test_hints_are_distinct_and_kd_case_separates_every_mistake():
    assert len(set(HINTS.values())) == len(HINTS)
    student, teacher = torch.tensor(_STUDENT), torch.tensor(_TEACHER)
    values = [v for v, _ in _kd_variants(student, teacher, 2.0)]
    for a, b in itertools.combinations(values, 2):
        assert abs(a - b) > 0.05 * max(abs(a), abs(b)), values


# --- softmax_with_temperature: typical mistakes --------------------------------------------------

def sm_multiplies(logits, temperature):
    return torch.softmax(logits * temperature, dim=-1)


def sm_divides_probs(logits, temperature):
    return torch.softmax(logits, dim=-1) / temperature


def sm_ignores_temperature(logits, temperature):
    return torch.softmax(logits, dim=-1)


def sm_wrong_dim(logits, temperature):
    return torch.softmax(logits / temperature, dim=0)


def sm_naive_exp(logits, temperature):
    e = torch.exp(logits / temperature)
    return e / e.sum(dim=-1, keepdim=True)


@pytest.mark.parametrize("fn,key", [
    (sm_multiplies, "softmax_multiply"),
    (sm_divides_probs, "softmax_after"),
    (sm_ignores_temperature, "softmax_ignored"),
    (sm_wrong_dim, "softmax_dim"),
    (sm_naive_exp, "softmax_overflow"),
])
def test_softmax_check_hints(fn, key):
    assert_hints(check_softmax_with_temperature, fn, key)


def test_softmax_check_catches_in_place_change():
    def sm_in_place(logits, temperature):
        logits /= temperature
        return torch.softmax(logits, dim=-1)

    with pytest.raises(AssertionError, match="in place"):
        check_softmax_with_temperature(sm_in_place)


# --- kd_loss: typical mistakes -------------------------------------------------------------------

def _lp(logits, temperature):
    return F.log_softmax(logits / temperature, dim=-1)


def _p(logits, temperature):
    return F.softmax(logits / temperature, dim=-1)


def kd_no_t_squared(student_logits, teacher_logits, temperature):
    return F.kl_div(_lp(student_logits, temperature), _p(teacher_logits.detach(), temperature),
                    reduction="batchmean")


def kd_t_once(student_logits, teacher_logits, temperature):
    return kd_no_t_squared(student_logits, teacher_logits, temperature) * temperature


def kd_reduction_mean(student_logits, teacher_logits, temperature):
    return F.kl_div(_lp(student_logits, temperature), _p(teacher_logits.detach(), temperature),
                    reduction="mean") * temperature**2


def kd_reduction_mean_no_t_squared(student_logits, teacher_logits, temperature):
    return F.kl_div(_lp(student_logits, temperature), _p(teacher_logits.detach(), temperature),
                    reduction="mean")


def kd_reduction_sum(student_logits, teacher_logits, temperature):
    return F.kl_div(_lp(student_logits, temperature), _p(teacher_logits.detach(), temperature),
                    reduction="sum") * temperature**2


def kd_swapped(teacher_logits, student_logits, temperature):
    """Parameters in the wrong order: the real student is detached as if it were the teacher."""
    return F.kl_div(_lp(student_logits, temperature), _p(teacher_logits.detach(), temperature),
                    reduction="batchmean") * temperature**2


def kd_reverse(student_logits, teacher_logits, temperature):
    """KL(student || teacher): kl_div's input and target exchanged."""
    return F.kl_div(_lp(teacher_logits.detach(), temperature), _p(student_logits, temperature),
                    reduction="batchmean") * temperature**2


def kd_probs_as_input(student_logits, teacher_logits, temperature):
    return F.kl_div(_p(student_logits, temperature), _p(teacher_logits.detach(), temperature),
                    reduction="batchmean") * temperature**2


def kd_soft_cross_entropy(student_logits, teacher_logits, temperature):
    probs = _p(teacher_logits.detach(), temperature)
    return -(probs * _lp(student_logits, temperature)).sum(dim=-1).mean() * temperature**2


def kd_log_of_softmax(student_logits, teacher_logits, temperature):
    return F.kl_div(torch.log(_p(student_logits, temperature)), _p(teacher_logits.detach(), temperature),
                    reduction="batchmean") * temperature**2


def kd_log_with_eps(student_logits, teacher_logits, temperature):
    return F.kl_div(torch.log(_p(student_logits, temperature) + 1e-8), _p(teacher_logits.detach(), temperature),
                    reduction="batchmean") * temperature**2


def kd_item(student_logits, teacher_logits, temperature):
    return torch.tensor(kd_loss(student_logits, teacher_logits, temperature).item())


def kd_per_example(student_logits, teacher_logits, temperature):
    return F.kl_div(_lp(student_logits, temperature), _p(teacher_logits.detach(), temperature),
                    reduction="none").sum(dim=-1) * temperature**2


@pytest.mark.parametrize("fn,keys", [
    (kd_no_t_squared, ["kd_t_squared"]),
    (kd_t_once, ["kd_t_once"]),
    (kd_reduction_mean, ["kd_mean"]),
    (kd_reduction_mean_no_t_squared, ["kd_mean", "kd_t_squared"]),
    (kd_reduction_sum, ["kd_sum"]),
    (kd_swapped, ["kd_swapped"]),
    (kd_reverse, ["kd_reverse"]),
    (kd_probs_as_input, ["kd_probs_input"]),
    (kd_soft_cross_entropy, ["kd_cross_entropy"]),
    (kd_log_of_softmax, ["kd_log_softmax"]),
    (kd_log_with_eps, ["kd_log_softmax"]),
    (kd_item, ["kd_no_grad"]),
    (kd_per_example, ["kd_not_scalar"]),
])
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_kd_check_hints(fn, keys):
    assert_hints(check_kd_loss, fn, *keys)


# --- distillation_loss: typical mistakes ---------------------------------------------------------

def dl_alpha_on_wrong_term(student_logits, teacher_logits, labels, temperature, alpha):
    return ((1 - alpha) * kd_loss(student_logits, teacher_logits, temperature)
            + alpha * F.cross_entropy(student_logits, labels))


def dl_no_one_minus_alpha(student_logits, teacher_logits, labels, temperature, alpha):
    return alpha * kd_loss(student_logits, teacher_logits, temperature) + F.cross_entropy(student_logits, labels)


def dl_ce_at_temperature(student_logits, teacher_logits, labels, temperature, alpha):
    return (alpha * kd_loss(student_logits, teacher_logits, temperature)
            + (1 - alpha) * F.cross_entropy(student_logits / temperature, labels))


def dl_ce_sum(student_logits, teacher_logits, labels, temperature, alpha):
    return (alpha * kd_loss(student_logits, teacher_logits, temperature)
            + (1 - alpha) * F.cross_entropy(student_logits, labels, reduction="sum"))


def dl_no_t_squared(student_logits, teacher_logits, labels, temperature, alpha):
    return (alpha * kd_no_t_squared(student_logits, teacher_logits, temperature)
            + (1 - alpha) * F.cross_entropy(student_logits, labels))


def dl_kd_arguments_swapped(student_logits, teacher_logits, labels, temperature, alpha):
    """kd_loss called with teacher first: it detaches the student, so the KD term trains nothing."""
    return (alpha * kd_loss(teacher_logits, student_logits, temperature)
            + (1 - alpha) * F.cross_entropy(student_logits, labels))


def dl_log_of_softmax(student_logits, teacher_logits, labels, temperature, alpha):
    return (alpha * kd_log_of_softmax(student_logits, teacher_logits, temperature)
            + (1 - alpha) * F.cross_entropy(student_logits, labels))


@pytest.mark.parametrize("fn,keys", [
    (dl_alpha_on_wrong_term, ["dl_alpha_swapped"]),
    (dl_no_one_minus_alpha, ["dl_no_one_minus_alpha"]),
    (dl_ce_at_temperature, ["dl_ce_temperature"]),
    (dl_ce_sum, ["dl_ce_sum"]),
    (dl_no_t_squared, ["kd_t_squared"]),
    (dl_kd_arguments_swapped, ["kd_swapped"]),
    (dl_log_of_softmax, ["kd_log_softmax"]),
])
def test_distillation_check_hints(fn, keys):
    assert_hints(check_distillation_loss, fn, *keys)


def kd_teacher_not_detached(student_logits, teacher_logits, temperature):
    log_s, log_t = _lp(student_logits, temperature), _lp(teacher_logits, temperature)
    return (log_t.exp() * (log_t - log_s)).sum(-1).mean() * temperature**2


def kd_kl_div_teacher_not_detached(student_logits, teacher_logits, temperature):
    return F.kl_div(_lp(student_logits, temperature), _p(teacher_logits, temperature),
                    reduction="batchmean") * temperature**2


def dl_teacher_not_detached(student_logits, teacher_logits, labels, temperature, alpha):
    return (alpha * kd_teacher_not_detached(student_logits, teacher_logits, temperature)
            + (1 - alpha) * F.cross_entropy(student_logits, labels))


@pytest.mark.parametrize("check,fn", [
    (check_kd_loss, kd_teacher_not_detached),
    (check_kd_loss, kd_kl_div_teacher_not_detached),
    (check_distillation_loss, dl_teacher_not_detached),
])
def test_a_teacher_that_is_not_detached_is_caught(check, fn):
    assert_hints(check, fn, "kd_teacher_grad")


# --- choose_class_bias: the whole class of each mistake -----------------------------------------

def cb_reference(logits, labels, cls, candidates):
    best, best_correct = None, -1
    for bias in candidates:
        shifted = logits.clone()
        shifted[:, cls] += bias
        correct = int((shifted.argmax(dim=1) == labels).sum())
        if correct > best_correct:
            best, best_correct = float(bias), correct
    return best


def _counts(logits, labels, cls, candidates, sign=1.0):
    out = []
    for bias in candidates:
        shifted = logits.clone()
        shifted[:, cls] += sign * bias
        out.append(int((shifted.argmax(dim=1) == labels).sum()))
    return out


def cb_index(logits, labels, cls, candidates):
    counts = _counts(logits, labels, cls, candidates)
    return counts.index(max(counts))


def cb_count(logits, labels, cls, candidates):
    return max(_counts(logits, labels, cls, candidates))


def cb_accuracy(logits, labels, cls, candidates):
    return max(_counts(logits, labels, cls, candidates)) / len(labels)


def cb_in_place(logits, labels, cls, candidates):
    best, best_correct = None, -1
    for bias in candidates:
        logits[:, cls] += bias
        correct = int((logits.argmax(dim=1) == labels).sum())
        if correct > best_correct:
            best, best_correct = float(bias), correct
    return best


def cb_skip_first(logits, labels, cls, candidates):
    best, best_correct = candidates[0], _counts(logits, labels, cls, candidates[:1])[0] * 0
    for bias in candidates[1:]:
        correct = _counts(logits, labels, cls, [bias])[0]
        if correct > best_correct:
            best, best_correct = bias, correct
    return best


def cb_range_from_one(logits, labels, cls, candidates):
    counts = _counts(logits, labels, cls, candidates)
    best = 1
    for i in range(1, len(candidates)):
        if counts[i] > counts[best]:
            best = i
    return candidates[best]


def cb_skip_last(logits, labels, cls, candidates):
    return cb_reference(logits, labels, cls, candidates[:-1])


def cb_largest_tie(logits, labels, cls, candidates):
    counts = _counts(logits, labels, cls, candidates)
    return max(b for b, c in zip(candidates, counts) if c == max(counts))


def cb_class_only(logits, labels, cls, candidates):
    ones = labels == cls
    return cb_reference(logits[ones], labels[ones], cls, candidates)


def cb_subtract(logits, labels, cls, candidates):
    counts = _counts(logits, labels, cls, candidates, sign=-1.0)
    return candidates[counts.index(max(counts))]


def cb_fixed_class(logits, labels, cls, candidates):
    return cb_reference(logits, labels, 1, candidates)


@pytest.mark.parametrize("fn,key", [
    (cb_index, "cb_index"),
    (cb_count, "cb_count"),
    (cb_accuracy, "cb_accuracy"),
    (cb_in_place, "cb_in_place"),
    (cb_skip_first, "cb_skip_first"),
    (cb_range_from_one, "cb_skip_first"),
    (cb_skip_last, "cb_skip_last"),
    (cb_largest_tie, "cb_largest_tie"),
    (cb_class_only, "cb_class_only"),
    (cb_subtract, "cb_subtract"),
    (cb_fixed_class, "cb_wrong_column"),
])
def test_choose_class_bias_names_each_mistake(fn, key):
    with pytest.raises(AssertionError) as info:
        check_choose_class_bias(fn)
    message = str(info.value)
    assert [k for k, text in BIAS_HINTS.items() if text in message] == [key], message


def test_choose_class_bias_accepts_the_reference_and_a_tensor_answer():
    assert check_choose_class_bias(cb_reference) is True
    assert check_choose_class_bias(lambda *a: torch.tensor(cb_reference(*a))) is True
