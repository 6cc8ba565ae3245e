"""The lesson 05 checks accept correct answers and reject each typical mistake with its own hint."""
import numpy as np
import pytest

from course_lib import evaluate
from course_lib.checks import run_check
from course_lib.checks.lesson05 import check_agreement, check_cascade_on_test, check_expected_calibration_error


# ---- ECE --------------------------------------------------------------------------------------
def binned(probs, labels, n_bins, conf=None, top_closed=True, weighted=True):
    conf = probs.max(1) if conf is None else conf
    right = probs.argmax(1) == labels
    which = np.floor(conf * n_bins).astype(int)
    if top_closed:
        which = np.minimum(which, n_bins - 1)
    total, gaps = 0.0, []
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            gap = abs(right[mask].mean() - conf[mask].mean())
            gaps.append(gap)
            total += mask.mean() * gap
    return total if weighted else float(np.mean(gaps))


def good_ece(probs, labels, n_bins=15):
    return binned(probs, labels, n_bins)


def library_ece(probs, labels, n_bins=15):
    return evaluate.expected_calibration_error(probs, labels, n_bins)


def ece_drops_top(probs, labels, n_bins=15):
    return binned(probs, labels, n_bins, top_closed=False)


def ece_unweighted(probs, labels, n_bins=15):
    return binned(probs, labels, n_bins, weighted=False)


def ece_true_class(probs, labels, n_bins=15):
    return binned(probs, labels, n_bins, conf=probs[np.arange(len(labels)), labels])


def ece_stub(probs, labels, n_bins=15):
    raise NotImplementedError("Exercise 5.1: expected_calibration_error")


@pytest.mark.parametrize("fn", [good_ece, library_ece])
def test_ece_accepts_correct(fn):
    assert check_expected_calibration_error(fn) is True


@pytest.mark.parametrize("fn, words", [
    (ece_drops_top, "confidence exactly 1.0"), (ece_unweighted, "plain mean of the bins"),
    (ece_true_class, "true\\* class"), (lambda p, y, n=15: 0.5, "expected"),
])
def test_ece_names_each_mistake(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_expected_calibration_error(fn)


def test_ece_not_implemented_and_grader(capsys):
    assert check_expected_calibration_error(ece_stub) is False
    assert "not implemented yet" in capsys.readouterr().out
    result = run_check(check_expected_calibration_error, ece_unweighted)
    assert result.status == "failed" and "share of the rows" in result.message


# ---- agreement ----------------------------------------------------------------------------------
def good_agreement(probs_a, probs_b):
    return float(np.mean(probs_a.argmax(axis=1) == probs_b.argmax(axis=1)))


@pytest.mark.parametrize("fn, words", [
    (lambda a, b: int(np.sum(a.argmax(1) == b.argmax(1))), "number of agreeing rows"),
    (lambda a, b: float(np.mean(a == b)), "compared the probabilities"),
    (lambda a, b: float(np.mean(a.argmax(0) == b.argmax(0))), "wrong axis"),
    (lambda a, b: 1.0, "expected 0.6000"),
])
def test_agreement_names_each_mistake(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_agreement(fn)


def test_agreement_accepts_correct():
    assert check_agreement(good_agreement) is True
    assert check_agreement(evaluate.agreement) is True


# ---- the cascade -------------------------------------------------------------------------------
def cascade(split, threshold, inverted=False):
    conf = split["student_probs"].max(1)
    to_teacher = conf >= threshold if inverted else conf < threshold
    pred = np.where(to_teacher, split["teacher_probs"].argmax(1), split["student_probs"].argmax(1))
    return float(np.mean(pred == split["labels"])), float(np.mean(to_teacher))


def candidates(split):
    return np.concatenate([[0.0], np.unique(split["student_probs"].max(1)), [1.01]])


def good_cascade(validation, test, target_accuracy):
    threshold = next((float(c) for c in candidates(validation) if cascade(validation, c)[0] >= target_accuracy), 1.01)
    return (threshold, *cascade(test, threshold))


def library_cascade(validation, test, target_accuracy):
    threshold = evaluate.choose_threshold(validation["student_probs"], validation["teacher_probs"],
                                          validation["labels"], target_accuracy)
    row = evaluate.cascade_curve(test["student_probs"], test["teacher_probs"], test["labels"], [threshold])[0]
    return threshold, row["accuracy"], row["share_to_teacher"]


def chosen_on_test(validation, test, target_accuracy):
    return good_cascade(test, test, target_accuracy)


def highest_passing(validation, test, target_accuracy):
    passing = [float(c) for c in candidates(validation) if cascade(validation, c)[0] >= target_accuracy]
    return (passing[-2], *cascade(test, passing[-2]))


def inverted_share(validation, test, target_accuracy):
    threshold, _, _ = good_cascade(validation, test, target_accuracy)
    acc, share = cascade(test, threshold)
    return threshold, acc, 1 - share


def reported_on_validation(validation, test, target_accuracy):
    threshold, _, _ = good_cascade(validation, test, target_accuracy)
    return (threshold, *cascade(validation, threshold))


@pytest.mark.parametrize("fn", [good_cascade, library_cascade])
def test_cascade_accepts_correct(fn):
    assert check_cascade_on_test(fn) is True


@pytest.mark.parametrize("fn, words", [
    (chosen_on_test, "chosen on|\\*test\\* emails"), (highest_passing, "not the lowest"),
    (inverted_share, "inverted"), (reported_on_validation, "apply the validation threshold"),
    (lambda v, t, a: 0.5, "return a tuple"),
])
def test_cascade_names_each_mistake(fn, words):
    with pytest.raises(AssertionError, match=words):
        check_cascade_on_test(fn)
