"""Checks for lesson 05 (judging a student): ECE, agreement, and a cascade threshold chosen on validation.

Each reference answer is written out here in a few numpy lines (not taken from ``course_lib.evaluate``),
and each typical mistake is recomputed so the check can name it.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..answers import lesson05 as answers
from ._core import call_learner, learner_check, name_mistakes


# ---- references and the typical mistakes, written out --------------------------------------------
def bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each confidence: edges ``k / n_bins`` (so 0.7 starts bin 7 of 10), top bin closed.

    The one binning of exercise 5.1's answer key, ``evaluate.calibration_bins`` and this check
    (``tests/test_checks_lesson05.py`` pins them together on every exact edge).
    """
    edges = np.arange(n_bins + 1) / n_bins  # k / n, correctly rounded (np.linspace gives 0.7000000000000001)
    return np.minimum(np.searchsorted(edges, confidence, side="right") - 1, n_bins - 1)


def _ece(probs: np.ndarray, labels: np.ndarray, n_bins: int, *, confidence=None, drop_top=False,
         unweighted=False, own_top_bin=False, edges=None) -> float:
    """ECE with equal-width bins; the keyword arguments reproduce the typical mistakes (and linspace edges)."""
    conf = probs.max(1) if confidence is None else confidence
    right = (probs.argmax(1) == labels).astype(float)
    which = bin_index(conf, n_bins)
    if edges is not None:
        which = np.minimum(np.searchsorted(edges, conf, side="right") - 1, n_bins - 1)
    if drop_top or own_top_bin:
        which = np.where(conf >= 1.0, n_bins, which)  # 1.0 in a bin of its own, or (drop_top) in none
    gaps, weights = [], []
    for b in range(n_bins + (1 if own_top_bin else 0)):
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


def _edge_case():
    """Two classes; confidences on exact decimal edges (0.6, 0.7, 0.8, 0.9) and at 1.0. The rows at 1.0 are
    over-confident (3 of 4 right) and the rest of the top bin under-confident (all right at 0.9-0.95), so a
    separate bin for 1.0 changes the answer; a row at exactly 0.7 belongs to [0.7, 0.8)."""
    top = [1.0] * 4 + [0.9, 0.92, 0.95] + [0.7, 0.7, 0.72, 0.79] + [0.6, 0.65, 0.8, 0.85] + [0.55, 0.51]
    right = [1, 1, 1, 0] + [1, 1, 1] + [0, 0, 1, 1] + [1, 0, 1, 1] + [0, 1]
    probs = np.array([[c, 1 - c] for c in top])
    labels = np.array([0 if r else 1 for r in right])
    return probs, labels


#: What each known mistake of exercise 5.1 is.
ECE_HINTS: dict[str, str] = {
    "drop_top": "rows with confidence exactly 1.0 fell out of every bin: the top bin must be closed, [0.9, 1.0] "
                "with 10 bins, so the most confident rows (often the most over-confident) count. Clip the bin "
                "index to n_bins - 1.",
    "own_top_bin": "rows with confidence exactly 1.0 got a bin of their own: the top bin is [0.9, 1.0], closed, "
                   "so they share it with the rows just below 1.0 (clip the bin index to n_bins - 1, do not add "
                   "an extra bin).",
    "unweighted": "you took a plain mean of the bins' gaps: weight each bin by its share of the rows "
                  "(count / N), so a bin of 2 rows does not count as much as a bin of 2,000.",
    "true_class": "you took the confidence of the *true* class: calibration is about the model's own answer, "
                  "so the confidence is the top probability, probs.max(axis=1), and 'right' means argmax == "
                  "label.",
}


@learner_check("expected_calibration_error", solution=answers.expected_calibration_error)
def check_expected_calibration_error(fn: Callable[..., float]) -> None:
    """Check ``fn(probs, labels, n_bins)``: the bin-size-weighted mean of |accuracy - confidence| (exercise 5.1).

    Bins are ``[k / n_bins, (k + 1) / n_bins)``, the top one closed (``bin_index``); edges from
    ``np.linspace`` put a confidence of exactly 0.7 one bin lower, a float artefact this check accepts.
    """
    cases = [(*_calibration_case(), n_bins) for n_bins in (10, 5)] + [(*_edge_case(), 10), (*_edge_case(), 5)]
    for probs, labels, n_bins in cases:
        expected = _ece(probs, labels, n_bins)
        value = _float(call_learner(fn, probs.copy(), labels.copy(), n_bins), "expected_calibration_error")
        linspace = _ece(probs, labels, n_bins, edges=np.linspace(0, 1, n_bins + 1))
        if any(math.isclose(value, e, rel_tol=1e-4, abs_tol=1e-9) for e in (expected, linspace)):
            continue
        mistakes = {
            "drop_top": _ece(probs, labels, n_bins, drop_top=True),
            "own_top_bin": _ece(probs, labels, n_bins, own_top_bin=True),
            "unweighted": _ece(probs, labels, n_bins, unweighted=True),
            "true_class": _ece(probs, labels, n_bins, confidence=probs[np.arange(len(labels)), labels]),
        }
        for key, wrong in mistakes.items():
            if math.isclose(value, wrong, rel_tol=1e-4, abs_tol=1e-9) and not math.isclose(wrong, expected):
                raise AssertionError(f"with n_bins={n_bins} on {len(labels)} rows you returned {value:.6f}, "
                                     f"expected {expected:.6f}: {ECE_HINTS[key]}")
        raise AssertionError(f"with n_bins={n_bins} on {len(labels)} rows you returned {value:.6f}, expected "
                             f"{expected:.6f}: bin the rows by their top probability into equal-width bins on "
                             "[0, 1], then sum over non-empty bins (count / N) * |accuracy in bin - mean "
                             "confidence in bin|.")
    perfect = np.array([[0.75, 0.25]] * 4)
    value = _float(call_learner(fn, perfect, np.array([0, 0, 0, 1]), 10), "expected_calibration_error")
    if not math.isclose(value, 0.0, abs_tol=1e-9):
        raise AssertionError(f"four rows 75% sure of which 3 are right are perfectly calibrated (ECE 0); you "
                             f"returned {value:.4f}.")


#: What each known mistake of exercise 5.2 is.
AGREEMENT_HINTS: dict[str, str] = {
    "count": "you returned the number of agreeing rows; return the share (divide by the number of rows).",
    "probs": "you compared the probabilities themselves: two models agree when they pick the same class, so "
             "compare probs_a.argmax(axis=1) with probs_b.argmax(axis=1).",
    "axis": "argmax over the wrong axis: each row is one email, so take argmax(axis=1) (over classes).",
    "disagreement": "you returned the share of rows where they DISagree: return the share where the top classes "
                    "are the same.",
    "skip_first": "the first row was left out: average over every row.",
    "skip_last": "the last row was left out: average over every row.",
    "fixed": "the answer does not depend on the input: compute it from probs_a and probs_b.",
}


def _agreement_cases() -> list:
    """(probs_a, probs_b): 5 rows of 3 classes (0.6, the last row disagrees), 8 rows of 4 (0.375, the first and
    last rows agree), 6 rows of 2 (5/6, the last row disagrees)."""
    a = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.4, 0.35, 0.25], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    b = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.45, 0.3, 0.25], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    gen = np.random.default_rng(8)
    c, d = gen.dirichlet(np.ones(4), 8), gen.dirichlet(np.ones(4), 8)
    for i in range(8):  # rows 0, 3 and 7 agree
        if i in (0, 3, 7):
            d[i] = 0.5 * d[i] + 0.5 * np.eye(4)[c[i].argmax()]
        elif d[i].argmax() == c[i].argmax():
            d[i] = np.roll(d[i], 1)
    e = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.55, 0.45], [0.4, 0.6]])
    f = np.array([[0.7, 0.3], [0.1, 0.9], [0.51, 0.49], [0.45, 0.55], [0.8, 0.2], [0.6, 0.4]])
    return [(a, b), (c, d), (e, f)]


def _agreement_variants(a: np.ndarray, b: np.ndarray) -> dict:
    same = a.argmax(1) == b.argmax(1)
    return {"count": float(same.sum()), "probs": [float(np.mean(a == b)), float(np.mean(np.isclose(a, b)))],
            "axis": float(np.mean(a.argmax(0) == b.argmax(0))), "disagreement": float(1 - same.mean()),
            "skip_first": float(same[1:].mean()), "skip_last": float(same[:-1].mean())}


@learner_check("agreement", solution=answers.agreement)
def check_agreement(fn: Callable[..., float]) -> None:
    """Check ``fn(probs_a, probs_b)``: the share of rows whose argmax classes agree (exercise 5.2).

    Three cases of different shapes and answers (0.6, 0.375, 5/6), the first row agreeing in one and the
    last row disagreeing in two, so a fixed answer or a skipped row is caught.
    """
    cases = _agreement_cases()
    values = [_float(call_learner(fn, a.copy(), b.copy()), "agreement") for a, b in cases]
    expected = [float(np.mean(a.argmax(1) == b.argmax(1))) for a, b in cases]
    if len(set(values)) == 1 and not all(math.isclose(v, e, rel_tol=1e-6) for v, e in zip(values, expected)):
        raise AssertionError(f"agreement returned {values[0]:.4f} on all {len(cases)} pairs, whose answers are "
                             f"{', '.join(f'{e:.4f}' for e in expected)}: {AGREEMENT_HINTS['fixed']}")
    ruled_out: set = set()
    for (a, b), value, right in zip(cases, values, expected):
        keys = name_mistakes(value, right, _agreement_variants(a, b), ruled_out,
                             lambda x, y: math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9))
        if keys is not None:
            hint = " ".join(AGREEMENT_HINTS[k] for k in keys) or (
                "the mean over rows of (probs_a.argmax(axis=1) == probs_b.argmax(axis=1)).")
            raise AssertionError(f"agreement on {a.shape[0]} rows of {a.shape[1]} classes gave {value:.4f}, "
                                 f"expected {right:.4f}: {hint}")


# ---- the cascade ---------------------------------------------------------------------------------
def _cascade(split: dict, threshold: float) -> tuple[float, float]:
    """(accuracy, share to the teacher) when the student answers rows with top probability >= threshold."""
    student, teacher, labels = split["student_probs"], split["teacher_probs"], split["labels"]
    to_teacher = student.max(1) < threshold
    pred = np.where(to_teacher, teacher.argmax(1), student.argmax(1))
    return float(np.mean(pred == labels)), float(np.mean(to_teacher))


def _candidates(split: dict, every_probability: bool = False) -> np.ndarray:
    values = split["student_probs"] if every_probability else split["student_probs"].max(1)
    return np.concatenate([[0.0], np.unique(values), [1.01]])


def _lowest_threshold(split: dict, target: float, every_probability: bool = False) -> float:
    candidates = _candidates(split, every_probability)
    return next((float(c) for c in candidates if _cascade(split, c)[0] >= target), 1.01)


def _top_down_threshold(split: dict, target: float) -> float:
    """The mistake: scan from the top and stop at the first threshold that fails."""
    best = 1.01
    for c in _candidates(split)[::-1]:
        if _cascade(split, c)[0] < target:
            break
        best = float(c)
    return best


def _split(seed: int, n: int = 80) -> dict:
    """A student that is right when confident (its second choice close behind at times) and a teacher right 90%
    of the time."""
    gen = np.random.default_rng(seed)
    labels = gen.integers(0, 3, n)
    conf = gen.uniform(0.4, 1.0, n)
    student_right = gen.random(n) < conf
    s_pred = np.where(student_right, labels, (labels + 1) % 3)
    share = gen.uniform(0.5, 0.95, n)
    student = np.zeros((n, 3))
    student[np.arange(n), s_pred] = conf
    student[np.arange(n), (s_pred + 1) % 3] = (1 - conf) * share
    student[np.arange(n), (s_pred + 2) % 3] = (1 - conf) * (1 - share)
    t_pred = np.where(gen.random(n) < 0.9, labels, (labels + 2) % 3)
    teacher = np.full((n, 3), 0.1)
    teacher[np.arange(n), t_pred] = 0.8
    return {"student_probs": student, "teacher_probs": teacher, "labels": labels}


#: What each known mistake of exercise 5.3 is.
CASCADE_HINTS: dict[str, str] = {
    "on_test": "your threshold is the one that reaches the target on the *test* emails: choose it on validation, "
               "then read the test set once. A threshold tuned on test flatters the accuracy you report.",
    "top_down": "you scanned from the highest threshold down and stopped at the first that missed the target: "
                "the cascade's accuracy is not monotone in the threshold, so a lower threshold can pass again. "
                "Try every candidate from the lowest up and keep the first that passes.",
    "every_probability": "your threshold is not one of the student's top probabilities: the candidates are 0, "
                         "each distinct top probability probs.max(axis=1) on validation, and 1.01 (any other "
                         "number routes the emails exactly as the next top probability above it, so it only "
                         "blurs the threshold you report), not every probability in the table.",
    "not_lowest": "reaches the target on validation but is not the lowest that does: a higher threshold sends "
                  "more emails to the teacher and costs more for no required accuracy.",
    "no_fallback": "when no threshold reaches the target, fall back to 1.01 (every email to the teacher): "
                   "return (1.01, the teacher's test accuracy, 1.0) instead of failing or returning None.",
    "inverted": "the share is inverted: the teacher reads the emails whose student top probability is *below* "
                "the threshold.",
    "report": "apply the validation threshold to the test emails (student's answer where its top probability "
              ">= threshold, the teacher's elsewhere).",
    "other": "try 0, each distinct top probability of the student on validation, and 1.01, in increasing order; "
             "keep the first whose validation cascade accuracy is >= target_accuracy. The student answers an "
             "email when its top probability is >= the threshold; below it, the teacher's answer is used.",
}

# (validation seed, test seed, target): on this validation set the accuracy dips and recovers (a top-down scan
# stops too high), a probability that is not a top one passes below the lowest top one, and the test set's own
# lowest threshold differs; then a target that not even the teacher alone reaches.
_CASCADE_CASES = [(32, 132, 0.8), (32, 132, 0.995)]


@learner_check("cascade_on_test", solution=answers.cascade_on_test)
def check_cascade_on_test(fn: Callable[..., tuple]) -> None:
    """Check ``fn(validation, test, target_accuracy)``: threshold chosen on validation, reported on test
    (exercise 5.3); 1.01 (all to the teacher) when no threshold reaches the target."""
    for val_seed, test_seed, target in _CASCADE_CASES:
        validation, test = _split(val_seed), _split(test_seed)
        threshold = _lowest_threshold(validation, target)
        expected_acc, expected_share = _cascade(test, threshold)
        copies = [{k: v.copy() for k, v in split.items()} for split in (validation, test)]
        what = f"cascade_on_test with target_accuracy={target}"
        unreachable = threshold == 1.01 and _cascade(validation, 1.01)[0] < target
        try:
            out = call_learner(fn, copies[0], copies[1], target)
        except AssertionError as exc:
            if unreachable:
                raise AssertionError(f"{what} (no threshold reaches it on validation): {exc} "
                                     f"{CASCADE_HINTS['no_fallback']}") from None
            raise
        if not isinstance(out, tuple) or len(out) != 3:
            raise AssertionError(f"{what}: cascade_on_test returned {type(out).__name__}; return a tuple "
                                 "(threshold, test_accuracy, test_share_to_teacher).")
        if out[0] is None and unreachable:
            raise AssertionError(f"{what}: the threshold is None. {CASCADE_HINTS['no_fallback']}")
        got = _float(out[0], "the threshold")
        if not math.isclose(got, threshold, abs_tol=1e-9):
            variants = {"on_test": _lowest_threshold(test, target), "top_down": _top_down_threshold(validation, target),
                        "every_probability": _lowest_threshold(validation, target, every_probability=True)}
            keys = [k for k, v in variants.items() if math.isclose(got, v, abs_tol=1e-9)]
            passing = [float(c) for c in _candidates(validation) if _cascade(validation, c)[0] >= target]
            if not keys and any(math.isclose(got, c, abs_tol=1e-9) for c in passing):
                keys = ["not_lowest"]
            if not keys and unreachable:
                keys = ["no_fallback"]
            raise AssertionError(f"{what}: threshold {got:.4f}, expected {threshold:.4f}: "
                                 + " ".join(CASCADE_HINTS[k] for k in (keys or ["other"])))
        acc, share = _float(out[1], "the test accuracy"), _float(out[2], "the test share to the teacher")
        if math.isclose(share, 1 - expected_share, abs_tol=1e-9) and not math.isclose(share, expected_share):
            raise AssertionError(f"{what}: {CASCADE_HINTS['inverted']}")
        if not (math.isclose(acc, expected_acc, abs_tol=1e-9) and math.isclose(share, expected_share, abs_tol=1e-9)):
            raise AssertionError(f"{what}: on test you report accuracy {acc:.4f} and share {share:.4f}, expected "
                                 f"{expected_acc:.4f} and {expected_share:.4f}: {CASCADE_HINTS['report']}")
