"""The lesson 04 checks accept correct answers and reject each typical mistake with its hint."""
import functools
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.checks import run_check
from course_lib.checks.lesson04 import HINTS, SOFT_HINTS, check_choose_temperature, check_soft_label_loss
import hint_checks
from hint_checks import stub


assert_hints = functools.partial(hint_checks.assert_hints, HINTS)
_REAL_TIME = time.time


# ---- choosing the temperature on validation ------------------------------------------------------
def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def search(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_router_student, targets_fn=None,
           score=None, pick=None):
    """The right answer, with one piece replaceable to write each mistake."""
    targets_fn = targets_fn or (lambda logits, t: softmax(logits / t))
    score = score or (lambda student: float(np.mean(student.predict(val_texts) == val_labels)))
    accuracies = {}
    for t in temperatures:
        accuracies[t] = score(train_router_student(traffic_texts, targets_fn(teacher_logits, t)))
    best = pick(accuracies) if pick else max(accuracies, key=accuracies.get)
    return best, accuracies


def ct_torch(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_router_student):
    """Correct, with torch targets and numpy accuracies."""
    accuracies = {}
    for t in temperatures:
        targets = torch.softmax(torch.from_numpy(teacher_logits) / t, dim=-1)
        student = train_router_student(traffic_texts, targets)
        accuracies[t] = np.mean(student.predict(val_texts) == val_labels)
    return max(accuracies, key=accuracies.get), accuracies


def ct_in_place(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_router_student):
    accuracies = {}
    for t in temperatures:
        teacher_logits /= t
        accuracies[t] = float(np.mean(train_router_student(traffic_texts, softmax(teacher_logits)).predict(val_texts)
                                      == val_labels))
    return max(accuracies, key=accuracies.get), accuracies


def ct_only_best(*args):
    return search(*args)[0]


def ct_hard(*args):
    return search(*args, targets_fn=lambda logits, t: logits.argmax(axis=1))


def ct_hard_one_hot(*args):
    return search(*args, targets_fn=lambda logits, t: np.eye(logits.shape[1])[logits.argmax(axis=1)])


def ct_ignores_temperature(*args):
    return search(*args, targets_fn=lambda logits, t: softmax(logits))


def ct_fixed_temperature(*args):
    return search(*args, targets_fn=lambda logits, t: softmax(logits / 2.0))


def ct_multiplies(*args):
    return search(*args, targets_fn=lambda logits, t: softmax(logits * t))


def ct_wrong_axis(*args):
    return search(*args, targets_fn=lambda logits, t: np.exp(logits / t) / np.exp(logits / t).sum(axis=0))


def ct_on_traffic(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_router_student):
    """Chooses by agreement with the teacher on the traffic the students were trained on."""
    agree = lambda s: float(np.mean(s.predict(traffic_texts) == teacher_logits.argmax(axis=1)))  # noqa: E731
    return search(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_router_student, score=agree)


def ct_trains_on_validation(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_router_student):
    return search(teacher_logits, val_texts, val_texts, val_labels, temperatures, train_router_student)


def ct_counts(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_router_student):
    return search(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_router_student,
                  score=lambda s: int(np.sum(s.predict(val_texts) == val_labels)))


def ct_index(*args):
    best, accuracies = search(*args)
    return list(accuracies).index(best), accuracies


def ct_largest_tie(*args):
    return search(*args, pick=lambda acc: [t for t, a in acc.items() if a == max(acc.values())][-1])


def ct_worst(*args):
    return search(*args, pick=lambda acc: min(acc, key=acc.get))


def ct_rounded_choice(*args):
    return search(*args, pick=lambda acc: max(acc, key=lambda t: round(acc[t], 2)))


def ct_rounded_accuracies(*args):
    return search(*args, score=lambda s: round(float(np.mean(s.predict(args[2]) == args[3])), 2))


def ct_percent(*args):
    return search(*args, score=lambda s: round(100 * float(np.mean(s.predict(args[2]) == args[3]))))


def ct_sorted_pick(*args):  # right: ties are broken towards the first temperature, as max does
    return search(*args, pick=lambda acc: sorted(acc.items(), key=lambda kv: -kv[1])[0][0])


@pytest.mark.parametrize("fn", [search, ct_torch, ct_sorted_pick])
def test_choose_temperature_accepts_correct_answers(fn):
    assert check_choose_temperature(fn) is True


@pytest.mark.parametrize("fn,key", [
    (ct_in_place, "ct_in_place"), (ct_only_best, "ct_return"), (ct_hard, "ct_hard"), (ct_hard_one_hot, "ct_hard"),
    (ct_ignores_temperature, "ct_temperature_ignored"), (ct_fixed_temperature, "ct_temperature_ignored"),
    (ct_multiplies, "ct_multiply"), (ct_wrong_axis, "ct_targets_other"), (ct_on_traffic, "ct_not_validation"),
    (ct_trains_on_validation, "ct_texts"), (ct_counts, "ct_accuracy"), (ct_index, "ct_index"),
    (ct_largest_tie, "ct_largest_tie"), (ct_worst, "ct_worst"),
    (ct_rounded_choice, "ct_rounded"), (ct_rounded_accuracies, "ct_rounded"), (ct_percent, "ct_rounded"),
])
def test_choose_temperature_names_each_mistake(fn, key):
    assert_hints(check_choose_temperature, fn, key)


def test_choose_temperature_hints_are_distinct():
    assert len(set(HINTS.values())) == len(HINTS)


# ---- soft-label loss (exercise 4.2) ------------------------------------------------------------------
assert_soft_hints = functools.partial(hint_checks.assert_hints, SOFT_HINTS)


def soft_right(student_logits, targets):
    return -(targets * F.log_softmax(student_logits, dim=-1)).sum(dim=-1).mean()


def soft_by_kl_plus_entropy(student_logits, targets):
    """KL(t || q) + H(t): the same number by another road (a right answer)."""
    log_t = torch.where(targets > 0, targets.log(), torch.zeros_like(targets))
    return (F.kl_div(F.log_softmax(student_logits, -1), targets, reduction="batchmean")
            - (targets * log_t).sum(-1).mean())


def soft_float32(student_logits, targets):
    return -(targets.float() * torch.log_softmax(student_logits.float(), -1)).sum(-1).mean()


def soft_loop(student_logits, targets):
    total = 0
    for row, target in zip(student_logits, targets):
        total = total - (target * torch.log_softmax(row, 0)).sum()
    return total / len(targets)


@pytest.mark.parametrize("fn", [soft_right, soft_by_kl_plus_entropy, soft_float32, soft_loop])
def test_soft_label_loss_accepts_right_answers(fn):
    assert check_soft_label_loss(fn) is True
    assert check_soft_label_loss(stub) is False


# Written as a learner would (independently of the check's own variants): ten-plus wrong answers, each with its hint.
SOFT_WRONG = [
    (lambda s, t: -(t * F.log_softmax(s, -1)).sum(), {"sl_sum"}),
    (lambda s, t: -(t * F.log_softmax(s, -1)).sum(-1).sum(), {"sl_sum"}),
    (lambda s, t: -(t * F.log_softmax(s, -1)).mean(), {"sl_mean_classes"}),
    (lambda s, t: F.cross_entropy(s, t.argmax(-1)), {"sl_hard"}),
    (lambda s, t: (t * F.log_softmax(s, -1)).sum(-1).mean(), {"sl_sign"}),
    (lambda s, t: -(t * F.softmax(s, -1)).sum(-1).mean(), {"sl_softmax"}),
    (lambda s, t: F.kl_div(F.log_softmax(s, -1), t, reduction="batchmean"), {"sl_kl"}),
    (lambda s, t: -(t * F.log_softmax(s, 0)).sum(-1).mean(), {"sl_dim0"}),
    (lambda s, t: -(t * F.log_softmax(s / 2.0, -1)).sum(-1).mean(), {"sl_temperature"}),
    (lambda s, t: -(F.softmax(s, -1) * t.log()).sum(-1).mean(), {"sl_swapped"}),
]


@pytest.mark.parametrize("fn, keys", SOFT_WRONG)
def test_soft_label_loss_names_each_mistake(fn, keys):
    assert_soft_hints(check_soft_label_loss, fn, *keys)


@pytest.mark.parametrize("fn, words", [
    (lambda s, t: -(t * torch.log(torch.softmax(s, -1))).sum(-1).mean(), "log_softmax"),  # -inf * 0 for large logits
    (lambda s, t: float(-(t * F.log_softmax(s, -1)).sum(-1).mean()), "torch scalar"),
    (lambda s, t: -(t * F.log_softmax(s, -1)).sum(-1), "one number"),
    (lambda s, t: -(t * F.log_softmax(s.detach(), -1)).sum(-1).mean(), "no gradient"),
    (lambda s, t: torch.tensor(float(-(t * F.log_softmax(s, -1)).sum(-1).mean()), requires_grad=True),
     "gradient"),
    (lambda s, t: -(t * F.log_softmax(s, -1)).sum(-1).mean() * len(s) / 4, "expected"),  # hard-coded batch of 4
])
def test_soft_label_loss_other_mistakes_are_told_what_was_observed(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_soft_label_loss(fn)


def test_soft_label_loss_agrees_with_the_library_and_a_grader_gets_a_result():
    from course_lib.losses import soft_label_loss

    assert check_soft_label_loss(soft_label_loss) is True
    assert run_check(check_soft_label_loss, SOFT_WRONG[0][0], time_limit_s=30).status == "failed"
    assert run_check(check_choose_temperature, search, time_limit_s=30).passed
