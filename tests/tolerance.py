"""How closely the tests compare float32 results: one place, one reason (issue 19).

float32 carries about 7 significant digits (machine epsilon 2**-23, about 1.2e-7). A reduction (a sum,
a mean, a matrix product, a softmax's normaliser, a convolution) computed in another order rounds
differently, and the two results differ by a few ulps times the magnitude of the *terms* added, not of
the result. The order changes with the code that computes it: a hand-written reference, another
PyTorch kernel (``ATEN_CPU_CAPABILITY=default``, ``avx2`` or ``avx512`` picks the vectorised CPU kernels),
another thread count, another batch size. Where the terms cancel the result is small and its relative
error large: a KL divergence of 0.0066 is a difference of sums of log-probabilities of size ~2, and the
library and a float64 reference of it differ in the fifth significant digit (issue 19).

So a float32 result is compared with a reference computed another way (in float64 where the test
computes it) using

* a relative tolerance of 1e-4 (about 800 float32 ulps: any order's rounding, never a real bug), and
* an absolute floor of 1e-6 times the magnitude of the terms, for results that come out small because
  terms cancel: 1 for probabilities, :func:`kd_magnitude` for a loss over log-probabilities,
  :data:`FORWARD_PASS` for a network's outputs.

The bugs these tests exist for are orders of magnitude bigger than that: a missing T^2 (a factor of 4
or more), ``reduction="mean"`` instead of ``"batchmean"`` (a factor of the number of classes), the KL
the wrong way round, padding counted in a mean. Tests that guard such a bug keep a check that fails on it.

What stays tight: float64 on both sides (``rel=1e-9``; check the dtype, e.g. ``dtype=torch.float64``),
and ``==`` / ``torch.equal`` where both sides run the identical computation on identical inputs (the
same function twice, the same seed twice, a file saved and loaded); a comment says so where it is not
obvious.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

RTOL32 = 1e-4
"""Relative tolerance for a float32 result against a reference computed another way."""

ATOL32 = 1e-6
"""Absolute floor per unit of the terms' magnitude (see :func:`approx32`)."""

FORWARD_PASS = 10.0
"""Magnitude for a network's outputs computed twice in other ways (another batch size, another width, another
kernel): each output adds up hundreds of products through several layers. ``close32(FORWARD_PASS)`` has an
absolute floor of 1e-5, torch.testing's own default for float32."""


def approx32(expected, magnitude: float = 1.0):
    """``pytest.approx`` for a float32 result: ``rel=1e-4``, ``abs=1e-6 * magnitude``.

    Args:
        expected: the reference, best computed in float64.
        magnitude: the size of the largest terms the reduction adds up (1 for probabilities; for a loss
            over log-probabilities, :func:`kd_magnitude`).
    """
    return pytest.approx(expected, rel=RTOL32, abs=ATOL32 * magnitude)


def close32(magnitude: float = 1.0) -> dict:
    """``rtol`` and ``atol`` for ``torch.testing.assert_close``, ``torch.allclose``, ``np.testing.assert_allclose``
    and ``np.allclose`` on float32 results, as in :func:`approx32`: ``assert_close(a, b, **close32(10))``."""
    return {"rtol": RTOL32, "atol": ATOL32 * magnitude}


def largest(*arrays) -> float:
    """The largest finite absolute value in tensors or arrays (masked -inf logits are skipped); 0.0 if none."""
    values = [np.abs(np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64))
              for a in arrays]
    finite = [v[np.isfinite(v)] for v in values]
    return max((float(v.max()) for v in finite if v.size), default=0.0)


def kd_magnitude(*logits, temperature: float = 1.0) -> float:
    """Magnitude of the terms of a loss over log-probabilities at ``temperature`` (KD, cross-entropy), times T^2.

    A log-probability ``z - logsumexp(z)`` with ``z = logits / T`` is at most ``2 max|z| + log(num_classes)``
    in size, and the KD loss multiplies by T^2: ``T^2 * (2 max|logits| / T + log(num_classes))``.
    """
    num_classes = logits[0].shape[-1]
    return temperature**2 * (2 * largest(*logits) / temperature + math.log(num_classes))
