"""Checks that exercise cells call on a learner's function (introduced in lesson 00).

Each ``check_*`` takes the learner's function and returns ``True`` (with a success
line), returns ``False`` (printing ``not implemented yet: ...``) while the function
still raises ``NotImplementedError``, or raises ``AssertionError`` with what was wrong
and a hint. Graders call :func:`run_check`, which returns a result instead (in a
separate process where ``os.fork`` exists; ``_core``'s docstring says what each path
protects against). The checks of each lesson live in ``checks/lessonNN.py``; all are
importable from here.
"""
from ._core import (MESSAGE_LIMIT, RUN_CHECK_TIME_LIMIT_S, TIME_LIMIT_FACTOR, TIME_LIMIT_S, CheckResult,
                    assert_close, assert_not_in_place, call_learner, learner_check, run_check)
from .lesson00 import check_count_errors, check_stable_softmax
from .lesson01 import check_dark_knowledge_matrix, check_first_temperature_above
from .lesson02 import (check_choose_class_bias, check_distill, check_distillation_loss, check_kd_loss,
                       check_softmax_with_temperature)
from .lesson03 import check_attention_map, check_fitnets, check_hint_loss
from .lesson04 import check_choose_temperature, check_soft_label_loss
from .lesson05 import check_agreement, check_cascade_on_test, check_expected_calibration_error
from .lesson06 import check_fine_tune_pruned, check_median_latency_ms, check_size_on_disk
from .lesson07 import check_greedy_decode, check_on_policy_loss, check_token_kd_loss
from .lesson08 import check_listwise_kd_loss

__all__ = [
    "TIME_LIMIT_S", "TIME_LIMIT_FACTOR", "RUN_CHECK_TIME_LIMIT_S", "MESSAGE_LIMIT", "CheckResult", "assert_close",
    "assert_not_in_place", "call_learner", "learner_check", "run_check",
    "check_count_errors", "check_stable_softmax",
    "check_first_temperature_above", "check_dark_knowledge_matrix",
    "check_softmax_with_temperature", "check_kd_loss", "check_distillation_loss", "check_choose_class_bias",
    "check_distill",
    "check_attention_map", "check_hint_loss", "check_fitnets",
    "check_choose_temperature", "check_soft_label_loss",
    "check_expected_calibration_error", "check_agreement", "check_cascade_on_test",
    "check_size_on_disk", "check_median_latency_ms", "check_fine_tune_pruned",
    "check_token_kd_loss", "check_greedy_decode", "check_on_policy_loss",
    "check_listwise_kd_loss",
]
