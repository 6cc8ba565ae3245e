"""Every exercise check, run on its answer key, leaves the caller's global RNGs as they were and gives the learner's
function exactly the same inputs each time it runs (issue 21: the grader records the calls in the submission's
kernel and replays the check in its own process, so the two runs must ask the same questions)."""
import functools
import importlib
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import checks

# (lesson, answer-key function, check): the 23 exercises
EXERCISES = [
    ("00", "count_errors", "check_count_errors"),
    ("01", "softmax_with_temperature", "check_softmax_with_temperature"),
    ("01", "first_temperature_above", "check_first_temperature_above"),
    ("01", "dark_knowledge_matrix", "check_dark_knowledge_matrix"),
    ("02", "kd_loss", "check_kd_loss"), ("02", "distillation_loss", "check_distillation_loss"),
    ("02", "choose_class_bias", "check_choose_class_bias"), ("02", "distill", "check_distill"),
    ("03", "attention_map", "check_attention_map"), ("03", "hint_loss", "check_hint_loss"),
    ("03", "fitnets", "check_fitnets"),
    ("04", "choose_temperature", "check_choose_temperature"), ("04", "soft_label_loss", "check_soft_label_loss"),
    ("05", "expected_calibration_error", "check_expected_calibration_error"), ("05", "agreement", "check_agreement"),
    ("05", "cascade_on_test", "check_cascade_on_test"),
    ("06", "size_on_disk", "check_size_on_disk"), ("06", "median_latency_ms", "check_median_latency_ms"),
    ("06", "fine_tune_pruned", "check_fine_tune_pruned"),
    ("07", "token_kd_loss", "check_token_kd_loss"), ("07", "greedy_decode", "check_greedy_decode"),
    ("07", "on_policy_loss", "check_on_policy_loss"),
    ("08", "listwise_kd_loss", "check_listwise_kd_loss"),
]


def fingerprint(x):
    """What a call was given, comparable across runs (a temporary folder's name aside)."""
    if isinstance(x, torch.Tensor):
        return ("tensor", tuple(x.shape), str(x.dtype), x.detach().cpu().contiguous().numpy().tobytes())
    if isinstance(x, np.ndarray):
        return ("array", x.shape, str(x.dtype), x.tobytes() if x.dtype != object else repr(x.tolist()))
    if isinstance(x, nn.Module):
        return ("module", type(x).__name__, tuple((k, fingerprint(v)) for k, v in x.state_dict().items()))
    if isinstance(x, dict):
        return ("dict", tuple((fingerprint(k), fingerprint(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, tuple(fingerprint(v) for v in x))
    if isinstance(x, Path):
        return ("path", x.name, x.read_bytes() if x.is_file() else None)
    if isinstance(x, (int, float, str, bool, type(None), np.generic)):
        return x
    return ("object", type(x).__name__)


def recording(fn, calls: list):
    @functools.wraps(fn)
    def learner(*args, **kwargs):
        calls.append(fingerprint((args, kwargs)))
        return fn(*args, **kwargs)
    return learner


def rng_state():
    return (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())


@pytest.mark.parametrize("lesson,name,check", EXERCISES, ids=[e[2] for e in EXERCISES])
def test_a_check_keeps_the_callers_rng_and_asks_the_same_questions_every_run(lesson, name, check, pinned_one_thread,
                                                                              capsys):
    answer = getattr(importlib.import_module(f"course_lib.answers.lesson{lesson}"), name)
    check_fn = getattr(checks, check)
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    before = rng_state()
    runs = []
    for _ in range(2):
        calls: list = []
        assert check_fn(recording(answer, calls)) is True
        runs.append(calls)
    after = rng_state()
    assert torch.equal(before[0], after[0]), f"{check} changed torch's global RNG"
    assert np.array_equal(before[1], after[1]), f"{check} changed NumPy's global RNG"
    assert before[2] == after[2], f"{check} changed Python's global RNG"
    assert runs[0] and runs[0] == runs[1], f"{check} called the learner's function with other inputs the second time"
    assert "all checks passed" in capsys.readouterr().out
