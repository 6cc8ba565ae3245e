"""Lesson 05's judging metrics (course_lib.evaluate), pinned against hand-worked cases and formulas written out here."""
import math

import matplotlib
import numpy as np
import pytest
import torch

from course_lib import evaluate, plots

matplotlib.use("Agg")


def rows_from(preds, confidences, num_classes=3):
    """Probabilities whose argmax is ``preds[i]`` with top probability ``confidences[i]``, the rest spread evenly."""
    probs = np.zeros((len(preds), num_classes))
    for i, (pred, conf) in enumerate(zip(preds, confidences)):
        probs[i] = (1 - conf) / (num_classes - 1)
        probs[i, pred] = conf
    return probs


# Argmax of A: [0, 2, 1, 1, 0]; of B: [0, 1, 2, 1, 2]. Agree on rows 0 and 3 (2/5); B's class is in A's
# top two on rows 0-3 (row 4: B says 2, A's top two are 0 and 3), so 4/5; in A's top three on all 5.
PROBS_A = np.array([[.5, .3, .1, .1], [.1, .2, .6, .1], [.2, .4, .3, .1], [.1, .5, .1, .3], [.4, .1, .2, .3]])
PROBS_B = np.array([[.7, .1, .1, .1], [.1, .6, .2, .1], [.1, .2, .6, .1], [.2, .5, .2, .1], [.1, .1, .5, .3]])

# The cascade case: 8 emails, 3 queues. Student right on 5 of 8, teacher on 6 of 8.
CONF = [0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.95]
STUDENT_RIGHT = np.array([1, 1, 0, 1, 0, 0, 1, 1], dtype=bool)
TEACHER_RIGHT = np.array([1, 0, 1, 1, 1, 1, 0, 1], dtype=bool)
LABELS = np.array([2, 0, 1, 1, 2, 0, 1, 2])
STUDENT = rows_from(np.where(STUDENT_RIGHT, LABELS, (LABELS + 1) % 3), CONF)
TEACHER = rows_from(np.where(TEACHER_RIGHT, LABELS, (LABELS + 2) % 3), [0.8] * 8)


def test_agreement_and_topk_agreement_hand_values():
    assert evaluate.agreement(PROBS_A, PROBS_B) == pytest.approx(0.4)
    assert evaluate.topk_agreement(PROBS_A, PROBS_B, 1) == pytest.approx(0.4)
    assert evaluate.topk_agreement(PROBS_A, PROBS_B, 2) == pytest.approx(0.8)
    assert evaluate.topk_agreement(PROBS_A, PROBS_B, 3) == pytest.approx(1.0)
    assert isinstance(evaluate.agreement(PROBS_A, PROBS_B), float)


def test_topk_agreement_ties_rank_like_argmax():
    a = np.array([[0.4, 0.4, 0.2], [0.1, 0.45, 0.45]])
    b = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert evaluate.topk_agreement(a, b, 1) == evaluate.agreement(a, b) == 0.0
    assert evaluate.topk_agreement(a, b, 2) == 1.0


@pytest.mark.parametrize("k", [0, 5, -1, 1.5, True])
def test_topk_agreement_rejects_k_out_of_range(k):
    with pytest.raises(ValueError, match="k must be"):
        evaluate.topk_agreement(PROBS_A, PROBS_B, k)


def test_confusion_matrix_hand_case_and_loop():
    labels = np.array([0, 0, 1, 2, 2, 2, 3])
    preds = np.array([0, 1, 1, 2, 0, 2, 2])
    expected = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 1, 0]])
    matrix = evaluate.confusion_matrix(labels, preds, 4)
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.dtype == np.int64
    wider = evaluate.confusion_matrix(labels, preds, 5)
    looped = np.zeros((5, 5), dtype=int)
    for true, pred in zip(labels, preds):
        looped[true, pred] += 1
    np.testing.assert_array_equal(wider, looped)
    # probabilities are argmaxed: the student's confusion on the cascade case
    np.testing.assert_array_equal(evaluate.confusion_matrix(LABELS, STUDENT, 3).sum(axis=1), np.bincount(LABELS))
    assert np.trace(evaluate.confusion_matrix(LABELS, STUDENT, 3)) == 5
    with pytest.raises(ValueError, match="preds"):
        evaluate.confusion_matrix(labels, np.array([0, 1, 1, 2, 0, 2, 7]), 4)


def test_disagreements_split_and_sorted_by_student_confidence():
    labels = np.array([0, 1, 2, 0, 2, 1, 0])
    student = rows_from([1, 1, 0, 0, 1, 0, 2], [0.6, 0.9, 0.8, 0.7, 0.95, 0.5, 0.4])
    teacher = rows_from([0, 2, 1, 0, 2, 0, 0], [0.7] * 7)
    split = evaluate.disagreements(student, teacher, labels)
    assert set(split) == {"student_only", "teacher_only", "both_wrong"}
    np.testing.assert_array_equal(split["student_only"], [4, 0, 6])   # confidences 0.95, 0.6, 0.4
    np.testing.assert_array_equal(split["teacher_only"], [1])
    np.testing.assert_array_equal(split["both_wrong"], [2])              # row 5 is a shared error: not listed
    together = np.sort(np.concatenate(list(split.values())))
    np.testing.assert_array_equal(together, np.flatnonzero(student.argmax(1) != teacher.argmax(1)))


def test_wilson_interval_against_the_formula_worked_by_hand():
    # 3 of 3 at 95%: z = 1.959964, z^2 = 3.841459; the lower bound reduces to n / (n + z^2) = 3 / 6.841459.
    low, high = evaluate.wilson_interval(3, 3)
    assert low == pytest.approx(3 / 6.841459, abs=1e-6) and high == 1.0
    # 7 of 10: centre (0.7 + 3.841459/20) / (1 + 0.3841459) = 0.644493;
    # half-width 1.959964 / 1.3841459 * sqrt(0.021 + 3.841459/400) = 0.247715.
    low, high = evaluate.wilson_interval(7, 10)
    assert low == pytest.approx(0.644493 - 0.247715, abs=1e-5)
    assert high == pytest.approx(0.644493 + 0.247715, abs=1e-5)
    # 0 of 5: upper bound z^2 / (n + z^2); a normal interval would be (0, 0).
    assert evaluate.wilson_interval(0, 5) == pytest.approx((0.0, 3.841459 / 8.841459), abs=1e-6)
    assert evaluate.wilson_interval(7, 10, confidence=0.9)[0] > evaluate.wilson_interval(7, 10)[0]


@pytest.mark.parametrize("successes, n", [(1, 0), (4, 3), (-1, 3), (1.5, 3)])
def test_wilson_interval_rejects_bad_counts(successes, n):
    with pytest.raises(ValueError):
        evaluate.wilson_interval(successes, n)


def correctness_probs(student_right, teacher_right, num_classes=3):
    labels = np.arange(len(student_right)) % num_classes
    student = rows_from(np.where(student_right, labels, (labels + 1) % num_classes), [0.7] * len(labels))
    teacher = rows_from(np.where(teacher_right, labels, (labels + 2) % num_classes), [0.7] * len(labels))
    return student, teacher, labels


@pytest.mark.parametrize("b, c, both_right, both_wrong, expected", [
    (5, 1, 9, 2, 2 * (1 + 6) / 2 ** 6),                         # C(6,0) + C(6,1) = 7
    (13, 4, 30, 3, 2 * (1 + 17 + 136 + 680 + 2380) / 2 ** 17),  # 0.0490417...
    (8, 0, 4, 0, 2 / 2 ** 8),
    (3, 3, 5, 1, 1.0),
    (0, 0, 6, 2, 1.0),
])
def test_mcnemar_exact_binomial(b, c, both_right, both_wrong, expected):
    student_right = [False] * b + [True] * c + [True] * both_right + [False] * both_wrong
    teacher_right = [True] * b + [False] * c + [True] * both_right + [False] * both_wrong
    result = evaluate.mcnemar(*correctness_probs(np.array(student_right), np.array(teacher_right)))
    assert result["student_only_errors"] == b and result["teacher_only_errors"] == c
    assert result["p_value"] == pytest.approx(expected, rel=1e-12)
    assert isinstance(result["p_value"], float)


def test_mcnemar_is_symmetric_in_who_errs():
    student, teacher, labels = correctness_probs(np.array([0, 0, 1, 1, 1], bool), np.array([1, 1, 0, 1, 1], bool))
    forward, backward = evaluate.mcnemar(student, teacher, labels), evaluate.mcnemar(teacher, student, labels)
    assert forward["p_value"] == backward["p_value"] == pytest.approx(2 * 4 / 8)
    assert (forward["student_only_errors"], forward["teacher_only_errors"]) == (2, 1)


def test_slice_metrics_small_slice_carries_its_interval():
    slices = ["refund", "billing", "refund", "fraud", "fraud", "fraud", "billing", "refund"]
    before = np.random.get_state()[1].copy()
    table = evaluate.slice_metrics(STUDENT, TEACHER, LABELS, slices, n_boot=500, seed=3)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    assert [row["name"] for row in table] == ["refund", "billing", "fraud"]
    refund = table[0]                                  # rows 0, 2, 7: student right 2, teacher right 3
    assert refund["n"] == 3
    assert refund["student_accuracy"] == pytest.approx(2 / 3)
    assert refund["student_ci"] == pytest.approx(evaluate.wilson_interval(2, 3))
    assert refund["teacher_accuracy"] == 1.0
    assert refund["teacher_ci"] == pytest.approx((3 / 6.841459, 1.0), abs=1e-6)
    assert refund["agreement"] == pytest.approx(2 / 3)
    assert refund["accuracy_gap"] == pytest.approx(1 / 3)
    low, high = refund["gap_ci"]
    assert 0.0 <= low <= 1 / 3 <= high <= 1.0
    again = evaluate.slice_metrics(STUDENT, TEACHER, LABELS, slices, n_boot=500, seed=3)
    assert again[2]["gap_ci"] == table[2]["gap_ci"]


def test_slice_metrics_overlapping_masks_and_bootstrap_width():
    gen = np.random.default_rng(11)
    n = 4000
    student_right, teacher_right = gen.random(n) < 0.86, gen.random(n) < 0.91
    student, teacher, labels = correctness_probs(student_right, teacher_right)
    long_rows = np.arange(n) < 1000
    table = evaluate.slice_metrics(student, teacher, labels, {"all": np.ones(n, bool), "long": long_rows,
                                                               "none": np.zeros(n, bool)})
    everything, long_slice, empty = table
    assert long_slice["n"] == 1000 and empty["n"] == 0 and math.isnan(empty["student_accuracy"])
    # The paired bootstrap's 95% width against the normal approximation for a mean of paired differences.
    diff = teacher_right.astype(float) - student_right.astype(float)
    expected_width = 2 * 1.959964 * diff.std(ddof=1) / math.sqrt(n)
    low, high = everything["gap_ci"]
    assert high - low == pytest.approx(expected_width, rel=0.15)
    assert low < diff.mean() < high
    same = evaluate.slice_metrics(student, student, labels, ["x"] * n, n_boot=50)[0]
    assert same["gap_ci"] == (0.0, 0.0) and same["agreement"] == 1.0


def test_slice_metrics_rejects_wrong_number_of_names():
    with pytest.raises(ValueError, match="one slice name per row"):
        evaluate.slice_metrics(STUDENT, TEACHER, LABELS, ["a"] * 7)


# ECE hand case, 5 bins. Top bin [0.8, 1.0]: confidences 1.0, 1.0, 0.9, right 2 of 3: |2/3 - 2.9/3| = 0.3.
# Bin [0.4, 0.6): four rows at 0.55, right 3 of 4: 0.2. Bin [0.6, 0.8): one row at 0.7, right: 0.3.
# Weighted by share: 3/8 * 0.3 + 4/8 * 0.2 + 1/8 * 0.3 = 0.25. (Unweighted mean over bins: 0.2667;
# dropping the two rows at exactly 1.0: 0.2.)
ECE_PROBS = np.array([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.55, 0.45], [0.55, 0.45], [0.45, 0.55],
                      [0.45, 0.55], [0.3, 0.7]])
ECE_LABELS = np.array([0, 1, 0, 0, 0, 1, 0, 1])


def test_expected_calibration_error_hand_case():
    assert evaluate.expected_calibration_error(ECE_PROBS, ECE_LABELS, n_bins=5) == pytest.approx(0.25)
    bins = evaluate.calibration_bins(ECE_PROBS, ECE_LABELS, n_bins=5)
    np.testing.assert_array_equal(bins["counts"], [0, 0, 4, 1, 3])
    assert bins["accuracy"][4] == pytest.approx(2 / 3) and bins["confidence"][4] == pytest.approx(2.9 / 3)
    unweighted = np.nanmean(np.abs(bins["accuracy"] - bins["confidence"]))
    assert unweighted == pytest.approx(0.8 / 3) and unweighted != pytest.approx(0.25)
    assert evaluate.expected_calibration_error(np.eye(3)[[0, 1, 2, 1]], [0, 1, 2, 1]) == 0.0


def test_ece_rejects_logits_and_bad_bins():
    with pytest.raises(ValueError, match="not the logits"):
        evaluate.expected_calibration_error(ECE_PROBS * 3, ECE_LABELS)
    with pytest.raises(ValueError, match="n_bins"):
        evaluate.expected_calibration_error(ECE_PROBS, ECE_LABELS, n_bins=0)


def test_reliability_diagram_returns_a_labelled_figure(monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("reliability_diagram called plt.show"))
    fig = plots.reliability_diagram(ECE_PROBS, ECE_LABELS, n_bins=5, title="student")
    ax = fig.axes[0]
    assert "ECE 0.250" in ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.patches) == 3                                    # three non-empty bins
    plt.close(fig)
    fig, given = plt.subplots()
    assert plots.reliability_diagram(ECE_PROBS, ECE_LABELS, ax=given) is fig
    plt.close(fig)


def synthetic_logits(temperature, n=20000, num_classes=5, seed=7):
    gen = np.random.default_rng(seed)
    logits = gen.normal(size=(n, num_classes)) * 3.0
    scaled = logits / temperature
    probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = (gen.random(n)[:, None] > probs.cumsum(axis=1)).sum(axis=1).clip(max=num_classes - 1)
    return logits, labels


@pytest.mark.parametrize("t, verdict", [(1.16, "over-confident"), (3.0, "over-confident"),
                                       (0.6, "under-confident"), (0.999, "under-confident"), (1.0, "calibrated")])
def test_confidence_verdict_reads_the_fitted_temperature(t, verdict):
    assert evaluate.confidence_verdict(t) == verdict


def test_confidence_verdict_matches_a_fitted_over_and_under_confident_model():
    # synthetic_logits(T): labels drawn from softmax(logits / T), so the logits need sharpening (T < 1) or flattening
    assert evaluate.confidence_verdict(evaluate.fit_temperature(*synthetic_logits(0.6))) == "under-confident"
    assert evaluate.confidence_verdict(evaluate.fit_temperature(*synthetic_logits(2.0))) == "over-confident"


def test_fit_temperature_recovers_a_known_temperature():
    logits, labels = synthetic_logits(2.5)
    fitted = evaluate.fit_temperature(logits, labels)
    assert isinstance(fitted, float)
    assert fitted == pytest.approx(2.5, abs=0.1)
    # Independent: the NLL written out, minimised on a grid.
    grid = np.linspace(2.0, 3.0, 401)
    nll = []
    for t in grid:
        scaled = logits / t
        log_z = np.log(np.exp(scaled - scaled.max(1, keepdims=True)).sum(1)) + scaled.max(1)
        nll.append(np.mean(log_z - scaled[np.arange(len(labels)), labels]))
    assert fitted == pytest.approx(grid[int(np.argmin(nll))], abs=0.005)
    assert evaluate.fit_temperature(*synthetic_logits(0.6)) == pytest.approx(0.6, abs=0.03)


def test_fit_temperature_ignores_global_state_and_bounds_separable_data():
    logits, labels = synthetic_logits(1.7, n=3000)
    np.random.seed(1)
    torch.manual_seed(1)
    first = evaluate.fit_temperature(logits, labels)
    np.random.seed(99)
    torch.manual_seed(99)
    assert evaluate.fit_temperature(torch.from_numpy(logits), torch.from_numpy(labels)) == first
    separable = np.eye(4)[[0, 1, 2, 3, 1]] * 5.0
    assert evaluate.fit_temperature(separable, [0, 1, 2, 3, 1]) == 0.01


def test_cascade_curve_hand_values():
    curve = evaluate.cascade_curve(STUDENT, TEACHER, LABELS, [0.0, 0.5, 0.65, 0.75, 1.01],
                                   student_cost=0.002, teacher_cost=0.05)
    assert [row["threshold"] for row in curve] == [0.0, 0.5, 0.65, 0.75, 1.01]
    assert [row["accuracy"] for row in curve] == pytest.approx([5 / 8, 5 / 8, 6 / 8, 7 / 8, 6 / 8])
    assert [row["share_to_teacher"] for row in curve] == pytest.approx([0, 2 / 8, 4 / 8, 5 / 8, 1])
    assert curve[3]["cpu_s_per_million"] == pytest.approx(1e6 * (0.002 + 0.625 * 0.05))   # 33,250
    assert curve[0]["cpu_s_per_million"] == pytest.approx(2000.0)
    assert evaluate.cascade_curve(STUDENT, TEACHER, LABELS, [0.6])[0]["cpu_s_per_million"] is None
    with pytest.raises(ValueError, match="both"):
        evaluate.cascade_curve(STUDENT, TEACHER, LABELS, [0.6], student_cost=0.002)


def test_cascade_curve_matches_a_row_by_row_loop():
    gen = np.random.default_rng(5)
    student = gen.dirichlet(np.ones(4) * 0.7, size=300)
    teacher = gen.dirichlet(np.ones(4) * 0.7, size=300)
    labels = gen.integers(0, 4, size=300)
    thresholds = [0.3, 0.55, 0.8]
    for row, threshold in zip(evaluate.cascade_curve(student, teacher, labels, thresholds), thresholds):
        answers = [s.argmax() if s.max() >= threshold else t.argmax() for s, t in zip(student, teacher)]
        assert row["accuracy"] == pytest.approx(np.mean(np.array(answers) == labels))
        assert row["share_to_teacher"] == pytest.approx(np.mean(student.max(1) < threshold))


def test_choose_threshold_lowest_reaching_target_or_none():
    assert evaluate.choose_threshold(STUDENT, TEACHER, LABELS, 0.75) == pytest.approx(0.6)
    assert evaluate.choose_threshold(STUDENT, TEACHER, LABELS, 0.8) == pytest.approx(0.8)
    assert evaluate.choose_threshold(STUDENT, TEACHER, LABELS, 0.6) == 0.0
    assert evaluate.choose_threshold(STUDENT, TEACHER, LABELS, 0.9) is None
    assert evaluate.choose_threshold(STUDENT, TEACHER, LABELS, 0.8, thresholds=[0.9, 0.75, 0.7]) == 0.75


def plain(value):
    """Results as plain Python values, numpy arrays as lists, for an exact comparison."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value.tolist() if isinstance(value, np.ndarray) else value


def test_torch_and_numpy_inputs_agree_and_inputs_are_unchanged():
    arrays = (STUDENT.astype(np.float32), TEACHER.astype(np.float32), LABELS.copy())
    tensors = tuple(torch.from_numpy(array.copy()) for array in arrays)
    saved = [array.copy() for array in arrays], [tensor.clone() for tensor in tensors]
    slices = ["a", "b"] * 4
    calls = [
        lambda s, t, y: evaluate.agreement(s, t),
        lambda s, t, y: evaluate.topk_agreement(s, t, 2),
        lambda s, t, y: evaluate.confusion_matrix(y, s, 3),
        lambda s, t, y: evaluate.disagreements(s, t, y),
        lambda s, t, y: evaluate.mcnemar(s, t, y),
        lambda s, t, y: evaluate.calibration_bins(s, y, n_bins=4),
        lambda s, t, y: evaluate.expected_calibration_error(s, y, n_bins=4),
        lambda s, t, y: evaluate.fit_temperature(s * 4, y),
        lambda s, t, y: evaluate.cascade_curve(s, t, y, [0.0, 0.65, 1.01]),
        lambda s, t, y: evaluate.choose_threshold(s, t, y, 0.75),
        lambda s, t, y: evaluate.slice_metrics(s, t, y, slices, n_boot=100),
    ]
    for call in calls:
        from_numpy, from_torch = plain(call(*arrays)), plain(call(*tensors))
        assert repr(from_numpy) == repr(from_torch)
    for array, copy in zip(arrays, saved[0]):
        np.testing.assert_array_equal(array, copy)
    for tensor, copy in zip(tensors, saved[1]):
        assert torch.equal(tensor, copy)


@pytest.mark.parametrize("call", [
    lambda: evaluate.agreement(STUDENT, TEACHER[:5]),
    lambda: evaluate.agreement(STUDENT[0], TEACHER[0]),
    lambda: evaluate.disagreements(STUDENT, TEACHER, LABELS[:7]),
    lambda: evaluate.mcnemar(STUDENT, TEACHER, LABELS + 3),
    lambda: evaluate.cascade_curve(STUDENT, TEACHER, LABELS, []),
    lambda: evaluate.fit_temperature(STUDENT[:, 0], LABELS),
])
def test_clear_value_errors(call):
    with pytest.raises(ValueError):
        call()


def test_cascade_explorer_static_png_and_slider_redraws():
    """The slider starts on the chosen threshold, carries a PNG for front ends without widgets, and redraws."""
    import matplotlib.pyplot as plt

    student = rows_from([0, 1, 2, 0], [0.9, 0.5, 0.6, 0.95])
    teacher = rows_from([0, 1, 1, 0], [0.8, 0.8, 0.8, 0.8])
    curve = evaluate.cascade_curve(student, teacher, [0, 1, 1, 0], [0.0, 0.55, 0.7, 1.01])
    box = plots.cascade_explorer(curve, threshold=0.56, teacher_accuracy=1.0)
    slider, picture = box.children
    assert slider.value == 0.55                                  # the nearest threshold on the curve
    bundle = box._repr_mimebundle_()
    assert "image/png" in bundle and "application/vnd.jupyter.widget-view+json" in bundle
    before = picture.value
    slider.value = 1.01
    assert picture.value != before
    fig, ax = plt.subplots()
    plots.draw_cascade(ax, curve, 0.55, 1.0)
    assert ax.get_xlabel() == "emails the teacher reads (%)" and ax.get_ylabel() == "cascade accuracy (%)"
    assert ax.get_title() and "threshold 0.550" in [t.get_text() for t in ax.get_legend().get_texts()][-1]
    plt.close(fig)
