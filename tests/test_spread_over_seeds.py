"""evaluate.mean_std and evaluate.spread (results over seeds, lessons 03 and 07) against the formulas written out."""
import math

import numpy as np
import pytest
import torch

from course_lib import evaluate


def _written_out(values):
    n = len(values)
    mean = sum(values) / n
    return mean, (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0)


@pytest.mark.parametrize("values", [[97.1, 96.4, 98.0], [50.0, 50.0], [0.25, 0.5, 0.75, 1.0, 0.0], [12.5]])
def test_mean_std_and_spread_match_the_formula_with_n_minus_1(values):
    mean, std = _written_out(values)
    got = evaluate.mean_std(values)
    assert got == pytest.approx((mean, std), rel=1e-12, abs=1e-12)
    assert evaluate.spread(values) == got[1]
    assert isinstance(got[0], float) and isinstance(got[1], float)


def test_one_run_has_no_spread_and_arrays_and_tensors_give_the_same_numbers():
    assert evaluate.mean_std([0.9]) == (0.9, 0.0) and evaluate.spread([0.9]) == 0.0
    values = [97.25, 96.5, 98.0]
    expected = evaluate.mean_std(values)
    assert evaluate.mean_std(np.array(values)) == expected
    assert evaluate.mean_std(torch.tensor(values, dtype=torch.float64)) == expected
    assert evaluate.spread([1.0, 3.0]) == pytest.approx(math.sqrt(2.0))


@pytest.mark.parametrize("bad, words", [([], "non-empty"), ([[1.0, 2.0]], "1-D"), ([1.0, float("nan")], "NaN"),
                                        ([float("inf"), 1.0], "NaN or inf")])
def test_bad_values_are_a_clear_error(bad, words):
    for fn in (evaluate.mean_std, evaluate.spread):
        with pytest.raises(ValueError, match=words):
            fn(bad)


def test_report_formats_the_same_numbers():
    from course_lib import report

    assert report.format_mean_std([1, 2, 3]) == "2.0 ± 1.0"
    assert report.format_mean_std([0.971, 0.964], scale=100, digits=2) == "96.75 ± 0.49"
    assert report.format_mean_std([0.5], scale=100) == "50.0"


# ----------------------------------------------------------------------------- paired comparison over seeds (lesson 07)
def test_paired_comparison_is_a_t_interval_over_the_per_seed_differences():
    a, b = [97.0, 99.5, 98.0, 100.0, 96.5], [95.0, 96.0, 97.5, 95.5, 94.0]
    diffs = [x - y for x, y in zip(a, b)]  # 2.0, 3.5, 0.5, 4.5, 2.5
    mean = sum(diffs) / 5
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 4)
    half = 2.7764451051977987 * sd / math.sqrt(5)  # t quantile 0.975 at 4 degrees of freedom (tables)
    got = evaluate.paired_comparison(a, b)
    assert got["mean"] == pytest.approx(mean) and got["seeds"] == 5
    assert (got["low"], got["high"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert got["significant"] is True
    swapped = evaluate.paired_comparison(b, a)  # the other order: the same interval, mirrored
    assert (swapped["mean"], swapped["low"], swapped["high"]) == (pytest.approx(-mean), pytest.approx(-mean - half),
                                                                  pytest.approx(-mean + half))


def test_paired_comparison_pairs_the_seeds():
    """A seed effect shared by both methods cancels: unpaired, these means are far apart relative to their
    spread over seeds only when paired."""
    base = [60.0, 90.0, 75.0, 99.0, 70.0]  # seeds differ a lot
    a, b = [x + 1.0 + 0.1 * i for i, x in enumerate(base)], base
    assert evaluate.paired_comparison(a, b)["significant"] is True
    noisy = evaluate.paired_comparison([1.0, -1.0, 2.0, -2.0, 0.5], [0.0] * 5)
    assert noisy["low"] < 0 < noisy["high"] and noisy["significant"] is False


def test_paired_comparison_refuses_what_cannot_be_paired():
    one = evaluate.paired_comparison([90.0], [80.0])
    assert one["mean"] == 10.0 and math.isnan(one["low"]) and one["significant"] is False
    with pytest.raises(ValueError, match="one per seed"):
        evaluate.paired_comparison([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        evaluate.paired_comparison([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="confidence"):
        evaluate.paired_comparison([1.0, 2.0], [1.0, 2.0], confidence=1.5)
