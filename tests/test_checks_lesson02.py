"""Tests for the lesson 02 checks: the reference passes, stubs are 'not implemented yet',
and each typical mistake (written out below) fails with its own hint and no other."""
from __future__ import annotations

import functools
import itertools

import pytest
import torch
import torch.nn.functional as F

from course_lib.checks._core import run_check
from course_lib.checks.lesson02 import (
    _STUDENT, _TEACHER, BIAS_HINTS, HINTS, TRAIN_HINTS, _kd_variants, check_choose_class_bias, check_distill,
    check_distillation_loss, check_kd_loss,
    check_softmax_with_temperature,
)
from course_lib.losses import distillation_loss, kd_loss, softmax_with_temperature
import hint_checks
from hint_checks import stub


assert_hints = functools.partial(hint_checks.assert_hints, HINTS)


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


# --- distill (exercise 2.4): training with and without T^2 ----------------------------------------

def make_distill(loss_fn=kd_loss, scale_true=1.0, scale_false=None, zero_grad=True, one_batch=False, epochs_used=None,
                 temperature_used=None):
    """A distill function with one piece replaceable, to write each mistake."""
    def distill(student, x, teacher_logits, temperature, epochs, lr, batch_size, t_squared=True):
        optimizer = torch.optim.SGD(student.parameters(), lr=lr)
        size = len(x) if one_batch else batch_size
        t = temperature if temperature_used is None else temperature_used
        for _ in range(epochs if epochs_used is None else epochs_used):
            for start in range(0, len(x), size):
                loss = loss_fn(student(x[start:start + size]), teacher_logits[start:start + size], t)
                if t_squared:
                    loss = loss * scale_true
                else:
                    loss = loss / temperature**2 if scale_false is None else loss * scale_false
                if zero_grad:
                    optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return distill


def distill_moves_the_teacher(student, x, teacher_logits, temperature, epochs, lr, batch_size, t_squared=True):
    teacher_logits /= temperature
    make_distill()(student, x, teacher_logits * temperature, temperature, epochs, lr, batch_size, t_squared)


def distill_no_step(student, x, teacher_logits, temperature, epochs, lr, batch_size, t_squared=True):
    kd_loss(student(x), teacher_logits, temperature).backward()


@pytest.mark.parametrize("fn,key", [
    (make_distill(loss_fn=kd_no_t_squared), "tr_no_t_squared"),
    (make_distill(scale_false=1.0), "tr_flag_ignored"),
    (make_distill(scale_true=16.0), "tr_t_squared_twice"),
    (make_distill(zero_grad=False), "tr_no_zero_grad"),
    (make_distill(temperature_used=1.0), "tr_temperature_ignored"),
    (make_distill(one_batch=True), "tr_one_batch"),
    (make_distill(epochs_used=1), "tr_epochs"),
    (distill_no_step, "tr_unchanged"),
    (distill_moves_the_teacher, "tr_teacher"),
    (make_distill(loss_fn=kd_reduction_sum), "tr_other"),
])
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_distill_names_each_mistake(fn, key):
    with pytest.raises(AssertionError) as info:
        check_distill(fn)
    message = str(info.value)
    assert [k for k, text in TRAIN_HINTS.items() if text in message] == [key], message


def test_distill_accepts_the_reference_and_a_manual_sgd_step():
    assert check_distill(make_distill()) is True

    def manual(student, x, teacher_logits, temperature, epochs, lr, batch_size, t_squared=True):
        for _ in range(epochs):
            for start in range(0, len(x), batch_size):
                loss = kd_loss(student(x[start:start + batch_size]), teacher_logits[start:start + batch_size],
                               temperature) / (1 if t_squared else temperature**2)
                grads = torch.autograd.grad(loss, list(student.parameters()))
                with torch.no_grad():
                    for p, g in zip(student.parameters(), grads):
                        p -= lr * g

    assert check_distill(manual) is True


# --- issue 21: mistakes that used to be named wrongly, and more wrong answers ------------------------

def kd_detach_in_place(student_logits, teacher_logits, temperature):
    teacher_logits.detach_()
    return F.kl_div(_lp(student_logits, temperature), _p(teacher_logits, temperature),
                    reduction="batchmean") * temperature**2


def dl_detach_in_place(student_logits, teacher_logits, labels, temperature, alpha):
    return alpha * kd_detach_in_place(student_logits, teacher_logits, temperature) + (1 - alpha) * F.cross_entropy(
        student_logits, labels)


@pytest.mark.parametrize("check,fn", [(check_kd_loss, kd_detach_in_place),
                                      (check_distillation_loss, dl_detach_in_place)])
def test_detaching_the_callers_teacher_in_place_is_named(check, fn):
    assert_hints(check, fn, "kd_detach_in_place")


def cb_on_probabilities(logits, labels, cls, candidates):
    return cb_reference(torch.softmax(logits, dim=1), labels, cls, candidates)


def cb_on_log_probabilities(logits, labels, cls, candidates):  # the same argmax as on the logits: right
    return cb_reference(torch.log_softmax(logits, dim=1), labels, cls, candidates)


def test_a_bias_added_to_probabilities_is_named_and_log_probabilities_pass():
    message = hint_checks.failure_message(check_choose_class_bias, cb_on_probabilities)
    assert [k for k, text in BIAS_HINTS.items() if text in message] == ["cb_probs"], message
    assert check_choose_class_bias(cb_on_log_probabilities) is True


@pytest.mark.parametrize("fn,key", [
    (lambda s, t, y, temperature=1.0, alpha=0.5: 0.5 * kd_loss(s, t, temperature) + 0.5 * F.cross_entropy(s, y),
     "dl_alpha_fixed"),
    (lambda s, t, y, temperature=1.0, alpha=0.5: alpha * kd_loss(s, t, temperature)
     + (1 - alpha) * F.cross_entropy(s, y) * temperature**2, "dl_ce_t_squared"),
    (lambda s, t, y, temperature=1.0, alpha=0.5: alpha * kd_loss(s, t, temperature)
     + (1 - alpha) * F.cross_entropy(t, y), "dl_ce_teacher"),
    (lambda s, t, y, temperature=1.0, alpha=0.5: alpha * kd_loss(s, t, temperature) + (1 - alpha) * F.nll_loss(s, y),
     "dl_nll_on_logits"),
    (lambda s, t, y, temperature=1.0, alpha=0.5: (alpha * kd_loss(s, t, temperature)
                                                  + (1 - alpha) * F.cross_entropy(s, y)) / 2, "dl_other"),
])
def test_distillation_loss_names_more_mistakes(fn, key):
    assert_hints(check_distillation_loss, fn, key)


def test_distillation_loss_accepts_nll_on_log_softmax():
    def nll(s, t, y, temperature=1.0, alpha=0.5):
        return alpha * kd_loss(s, t, temperature) + (1 - alpha) * F.nll_loss(F.log_softmax(s, dim=-1), y)
    assert check_distillation_loss(nll) is True


def distill_drops_the_last_batch(student, x, teacher_logits, temperature, epochs, lr, batch_size, t_squared=True):
    full = len(x) - len(x) % batch_size
    make_distill()(student, x[:full], teacher_logits[:full], temperature, epochs, lr, batch_size, t_squared)


def distill_with_adam(student, x, teacher_logits, temperature, epochs, lr, batch_size, t_squared=True):
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            loss = kd_loss(student(x[start:start + batch_size]), teacher_logits[start:start + batch_size], temperature)
            optimizer.zero_grad()
            (loss if t_squared else loss / temperature**2).backward()
            optimizer.step()


@pytest.mark.parametrize("fn,key", [
    (make_distill(scale_false=16.0), "tr_flag_inverted"), (distill_drops_the_last_batch, "tr_drop_last"),
    (distill_with_adam, "tr_other"),
])
def test_distill_names_more_mistakes(fn, key):
    message = hint_checks.failure_message(check_distill, fn)
    assert [k for k, text in TRAIN_HINTS.items() if text in message] == [key], message
