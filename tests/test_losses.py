"""Unit tests for course_lib.losses (lesson 02), against independent computations.

References: the formulas written out with explicit loops in float64 NumPy, and
``torch.nn.functional.kl_div(..., reduction="batchmean")``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.losses import distillation_loss, kd_loss, softmax_with_temperature

TEMPERATURES = [0.5, 1.0, 2.0, 4.0, 20.0]


def _logits(batch: int = 6, classes: int = 7, scale: float = 3.0, seed: int = 0):
    """A seeded (student_logits, teacher_logits) pair in float32."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, classes, generator=g) * scale,
            torch.randn(batch, classes, generator=g) * scale)


def _log_softmax_np(row: np.ndarray, temperature: float) -> np.ndarray:
    z = row.astype(np.float64) / temperature
    m = z.max()
    return z - (m + math.log(sum(math.exp(v - m) for v in z)))


def _kd_written_out(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> float:
    """T^2 * (1/batch) * sum_b sum_c p_t[b,c] * (log p_t[b,c] - log p_s[b,c]), loops in float64."""
    s, t = student.detach().numpy(), teacher.detach().numpy()
    total = 0.0
    for b in range(s.shape[0]):
        log_q, log_p = _log_softmax_np(s[b], temperature), _log_softmax_np(t[b], temperature)
        for c in range(s.shape[1]):
            total += math.exp(log_p[c]) * (log_p[c] - log_q[c])
    return total / s.shape[0] * temperature**2


def _ce_written_out(student: torch.Tensor, labels: torch.Tensor) -> float:
    s = student.detach().numpy()
    return -sum(_log_softmax_np(s[b], 1.0)[int(labels[b])] for b in range(s.shape[0])) / s.shape[0]


# --- softmax_with_temperature ------------------------------------------------------------------

@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_softmax_with_temperature_matches_formula(temperature):
    logits, _ = _logits()
    probs = softmax_with_temperature(logits, temperature)
    expected = np.stack([np.exp(_log_softmax_np(r, temperature)) for r in logits.numpy()])
    np.testing.assert_allclose(probs.numpy(), expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(logits)))


def test_softmax_with_temperature_one_is_softmax_and_higher_is_flatter():
    logits, _ = _logits()
    torch.testing.assert_close(softmax_with_temperature(logits), torch.softmax(logits, dim=-1))
    entropies = [-(p * p.log()).sum(-1).mean().item()
                 for p in (softmax_with_temperature(logits, t) for t in (0.5, 1.0, 4.0, 50.0))]
    assert entropies == sorted(entropies)
    assert entropies[-1] == pytest.approx(math.log(logits.shape[1]), rel=1e-2)


def test_softmax_with_temperature_dim_and_large_logits():
    logits, _ = _logits()
    torch.testing.assert_close(softmax_with_temperature(logits.T, 2.0, dim=0),
                               softmax_with_temperature(logits, 2.0).T)
    big = torch.tensor([[1e4, -1e4, 0.0]])
    for temperature in (0.5, 100.0):
        assert torch.isfinite(softmax_with_temperature(big, temperature)).all()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "hot"])
def test_softmax_with_temperature_rejects_bad_temperature(bad):
    with pytest.raises(ValueError, match="temperature"):
        softmax_with_temperature(torch.zeros(2, 3), bad)


# --- kd_loss -----------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_kd_loss_matches_written_out_formula(temperature):
    student, teacher = _logits()
    loss = kd_loss(student, teacher, temperature)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(_kd_written_out(student, teacher, temperature), rel=1e-5, abs=1e-6)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_kd_loss_matches_kl_div_batchmean_times_t_squared(temperature):
    student, teacher = _logits(seed=1)
    expected = F.kl_div(F.log_softmax(student / temperature, dim=-1), F.softmax(teacher / temperature, dim=-1),
                        reduction="batchmean") * temperature**2
    torch.testing.assert_close(kd_loss(student, teacher, temperature), expected, rtol=1e-5, atol=1e-6)
    # The trap the docstring warns about: reduction="mean" is smaller by the number of classes.
    mean_version = F.kl_div(F.log_softmax(student / temperature, dim=-1),
                            F.softmax(teacher / temperature, dim=-1), reduction="mean") * temperature**2
    torch.testing.assert_close(mean_version * student.shape[1], expected, rtol=1e-5, atol=1e-6)


def test_kd_loss_zero_for_identical_logits_and_nonnegative():
    student, teacher = _logits(batch=16, seed=2)
    for temperature in TEMPERATURES:
        assert kd_loss(teacher.clone(), teacher, temperature).abs().item() < 1e-5
        assert kd_loss(student, teacher, temperature).item() >= 0.0
        # KL is not symmetric: swapping student and teacher gives another number.
        assert kd_loss(student, teacher, temperature).item() != pytest.approx(
            kd_loss(teacher, student, temperature).item(), rel=1e-3)


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_kd_loss_gradient_matches_analytic_and_teacher_gets_none(temperature):
    student, teacher = _logits(seed=3)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    kd_loss(student, teacher, temperature).backward()
    # d/ds [T^2 * KL(p_t || softmax(s / T))] = T * (softmax(s / T) - p_t) / batch
    s64, t64 = student.detach().double(), teacher.detach().double()
    expected = temperature * (torch.softmax(s64 / temperature, -1) - torch.softmax(t64 / temperature, -1))
    torch.testing.assert_close(student.grad.double(), expected / len(student), rtol=1e-4, atol=1e-7)
    assert teacher.grad is None  # the teacher is a constant target


def test_kd_loss_gradient_size_barely_changes_with_temperature():
    """For logits of size ~2, over T in 2..50 the gradient norm varies by < 1.5x thanks to T^2.

    Without T^2 it would shrink ~1/T^2: more than 100x over the same range.
    """
    student, teacher = _logits(batch=8, classes=10, scale=2.0, seed=4)
    norms = []
    for temperature in (2.0, 5.0, 10.0, 20.0, 50.0):
        s = student.clone().requires_grad_(True)
        kd_loss(s, teacher, temperature).backward()
        norms.append(s.grad.norm().item())
    without_t2 = [n / t**2 for n, t in zip(norms, (2.0, 5.0, 10.0, 20.0, 50.0))]
    assert max(norms) / min(norms) < 1.5
    assert max(without_t2) / min(without_t2) > 100


@pytest.mark.parametrize("temperature", [0.5, 100.0])
def test_kd_loss_stable_for_logits_of_size_1e4(temperature):
    student, teacher = _logits(scale=1e4, seed=5)
    student.requires_grad_(True)
    loss = kd_loss(student, teacher, temperature)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    assert loss.item() == pytest.approx(_kd_written_out(student, teacher, temperature), rel=1e-4)
    # The naive log(softmax(.)) is not finite here: this case really exercises the stability.
    naive = F.kl_div(torch.log(F.softmax(student / temperature, -1)), F.softmax(teacher / temperature, -1),
                     reduction="batchmean")
    assert not torch.isfinite(naive)


def test_kd_loss_validates_inputs():
    student, teacher = _logits()
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(student, teacher, 0.0)
    with pytest.raises(ValueError, match=r"teacher_logits.*\(6, 7\).*\(6, 5\)"):
        kd_loss(student, teacher[:, :5], 2.0)
    with pytest.raises(ValueError, match=r"student_logits.*\(6, 7, 1\)"):
        kd_loss(student[..., None], teacher[..., None], 2.0)


# --- distillation_loss -------------------------------------------------------------------------

@pytest.mark.parametrize("temperature,alpha", [(1.0, 0.5), (4.0, 0.9), (20.0, 0.1), (2.0, 0.0), (2.0, 1.0)])
def test_distillation_loss_matches_written_out_formula(temperature, alpha):
    student, teacher = _logits(seed=6)
    labels = torch.tensor([0, 3, 6, 1, 1, 2])
    expected = (alpha * _kd_written_out(student, teacher, temperature)
                + (1 - alpha) * _ce_written_out(student, labels))
    loss = distillation_loss(student, teacher, labels, temperature, alpha)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_distillation_loss_extremes_of_alpha_and_gradient():
    student, teacher = _logits(seed=7)
    labels = torch.tensor([1, 2, 3, 4, 5, 6])
    torch.testing.assert_close(distillation_loss(student, teacher, labels, 3.0, 1.0),
                               kd_loss(student, teacher, 3.0))
    torch.testing.assert_close(distillation_loss(student, teacher, labels, 3.0, 0.0),
                               F.cross_entropy(student, labels))
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    distillation_loss(student, teacher, labels, 3.0, 0.25).backward()
    assert torch.isfinite(student.grad).all() and teacher.grad is None


@pytest.mark.parametrize("temperature", [0.5, 100.0])
def test_distillation_loss_stable_for_logits_of_size_1e4(temperature):
    student, teacher = _logits(scale=1e4, seed=8)
    student.requires_grad_(True)
    loss = distillation_loss(student, teacher, torch.arange(6), temperature, 0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


def test_distillation_loss_validates_inputs():
    student, teacher = _logits()
    labels = torch.arange(6)
    for alpha in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            distillation_loss(student, teacher, labels, 2.0, alpha)
    with pytest.raises(ValueError, match=r"labels.*\(6,\).*\(6, 1\)"):
        distillation_loss(student, teacher, labels[:, None], 2.0, 0.5)
    with pytest.raises(ValueError, match=r"labels.*\(3,\)"):
        distillation_loss(student, teacher, labels[:3], 2.0, 0.5)
    with pytest.raises(ValueError, match="labels.*integer"):
        distillation_loss(student, teacher, labels.float(), 2.0, 0.5)
    with pytest.raises(ValueError, match="teacher_logits"):
        distillation_loss(student, teacher[:3], labels, 2.0, 0.5)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(student, teacher, labels, -2.0, 0.5)
