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
