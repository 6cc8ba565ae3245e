"""The lesson 05 checks accept correct answers and reject each typical mistake with its own hint (issue 21: more
than one case, exact bin edges, a top bin split in two, a dipping cascade, no threshold reaching the target)."""
import numpy as np
import pytest

from course_lib import evaluate
from course_lib.checks import run_check
from course_lib.checks.lesson05 import (AGREEMENT_HINTS, CASCADE_HINTS, ECE_HINTS, bin_index, check_agreement,
                                        check_cascade_on_test, check_expected_calibration_error)
import hint_checks


def hints_named(hints: dict, check, fn) -> list:
    message = hint_checks.failure_message(check, fn)
    return sorted(k for k, text in hints.items() if text in message)


# ---- ECE --------------------------------------------------------------------------------------
def binned(probs, labels, n_bins, conf=None, top="closed", weighted=True, edges="floor"):
    conf = probs.max(1) if conf is None else conf
    right = probs.argmax(1) == labels
    if edges == "floor":
        which = np.floor(conf * n_bins).astype(int)
    else:
        which = np.searchsorted(edges(n_bins), conf, side="right") - 1
    if top == "closed":
        which = np.minimum(which, n_bins - 1)
    total, gaps = 0.0, []
    for b in range(n_bins + (1 if top == "own bin" else 0)):
        mask = which == b
        if mask.any():
            gap = abs(right[mask].mean() - conf[mask].mean())
            gaps.append(gap)
            total += mask.mean() * gap
    return total if weighted else float(np.mean(gaps))


def good_ece(probs, labels, n_bins=15):
    return binned(probs, labels, n_bins)


def linspace_ece(probs, labels, n_bins=15):  # 0.7 lands in [0.6, 0.7): a float artefact, accepted
    return binned(probs, labels, n_bins, edges=lambda n: np.linspace(0, 1, n + 1))


def digitize_ece(probs, labels, n_bins=15):
    conf = probs.max(1)
    which = np.clip(np.digitize(conf, np.arange(1, n_bins) / n_bins), 0, n_bins - 1)
    right = (probs.argmax(1) == labels).astype(float)
    return sum((which == b).mean() * abs(right[which == b].mean() - conf[which == b].mean())
               for b in range(n_bins) if (which == b).any())


def library_ece(probs, labels, n_bins=15):
    return evaluate.expected_calibration_error(probs, labels, n_bins)


def ece_stub(probs, labels, n_bins=15):
    raise NotImplementedError("Exercise 5.1: expected_calibration_error")


@pytest.mark.parametrize("fn", [good_ece, library_ece, linspace_ece, digitize_ece,
                                lambda p, y, n_bins=15: np.float32(good_ece(p, y, n_bins))])
def test_ece_accepts_correct(fn):
    assert check_expected_calibration_error(fn) is True


@pytest.mark.parametrize("fn, key", [
    (lambda p, y, n=15: binned(p, y, n, top="open"), "drop_top"),
    (lambda p, y, n=15: binned(p, y, n, top="own bin"), "own_top_bin"),
    (lambda p, y, n=15: binned(p, y, n, weighted=False), "unweighted"),
    (lambda p, y, n=15: binned(p, y, n, conf=p[np.arange(len(y)), y]), "true_class"),
])
def test_ece_names_each_mistake(fn, key):
    assert hints_named(ECE_HINTS, check_expected_calibration_error, fn) == [key]


@pytest.mark.parametrize("fn", [
    lambda p, y, n=15: 0.5,
    lambda p, y, n=15: binned(p, y, 15),  # n_bins ignored
    lambda p, y, n=15: binned(p, y, n) * 100,
    lambda p, y, n=15: abs((p.argmax(1) == y).mean() - p.max(1).mean()),  # one bin
    lambda p, y, n=15: binned(p, y, n, conf=p.min(1)),
    lambda p, y, n=15: binned(p, y, n + 1),
])
def test_ece_refuses_other_wrong_answers_saying_expected_and_got(fn):
    message = hint_checks.failure_message(check_expected_calibration_error, fn)
    assert "expected" in message and "you returned" in message


def test_ece_not_implemented_and_grader(capsys):
    assert check_expected_calibration_error(ece_stub) is False
    assert "not implemented yet" in capsys.readouterr().out
    result = run_check(check_expected_calibration_error, lambda p, y, n=15: binned(p, y, n, weighted=False))
    assert result.status == "failed" and "share of the rows" in result.message


def solution_ece():
    """Exercise 5.1's answer key, read from its solution block."""
    import nbformat

    from course_lib.config import REPO_ROOT
    nb = nbformat.read(str(REPO_ROOT / "solutions" / "05_judging_a_student.ipynb"), as_version=4)
    namespace = {"np": np}
    exec(next(c.source for c in nb.cells if "def expected_calibration_error" in c.source), namespace)  # noqa: S102
    return namespace["expected_calibration_error"]


@pytest.mark.parametrize("n_bins", [1, 3, 5, 7, 10, 15, 22, 23, 26, 30])
def test_one_binning_answer_key_library_and_check_on_every_exact_edge(n_bins):
    """A confidence of exactly k / n_bins starts bin k (1.0 is in the top bin) in the answer key, the library and
    the check's reference alike; their ECEs agree on those rows (issue 21: 0.7 fell in [0.6, 0.7) in one)."""
    conf = np.arange(n_bins + 1) / n_bins
    assert list(bin_index(conf, n_bins)) == list(range(n_bins)) + [n_bins - 1]
    assert list(np.digitize(conf[:-1], evaluate.calibration_bins(np.eye(2)[:1], [0], n_bins)["edges"]) - 1) \
        == list(range(n_bins))
    probs = np.stack([np.maximum(conf, 0.5), 1 - np.maximum(conf, 0.5)], axis=1)
    labels = np.arange(len(conf)) % 2
    from course_lib.checks.lesson05 import _ece
    reference = _ece(probs, labels, n_bins)
    assert solution_ece()(probs, labels, n_bins) == pytest.approx(reference, abs=1e-12)
    assert evaluate.expected_calibration_error(probs, labels, n_bins) == pytest.approx(reference, abs=1e-12)


# ---- agreement ----------------------------------------------------------------------------------
def good_agreement(probs_a, probs_b):
    return float(np.mean(probs_a.argmax(axis=1) == probs_b.argmax(axis=1)))


@pytest.mark.parametrize("fn, keys", [
    (lambda a, b: int(np.sum(a.argmax(1) == b.argmax(1))), ["count"]),
    (lambda a, b: float(np.mean(a == b)), ["probs"]),
    (lambda a, b: float(np.mean(np.isclose(a, b))), ["probs"]),
    (lambda a, b: float(np.mean(a.argmax(0) == b.argmax(0))), ["axis"]),
    (lambda a, b: float(np.mean(a.argmax(1) != b.argmax(1))), ["disagreement"]),
    (lambda a, b: float(np.mean(a[1:].argmax(1) == b[1:].argmax(1))), ["skip_first"]),
    (lambda a, b: float(np.mean(a[:-1].argmax(1) == b[:-1].argmax(1))), ["skip_last"]),
    (lambda a, b: 0.6, ["fixed"]),  # the first case's answer
    (lambda a, b: 1.0, ["fixed"]),
    (lambda a, b: sum(int(a[i].argmax() == b[i].argmax()) for i in range(len(a) - 1)) / len(a), []),
    (lambda a, b: float(np.mean(a.argmin(1) == b.argmin(1))), []),
])
def test_agreement_names_each_mistake(fn, keys):
    assert hints_named(AGREEMENT_HINTS, check_agreement, fn) == keys


@pytest.mark.parametrize("fn", [good_agreement, evaluate.agreement, lambda a, b: np.float32(good_agreement(a, b)),
                                lambda a, b: sum(x.argmax() == y.argmax() for x, y in zip(a, b)) / len(a)])
def test_agreement_accepts_correct(fn):
    assert check_agreement(fn) is True


# ---- the cascade -------------------------------------------------------------------------------
def cascade(split, threshold, inverted=False):
    conf = split["student_probs"].max(1)
    to_teacher = conf >= threshold if inverted else conf < threshold
    pred = np.where(to_teacher, split["teacher_probs"].argmax(1), split["student_probs"].argmax(1))
    return float(np.mean(pred == split["labels"])), float(np.mean(to_teacher))


def candidates(split, values=None):
    values = split["student_probs"].max(1) if values is None else values
    return np.concatenate([[0.0], np.unique(values), [1.01]])


def good_cascade(validation, test, target_accuracy):
    threshold = next((float(c) for c in candidates(validation) if cascade(validation, c)[0] >= target_accuracy), 1.01)
    return (threshold, *cascade(test, threshold))


def library_cascade(validation, test, target_accuracy):
    threshold = evaluate.choose_threshold(validation["student_probs"], validation["teacher_probs"],
                                          validation["labels"], target_accuracy)
    threshold = 1.01 if threshold is None else threshold  # the library says None: nothing reaches the target
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


def every_probability(validation, test, target_accuracy):
    threshold = next((float(c) for c in candidates(validation, validation["student_probs"])
                      if cascade(validation, c)[0] >= target_accuracy), 1.01)
    return (threshold, *cascade(test, threshold))


def top_down(validation, test, target_accuracy):
    threshold = 1.01
    for c in candidates(validation)[::-1]:
        if cascade(validation, c)[0] < target_accuracy:
            break
        threshold = float(c)
    return (threshold, *cascade(test, threshold))


def no_fallback(validation, test, target_accuracy):
    threshold = next(float(c) for c in candidates(validation) if cascade(validation, c)[0] >= target_accuracy)
    return (threshold, *cascade(test, threshold))


def none_when_unreachable(validation, test, target_accuracy):
    threshold = next((float(c) for c in candidates(validation) if cascade(validation, c)[0] >= target_accuracy), None)
    return (threshold, *cascade(test, 1.01 if threshold is None else threshold))


def fallback_to_student(validation, test, target_accuracy):
    threshold = next((float(c) for c in candidates(validation) if cascade(validation, c)[0] >= target_accuracy), 0.0)
    return (threshold, *cascade(test, threshold))


def strict_threshold(validation, test, target_accuracy):  # the student answers only above the threshold
    threshold = next((float(c) for c in candidates(validation) if cascade(validation, c + 1e-12)[0] >= target_accuracy),
                     1.01)
    return (threshold, *cascade(test, threshold + 1e-12))


@pytest.mark.parametrize("fn", [good_cascade, library_cascade])
def test_cascade_accepts_correct(fn):
    assert check_cascade_on_test(fn) is True


@pytest.mark.parametrize("fn, key", [
    (chosen_on_test, "on_test"), (highest_passing, "not_lowest"), (inverted_share, "inverted"),
    (reported_on_validation, "report"), (every_probability, "every_probability"), (top_down, "top_down"),
    (no_fallback, "no_fallback"), (none_when_unreachable, "no_fallback"), (fallback_to_student, "no_fallback"),
    (strict_threshold, "other"),
])
def test_cascade_names_each_mistake(fn, key):
    assert hints_named(CASCADE_HINTS, check_cascade_on_test, fn) == [key]


def test_cascade_refuses_a_non_tuple():
    with pytest.raises(AssertionError, match="return a tuple"):
        check_cascade_on_test(lambda v, t, a: 0.5)
