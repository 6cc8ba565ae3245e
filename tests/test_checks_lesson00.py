"""Exercise 0.1's check (count_errors): right answers of several kinds pass; each wrong one is refused with the
hint that names its mistake (issue 21: several inputs, errors in the first and last rows, nothing fixed)."""
import functools

import numpy as np
import pytest
import torch

from course_lib.checks.lesson00 import HINTS, check_count_errors
import hint_checks

assert_hints = functools.partial(hint_checks.assert_hints, HINTS)


def test_hints_are_distinct():
    assert len(set(HINTS.values())) == len(HINTS)


def loop_count(logits, labels):
    wrong = 0
    for row, label in zip(logits, labels):
        wrong += int(row.argmax() != label)
    return wrong


@pytest.mark.parametrize("fn", [
    lambda lg, lb: int((lg.argmax(1) != lb).sum()),
    lambda lg, lb: (lg.argmax(dim=-1) != lb).sum(),  # a 0-dim tensor
    lambda lg, lb: (lg.argmax(1) != lb).sum().float(),
    lambda lg, lb: np.int64((lg.numpy().argmax(1) != lb.numpy()).sum()),
    lambda lg, lb: len(lb) - int((torch.softmax(lg, dim=1).argmax(1) == lb).sum()),
    loop_count,
])
def test_right_answers_pass(fn):
    assert check_count_errors(fn) is True


@pytest.mark.parametrize("fn,keys", [
    (lambda lg, lb: 2, ["ce_fixed"]),  # the old single case's answer, hard-coded
    (lambda lg, lb: 0, ["ce_fixed"]),
    (lambda lg, lb: int((lg.argmax(1) == lb).sum()), ["ce_right"]),
    (lambda lg, lb: int((lg[1:].argmax(1) != lb[1:]).sum()), ["ce_skip_first"]),
    (lambda lg, lb: int((lg[:-1].argmax(1) != lb[:-1]).sum()), ["ce_skip_last"]),
    (lambda lg, lb: sum(int(lg[i].argmax() != lb[i]) for i in range(len(lb) - 1)), ["ce_skip_last"]),
    (lambda lg, lb: sum(int(lg[i].argmax() != lb[i]) for i in range(1, len(lb))), ["ce_skip_first"]),
    (lambda lg, lb: int((torch.softmax(lg, dim=0).argmax(1) != lb).sum()), ["ce_softmax_dim"]),
    (lambda lg, lb: float((lg.argmax(1) != lb).float().mean()), ["ce_rate"]),
    (lambda lg, lb: int((lg.argmax(0)[:1] != lb).sum()), ["ce_dim"]),
    (lambda lg, lb: lg.argmax(1) != lb, ["ce_not_one_number"]),
    (lambda lg, lb: int((lg.argmax(1) != lb).sum()) + 5, ["ce_other"]),
])
def test_each_mistake_gets_its_own_hint(fn, keys):
    assert_hints(check_count_errors, fn, *keys)


def test_a_fixed_answer_is_told_so_and_shows_expected_and_got():
    message = hint_checks.failure_message(check_count_errors, lambda lg, lb: 0)
    assert "returned 0 on all 4 batches, whose answers are [0, 2, 3, 1]" in message
