"""Bad inputs to the functions an engineer copies give a clear ValueError, never a silent number (issue 23).

Each test below was run against the code before the fix and failed there: the function returned a
number (or None, or "calibrated"), or raised a raw error from inside numpy, statistics, torch or
safetensors. Valid inputs near the edges (float32 softmax rows, numpy instead of tensors) still pass,
with the same numbers.
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import compress, emails, evaluate, losses, timing, train
from course_lib.router import NgramStudent

LOGITS = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 3.0], [0.5, 0.2, 0.1]])
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
LABELS = np.array([0, 1, 1, 0])           # argmax is [0, 1, 2, 0]: one error, accuracy 3/4
both_kinds = pytest.mark.parametrize("kind", [np.asarray, torch.as_tensor], ids=["numpy", "torch"])


# --- error_count / accuracy ---------------------------------------------------------------------------
@both_kinds
@pytest.mark.parametrize("bad_label", [9, -1, 3])
@pytest.mark.parametrize("metric", [evaluate.error_count, evaluate.accuracy])
def test_labels_outside_the_classes_are_refused(metric, bad_label, kind):
    labels = LABELS.copy()
    labels[1] = bad_label
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 2\] \(3 classes\)"):
        metric(kind(LOGITS), kind(labels))


@both_kinds
@pytest.mark.parametrize("metric", [evaluate.error_count, evaluate.accuracy])
def test_no_rows_is_a_value_error(metric, kind):
    with pytest.raises(ValueError, match=r"N >= 1.*got shape \(0, 3\)"):
        metric(kind(np.zeros((0, 3))), kind(np.zeros(0, dtype=np.int64)))


@pytest.mark.parametrize("metric", [evaluate.error_count, evaluate.accuracy])
def test_nan_logits_are_refused(metric):
    logits = torch.tensor(LOGITS)
    logits[2, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        metric(logits, torch.as_tensor(LABELS))


@pytest.mark.parametrize("logits_kind", [np.asarray, torch.as_tensor, lambda a: torch.as_tensor(a, dtype=torch.float32)])
@pytest.mark.parametrize("labels_kind", [np.asarray, torch.as_tensor, list])
def test_accuracy_and_error_count_take_numpy_or_tensors_alike(logits_kind, labels_kind):
    """One error in four, written out: the same numbers whatever the inputs are made of."""
    logits, labels = logits_kind(LOGITS), labels_kind(LABELS)
    expected_errors = int(np.sum(LOGITS.argmax(axis=1) != LABELS))
    assert expected_errors == 1
    assert evaluate.error_count(logits, labels) == expected_errors
    assert evaluate.accuracy(logits, labels) == 1.0 - expected_errors / len(LABELS)
    assert isinstance(evaluate.error_count(logits, labels), int)
    assert isinstance(evaluate.accuracy(logits, labels), float)


def test_numpy_and_tensor_accuracy_agree_on_many_rows_and_ties():
    gen = np.random.default_rng(0)
    logits = gen.integers(0, 3, size=(500, 10)).astype(np.float32)   # many ties: argmax picks the first
    labels = gen.integers(0, 10, size=500)
    from_torch = evaluate.accuracy(torch.from_numpy(logits), torch.from_numpy(labels))
    assert evaluate.accuracy(logits, labels) == from_torch
    assert evaluate.error_count(logits, labels) == int((torch.from_numpy(logits).argmax(1) != torch.from_numpy(labels)).sum())


def test_accuracy_of_a_model_still_takes_tensors():
    model = nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
        model.bias.zero_()
    x = torch.tensor(LOGITS, dtype=torch.float32)
    assert evaluate.accuracy(model, x, torch.as_tensor(LABELS)) == 0.75
    assert evaluate.error_count(model, x, LABELS) == 1


# --- quartiles / confidence_verdict -----------------------------------------------------------------
@pytest.mark.parametrize("values, match", [([], "at least one value"), ((), "at least one value"),
                                           (np.array([]), "at least one value"),
                                           ([1.0, float("nan"), 3.0], "finite"), ([float("nan")], "finite"),
                                           (np.array([1.0, np.inf]), "finite")])
def test_quartiles_refuses_no_values_and_nan(values, match):
    with pytest.raises(ValueError, match=match):
        timing.quartiles(values)


def test_quartiles_of_valid_values_unchanged():
    assert timing.quartiles([4.0]) == (4.0, 4.0, 4.0)
    values = [3.0, 1.0, 2.0, 10.0, 4.0]
    assert timing.quartiles(values) == pytest.approx(tuple(np.quantile(values, [0.25, 0.5, 0.75])))


@pytest.mark.parametrize("temperature", [float("nan"), np.nan, 0.0, -1.5, math.inf, None, "1.2"])
def test_confidence_verdict_refuses_what_no_fit_returns(temperature):
    with pytest.raises(ValueError, match="positive finite number"):
        evaluate.confidence_verdict(temperature)


# --- rows that are not probabilities -----------------------------------------------------------------
def halved(probs):
    return probs * 0.5                     # every row sums to 0.5


def inflated(probs):
    out = probs.copy()
    out[:, 0] = np.minimum(out[:, 0] + 0.6, 1.0)   # in [0, 1], but rows sum to more than 1
    return out


@both_kinds
@pytest.mark.parametrize("spoil", [halved, inflated])
@pytest.mark.parametrize("call", [
    lambda p, k: evaluate.expected_calibration_error(p, k(LABELS), n_bins=4),
    lambda p, k: evaluate.calibration_bins(p, k(LABELS), n_bins=4),
    lambda p, k: evaluate.cascade_curve(p, k(PROBS), k(LABELS), [0.5]),
    lambda p, k: evaluate.cascade_curve(k(PROBS), p, k(LABELS), [0.5]),
    lambda p, k: evaluate.choose_threshold(p, k(PROBS), k(LABELS), 0.5),
    lambda p, k: evaluate.choose_threshold(k(PROBS), p, k(LABELS), 0.5),
], ids=["ece", "calibration_bins", "cascade_student", "cascade_teacher", "choose_student", "choose_teacher"])
def test_rows_that_do_not_sum_to_one_are_refused(call, spoil, kind):
    with pytest.raises(ValueError, match=r"must sum to 1 along each row \(got row sums in .*\): pass softmax\(logits\)"):
        call(kind(spoil(PROBS)), kind)


def float32_softmax(num_classes, n=2000, scale=8.0, seed=0):
    logits = torch.from_numpy(np.random.default_rng(seed).normal(size=(n, num_classes)) * scale).float()
    return torch.softmax(logits, dim=1), torch.from_numpy(np.random.default_rng(seed + 1).integers(0, num_classes, n))


@pytest.mark.parametrize("num_classes", [2, 10, 1000])
def test_float32_softmax_rows_are_still_accepted(num_classes):
    probs, labels = float32_softmax(num_classes)
    ece = evaluate.expected_calibration_error(probs, labels, n_bins=10)
    assert ece == evaluate.expected_calibration_error(probs.numpy(), labels.numpy(), n_bins=10)
    curve = evaluate.cascade_curve(probs, probs, labels, [0.0, 0.5, 1.01])
    assert curve[0]["share_to_teacher"] == 0.0 and curve[-1]["share_to_teacher"] == 1.0
    assert evaluate.choose_threshold(probs, probs, labels, 0.0) == 0.0
    assert evaluate.fit_temperature(torch.log(probs), labels) > 0
    with pytest.raises(ValueError, match="sum to 1"):
        evaluate.calibration_bins(probs.double() * (1 - 2 * evaluate.ROW_SUM_ATOL), labels)


def test_rows_just_inside_the_tolerance_pass_and_just_outside_fail():
    tol = evaluate.ROW_SUM_ATOL
    inside = np.array([[0.6, 0.4 - 0.9 * tol], [0.3, 0.7 + 0.9 * tol]])
    outside = np.array([[0.6, 0.4 - 1.5 * tol], [0.3, 0.7]])
    assert evaluate.expected_calibration_error(inside, [0, 1], n_bins=5) >= 0
    with pytest.raises(ValueError, match="sum to 1"):
        evaluate.expected_calibration_error(outside, [0, 1], n_bins=5)


# --- choose_threshold's target, fit_temperature on probabilities --------------------------------------
@pytest.mark.parametrize("target", [float("nan"), np.nan, 95, 1.5, -0.1, None, "0.9"])
def test_choose_threshold_refuses_a_target_that_is_not_a_share(target):
    with pytest.raises(ValueError, match=r"target_accuracy must be a share in \[0, 1\]"):
        evaluate.choose_threshold(PROBS, PROBS, LABELS, target)


def test_choose_threshold_edges_of_the_target_still_answer():
    assert evaluate.choose_threshold(PROBS, PROBS, LABELS, 0.0) == 0.0
    assert evaluate.choose_threshold(PROBS, PROBS, LABELS, 1.0) is None     # 3/4 at best: nothing reaches 1


@both_kinds
@pytest.mark.parametrize("make_probs", [lambda: PROBS, lambda: float32_softmax(10, n=300)[0].numpy(),
                                        lambda: np.eye(3)[[0, 1, 2, 1]]], ids=["float64", "float32", "one-hot"])
def test_fit_temperature_refuses_probabilities(make_probs, kind):
    probs = make_probs()
    labels = np.arange(len(probs)) % probs.shape[1]
    with pytest.raises(ValueError, match=r"fit_temperature takes logits; these rows look like probabilities"):
        evaluate.fit_temperature(kind(probs), kind(labels))


def test_fit_temperature_still_takes_logits_that_happen_to_lie_in_the_unit_interval():
    """Logits in [0, 1] whose rows do not sum to 1 are logits: fitted as before."""
    logits = np.array([[0.9, 0.1, 0.2], [0.1, 0.8, 0.3], [0.2, 0.1, 0.95], [0.7, 0.6, 0.1]])
    assert evaluate.fit_temperature(logits, [0, 1, 2, 1]) > 0.01
    assert evaluate.fit_temperature(np.log(PROBS), LABELS) == evaluate.fit_temperature(LOGITS, LABELS)


# --- training, saving, compressing, loading ------------------------------------------------------------
@pytest.mark.parametrize("epochs", [-1, 0, 2.5, True])
def test_student_fit_refuses_epochs_below_one(epochs):
    student = NgramStudent(3, num_buckets=64, embedding_dim=4)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        student.fit(["a b", "c d", "e f"], [0, 1, 2], epochs=epochs, progress=False)
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        NgramStudent(3, num_buckets=64, embedding_dim=4, epochs=0).fit(["a b"], [0], progress=False)


@pytest.mark.parametrize("epochs, batch_size", [(2.5, 2), (1, 0.5), (1, True)])
def test_train_fit_refuses_non_integer_epochs_or_batch_size(epochs, batch_size):
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        train.fit(model, torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), losses.cross_entropy_loss,
                  epochs=epochs, batch_size=batch_size, progress=False)


def test_train_fit_refuses_negative_epochs():
    """Already a ValueError before issue 23; kept so it stays one."""
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got -1"):
        train.fit(nn.Linear(3, 2), torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), losses.cross_entropy_loss,
                  epochs=-1, progress=False)


def saved_student(tmp_path):
    NgramStudent(3, num_buckets=64, embedding_dim=4).save(tmp_path)
    return tmp_path / "model.safetensors"


@pytest.mark.parametrize("spoil", [lambda b: b[: len(b) // 2], lambda b: b[:5], lambda b: b"",
                                   lambda b: b"\xff" * 8 + b[8:], lambda b: b[:8] + b"not json" + b[16:]],
                         ids=["half", "five-bytes", "empty", "bad-length", "bad-header"])
def test_student_load_of_a_truncated_or_corrupted_file_names_it(tmp_path, spoil):
    weights = saved_student(tmp_path)
    weights.write_bytes(spoil(weights.read_bytes()))
    with pytest.raises(ValueError, match=r"model\.safetensors: it cannot be read \(truncated or corrupted.*re-save") as err:
        NgramStudent.load(tmp_path)
    assert str(weights) in str(err.value)


def test_student_load_of_a_good_file_unchanged(tmp_path):
    student = NgramStudent(3, num_buckets=64, embedding_dim=4)
    student.save(tmp_path)
    loaded = NgramStudent.load(tmp_path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in student.state_dict().items())


@pytest.mark.parametrize("model", [nn.Sequential(nn.ReLU()), nn.Flatten(), nn.Sequential(nn.LayerNorm(4), nn.Tanh())])
def test_prune_magnitude_without_prunable_layers(model):
    with pytest.raises(ValueError, match=r"has no Linear, Conv or Embedding layer"):
        compress.prune_magnitude(model, 0.5)


@pytest.mark.parametrize("costs, scores", [([1, 2, float("nan")], [0.5, 0.9, 0.99]),
                                           ([1, 2, 3], [0.5, float("nan"), 0.99]),
                                           ([float("nan")], [float("nan")]),
                                           ([1, math.inf], [0.5, 0.9])])
def test_pareto_front_refuses_nan(costs, scores):
    with pytest.raises(ValueError, match=r"costs and scores must be finite numbers; model \d+ has"):
        compress.pareto_front(costs, scores)


def test_pareto_front_of_finite_points_unchanged():
    assert compress.pareto_front([3, 1, 2, 2], [0.9, 0.5, 0.95, 0.7]) == [1, 2]


def test_load_email_csv_on_a_directory_names_it(tmp_path):
    with pytest.raises(ValueError, match="is a directory, not a CSV file") as err:
        emails.load_email_csv(tmp_path)
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize("content", ['{"router": ', "not json at all", "\udcff"])
def test_model_card_from_a_broken_results_file_is_a_clear_error(tmp_path, content):
    from course_lib import modelcard

    path = tmp_path / "lesson05.json"
    path.write_bytes(content.encode("utf-8", errors="surrogateescape"))
    with pytest.raises(ValueError, match="is not valid JSON"):
        modelcard.build_model_card(path)


def test_model_card_from_a_missing_or_folder_path_is_a_clear_error(tmp_path):
    from course_lib import modelcard

    for path in (tmp_path / "missing.json", tmp_path):
        with pytest.raises(ValueError, match="no such results file"):
            modelcard.build_model_card(path)
