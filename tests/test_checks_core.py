"""The check machinery and the lesson-00 checks: friendly feedback, never a crash for a grader."""
import sys

import pytest
import torch

from course_lib import checks
from course_lib.checks import _core


def good_softmax(x):
    e = (x - x.max(dim=-1, keepdim=True).values).exp()
    return e / e.sum(dim=-1, keepdim=True)


def test_success_prints_tick_and_returns_true(capsys):
    assert checks.check_stable_softmax(good_softmax) is True
    assert "stable_softmax: all checks passed" in capsys.readouterr().out


def test_not_implemented_is_friendly(capsys):
    def stub(x):
        raise NotImplementedError("Exercise 0.1: write the body of `stable_softmax`")

    assert checks.check_stable_softmax(stub) is False
    assert "not implemented yet: Exercise 0.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint", [
    (lambda x: x.exp() / x.exp().sum(-1, keepdim=True), "subtract each row's maximum"),
    (lambda x: (x - x.max()).exp() / (x - x.max()).exp().sum(), "normalise along the last dimension"),
    (lambda x: [0.1, 0.2], "expected a torch.Tensor"),
])
def test_softmax_mistakes_get_hints(fn, hint):
    with pytest.raises(AssertionError, match=hint):
        checks.check_stable_softmax(fn)


def test_in_place_edit_is_caught():
    def in_place(x):
        x -= x.max(dim=-1, keepdim=True).values
        e = x.exp()
        return e / e.sum(dim=-1, keepdim=True)

    with pytest.raises(AssertionError, match="changed its input in place"):
        checks.check_stable_softmax(in_place)


@pytest.mark.parametrize("fn, hint", [
    (lambda logits, labels: int((logits.argmax(1) == labels).sum()), "RIGHT predictions"),
    (lambda logits, labels: int((logits.argmax(0)[:1] != labels).sum()), "dim=1"),
    (lambda logits, labels: logits.argmax(1) != labels, "sum the wrong predictions"),
])
def test_count_errors_mistakes_get_hints(fn, hint):
    assert checks.check_count_errors(lambda lg, lb: int((lg.argmax(1) != lb).sum())) is True
    with pytest.raises(AssertionError, match=hint):
        checks.check_count_errors(fn)


def test_run_check_survives_anything(monkeypatch):
    monkeypatch.setattr(_core, "TIME_LIMIT_S", 0.5)

    def loops(x):
        while True:
            pass

    def crashes(x):
        return 1 / 0

    def exits(x):
        sys.exit(3)

    results = {name: checks.run_check(checks.check_stable_softmax, fn)
               for name, fn in [("loops", loops), ("crashes", crashes), ("exits", exits), ("good", good_softmax),
                                ("not a function", 42)]}
    assert "infinite loop" in results["loops"].message
    assert "ZeroDivisionError" in results["crashes"].message and "line" in results["crashes"].message
    assert results["exits"].status == "failed"
    assert results["good"].passed and results["good"].status == "passed"
    assert results["not a function"].status == "failed" and "expected a function" in results["not a function"].message

    def stub(x):
        raise NotImplementedError("Exercise 0.1")

    result = checks.run_check(checks.check_stable_softmax, stub)
    assert (result.passed, result.status) == (False, "not implemented")


def test_assert_close_reports_the_largest_difference():
    with pytest.raises(AssertionError, match=r"largest difference 0.5\b"):
        checks.assert_close(torch.tensor([1.0, 2.5]), torch.tensor([1.0, 2.0]), "x", "hint")
    with pytest.raises(AssertionError, match=r"shape \(3,\), expected \(2,\)"):
        checks.assert_close(torch.zeros(3), torch.zeros(2), "x", "hint")
