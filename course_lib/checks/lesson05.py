"""Checks for lesson 05 (judging a student): ECE, agreement, and a cascade threshold chosen on validation.

Each reference answer is written out here in a few numpy lines (not taken from ``course_lib.evaluate``),
and each typical mistake is recomputed so the check can name it.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ._core import call_learner, learner_check


# ---- references and the typical mistakes, written out --------------------------------------------
def _ece(probs: np.ndarray, labels: np.ndarray, n_bins: int, *, confidence=None, drop_top=False,
         unweighted=False) -> float:
    """ECE with equal-width bins; the keyword arguments reproduce the typical mistakes."""
    conf = probs.max(1) if confidence is None else confidence
    right = (probs.argmax(1) == labels).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.searchsorted(edges, conf, side="right") - 1   # [e_i, e_{i+1}); conf 1.0 lands in bin n_bins
    if not drop_top:
        which = np.minimum(which, n_bins - 1)                 # the top bin is closed: [e_{n-1}, 1]
    gaps, weights = [], []
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            gaps.append(abs(right[mask].mean() - conf[mask].mean()))
            weights.append(mask.sum() / len(conf))
    if unweighted:
        return float(np.mean(gaps))
    return float(np.dot(gaps, weights))


def _float(out, name: str) -> float:
    try:
        value = float(out)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} returned a {type(out).__name__}; return one float.") from None
    if math.isnan(value):
        raise AssertionError(f"{name} returned nan: did a bin with no rows get into an average?")
    return value


def _calibration_case():
    """Probabilities with some rows at confidence exactly 1.0, uneven bins, and labels that are not the top class."""
    gen = np.random.default_rng(5)
    n, classes = 60, 4
    logits = gen.normal(size=(n, classes)) * 2.5
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    probs[:8] = np.eye(classes)[gen.integers(0, classes, 8)]     # eight rows 100% sure
    labels = np.where(gen.random(n) < 0.7, probs.argmax(1), gen.integers(0, classes, n))
    labels[:3] = (probs[:3].argmax(1) + 1) % classes            # three of the sure rows are wrong
    return probs, labels


@learner_check("expected_calibration_error")
def check_expected_calibration_error(fn: Callable[..., float]) -> None:
    """Check ``fn(probs, labels, n_bins)``: the bin-size-weighted mean of |accuracy - confidence| (exercise 5.1)."""
    probs, labels = _calibration_case()
    for n_bins in (10, 5):
        expected = _ece(probs, labels, n_bins)
        value = _float(call_learner(fn, probs.copy(), labels.copy(), n_bins), "expected_calibration_error")
        if math.isclose(value, expected, rel_tol=1e-6, abs_tol=1e-9):
            continue
        mistakes = [
            (_ece(probs, labels, n_bins, drop_top=True),
             "rows with confidence exactly 1.0 fell out of every bin: the top bin must be closed, [0.9, 1.0] "
             "with 10 bins, so the most confident rows (often the most over-confident) count. Clip the bin "
             "index to n_bins - 1."),
            (_ece(probs, labels, n_bins, unweighted=True),
             "you took a plain mean of the bins' gaps: weight each bin by its share of the rows "
             "(count / N), so a bin of 2 rows does not count as much as a bin of 2,000."),
            (_ece(probs, labels, n_bins, confidence=probs[np.arange(len(labels)), labels]),
             "you took the confidence of the *true* class: calibration is about the model's own answer, so "
             "the confidence is the top probability, probs.max(axis=1), and 'right' means argmax == label."),
        ]
        for wrong, hint in mistakes:
            if math.isclose(value, wrong, rel_tol=1e-6, abs_tol=1e-9):
                raise AssertionError(hint)
        raise AssertionError(f"with n_bins={n_bins} you returned {value:.6f}, expected {expected:.6f}: bin the rows "
                             "by their top probability into equal-width bins on [0, 1], then sum over non-empty "
                             "bins (count / N) * |accuracy in bin - mean confidence in bin|.")
    perfect = np.array([[0.75, 0.25]] * 4)
    value = _float(call_learner(fn, perfect, np.array([0, 0, 0, 1]), 10), "expected_calibration_error")
    if not math.isclose(value, 0.0, abs_tol=1e-9):
        raise AssertionError(f"four rows 75% sure of which 3 are right are perfectly calibrated (ECE 0); you "
                             f"returned {value:.4f}.")


@learner_check("agreement")
def check_agreement(fn: Callable[..., float]) -> None:
    """Check ``fn(probs_a, probs_b)``: the share of rows whose argmax classes agree (exercise 5.2)."""
    a = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.4, 0.35, 0.25], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    b = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.45, 0.3, 0.25], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    expected = float(np.mean(a.argmax(1) == b.argmax(1)))      # rows 0, 2, 3 agree: 0.6
    value = _float(call_learner(fn, a.copy(), b.copy()), "agreement")
    if math.isclose(value, expected, abs_tol=1e-9):
        return
    if math.isclose(value, float(np.sum(a.argmax(1) == b.argmax(1))), abs_tol=1e-9):
        raise AssertionError("you returned the number of agreeing rows; return the share (divide by the number of rows).")
    if math.isclose(value, float(np.mean(a == b)), abs_tol=1e-9) or math.isclose(value, float(np.mean(np.isclose(a, b))),
                                                                                 abs_tol=1e-9):
        raise AssertionError("you compared the probabilities themselves: two models agree when they pick the same "
                             "class, so compare probs_a.argmax(axis=1) with probs_b.argmax(axis=1).")
    if math.isclose(value, float(np.mean(a.argmax(0) == b.argmax(0))), abs_tol=1e-9):
        raise AssertionError("argmax over the wrong axis: each row is one email, so take argmax(axis=1) (over classes).")
    raise AssertionError(f"agreement gave {value:.4f}, expected {expected:.4f}: the mean over rows of "
                         "(probs_a.argmax(axis=1) == probs_b.argmax(axis=1)).")


# ---- the cascade ---------------------------------------------------------------------------------
def _cascade(split: dict, threshold: float) -> tuple[float, float]:
    """(accuracy, share to the teacher) when the student answers rows with top probability >= threshold."""
    student, teacher, labels = split["student_probs"], split["teacher_probs"], split["labels"]
    to_teacher = student.max(1) < threshold
    pred = np.where(to_teacher, teacher.argmax(1), student.argmax(1))
    return float(np.mean(pred == labels)), float(np.mean(to_teacher))


def _lowest_threshold(split: dict, target: float) -> float:
    candidates = np.concatenate([[0.0], np.unique(split["student_probs"].max(1)), [1.01]])
    return next((float(c) for c in candidates if _cascade(split, c)[0] >= target), 1.01)


def _split(seed: int, n: int = 80) -> dict:
    """A student that is right when confident and a teacher that is right 90% of the time."""
    gen = np.random.default_rng(seed)
    labels = gen.integers(0, 3, n)
    conf = gen.uniform(0.4, 1.0, n)
    student_right = gen.random(n) < conf
    s_pred = np.where(student_right, labels, (labels + 1) % 3)
    student = np.full((n, 3), 0.0)
    student[np.arange(n), s_pred] = conf
    student[np.arange(n), (s_pred + 1) % 3] = (1 - conf) * 0.6
    student[np.arange(n), (s_pred + 2) % 3] = (1 - conf) * 0.4
    t_pred = np.where(gen.random(n) < 0.9, labels, (labels + 2) % 3)
    teacher = np.full((n, 3), 0.1)
    teacher[np.arange(n), t_pred] = 0.8
    return {"student_probs": student, "teacher_probs": teacher, "labels": labels}


@learner_check("cascade_on_test")
def check_cascade_on_test(fn: Callable[..., tuple]) -> None:
    """Check ``fn(validation, test, target_accuracy)``: threshold chosen on validation, reported on test (exercise 5.3)."""
    validation, test = _split(1), _split(2)
    target = 0.85
    threshold = _lowest_threshold(validation, target)
    on_test = _lowest_threshold(test, target)
    assert not math.isclose(threshold, on_test), "the check's data must tell validation and test apart"
    expected_acc, expected_share = _cascade(test, threshold)
    copies = [{k: v.copy() for k, v in split.items()} for split in (validation, test)]
    out = call_learner(fn, copies[0], copies[1], target)
    if not isinstance(out, tuple) or len(out) != 3:
        raise AssertionError(f"cascade_on_test returned {type(out).__name__}; return a tuple "
                             "(threshold, test_accuracy, test_share_to_teacher).")
    got = _float(out[0], "the threshold")
    if math.isclose(got, on_test, abs_tol=1e-9):
        raise AssertionError("your threshold is the one that reaches the target on the *test* emails: choose it on "
                             "validation, then read the test set once. A threshold tuned on test flatters the "
                             "accuracy you report.")
    if not math.isclose(got, threshold, abs_tol=1e-9):
        passing = [float(c) for c in np.concatenate([[0.0], np.unique(validation["student_probs"].max(1)), [1.01]])
                   if _cascade(validation, c)[0] >= target]
        if any(math.isclose(got, c, abs_tol=1e-9) for c in passing):
            raise AssertionError(f"threshold {got:.4f} reaches the target on validation but is not the lowest that "
                                 f"does ({threshold:.4f}): a higher threshold sends more emails to the teacher and "
                                 "costs more for no required accuracy.")
        raise AssertionError(f"threshold {got:.4f}, expected {threshold:.4f}: try 0, each distinct top probability "
                             "of the student on validation, and 1.01, in increasing order; keep the first whose "
                             "validation cascade accuracy is >= target_accuracy. The student answers an email when "
                             "its top probability is >= the threshold; below it, the teacher's answer is used.")
    acc, share = _float(out[1], "the test accuracy"), _float(out[2], "the test share to the teacher")
    if math.isclose(share, 1 - expected_share, abs_tol=1e-9) and not math.isclose(share, expected_share):
        raise AssertionError("the share is inverted: the teacher reads the emails whose student top probability is "
                             "*below* the threshold.")
    if not (math.isclose(acc, expected_acc, abs_tol=1e-9) and math.isclose(share, expected_share, abs_tol=1e-9)):
        raise AssertionError(f"on test you report accuracy {acc:.4f} and share {share:.4f}, expected {expected_acc:.4f} "
                             f"and {expected_share:.4f}: apply the validation threshold to the test emails (student's "
                             "answer where its top probability >= threshold, the teacher's elsewhere).")
