"""course_lib.hidden against the formulas written out (float64 loops), plus invariances, shapes and errors."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_lib import hidden, models


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
    torch.testing.assert_close(hidden.attention_map(features, p), attention_map_loops(features, p))


def test_attention_map_shape_norm_and_scale_invariance():
    features = rand(4, 6, 7, 7, seed=1)
    q = hidden.attention_map(features)
    assert q.shape == (4, 49)
    torch.testing.assert_close(q.norm(dim=1), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(hidden.attention_map(features * 37.0), q)
    torch.testing.assert_close(hidden.attention_map(features * 1e-3), q)


def test_attention_map_errors():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        hidden.attention_map(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="p must be > 0"):
        hidden.attention_map(torch.zeros(1, 1, 2, 2), p=0)


# --- attention_transfer_loss -------------------------------------------------------------------

def test_attention_transfer_loss_formula_and_zero_on_identical():
    s, t = rand(3, 4, 5, 5, seed=2), rand(3, 16, 5, 5, seed=3)
    q_s, q_t = attention_map_loops(s, 2), attention_map_loops(t, 2)
    expected = sum(float(((q_s[i] - q_t[i]) ** 2).sum()) for i in range(3)) / 3
    assert hidden.attention_transfer_loss(s, t).item() == pytest.approx(expected, rel=1e-9)
    assert hidden.attention_transfer_loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    assert hidden.attention_transfer_loss(s, 5 * s).item() == pytest.approx(0.0, abs=1e-12)


def test_attention_transfer_loss_resizes_larger_map_and_detaches_teacher():
    s = rand(2, 3, 7, 7, seed=4).requires_grad_(True)
    t = rand(2, 8, 14, 14, seed=5).requires_grad_(True)
    loss = hidden.attention_transfer_loss(s, t)
    pooled = nn.functional.avg_pool2d(t.detach().pow(2).sum(1, keepdim=True), 2).flatten(1)
    q_t = pooled / pooled.norm(dim=1, keepdim=True)
    q_s = attention_map_loops(s.detach(), 2)
    assert loss.item() == pytest.approx(float(((q_s - q_t) ** 2).sum(1).mean()), rel=1e-9)
    loss.backward()
    assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0


def test_attention_transfer_loss_errors():
    with pytest.raises(ValueError, match="batch size"):
        hidden.attention_transfer_loss(torch.zeros(2, 1, 3, 3), torch.zeros(3, 1, 3, 3))
    with pytest.raises(ValueError):
        hidden.attention_transfer_loss(torch.zeros(2, 4), torch.zeros(2, 4))


# --- hint_loss ---------------------------------------------------------------------------------

def test_hint_loss_formula_regressor_side_and_gradients():
    student = rand(2, 3, 4, 4, seed=6).float().requires_grad_(True)
    teacher = rand(2, 5, 4, 4, seed=7).float().requires_grad_(True)
    regressor = hidden.hint_regressor(3, 5)
    loss = hidden.hint_loss(student, teacher, regressor)
    w, b = regressor.weight.detach()[:, :, 0, 0], regressor.bias.detach()
    total = 0.0
    for i in range(2):
        for k in range(5):
            for y in range(4):
                for x in range(4):
                    mapped = float(w[k] @ student.detach()[i, :, y, x] + b[k])
                    total += (mapped - float(teacher.detach()[i, k, y, x])) ** 2
    assert loss.item() == pytest.approx(total / (2 * 5 * 4 * 4), rel=1e-5)
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and regressor.weight.grad is not None


def test_hint_loss_zero_when_regressor_reproduces_teacher():
    student = rand(3, 4, 2, 2, seed=8).float()
    regressor = nn.Conv2d(4, 4, 1)
    with torch.no_grad():
        regressor.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        regressor.bias.zero_()
    assert hidden.hint_loss(student, student.clone(), regressor).item() == 0.0


def test_hint_loss_shape_error_names_the_regressor():
    with pytest.raises(ValueError, match="regressor must map the student"):
        hidden.hint_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 5, 4, 4), nn.Identity())


# --- cosine_representation_loss ------------------------------------------------------------------

def test_cosine_loss_formula_same_width():
    s, t = rand(4, 6, seed=9), rand(4, 6, seed=10)
    expected = sum(1 - float(s[i] @ t[i]) / float(s[i].norm() * t[i].norm()) for i in range(4)) / 4
    assert hidden.cosine_representation_loss(s, t).item() == pytest.approx(expected, rel=1e-9)


def test_cosine_loss_pools_wider_features_and_is_scale_invariant():
    s, t = rand(3, 4, seed=11), rand(3, 8, seed=12)
    pooled = t.view(3, 4, 2).mean(-1)  # neighbouring pairs averaged: 8 -> 4
    expected = sum(1 - float(s[i] @ pooled[i]) / float(s[i].norm() * pooled[i].norm()) for i in range(3)) / 3
    assert hidden.cosine_representation_loss(s, t).item() == pytest.approx(expected, rel=1e-9)
    assert hidden.cosine_representation_loss(s, t).item() == pytest.approx(
        hidden.cosine_representation_loss(7 * s, 0.1 * t).item(), rel=1e-9)
    assert hidden.cosine_representation_loss(t, t).item() == pytest.approx(0.0, abs=1e-12)
    # flattened: (N, C, H, W) works too
    assert hidden.cosine_representation_loss(rand(2, 2, 3, 3), rand(2, 18)).dim() == 0


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
    assert hidden.relational_distance_loss(s, t).item() == pytest.approx(rkd_loops(s, t), rel=1e-9)


def test_relational_loss_invariances_and_gradient():
    t = rand(6, 8, seed=15)
    rotation, _ = torch.linalg.qr(rand(8, 8, seed=16))
    # zero for identical, scaled, rotated or shifted copies: only the shape of the batch counts
    for s in (t, 3 * t, t @ rotation, t + 5):
        assert hidden.relational_distance_loss(s, t).item() == pytest.approx(0.0, abs=1e-6)
    s = rand(6, 2, seed=17).requires_grad_(True)
    teacher = t.clone().requires_grad_(True)
    loss = hidden.relational_distance_loss(s, teacher)
    loss.backward()
    assert teacher.grad is None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


def test_relational_loss_errors():
    with pytest.raises(ValueError, match="at least 2"):
        hidden.relational_distance_loss(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="batch size"):
        hidden.relational_distance_loss(torch.zeros(3, 3), torch.zeros(4, 3))


# --- the feature interface and the training helpers -----------------------------------------------

def test_thin_cnn_feature_interface_matches_teacher_sizes():
    student, teacher = models.ThinCNN((4, 8), 32), models.CNNTeacher((16, 32, 64), 128)
    x = torch.rand(3, 1, 28, 28)
    logits, features = student(x, return_features=True)
    _, t_features = teacher(x, return_features=True)
    assert logits.shape == (3, 10) and torch.equal(student(x), logits)
    assert list(features) == ["block1", "block2", "embedding"]
    assert features["block1"].shape[-2:] == t_features["block1"].shape[-2:] == (14, 14)
    assert features["block2"].shape[-2:] == t_features["block2"].shape[-2:] == (7, 7)


def test_fitnets_stage1_only_updates_lower_student_and_regressor():
    torch.manual_seed(0)
    student = models.ThinCNN((2, 3), 8)
    regressor = hidden.hint_regressor(3, 5)
    before = {n: p.detach().clone() for n, p in student.named_parameters()}
    reg_before = regressor.weight.detach().clone()
    x, hints = torch.rand(32, 1, 28, 28), torch.randn(32, 5, 7, 7)
    hidden.hint_stage(student, regressor, x, hints, "block2", epochs=1, lr=1e-2, batch_size=16, progress=False)
    for name, p in student.named_parameters():
        changed = not torch.equal(p.detach(), before[name])
        assert changed == name.startswith(("block1.", "block2.")), name
    assert not torch.equal(regressor.weight.detach(), reg_before)


def test_train_hidden_student_runs_every_method(tmp_course_dirs):
    x, y = torch.rand(24, 1, 28, 28), torch.arange(24) % 10
    teacher = models.CNNTeacher((4, 4, 4), 8)
    tout = hidden.teacher_outputs(teacher, x, {"test": 1}, ["block1", "block2", "embedding"])
    assert set(tout) == {"logits", "block1", "block2", "embedding"} and tout["block2"].shape == (24, 4, 7, 7)
    again = hidden.teacher_outputs(teacher, x, {"test": 1}, ["block1", "block2", "embedding"])
    assert torch.equal(again["embedding"], tout["embedding"])
    pairs = {"hint+KD": {"block2": "block2"}, "AT+KD": {"block1": "block1", "block2": "block2"},
             "cosine+KD": {"embedding": "embedding"}, "RKD+KD": {"embedding": "embedding"}}
    for method in hidden.METHODS:
        student, history = hidden.train_hidden_student(method, lambda: models.ThinCNN((2, 3), 8), x, y, tout,
                                                       epochs=1, pairs=pairs.get(method), hint_epochs=1,
                                                       batch_size=12, progress=False)
        assert len(history.loss) == 1 and math.isfinite(history.loss[0]), method
    with pytest.raises(ValueError, match="method must be one of"):
        hidden.train_hidden_student("magic", models.ThinCNN, x, y, tout, epochs=1)


def test_report_lesson03_renders_every_method():
    from course_lib.report import lesson03

    method = {"test_accuracy": [0.95, 0.96, 0.97], "shifted_test_accuracy": [0.8, 0.82, 0.84], "params": 13254,
              "latency_ms_per_batch": 2.5, "beta": None}
    record = {"regime": {"description": "few labels", "epochs": 60, "temperature": 4.0, "alpha": 0.9,
                         "max_shift_px": 2},
              "seeds": [0, 1, 2], "seconds": 600.0, "device_name": "cpu (2 threads)", "latency_batch_size": 256,
              "teacher": {"test_accuracy": 0.99, "shifted_test_accuracy": 0.98, "params": 426234,
                          "latency_ms_per_batch": 9.0},
              "methods": {m: {**method, "beta": 10.0 if "+" in m and m != "logit KD" else None}
                          for m in hidden.METHODS}}
    text = lesson03(record)
    assert text.count("| student: ") == len(hidden.METHODS)
    assert "96.00 ± 1.00" in text and "82.00 ± 2.00" in text and "426,234" in text and "(beta = 10)" in text
