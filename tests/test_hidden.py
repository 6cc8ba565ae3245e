"""course_lib.hidden: the feature interface, FitNets' stages, the lesson-03 trainer and its device handling.

The losses it trains with are tested in ``tests/test_losses.py``.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from course_lib import config, distill, hidden, losses, models
from tolerance import FORWARD_PASS, approx32, close32, kd_magnitude


# --- the feature interface and the training helpers -----------------------------------------------

def test_thin_cnn_feature_interface_matches_teacher_sizes():
    student, teacher = models.ThinCNN((4, 8), 32), models.CNNTeacher((16, 32, 64), 128)
    x = torch.rand(3, 1, 28, 28)
    logits, features = student(x, return_features=True)
    _, t_features = teacher(x, return_features=True)
    assert logits.shape == (3, 10) and torch.equal(student(x), logits)  # the same forward twice: the same numbers
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


PAIRS = {"hint+KD": {"block2": "block2"}, "AT+KD": {"block1": "block1", "block2": "block2"},
         "cosine+KD": {"embedding": "embedding"}, "RKD+KD": {"embedding": "embedding"}}
LAYERS = ["block1", "block2", "embedding"]


def small_student():
    return models.ThinCNN((2, 3), 8)


def test_teacher_outputs_are_cached_and_match_the_teacher(tmp_course_dirs):
    x = torch.rand(25, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    teacher = models.CNNTeacher((4, 4, 4), 8).train()
    tout = distill.teacher_outputs(teacher, x, {"test": 1}, LAYERS, batch_size=10)
    assert teacher.training  # mode restored
    with torch.no_grad():
        logits, features = teacher.eval()(x, return_features=True)
    # batches of 10 against one batch of 25: the same up to float32 rounding
    torch.testing.assert_close(tout["logits"], logits, **close32(FORWARD_PASS))
    torch.testing.assert_close(tout["block2"], features["block2"], **close32(FORWARD_PASS))
    assert set(tout) == {"logits", *LAYERS}
    calls = []
    distill.teacher_outputs(lambda *a, **k: calls.append(1), x, {"test": 1}, LAYERS, batch_size=10)  # type: ignore[arg-type]
    assert calls == []  # the second call reads the cache


def test_train_hidden_student_every_method_with_a_last_batch_of_one(tmp_course_dirs):
    """25 examples in batches of 12: the last batch holds one example (RKD has no pairs there)."""
    x, y = torch.rand(25, 1, 28, 28), torch.arange(25) % 10
    tout = distill.teacher_outputs(models.CNNTeacher((4, 4, 4), 8), x, {"test": 1}, LAYERS)
    for method in hidden.METHODS:
        student, history = hidden.train_hidden_student(method, small_student, x, y, tout, epochs=2,
                                                       pairs=PAIRS.get(method), hint_epochs=1, batch_size=12,
                                                       progress=False)
        with config.seeded(0):
            initial = small_student()
        assert len(history.loss) == 2, method
        assert not torch.equal(student.head.weight, initial.head.weight), method  # it trained
    with pytest.raises(ValueError, match="method must be one of"):
        hidden.train_hidden_student("magic", models.ThinCNN, x, y, tout, epochs=1)


@pytest.mark.parametrize("method,feature_loss", [("AT+KD", losses.attention_transfer_loss),
                                                 ("cosine+KD", losses.cosine_representation_loss),
                                                 ("RKD+KD", losses.relational_distance_loss)])
def test_train_hidden_student_loss_is_kd_plus_beta_times_the_hidden_term(tmp_course_dirs, method, feature_loss):
    """With lr = 0 and one batch, the recorded loss is the combined objective at the initial weights."""
    x, y = torch.rand(16, 1, 28, 28), torch.arange(16) % 10
    tout = distill.teacher_outputs(models.CNNTeacher((4, 4, 4), 8), x, {"test": 1}, LAYERS)
    beta, temperature, alpha = 3.0, 2.0, 0.7
    _, history = hidden.train_hidden_student(method, small_student, x, y, tout, epochs=1, beta=beta,
                                             temperature=temperature, alpha=alpha, pairs=PAIRS[method], lr=0.0,
                                             batch_size=16, seed=5, progress=False)
    with config.seeded(5):
        student = small_student()
    with torch.no_grad():
        logits, features = student(x, return_features=True)
    hidden_term = sum(feature_loss(features[s], tout[t]) for s, t in PAIRS[method].items())
    assert float(hidden_term) > 1e-3  # the check below would not see a missing hidden term otherwise
    expected = losses.distillation_loss(logits, tout["logits"], y, temperature, alpha) + beta * hidden_term
    # float32 both ways, in another order (the trainer's batch under autograd): float32's tolerance; each hidden
    # term is at most 4 in size
    magnitude = max(kd_magnitude(logits, tout["logits"], temperature=temperature), kd_magnitude(logits)) + 4 * beta
    assert history.loss[0] == approx32(expected.item(), magnitude)


def test_train_hidden_student_leaves_the_global_rng_alone(tmp_course_dirs):
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    tout = distill.teacher_outputs(models.CNNTeacher((4, 4, 4), 8), x, {"test": 1}, LAYERS)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, _ = hidden.train_hidden_student("hint+KD", small_student, x, y, tout, epochs=1, pairs=PAIRS["hint+KD"],
                                       hint_epochs=1, batch_size=4, seed=1, progress=False)
    assert torch.equal(torch.rand(3), expected)
    b, _ = hidden.train_hidden_student("hint+KD", small_student, x, y, tout, epochs=1, pairs=PAIRS["hint+KD"],
                                       hint_epochs=1, batch_size=4, seed=1, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))  # same seed, same student


# --- device handling: helpers move inputs, never models -----------------------------------------

class MetaRecorder(nn.Module):
    """A model whose first parameter lives on the "meta" device: its device, as far as helpers can tell.

    ``forward`` records the device of its input and returns CPU outputs (meta tensors hold no values).
    """

    def __init__(self, num_classes=3):
        super().__init__()
        self.anchor = nn.Parameter(torch.empty(1, device="meta"))
        self.weight = nn.Parameter(torch.zeros(num_classes))
        self.seen = []

    def forward(self, x, return_features=False):
        self.seen.append(x.device.type)
        logits = self.weight.expand(len(x), -1)
        return (logits, {"block1": torch.zeros(len(x), 2, 2, 2)}) if return_features else logits


def test_teacher_outputs_moves_inputs_to_the_teachers_device(tmp_course_dirs, models_never_move):
    teacher = MetaRecorder()
    out = distill.teacher_outputs(teacher, torch.rand(5, 1, 4, 4), {"test": "meta"}, ["block1"], batch_size=2)
    assert teacher.seen == ["meta"] * 3 and teacher.anchor.device.type == "meta"
    assert out["logits"].shape == (5, 3) and out["block1"].device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_train_hidden_student_on_cuda(tmp_course_dirs):
    device = torch.device("cuda")
    x, y = torch.rand(25, 1, 28, 28), torch.arange(25) % 10
    teacher = models.CNNTeacher((4, 4, 4), 8).to(device)
    tout = distill.teacher_outputs(teacher, x, {"test": "cuda"}, LAYERS)
    assert tout["logits"].device.type == "cpu"
    for method in hidden.METHODS:
        student, history = hidden.train_hidden_student(method, lambda: small_student().to(device), x, y, tout,
                                                       epochs=1, pairs=PAIRS.get(method), hint_epochs=1,
                                                       batch_size=12, progress=False)
        assert next(student.parameters()).device.type == "cuda", method
        assert len(history.loss) == 1, method


def test_report_lesson03_renders_every_method():
    from course_lib.report import lesson03

    method = {"test_accuracy": [0.95, 0.96, 0.97], "shifted_test_accuracy": [0.8, 0.82, 0.84], "params": 13254,
              "latency_ms_per_batch": 2.5, "beta": None}
    record = {"regime": {"description": "few labels", "epochs": 60, "temperature": 4.0, "alpha": 0.9,
                         "max_shift_px": 2},
              "seeds": [0, 1, 2], "seconds": 600.0, "device_name": "cpu (2 threads)", "latency_batch_size": 256,
              "teacher": {"test_accuracy": 0.99, "shifted_test_accuracy": 0.98, "params": 426234,
                          "latency_ms_per_batch": 9.0},
              "methods": {m: {**method, "beta": 10.0 if "+" in m and m != "soft targets" else None}
                          for m in hidden.METHODS}}
    text = lesson03(record)
    assert text.count("| student: ") == len(hidden.METHODS)
    assert "96.00 ± 1.00" in text and "82.00 ± 2.00" in text and "426,234" in text and "(beta = 10)" in text


def test_report_lesson03_shows_latency_median_and_iqr_where_recorded():
    from course_lib.report import lesson03

    method = {"test_accuracy": [0.95, 0.97], "shifted_test_accuracy": [0.8, 0.84], "params": 13254,
              "latency_ms_per_batch": 2.5, "latency_ms_iqr": [2.25, 3.0], "beta": None}
    record = {"regime": {"description": "few labels", "epochs": 60, "temperature": 4.0, "alpha": 0.9,
                         "max_shift_px": 2},
              "seeds": [0, 1], "seconds": 60.0, "device_name": "cuda", "latency_batch_size": 256,
              "latency": {"device": "cuda"},
              "teacher": {"test_accuracy": 0.99, "shifted_test_accuracy": 0.98, "params": 426234,
                          "latency_ms_per_batch": 9.0, "latency_ms_iqr": [8.5, 9.25]},
              "methods": {"soft targets": method}}
    text = lesson03(record)
    assert "CUDA ms / batch of 256, median (IQR)" in text
    assert "| 9.00 (8.50-9.25) |" in text and "| 2.50 (2.25-3.00) |" in text

