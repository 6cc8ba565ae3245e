"""Every check compares the caller's inputs before and after each call (issue 20): a function that returns the
right answer but changes a tensor or array it was given is refused, naming the argument, in every lesson."""
import functools

import pytest
import torch

from course_lib import checks
from course_lib.answers import lesson00, lesson01, lesson02, lesson03, lesson05, lesson07, lesson08


def _after_answer(answer, position, change):
    """The answer key, then ``change`` applied to its argument at ``position`` (the answer itself is right)."""

    @functools.wraps(answer)
    def wrong(*args, **kwargs):
        result = answer(*args, **kwargs)
        target = args[position]
        with torch.no_grad():
            change(target)
        return result

    return wrong


def _shift(x):
    x += 0.5 if not isinstance(x, torch.Tensor) or x.is_floating_point() else 1


def _first_element(x):
    index = (0,) * x.ndim
    x[index] = x[index] + 1


def _last_row(x):
    x[-1] = -x[-1] - 1


CASES = [
    (checks.check_count_errors, lesson00.count_errors, 0, "logits"),
    (checks.check_softmax_with_temperature, lesson01.softmax_with_temperature, 0, "logits"),
    (checks.check_first_temperature_above, lesson01.first_temperature_above, 0, "logits"),
    (checks.check_kd_loss, lesson02.kd_loss, 0, "student_logits"),
    (checks.check_kd_loss, lesson02.kd_loss, 1, "teacher_logits"),
    (checks.check_choose_class_bias, lesson02.choose_class_bias, 0, "logits"),
    (checks.check_attention_map, lesson03.attention_map, 0, "features"),
    (checks.check_expected_calibration_error, lesson05.expected_calibration_error, 0, "probs"),
    (checks.check_agreement, lesson05.agreement, 1, "probs_b"),
    (checks.check_listwise_kd_loss, lesson08.listwise_kd_loss, 0, "student_scores"),
    (checks.check_listwise_kd_loss, lesson08.listwise_kd_loss, 1, "teacher_scores"),
]


@pytest.mark.parametrize("change", [_shift, _first_element, _last_row], ids=["shift", "one_element", "last_row"])
@pytest.mark.parametrize("check, answer, position, name", CASES, ids=[f"{c[1].__name__}-{c[3]}" for c in CASES])
def test_a_right_answer_that_changes_its_input_is_refused_naming_it(check, answer, position, name, change):
    with pytest.raises(AssertionError, match="in place|changed the caller's") as caught:
        check(_after_answer(answer, position, change))
    assert name in str(caught.value)


@pytest.mark.parametrize("check, answer", [(c[0], c[1]) for c in CASES] + [
    (checks.check_token_kd_loss, lesson07.token_kd_loss), (checks.check_hint_loss, lesson03.hint_loss),
    (checks.check_on_policy_loss, lesson07.on_policy_loss)])
def test_the_answer_keys_change_nothing_and_pass(check, answer):
    assert check(answer) is True

