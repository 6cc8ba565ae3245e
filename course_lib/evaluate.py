"""Metrics and statistics: accuracy and error counts (lesson 00), judging a student beside its teacher (lesson 05).

Every function here takes numpy arrays or torch tensors alike (logits or probabilities ``(N, C)``,
labels ``(N,)``), never modifies them, and returns plain Python numbers or numpy arrays:
``accuracy``, ``error_count``, ``agreement``, ``topk_agreement``, ``confusion_matrix``,
``disagreements``, ``wilson_interval``, ``slice_metrics``, ``mcnemar``, ``calibration_bins``,
``expected_calibration_error``, ``fit_temperature``, ``confidence_verdict``, ``cascade_curve``,
``choose_threshold``, and over seeds ``mean_std`` and ``spread`` (lessons 03 and 07).
(``accuracy`` and ``error_count`` also take ``(model, x, labels)``: the logits then come from
:func:`course_lib.models.predict_logits`.) Bad inputs (labels outside the classes, no rows, NaN,
rows that should be probabilities but do not sum to 1) are a ``ValueError`` saying what to pass
instead, never a number. Randomness (the paired bootstrap) comes from a local
``numpy.random.Generator``, never the global RNG.

Predictions live beside the models (``models.predict_logits``), timing in :mod:`course_lib.timing`,
the reliability diagram in :mod:`course_lib.plots`.
"""
from __future__ import annotations

import math
import statistics
from typing import Mapping, Optional

import numpy as np
from scipy import stats
import torch
from torch import nn

from .models import predict_logits


def _logits_and_labels(logits_or_model, x_or_labels, labels):
    if isinstance(logits_or_model, nn.Module):
        if labels is None:
            raise TypeError("with a model, call accuracy(model, x, labels)")
        return predict_logits(logits_or_model, x_or_labels), labels
    return logits_or_model, x_or_labels


def error_count(logits_or_model, x_or_labels, labels=None) -> int:
    """Number of wrong argmax predictions: ``error_count(logits, labels)`` or ``error_count(model, x, labels)``.

    ``logits`` (N, C) and ``labels`` (N,) may be torch tensors or numpy arrays, alike. Refused
    with a ``ValueError``: no rows, NaN or infinite logits, labels outside ``[0, C)`` (a label 9
    for 3 classes would otherwise count as one more error, not as a mistake in the labels).
    """
    logits, labels = _logits_and_labels(logits_or_model, x_or_labels, labels)
    scores = _check_probs(logits, "logits")
    label_array = _check_labels(labels, len(scores), scores.shape[1])
    return int(np.sum(scores.argmax(axis=1) != label_array))


def accuracy(logits_or_model, x_or_labels, labels=None) -> float:
    """Share of right argmax predictions in [0, 1]: ``accuracy(logits, labels)`` or ``accuracy(model, x, labels)``.

    Takes tensors or numpy arrays alike and refuses what :func:`error_count` refuses (0 rows included).
    Computed as right answers / rows (one rounding): exactly ``np.mean(logits.argmax(1) == labels)``.
    """
    logits, labels = _logits_and_labels(logits_or_model, x_or_labels, labels)
    return (len(labels) - error_count(logits, labels)) / len(labels)


# --- Judging a student beside its teacher (introduced in lesson 05) ------------------------------
# Validation lives in the small wrappers below; each metric's maths is a few numpy lines.

def _as_array(x, name: str) -> np.ndarray:
    """``x`` (numpy array, torch tensor or sequence) as a numpy array; floats become float64. Never a write target."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x
        return x.numpy()
    array = np.asarray(x)
    if array.dtype == object:
        raise ValueError(f"{name} must be numeric, got an array of Python objects")
    return array.astype(np.float64) if np.issubdtype(array.dtype, np.floating) else array


#: How far a row of probabilities may sum from 1: float32 softmax rows are off by about 1e-7 per class.
ROW_SUM_ATOL = 1e-3


def _sums_to_one(array: np.ndarray) -> bool:
    """True when every row of ``array`` sums to 1 within :data:`ROW_SUM_ATOL`."""
    return bool(np.all(np.abs(array.sum(axis=1) - 1) <= ROW_SUM_ATOL))


def _check_probs(probs, name: str = "probs", probabilities: bool = False) -> np.ndarray:
    """``probs`` as an (N >= 1, C >= 2) numpy array of finite numbers (floats as float64), else a ``ValueError``.

    With ``probabilities``, each value must also lie in [0, 1] and each row sum to 1 (within
    :data:`ROW_SUM_ATOL`): logits, or rows that were sliced or renormalised wrongly, are refused.
    """
    array = _as_array(probs, name)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(f"{name} must have shape (N, num_classes) with N >= 1 and num_classes >= 2, "
                         f"got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
        raise ValueError(f"{name} must hold finite numbers (no NaN or inf): check the model's outputs")
    if probabilities and (array.min() < -1e-6 or array.max() > 1 + 1e-6):
        raise ValueError(f"{name} must be probabilities in [0, 1], got values in [{array.min():.3g}, "
                         f"{array.max():.3g}]: pass softmax(logits), not the logits")
    if probabilities and not _sums_to_one(array):
        sums = array.sum(axis=1)
        raise ValueError(f"{name} must sum to 1 along each row (got row sums in [{sums.min():.3g}, "
                         f"{sums.max():.3g}]): pass softmax(logits)")
    return array


def _check_labels(labels, n: int, num_classes: int, name: str = "labels") -> np.ndarray:
    array = _as_array(labels, name)
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"{name} must have shape ({n},) to match the other inputs, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
        if not np.issubdtype(array.dtype, np.number) or not np.array_equal(array, np.round(array)):
            raise ValueError(f"{name} must be integer class indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if n and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"{name} must be class indices in [0, {num_classes - 1}] ({num_classes} classes), got values "
                         f"in [{array.min()}, {array.max()}]: pass labels numbered like the model's outputs")
    return array


def _check_pair(student_probs, teacher_probs, labels=None, probabilities: bool = False,
                names: tuple[str, str] = ("student_probs", "teacher_probs")):
    """Validated ``(student, teacher[, labels])`` numpy arrays of matching shapes."""
    student = _check_probs(student_probs, names[0], probabilities)
    teacher = _check_probs(teacher_probs, names[1], probabilities)
    if student.shape != teacher.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {student.shape} and {teacher.shape}")
    if labels is None:
        return student, teacher
    return student, teacher, _check_labels(labels, len(student), student.shape[1])


def agreement(probs_a, probs_b) -> float:
    """Share of rows on which two models' argmax predictions agree, in [0, 1] (introduced in lesson 05).

    Agreement with the teacher is not accuracy: a student can agree 97% of the time yet
    differ on exactly the rows that matter (edge cases), so report both, per slice.
    Args: probs_a, probs_b: (N, C) probabilities or logits (only the argmax is used).
    """
    a, b = _check_pair(probs_a, probs_b, names=("probs_a", "probs_b"))
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def topk_agreement(probs_a, probs_b, k: int) -> float:
    """Share of rows where ``probs_b``'s argmax is among the ``k`` largest of ``probs_a`` (introduced in lesson 05).

    Not symmetric: ``probs_a`` ranks (usually the student), ``probs_b`` picks one class (the
    teacher). Ties rank the lower class index first, as ``argmax`` does, so ``k=1`` equals
    :func:`agreement`. ``k`` must lie in [1, C].
    """
    a, b = _check_pair(probs_a, probs_b, names=("probs_a", "probs_b"))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= a.shape[1]:
        raise ValueError(f"k must be an integer in [1, {a.shape[1]}] (the number of classes), got {k!r}")
    top_k = np.argsort(-a, axis=1, kind="stable")[:, :k]
    return float(np.mean((top_k == b.argmax(axis=1)[:, None]).any(axis=1)))


def confusion_matrix(labels, preds, num_classes: int) -> np.ndarray:
    """Counts of (true label, prediction) pairs: a ``(num_classes, num_classes)`` int64 array (introduced in lesson 05).

    Rows are the true label, columns the prediction, so row ``i`` sums to the number of
    rows labelled ``i`` and the diagonal holds the right answers.
    Args:
        labels: (N,) true classes.
        preds: (N,) predicted classes, or (N, C) probabilities/logits whose argmax is taken.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    pred_array = _as_array(preds, "preds")
    if pred_array.ndim == 2:
        if pred_array.shape[1] != num_classes:
            raise ValueError(f"preds has {pred_array.shape[1]} columns but num_classes is {num_classes}")
        pred_array = pred_array.argmax(axis=1)
    pred_array = _check_labels(pred_array, len(pred_array), num_classes, "preds")
    label_array = _check_labels(labels, len(pred_array), num_classes, "labels")
    flat = np.bincount(label_array * num_classes + pred_array, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def disagreements(student_probs, teacher_probs, labels) -> dict[str, np.ndarray]:
    """The rows where student and teacher predict different classes, split by who is wrong (introduced in lesson 05).

    Returns a dict of int64 row-index arrays, which together are exactly the disagreeing rows:
        ``"student_only"``: the student is wrong, the teacher right (what distillation lost);
        ``"teacher_only"``: the teacher is wrong, the student right;
        ``"both_wrong"``: both wrong, with different answers.
    Each array is sorted by the student's top probability, most confident first (ties by
    row index), because a *confident* student error is the one a cascade cannot catch.
    Shared errors (both wrong with the same answer) are not disagreements; find them with
    ``(s == t) & (s != labels)`` on the argmaxes.
    """
    student, teacher, label_array = _check_pair(student_probs, teacher_probs, labels)
    s_pred, t_pred = student.argmax(axis=1), teacher.argmax(axis=1)
    s_right, t_right = s_pred == label_array, t_pred == label_array
    differ = s_pred != t_pred
    confidence = student.max(axis=1)

    def by_confidence(mask: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(mask)
        return rows[np.argsort(-confidence[rows], kind="stable")].astype(np.int64)

    return {"student_only": by_confidence(differ & ~s_right & t_right),
            "teacher_only": by_confidence(differ & s_right & ~t_right),
            "both_wrong": by_confidence(differ & ~s_right & ~t_right)}


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for a proportion ``successes / n`` (introduced in lesson 05).

    The usual normal interval ``p +/- z sqrt(p(1-p)/n)`` collapses to a width of 0 when a
    small slice is all right (3/3 gives "100% +/- 0") and can leave [0, 1]; Wilson's stays
    inside [0, 1] and stays honestly wide for small n (3/3 gives about 0.44 to 1.00).
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(successes) != successes or not 0 <= successes <= n:
        raise ValueError(f"successes must be an integer in [0, n={n}], got {successes!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _paired_bootstrap_gap(teacher_right: np.ndarray, student_right: np.ndarray, n_boot: int,
                          seed: int, confidence: float) -> tuple[float, float]:
    """Percentile interval of mean(teacher_right) - mean(student_right), resampling *rows* (so pairs stay together)."""
    rng = np.random.default_rng(seed)
    diff = teacher_right.astype(np.float64) - student_right.astype(np.float64)
    rows = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    gaps = diff[rows].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(gaps, [tail, 100 - tail])
    return float(low), float(high)


def _slice_masks(slices, n: int) -> dict:
    if isinstance(slices, Mapping):
        masks = {}
        for name, mask in slices.items():
            mask = _as_array(mask, f"slices[{name!r}]")
            if mask.shape != (n,) or mask.dtype != np.bool_:
                raise ValueError(f"slices[{name!r}] must be a boolean mask of shape ({n},), "
                                 f"got dtype {mask.dtype} and shape {mask.shape}")
            masks[name] = mask
        return masks
    names = list(slices.tolist() if isinstance(slices, (np.ndarray, torch.Tensor)) else slices)
    if len(names) != n:
        raise ValueError(f"slices must give one slice name per row ({n}), got {len(names)}")
    order = list(dict.fromkeys(names))          # first-appearance order, any hashable names
    return {name: np.array([value == name for value in names], dtype=bool) for name in order}


def slice_metrics(student_probs, teacher_probs, labels, slices, *, n_boot: int = 2000, seed: int = 0,
                  confidence: float = 0.95) -> list[dict]:
    """Accuracy and agreement of student and teacher on each slice, with intervals (introduced in lesson 05).

    Args:
        student_probs, teacher_probs: (N, C) probabilities on the same rows.
        labels: (N,) true classes.
        slices: one slice name per row (e.g. the queue, an edge-case tag, a length band), or
            a dict ``name -> (N,) boolean mask`` when slices overlap.
        n_boot: paired bootstrap resamples for the accuracy gap; seed: its local generator's
            seed, reset for every slice so a slice's interval does not depend on the others.
    Returns:
        One dict per slice (first-appearance order, or the dict's order) with ``name``, ``n``,
        ``student_accuracy``, ``student_ci``, ``teacher_accuracy``, ``teacher_ci``,
        ``agreement``, ``agreement_ci`` (Wilson intervals, see :func:`wilson_interval`),
        ``accuracy_gap`` (teacher minus student) and ``gap_ci`` (a paired bootstrap: rows are
        resampled with both models' answers together, because the two accuracies are measured
        on the same rows and are not independent). An empty slice has ``n`` 0 and NaNs.
        A slice of 3 rows is reported like any other, with an interval as wide as it deserves.
    """
    student, teacher, label_array = _check_pair(student_probs, teacher_probs, labels)
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    s_right = student.argmax(axis=1) == label_array
    t_right = teacher.argmax(axis=1) == label_array
    agree = student.argmax(axis=1) == teacher.argmax(axis=1)
    rows = []
    for name, mask in _slice_masks(slices, len(label_array)).items():
        n = int(mask.sum())
        if n == 0:
            nan, nan_ci = float("nan"), (float("nan"), float("nan"))
            rows.append({"name": name, "n": 0, "student_accuracy": nan, "student_ci": nan_ci,
                         "teacher_accuracy": nan, "teacher_ci": nan_ci, "agreement": nan,
                         "agreement_ci": nan_ci, "accuracy_gap": nan, "gap_ci": nan_ci})
            continue
        s, t, a = int(s_right[mask].sum()), int(t_right[mask].sum()), int(agree[mask].sum())
        rows.append({"name": name, "n": n,
                     "student_accuracy": s / n, "student_ci": wilson_interval(s, n, confidence),
                     "teacher_accuracy": t / n, "teacher_ci": wilson_interval(t, n, confidence),
                     "agreement": a / n, "agreement_ci": wilson_interval(a, n, confidence),
                     "accuracy_gap": (t - s) / n,
                     "gap_ci": _paired_bootstrap_gap(t_right[mask], s_right[mask], int(n_boot), seed, confidence)})
    return rows


def mcnemar(student_probs, teacher_probs, labels) -> dict:
    """Exact McNemar test: do student and teacher err on the same rows at different rates? (introduced in lesson 05)

    Only discordant rows carry evidence: ``student_only_errors`` (student wrong, teacher
    right) and ``teacher_only_errors``. Under "equally good", each discordant row is a fair
    coin, so the two-sided p-value is ``min(1, 2 * P(Binomial(b + c, 1/2) <= min(b, c)))``,
    computed exactly (the chi-squared approximation is poor for the few discordant rows a
    good student leaves). Comparing two accuracies as if independent ignores the pairing.
    Returns:
        ``{"student_only_errors": int, "teacher_only_errors": int, "p_value": float}``.
    """
    student, teacher, label_array = _check_pair(student_probs, teacher_probs, labels)
    s_right = student.argmax(axis=1) == label_array
    t_right = teacher.argmax(axis=1) == label_array
    b, c = int(np.sum(~s_right & t_right)), int(np.sum(s_right & ~t_right))
    n = b + c
    term = tail = 1                              # C(n, 0); exact integers, then one division
    for i in range(1, min(b, c) + 1):
        term = term * (n - i + 1) // i           # C(n, i) from C(n, i - 1)
        tail += term
    return {"student_only_errors": b, "teacher_only_errors": c, "p_value": min(1.0, 2 * tail / 2 ** n)}


def calibration_bins(probs, labels, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Rows binned by their top probability: the numbers behind ECE and the reliability diagram (lesson 05).

    Bins are equal-width on [0, 1]: ``[e_i, e_{i+1})``, except the top bin, which is closed
    and so includes confidence 1.0 (a binning that forgets this drops the most confident rows,
    often the most over-confident ones).
    ``probs`` must be probabilities: values in [0, 1], rows summing to 1 (within
    :data:`ROW_SUM_ATOL`, so float32 softmax rows pass); logits or unnormalised rows are a ``ValueError``.
    Returns:
        ``edges`` (n_bins + 1,), ``counts`` (n_bins,) int, and per bin ``accuracy`` and mean
        ``confidence`` (NaN in an empty bin).
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    array = _check_probs(probs, "probs", probabilities=True)
    label_array = _check_labels(labels, len(array), array.shape[1])
    conf = array.max(axis=1)
    right = (array.argmax(axis=1) == label_array).astype(np.float64)
    edges = np.arange(n_bins + 1) / n_bins  # k / n exactly rounded: linspace's 0.7000000000000001 would put 0.7 in bin 6
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(which, weights=right, minlength=n_bins) / counts
        mean_conf = np.bincount(which, weights=conf, minlength=n_bins) / counts
    return {"edges": edges, "counts": counts.astype(np.int64), "accuracy": acc, "confidence": mean_conf}


def expected_calibration_error(probs, labels, n_bins: int = 15) -> float:
    """Expected calibration error: sum over bins of (share of rows) * |accuracy - mean confidence| (lesson 05).

    Binned as :func:`calibration_bins` (the top bin includes confidence 1.0); empty bins are
    skipped. Each bin is weighted by its share of rows: an unweighted mean over bins lets a
    bin of 2 rows count as much as a bin of 2000. ECE depends on ``n_bins``; quote it with it.
    Refuses what :func:`calibration_bins` refuses (rows that are not probabilities summing to 1).
    """
    bins = calibration_bins(probs, labels, n_bins)
    full = bins["counts"] > 0
    gaps = np.abs(bins["accuracy"][full] - bins["confidence"][full])
    return float(np.sum(bins["counts"][full] / bins["counts"].sum() * gaps))


def fit_temperature(logits, labels, bounds: tuple[float, float] = (0.01, 100.0)) -> float:
    """Temperature ``T`` minimising the NLL of softmax(logits / T) on the given (validation) rows (lesson 05).

    Temperature scaling fixes over- or under-confidence without changing a single argmax.
    Fit it on validation data, never on the test rows you then report ECE on. The NLL is
    convex in ``1 / T``, so its derivative changes sign once: we bisect on that sign in
    float64 numpy, with no optimiser state, RNG or thread count involved (same answer every
    run). If the optimum lies outside ``bounds`` (e.g. separable data, where the NLL keeps
    falling as T -> 0), the nearer bound is returned.
    Args: logits: (N, C) raw scores (not probabilities); labels: (N,).
    Rows that look like probabilities (every value in [0, 1], each row summing to 1) are a
    ``ValueError``: on them the NLL keeps falling as T -> 0 and the lower bound would come back.
    """
    z = _check_probs(logits, "logits").astype(np.float64)
    if z.min() >= 0 and z.max() <= 1 and _sums_to_one(z):
        raise ValueError("fit_temperature takes logits; these rows look like probabilities (each in [0, 1], "
                         "summing to 1): pass the logits")
    label_array = _check_labels(labels, len(z), z.shape[1])
    low, high = float(bounds[0]), float(bounds[1])
    if not 0 < low < high or not math.isfinite(high):
        raise ValueError(f"bounds must satisfy 0 < low < high < inf, got {bounds!r}")
    z_label = z[np.arange(len(z)), label_array]

    def slope(log_t: float) -> float:       # d NLL / d(1/T): expected logit minus the label's logit
        scaled = z / math.exp(log_t)
        p = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return float(np.mean((p * z).sum(axis=1) - z_label))

    lo, hi = math.log(low), math.log(high)   # slope in 1/T rises with 1/T, so it falls as log T rises
    if slope(lo) <= 0:
        return low
    if slope(hi) >= 0:
        return high
    for _ in range(100):
        mid = (lo + hi) / 2
        if slope(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return float(math.exp((lo + hi) / 2))


def confidence_verdict(fitted_temperature: float) -> str:
    """What a :func:`fit_temperature` result says (lessons 04 and 05): "over-confident" above 1 (the rows had to
    be flattened), "under-confident" below 1 (sharpened), "calibrated" at exactly 1. It is the log-loss's verdict:
    a model's average confidence can sit on the other side of its accuracy. A temperature that is not a positive,
    finite number (NaN from a failed fit, 0, a negative one) is a ``ValueError``, never a verdict."""
    if not (isinstance(fitted_temperature, (int, float, np.number)) and not isinstance(fitted_temperature, bool)
            and 0 < fitted_temperature < math.inf):
        raise ValueError(f"fitted_temperature must be a positive finite number (what fit_temperature returns), "
                         f"got {fitted_temperature!r}")
    if fitted_temperature > 1:
        return "over-confident"
    if fitted_temperature < 1:
        return "under-confident"
    return "calibrated"

def cascade_curve(student_probs, teacher_probs, labels, thresholds, *, student_cost: Optional[float] = None,
                  teacher_cost: Optional[float] = None) -> list[dict]:
    """Accuracy and share sent to the teacher when the student defers below a confidence threshold (lesson 05).

    The student runs on every row and answers when its top probability is ``>= threshold``;
    otherwise the row goes to the teacher. Threshold 0 means the student answers all, any
    threshold above 1 sends all to the teacher.
    Args:
        student_cost, teacher_cost: CPU-seconds per email; give both or neither. The student's
            cost is paid on every row, the teacher's only on the deferred share.
    Both models' rows must be probabilities (values in [0, 1], each row summing to 1 within
    :data:`ROW_SUM_ATOL`): a student's confidence means nothing on logits or unnormalised rows,
    so those are a ``ValueError`` saying to pass softmax(logits).
    Returns:
        One dict per threshold (in the given order): ``threshold``, ``accuracy``,
        ``share_to_teacher``, and ``cpu_s_per_million`` = 1e6 * (student_cost + share *
        teacher_cost) CPU-seconds per million emails (None without costs).
    """
    student, teacher, label_array = _check_pair(student_probs, teacher_probs, labels, probabilities=True)
    grid = _as_array(thresholds, "thresholds").astype(np.float64).reshape(-1)
    if grid.size == 0 or not np.isfinite(grid).all():
        raise ValueError("thresholds must be a non-empty sequence of finite numbers")
    if (student_cost is None) != (teacher_cost is None):
        raise ValueError("give both student_cost and teacher_cost (CPU-seconds per email), or neither")
    if student_cost is not None and (student_cost < 0 or teacher_cost < 0):
        raise ValueError("costs must be >= 0 CPU-seconds per email")
    conf = student.max(axis=1)
    order = np.argsort(conf, kind="stable")
    s_right = (student.argmax(axis=1) == label_array)[order]
    t_right = (teacher.argmax(axis=1) == label_array)[order]
    # k rows with confidence < threshold go to the teacher: those are the first k in confidence order
    deferred = np.searchsorted(conf[order], grid, side="left")
    t_cum = np.concatenate([[0], np.cumsum(t_right)])
    s_cum = np.concatenate([[0], np.cumsum(s_right)])
    n = len(label_array)
    rows = []
    for threshold, k in zip(grid, deferred):
        share = k / n
        cost = None if student_cost is None else 1e6 * (student_cost + share * teacher_cost)
        rows.append({"threshold": float(threshold), "accuracy": float((t_cum[k] + s_cum[n] - s_cum[k]) / n),
                     "share_to_teacher": float(share), "cpu_s_per_million": cost})
    return rows


def choose_threshold(student_probs, teacher_probs, labels, target_accuracy: float,
                     thresholds=None) -> Optional[float]:
    """The lowest threshold (so the smallest share sent to the teacher) whose cascade accuracy >= target (lesson 05).

    Choose it on validation rows, then report the cascade on test rows: picked on test,
    the accuracy is flattered. ``thresholds`` defaults to every distinct outcome: 0 (student
    answers all), each distinct student top probability, and 1.01 (teacher answers all).
    Accuracy is not monotone in the threshold, so every candidate is checked.
    Both models' rows must be probabilities (see :func:`cascade_curve`) and ``target_accuracy``
    a number in [0, 1] (not a percentage, not NaN): anything else is a ``ValueError``.
    Returns:
        The threshold as a float, or None when no threshold reaches the target (not even
        sending everything to the teacher): lower the target or improve the models.
    """
    if isinstance(target_accuracy, bool) or not isinstance(target_accuracy, (int, float, np.number)) \
            or not 0 <= target_accuracy <= 1:
        raise ValueError(f"target_accuracy must be a share in [0, 1] (0.95, not 95), got {target_accuracy!r}")
    student = _check_probs(student_probs, "student_probs", probabilities=True)
    if thresholds is None:
        thresholds = np.concatenate([[0.0], np.unique(student.max(axis=1)), [1.01]])
    curve = cascade_curve(student_probs, teacher_probs, labels, thresholds)
    passing = [row["threshold"] for row in curve if row["accuracy"] >= target_accuracy]
    return min(passing) if passing else None


# ----------------------------------------------------------------------------- spread over seeds (lessons 03 and 07)
def _seed_values(values, name: str) -> list[float]:
    """``values`` (a list, array or tensor of numbers, one per run) as Python floats; ValueError if empty or not finite."""
    array = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} expects a non-empty 1-D list of numbers (one per seed), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: the values contain NaN or inf ({array.tolist()}): a run failed; look at it first")
    return [float(v) for v in array]


def spread(values) -> float:
    """Sample standard deviation (n - 1 in the denominator) of one result over seeds; 0.0 for a single run.

    Args:
        values: one number per seed (a list, NumPy array or tensor), e.g. test accuracies in percent.

    Introduced in lesson 03; lesson 07 uses it too. ``statistics.stdev`` underneath, exactly.
    """
    values = _seed_values(values, "spread")
    return statistics.stdev(values) if len(values) > 1 else 0.0


def mean_std(values) -> tuple[float, float]:
    """``(mean, spread)`` of one result over seeds: the mean and the sample standard deviation (0.0 for one run).

    Args:
        values: one number per seed (a list, NumPy array or tensor); scale them first to report in
            percent (``mean_std([100 * a for a in accuracies])``).

    Introduced in lesson 03; lesson 07 uses it too.
    """
    return statistics.mean(_seed_values(values, "mean_std")), spread(values)


def paired_comparison(a, b, confidence: float = 0.95) -> dict:
    """Is method A better than method B? Paired over seeds: the same seeds (initialisations, data order) for both.

    Args:
        a, b: one score per seed for each method, in the same seed order (e.g. mean exact match over some lengths).
    Returns:
        ``{"mean", "low", "high", "significant", "seeds"}``: the mean difference a - b, its Student-t interval at
        ``confidence`` over the per-seed differences, and whether that interval excludes 0. Pairing removes what
        a seed does to both methods alike, so a difference is judged against how much it varies from seed to
        seed, not against how much each method varies. With one seed there is no interval (NaN, not significant).
    """
    a, b = _seed_values(a, "a"), _seed_values(b, "b")
    if len(a) != len(b):
        raise ValueError(f"paired scores need one per seed for both methods, got {len(a)} and {len(b)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean = float(diffs.mean())
    if len(diffs) < 2:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "significant": False, "seeds": len(diffs)}
    half = float(stats.t.ppf(0.5 + confidence / 2, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs)))
    low, high = mean - half, mean + half
    return {"mean": mean, "low": low, "high": high, "significant": bool(low > 0 or high < 0), "seeds": len(diffs)}
