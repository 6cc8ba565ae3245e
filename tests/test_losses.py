"""Unit tests for course_lib.losses: every loss of the course (lessons 00, 02, 03, 04 and 07).

References: the formulas written out with explicit loops in float64 (NumPy or Python), and
``torch.nn.functional.kl_div(..., reduction="batchmean")``; plus invariances, shapes and errors.
The logit losses run in float32 and are compared with float32's tolerances (``tests/tolerance.py``);
the hidden-state losses are tested on float64 features, so their comparisons stay tight.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import losses
from course_lib.losses import distillation_loss, kd_loss, softmax_with_temperature
from tolerance import approx32, close32, kd_magnitude

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
    np.testing.assert_allclose(probs.numpy(), expected, **close32())
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
    for temperature in (0.5, 100.0):  # naive exp(1e4 / T) overflows to inf, then inf / inf = nan
        expected = np.exp(_log_softmax_np(big[0].numpy(), temperature))
        np.testing.assert_allclose(softmax_with_temperature(big, temperature)[0].numpy(), expected, **close32())


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
    assert loss.item() == approx32(_kd_written_out(student, teacher, temperature),
                                   kd_magnitude(student, teacher, temperature=temperature))


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_kd_loss_matches_kl_div_batchmean_times_t_squared(temperature):
    student, teacher = _logits(seed=1)
    s64, t64 = student.double(), teacher.double()  # the reference in float64, the loss in float32
    expected = F.kl_div(F.log_softmax(s64 / temperature, dim=-1), F.softmax(t64 / temperature, dim=-1),
                        reduction="batchmean") * temperature**2
    torch.testing.assert_close(kd_loss(student, teacher, temperature).double(), expected,
                               **close32(kd_magnitude(student, teacher, temperature=temperature)))
    # The trap the docstring warns about: reduction="mean" is smaller by the number of classes (float64 both sides).
    mean_version = F.kl_div(F.log_softmax(s64 / temperature, dim=-1),
                            F.softmax(t64 / temperature, dim=-1), reduction="mean") * temperature**2
    torch.testing.assert_close(mean_version * student.shape[1], expected)


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
    # float32 gradient against float64: its terms are at most T / batch in size
    torch.testing.assert_close(student.grad.double(), expected / len(student), **close32(temperature / len(student)))
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
    assert loss.item() == approx32(_kd_written_out(student, teacher, temperature),
                                   kd_magnitude(student, teacher, temperature=temperature))
    # The naive log(softmax(.)) is not finite here: this case really exercises the stability.
    naive = F.kl_div(torch.log(F.softmax(student / temperature, -1)), F.softmax(teacher / temperature, -1),
                     reduction="batchmean")
    assert not torch.isfinite(naive)


def _kd_over_allowed_classes(student, teacher, allowed, temperature):
    """T^2 * KL over the allowed classes only, loops in float64: what masking a class out means."""
    student = student.detach()
    total = 0.0
    for b in range(len(student)):
        cls = [c for c in range(student.shape[1]) if allowed[b, c]]
        log_p = _log_softmax_np(teacher[b, cls].numpy(), temperature)
        # the student's softmax runs over every class it leaves open (finite logits)
        open_cls = [c for c in range(student.shape[1]) if math.isfinite(float(student[b, c]))]
        log_q_all = _log_softmax_np(student[b, open_cls].numpy(), temperature)
        log_q = {c: v for c, v in zip(open_cls, log_q_all)}
        total += sum(math.exp(lp) * (lp - log_q[c]) for lp, c in zip(log_p, cls))
    return total / len(student) * temperature**2


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_loss_masked_teacher_classes_contribute_exactly_zero(temperature):
    """Teacher logits of -inf (vocabulary masking): finite loss, pinned to the KL over the allowed classes."""
    student, teacher = _logits(batch=5, classes=6, seed=11)
    allowed = torch.ones(5, 6, dtype=torch.bool)
    allowed[:, 4:] = False
    allowed[0, 1] = False
    teacher = teacher.masked_fill(~allowed, float("-inf"))
    s = student.clone().requires_grad_(True)
    loss = kd_loss(s, teacher, temperature)
    loss.backward()
    magnitude = kd_magnitude(student, teacher, temperature=temperature)  # finite logits only
    assert loss.item() == approx32(_kd_over_allowed_classes(student, teacher, allowed, temperature), magnitude)
    assert torch.isfinite(s.grad).all()
    # PyTorch's reference gives the same finite value (it defines 0 * log 0 = 0)
    reference = F.kl_div(F.log_softmax(student.double() / temperature, -1), F.softmax(teacher.double() / temperature, -1),
                         reduction="batchmean") * temperature**2
    assert loss.item() == approx32(reference.item(), magnitude)


def test_kd_loss_classes_masked_in_both_student_and_teacher():
    """-inf in the student where the teacher is also 0: those classes drop out of both softmaxes."""
    student, teacher = _logits(batch=4, classes=5, seed=12)
    allowed = torch.tensor([True, True, True, False, False]).expand(4, 5)
    teacher = teacher.masked_fill(~allowed, float("-inf"))
    masked_student = student.masked_fill(~allowed, float("-inf")).requires_grad_(True)
    loss = kd_loss(masked_student, teacher, 2.0)
    loss.backward()
    magnitude = kd_magnitude(student, teacher, temperature=2.0)
    assert loss.item() == approx32(_kd_over_allowed_classes(masked_student, teacher, allowed, 2.0), magnitude)
    # ... which equals the loss on the three open classes alone (float32 both sides, rows of another width)
    assert loss.item() == approx32(kd_loss(student[:, :3], teacher[:, :3], 2.0).item(), magnitude)
    assert torch.isfinite(masked_student.grad).all() and masked_student.grad[:, 3:].abs().sum() == 0


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
    magnitude = max(kd_magnitude(student, teacher, temperature=temperature), kd_magnitude(student))
    assert loss.item() == approx32(expected, magnitude)


def test_distillation_loss_extremes_of_alpha_and_gradient():
    student, teacher = _logits(seed=7)
    labels = torch.tensor([1, 2, 3, 4, 5, 6])
    # alpha = 1 or 0: one term is multiplied by 0 and the other by 1, so these are the same float32 numbers
    torch.testing.assert_close(distillation_loss(student, teacher, labels, 3.0, 1.0),
                               kd_loss(student, teacher, 3.0))
    torch.testing.assert_close(distillation_loss(student, teacher, labels, 3.0, 0.0),
                               F.cross_entropy(student, labels))
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    distillation_loss(student, teacher, labels, 3.0, 0.25).backward()
    # d/ds [alpha T^2 KL(p_T || q_T) + (1 - alpha) CE] = (alpha T (q_T - p_T) + (1 - alpha)(q - onehot)) / batch
    s64, t64 = student.detach().double(), teacher.detach().double()
    q_t, p_t = F.softmax(s64 / 3.0, -1), F.softmax(t64 / 3.0, -1)
    q, onehot = F.softmax(s64, -1), F.one_hot(labels, student.shape[1]).double()
    expected = (0.25 * 3.0 * (q_t - p_t) + 0.75 * (q - onehot)) / len(labels)
    torch.testing.assert_close(student.grad.double(), expected, **close32())
    assert teacher.grad is None


@pytest.mark.parametrize("temperature", [0.5, 100.0])
def test_distillation_loss_stable_for_logits_of_size_1e4(temperature):
    student, teacher = _logits(scale=1e4, seed=8)
    student.requires_grad_(True)
    labels = torch.arange(6)
    loss = distillation_loss(student, teacher, labels, temperature, 0.5)
    loss.backward()
    expected = 0.5 * _kd_written_out(student, teacher, temperature) + 0.5 * _ce_written_out(student, labels)
    magnitude = max(kd_magnitude(student, teacher, temperature=temperature), kd_magnitude(student))
    assert loss.item() == approx32(expected, magnitude)
    assert torch.isfinite(student.grad).all()


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


# ============================================================== hidden-state losses (lesson 03)

def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- attention_map ---------------------------------------------------------------------------------

def attention_map_loops(features, p):
    n, c, h, w = features.shape
    out = torch.zeros(n, h * w, dtype=torch.float64)
    for i in range(n):
        for y in range(h):
            for x in range(w):
                out[i, y * w + x] = sum(abs(float(features[i, k, y, x])) ** p for k in range(c))
        out[i] /= math.sqrt(float((out[i] ** 2).sum()))
    return out


@pytest.mark.parametrize("p", [1, 2, 3])
def test_attention_map_matches_formula(p):
    features = rand(2, 3, 4, 5)
    torch.testing.assert_close(losses.attention_map(features, p), attention_map_loops(features, p))


def test_attention_map_shape_norm_and_scale_invariance():
    features = rand(4, 6, 7, 7, seed=1)
    q = losses.attention_map(features)
    assert q.shape == (4, 49)
    torch.testing.assert_close(q.norm(dim=1), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(losses.attention_map(features * 37.0), q)
    torch.testing.assert_close(losses.attention_map(features * 1e-3), q)


def test_attention_map_errors():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        losses.attention_map(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="p must be > 0"):
        losses.attention_map(torch.zeros(1, 1, 2, 2), p=0)


# --- attention_transfer_loss -------------------------------------------------------------------

def test_attention_transfer_loss_formula_and_zero_on_identical():
    s, t = rand(3, 4, 5, 5, seed=2), rand(3, 16, 5, 5, seed=3)
    q_s, q_t = attention_map_loops(s, 2), attention_map_loops(t, 2)
    expected = sum(float(((q_s[i] - q_t[i]) ** 2).sum()) for i in range(3)) / 3
    assert losses.attention_transfer_loss(s, t).item() == pytest.approx(expected, rel=1e-9)
    assert losses.attention_transfer_loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    assert losses.attention_transfer_loss(s, 5 * s).item() == pytest.approx(0.0, abs=1e-12)


def test_attention_transfer_loss_resizes_larger_map_and_detaches_teacher():
    s = rand(2, 3, 7, 7, seed=4).requires_grad_(True)
    t = rand(2, 8, 14, 14, seed=5).requires_grad_(True)
    loss = losses.attention_transfer_loss(s, t)
    pooled = nn.functional.avg_pool2d(t.detach().pow(2).sum(1, keepdim=True), 2).flatten(1)
    q_t = pooled / pooled.norm(dim=1, keepdim=True)
    q_s = attention_map_loops(s.detach(), 2)
    assert loss.item() == pytest.approx(float(((q_s - q_t) ** 2).sum(1).mean()), rel=1e-9)
    loss.backward()
    assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0


def test_attention_transfer_loss_errors():
    with pytest.raises(ValueError, match="batch size"):
        losses.attention_transfer_loss(torch.zeros(2, 1, 3, 3), torch.zeros(3, 1, 3, 3))
    with pytest.raises(ValueError):
        losses.attention_transfer_loss(torch.zeros(2, 4), torch.zeros(2, 4))


# --- hint_loss ---------------------------------------------------------------------------------

def test_hint_loss_formula_regressor_side_and_gradients():
    student = rand(2, 3, 4, 4, seed=6).float().requires_grad_(True)
    teacher = rand(2, 5, 4, 4, seed=7).float().requires_grad_(True)
    regressor = nn.Conv2d(3, 5, kernel_size=1)
    loss = losses.hint_loss(student, teacher, regressor)
    w, b = regressor.weight.detach()[:, :, 0, 0], regressor.bias.detach()
    total = 0.0
    for i in range(2):
        for k in range(5):
            for y in range(4):
                for x in range(4):
                    mapped = float(w[k].double() @ student.detach()[i, :, y, x].double() + b[k].double())
                    total += (mapped - float(teacher.detach()[i, k, y, x])) ** 2
    assert loss.item() == approx32(total / (2 * 5 * 4 * 4))  # float32 convolution against float64 loops
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and regressor.weight.grad is not None


def test_hint_loss_zero_when_regressor_reproduces_teacher():
    student = rand(3, 4, 2, 2, seed=8).float()
    regressor = nn.Conv2d(4, 4, 1)
    with torch.no_grad():
        regressor.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        regressor.bias.zero_()
    # exact in float32: every product is x * 1 or x * 0, so the sums are exact in any order
    assert losses.hint_loss(student, student.clone(), regressor).item() == 0.0


def test_hint_loss_shape_error_names_the_regressor():
    with pytest.raises(ValueError, match="regressor must map the student"):
        losses.hint_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 4, 4), nn.Identity())


# --- cosine_representation_loss ------------------------------------------------------------------

def test_cosine_loss_formula_same_width():
    s, t = rand(4, 6, seed=9), rand(4, 6, seed=10)
    expected = sum(1 - float(s[i] @ t[i]) / float(s[i].norm() * t[i].norm()) for i in range(4)) / 4
    assert losses.cosine_representation_loss(s, t).item() == pytest.approx(expected, rel=1e-9)


def test_cosine_loss_pools_wider_features_and_is_scale_invariant():
    s, t = rand(3, 4, seed=11), rand(3, 8, seed=12)
    pooled = t.view(3, 4, 2).mean(-1)  # neighbouring pairs averaged: 8 -> 4
    expected = sum(1 - float(s[i] @ pooled[i]) / float(s[i].norm() * pooled[i].norm()) for i in range(3)) / 3
    assert losses.cosine_representation_loss(s, t).item() == pytest.approx(expected, rel=1e-9)
    assert losses.cosine_representation_loss(s, t).item() == pytest.approx(
        losses.cosine_representation_loss(7 * s, 0.1 * t).item(), rel=1e-9)
    assert losses.cosine_representation_loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    # (N, C, H, W) features are flattened first
    s4, t2 = rand(2, 2, 3, 3, seed=20), rand(2, 18, seed=21)
    assert losses.cosine_representation_loss(s4, t2).item() == pytest.approx(
        losses.cosine_representation_loss(s4.flatten(1), t2).item(), rel=1e-12)


# --- relational_distance_loss ----------------------------------------------------------------------

def rkd_loops(s, t):
    n = len(s)

    def normalised(e):
        d = [[float((e[i] - e[j]).norm()) for j in range(n)] for i in range(n)]
        mean = sum(d[i][j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        return [[d[i][j] / mean for j in range(n)] for i in range(n)]

    ds, dt = normalised(s), normalised(t)
    huber = lambda x: 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5  # noqa: E731
    return sum(huber(ds[i][j] - dt[i][j]) for i in range(n) for j in range(n)) / (n * n)


def test_relational_loss_formula_with_different_widths():
    s, t = rand(5, 3, seed=13), rand(5, 7, seed=14) * 4
    assert losses.relational_distance_loss(s, t).item() == pytest.approx(rkd_loops(s, t), rel=1e-9)


def test_relational_loss_invariances_and_gradient():
    t = rand(6, 8, seed=15)
    rotation, _ = torch.linalg.qr(rand(8, 8, seed=16))
    # zero for identical, scaled, rotated or shifted copies: only the shape of the batch counts
    for s in (t, 3 * t, t @ rotation, t + 5):
        assert losses.relational_distance_loss(s, t).item() == pytest.approx(0.0, abs=1e-6)
    s = rand(6, 2, seed=17).requires_grad_(True)
    teacher = t.clone().requires_grad_(True)
    loss = losses.relational_distance_loss(s, teacher)
    loss.backward()
    assert teacher.grad is None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_relational_loss_batch_of_one_is_zero_and_keeps_the_graph():
    s = rand(1, 3, seed=18).requires_grad_(True)
    loss = losses.relational_distance_loss(s, rand(1, 5, seed=19))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(s.grad, torch.zeros_like(s))


def test_relational_loss_errors():
    with pytest.raises(ValueError, match="batch size"):
        losses.relational_distance_loss(torch.zeros(3, 3), torch.zeros(4, 3))


# --- cross_entropy_loss (lesson 00) ------------------------------------------------------------

def test_cross_entropy_loss_matches_written_out_formula():
    student, _ = _logits()
    labels = torch.tensor([0, 3, 6, 1, 1, 5])
    expected = _ce_written_out(student, labels)
    assert float(losses.cross_entropy_loss(student, labels)) == approx32(expected, kd_magnitude(student))


# --- soft_label_loss (lesson 04) ---------------------------------------------------------------

def test_soft_label_loss_matches_formula():
    student_logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]])
    targets = torch.tensor([[0.2, 0.5, 0.3], [0.0, 0.1, 0.9]])
    s, t = student_logits.double().numpy(), targets.double().numpy()  # the reference in float64
    p = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    expected = -(t * np.log(p)).sum(1).mean()
    assert float(losses.soft_label_loss(student_logits, targets)) == approx32(expected, kd_magnitude(student_logits))


def test_soft_label_loss_gradient_is_q_minus_t_over_batch_and_one_hot_is_cross_entropy():
    student, teacher = _logits()
    targets = softmax_with_temperature(teacher, 2.0)
    student = student.clone().requires_grad_(True)
    losses.soft_label_loss(student, targets).backward()
    expected = (torch.softmax(student.detach().double(), -1) - targets.double()) / len(student)
    torch.testing.assert_close(student.grad.double(), expected, **close32(1.0))
    labels = torch.tensor([0, 3, 6, 1, 1, 5])
    one_hot = F.one_hot(labels, 7).float()
    assert float(losses.soft_label_loss(student.detach(), one_hot)) == approx32(
        _ce_written_out(student, labels), kd_magnitude(student))


def test_soft_label_loss_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        losses.soft_label_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same shape"):
        losses.soft_label_loss(torch.zeros(3), torch.zeros(3))


# --- masked sequence losses (lesson 07) ----------------------------------------------------------

SEQ_MASK = torch.tensor([[0, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 1, 0]], dtype=torch.bool)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_masked_kd_loss_equals_written_out_formula_and_ignores_padding(temperature):
    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(3, 5, 7, generator=g), torch.randn(3, 5, 7, generator=g) * 2
    loss = losses.masked_kd_loss(student, teacher, SEQ_MASK, temperature)
    # the mean over the 9 answer positions only: the written-out KD over exactly those rows
    expected = _kd_written_out(student[SEQ_MASK], teacher[SEQ_MASK], temperature)
    assert loss.item() == approx32(expected, kd_magnitude(student[SEQ_MASK], teacher[SEQ_MASK],
                                                          temperature=temperature))
    # whatever sits at padded positions changes nothing
    student2, teacher2 = student.clone(), teacher.clone()
    student2[~SEQ_MASK] = 100.0 * torch.randn(int((~SEQ_MASK).sum()), 7, generator=g)
    teacher2[~SEQ_MASK] = -50.0
    # the same masked rows go through the same kd_loss: bit-identical, not merely close
    assert losses.masked_kd_loss(student2, teacher2, SEQ_MASK, temperature).item() == loss.item()


def test_masked_cross_entropy_ignores_padding():
    g = torch.Generator().manual_seed(2)
    logits, targets = torch.randn(2, 4, 5, generator=g), torch.randint(5, (2, 4), generator=g)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    by_hand = -sum(_log_softmax_np(logits[b, t].numpy(), 1.0)[targets[b, t]]
                   for b, t in [(0, 0), (0, 1), (1, 0)]) / 3
    assert losses.masked_cross_entropy(logits, targets, mask).item() == approx32(by_hand, kd_magnitude(logits))


@pytest.mark.parametrize("fn", ["masked_cross_entropy", "masked_kd_loss"])
def test_masked_losses_refuse_a_bad_or_empty_mask(fn):
    logits = torch.zeros(3, 5, 7)
    second = torch.zeros(3, 5, dtype=torch.long) if fn == "masked_cross_entropy" else torch.zeros(3, 5, 7)
    loss = getattr(losses, fn)
    with pytest.raises(ValueError, match="bool mask"):
        loss(logits, second, SEQ_MASK.long())            # a 0/1 int mask would index rows, not select them
    with pytest.raises(ValueError, match="bool mask"):
        loss(logits, second, SEQ_MASK[:, :4])            # the mask does not match the logits
    with pytest.raises(ValueError, match="no position"):
        loss(logits, second, torch.zeros(3, 5, dtype=torch.bool))  # nothing to average: nan otherwise


# ----------------------------------------------------------------------------- on-policy KD (GKD's generalised JSD)
def _gjsd_by_hand(student, teacher, mask, beta, temperature):
    """The generalised JSD in float64, one position at a time, KL written out as sum p (log p - log q)."""
    def kl(p, q):
        return float((p * (p.log() - q.log())).sum())

    terms = []
    for b, t in mask.nonzero().tolist():
        s = torch.softmax(student[b, t].double() / temperature, -1)
        p = torch.softmax(teacher[b, t].double() / temperature, -1)
        if beta == 0:
            terms.append(kl(p, s))
        elif beta == 1:
            terms.append(kl(s, p))
        else:
            m = beta * p + (1 - beta) * s
            terms.append(beta * kl(p, m) + (1 - beta) * kl(s, m))
    return sum(terms) / len(terms)


OTHER_MASKS = [SEQ_MASK, torch.ones(3, 5, dtype=torch.bool),
               torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool)]


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_on_policy_kd_loss_zero_when_student_equals_teacher(beta):
    logits = torch.randn(3, 5, 7, generator=torch.Generator().manual_seed(0)) * 4
    assert losses.on_policy_kd_loss(logits, logits.clone(), SEQ_MASK, beta).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("mask_index", range(len(OTHER_MASKS)))
def test_on_policy_kd_loss_equals_the_divergence_written_out(beta, mask_index):
    g = torch.Generator().manual_seed(3 + mask_index)
    student, teacher = torch.randn(3, 5, 7, generator=g) * 2, torch.randn(3, 5, 7, generator=g) * 3
    mask, temperature = OTHER_MASKS[mask_index], 1.0 if mask_index else 2.0
    loss = losses.on_policy_kd_loss(student, teacher, mask, beta, temperature)
    expected = _gjsd_by_hand(student, teacher, mask, beta, temperature)
    assert loss.item() == approx32(expected, kd_magnitude(student, teacher))


def test_on_policy_kd_loss_endpoints_are_forward_and_reverse_kl_of_torch_distributions():
    """An independent reference: torch.distributions' KL, forward at beta 0, reverse at beta 1 (not the other way)."""
    from torch.distributions import Categorical, kl_divergence
    g = torch.Generator().manual_seed(4)
    student, teacher = torch.randn(3, 5, 7, generator=g), torch.randn(3, 5, 7, generator=g) * 3
    s, t = Categorical(logits=student[SEQ_MASK].double()), Categorical(logits=teacher[SEQ_MASK].double())
    forward, reverse = kl_divergence(t, s).mean().item(), kl_divergence(s, t).mean().item()
    assert abs(forward - reverse) > 0.1  # the two directions differ here, so swapping them fails
    mag = kd_magnitude(student, teacher)
    assert losses.on_policy_kd_loss(student, teacher, SEQ_MASK, beta=0).item() == approx32(forward, mag)
    assert losses.on_policy_kd_loss(student, teacher, SEQ_MASK, beta=1).item() == approx32(reverse, mag)
    # and beta = 0 is masked_kd_loss at T = 1 (the ordinary token-level KD)
    assert losses.on_policy_kd_loss(student, teacher, SEQ_MASK, beta=0).item() == approx32(
        losses.masked_kd_loss(student, teacher, SEQ_MASK).item(), mag)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_on_policy_kd_loss_ignores_padding_and_keeps_the_teacher_out_of_autograd(beta):
    g = torch.Generator().manual_seed(5)
    student = (torch.randn(3, 5, 7, generator=g) * 2).requires_grad_()
    teacher = (torch.randn(3, 5, 7, generator=g) * 2).requires_grad_()
    loss = losses.on_policy_kd_loss(student, teacher, SEQ_MASK, beta)
    loss.backward()
    assert teacher.grad is None and student.grad is not None
    assert torch.all(student.grad[~SEQ_MASK] == 0) and student.grad[SEQ_MASK].abs().sum() > 0
    student2, teacher2 = student.detach().clone(), teacher.detach().clone()
    student2[~SEQ_MASK] = 300.0 * torch.randn(int((~SEQ_MASK).sum()), 7, generator=g)
    teacher2[~SEQ_MASK] = -1e4
    # the same selected rows go through the same computation: bit-identical
    assert losses.on_policy_kd_loss(student2, teacher2, SEQ_MASK, beta).item() == loss.item()


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_on_policy_kd_loss_stable_for_logits_in_the_hundreds(beta):
    g = torch.Generator().manual_seed(6)
    student, teacher = torch.randn(3, 5, 7, generator=g) * 100, torch.randn(3, 5, 7, generator=g) * 100
    loss = losses.on_policy_kd_loss(student, teacher, SEQ_MASK, beta)
    assert math.isfinite(loss.item()) and loss.item() > 0.1
    assert loss.item() == approx32(_gjsd_by_hand(student, teacher, SEQ_MASK, beta, 1.0), kd_magnitude(student, teacher))
    if beta == 0.5:  # the JSD stays below log 2 per position however far apart the two are
        assert loss.item() <= math.log(2) + 1e-6


def test_on_policy_kd_loss_refuses_bad_masks_shapes_and_settings():
    logits = torch.zeros(3, 5, 7)
    with pytest.raises(ValueError, match="bool mask"):
        losses.on_policy_kd_loss(logits, logits, SEQ_MASK.long())
    with pytest.raises(ValueError, match="bool mask"):
        losses.on_policy_kd_loss(logits, logits, SEQ_MASK[:, :4])
    with pytest.raises(ValueError, match="no position"):
        losses.on_policy_kd_loss(logits, logits, torch.zeros(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="same shape"):
        losses.on_policy_kd_loss(logits, torch.zeros(3, 5, 8), SEQ_MASK)
    for bad in (-0.1, 1.5, "half", None):
        with pytest.raises(ValueError, match="beta"):
            losses.on_policy_kd_loss(logits, logits, SEQ_MASK, beta=bad)
    with pytest.raises(ValueError, match="temperature"):
        losses.on_policy_kd_loss(logits, logits, SEQ_MASK, temperature=0)
