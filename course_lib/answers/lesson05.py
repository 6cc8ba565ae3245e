"""Answer keys of lesson 05's exercises, generated from solutions/05_judging_a_student.ipynb: do not edit.

Regenerate with `python -m course_lib.exercises build`; the checks import these, and tests/test_exercises.py fails when this file is stale.
"""
# ruff: noqa
import numpy as np


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Bin-size-weighted mean |accuracy - confidence| over equal-width confidence bins (top bin closed)."""
    confidence = probs.max(axis=1)
    right = (probs.argmax(axis=1) == labels).astype(float)
    edges = np.arange(n_bins + 1) / n_bins  # bin b is [b / n_bins, (b + 1) / n_bins)
    which = np.minimum(np.searchsorted(edges, confidence, side="right") - 1, n_bins - 1)  # top bin closed
    ece = 0.0
    for b in range(n_bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(right[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Share of rows on which the two models' top classes agree."""
    return float(np.mean(probs_a.argmax(axis=1) == probs_b.argmax(axis=1)))


def cascade_on_test(validation: dict, test: dict, target_accuracy: float) -> tuple[float, float, float]:
    """(threshold chosen on validation, cascade accuracy on test, share of test emails sent to the teacher)."""
    def cascade(split, threshold):
        to_teacher = split["student_probs"].max(axis=1) < threshold
        pred = np.where(to_teacher, split["teacher_probs"].argmax(axis=1), split["student_probs"].argmax(axis=1))
        return float(np.mean(pred == split["labels"])), float(np.mean(to_teacher))

    candidates = np.concatenate([[0.0], np.unique(validation["student_probs"].max(axis=1)), [1.01]])
    threshold = next((float(c) for c in candidates if cascade(validation, c)[0] >= target_accuracy), 1.01)
    accuracy, share = cascade(test, threshold)
    return threshold, accuracy, share
