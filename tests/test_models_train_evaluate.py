import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import config, evaluate, losses, models, train
from course_lib.config import seed_everything
from tolerance import FORWARD_PASS, close32


def test_mlp_shapes_features_and_parameter_count():
    model = models.MLP(hidden=(800, 800))
    x = torch.rand(5, 1, 28, 28)
    logits, feats = model(x, return_features=True)
    assert logits.shape == (5, 10)
    assert list(feats) == ["hidden1", "hidden2"] and feats["hidden2"].shape == (5, 800)
    assert torch.equal(model(x), logits)
    # 784*800+800 + 800*800+800 + 800*10+10, written out
    assert models.count_parameters(model) == 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10


def test_mlp_without_dropout_is_deterministic_in_train_mode():
    model = models.MLP(hidden=(30, 30)).train()
    x = torch.rand(4, 784)
    assert torch.equal(model(x), model(x))


def test_cnn_teacher_features():
    model = models.CNNTeacher(channels=(8, 16, 32), hidden=64).eval()
    logits, feats = model(torch.rand(3, 1, 28, 28), return_features=True)
    assert logits.shape == (3, 10)
    assert feats["block1"].shape == (3, 8, 14, 14)
    assert feats["block2"].shape == (3, 16, 7, 7)
    assert feats["block3"].shape == (3, 32, 7, 7)
    assert feats["embedding"].shape == (3, 64)


def _toy_problem(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 4, 4, generator=g)
    y = (x.flatten(1)[:, 0] > 0).long() + 2 * (x.flatten(1)[:, 1] > 0).long()  # 4 classes
    return x, y


def test_fit_learns_and_reports_history():
    x, y = _toy_problem()
    seed_everything(0)
    model = models.MLP(hidden=(32,), in_features=16, num_classes=4)
    hist = train.fit(model, x, y, losses.cross_entropy_loss, epochs=15, batch_size=64, lr=1e-2,
                     x_val=x, y_val=y, progress=False)
    assert len(hist.loss) == 15 and len(hist.val_accuracy) == 15
    assert hist.loss[-1] < hist.loss[0] * 0.5
    assert evaluate.accuracy(model, x, y) > 0.9
    assert hist.seconds > 0


def test_fit_is_deterministic_for_a_seed():
    x, y = _toy_problem()

    def run(seed):
        seed_everything(0)
        model = models.MLP(hidden=(16,), in_features=16, num_classes=4, dropout=0.2)
        train.fit(model, x, y, losses.cross_entropy_loss, epochs=2, batch_size=32, seed=seed, progress=False)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_fit_passes_all_targets_with_the_same_indices():
    x = torch.arange(10, dtype=torch.float32).view(10, 1)
    t1, t2 = x.clone() * 2, x.clone() * 3
    seen = []

    def loss_fn(out, a, b):
        seen.append((a.flatten() / 2).tolist() == (b.flatten() / 3).tolist())
        return out.sum() * 0

    model = nn.Linear(1, 1)
    train.fit(model, x, (t1, t2), loss_fn, epochs=2, batch_size=3, progress=False)
    assert seen and all(seen)


def test_fit_rejects_bad_input():
    x, y = _toy_problem(32)
    model = models.MLP(hidden=(8,), in_features=16, num_classes=4)
    with pytest.raises(ValueError, match="rows but x has"):
        train.fit(model, x, y[:10], losses.cross_entropy_loss, epochs=1, progress=False)
    with pytest.raises(FloatingPointError, match="loss became"):
        train.fit(model, x, y, lambda out, t: out.sum() * float("nan"), epochs=1, progress=False)


def test_predict_logits_accuracy_and_error_count():
    seed_everything(0)
    model = models.MLP(hidden=(8,), in_features=16, num_classes=4).train()
    x, y = _toy_problem(100)
    logits = models.predict_logits(model, x, batch_size=7)
    with torch.no_grad():
        direct = model.eval()(x)
    assert torch.allclose(logits, direct, **close32(FORWARD_PASS))  # batches of 7 against one of 100
    model.train()
    models.predict_logits(model, x)
    assert model.training  # mode restored
    wrong = sum(int(torch.argmax(logits[i])) != int(y[i]) for i in range(len(y)))  # loop, independent
    assert evaluate.error_count(logits, y) == wrong
    assert evaluate.accuracy(logits, y) == pytest.approx(1 - wrong / 100)
    assert evaluate.error_count(model, x, y) == wrong
    with pytest.raises(ValueError):
        evaluate.error_count(logits, y[:5])


# --- the learning-rate schedule ---------------------------------------------------------------------

@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_fit_follows_the_learning_rate_schedule(schedule):
    """A loss linear in the parameters: each Adam step moves every parameter by exactly that step's lr.

    So the total distance travelled is the sum of the learning rates, written out here for both schedules.
    """
    n, batch_size, epochs, lr = 10, 3, 3, 0.01
    total_steps = epochs * ((n + batch_size - 1) // batch_size)
    model = nn.Linear(1, 1)
    start = model.weight.detach().clone()
    train.fit(model, torch.ones(n, 1), torch.zeros(n), lambda out, _: out.mean(), epochs=epochs,
              batch_size=batch_size, lr=lr, schedule=schedule, progress=False)
    if schedule == "cosine":
        rates = [lr * (1 + math.cos(math.pi * t / total_steps)) / 2 for t in range(total_steps)]
    else:
        rates = [lr] * total_steps
    travelled = float(start - model.weight.detach())
    assert travelled == pytest.approx(sum(rates), rel=1e-4)


# --- device handling: fit and predict_logits move inputs, never the model --------------------------

class MetaRecorder(nn.Module):
    """First parameter on the "meta" device (so helpers see a non-CPU model); records the device of its inputs."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.empty(1, device="meta"))
        self.weight = nn.Parameter(torch.zeros(3))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.device.type)
        return self.weight.expand(len(x), -1) + 0.0


def test_model_device_reads_the_first_parameter():
    assert models.model_device(MetaRecorder()).type == "meta"
    assert models.model_device(nn.ReLU()).type == "cpu"  # no parameters: the CPU


def test_predict_logits_moves_inputs_to_the_models_device(models_never_move):
    model = MetaRecorder()
    logits = models.predict_logits(model, torch.rand(7, 2), batch_size=3)
    assert model.seen == ["meta"] * 3 and logits.device.type == "cpu" and logits.shape == (7, 3)
    assert model.anchor.device.type == "meta"


def test_fit_moves_inputs_and_targets_to_the_models_device(models_never_move):
    model, seen_targets = MetaRecorder(), []

    def loss_fn(out, t):
        seen_targets.append(t.device.type)
        return out.sum() * 0 + 1.0

    train.fit(model, torch.rand(5, 2), torch.zeros(5), loss_fn, epochs=1, batch_size=2, progress=False)
    assert model.seen == ["meta"] * 3 and seen_targets == ["meta"] * 3
    assert model.anchor.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_and_predict_logits_on_cuda():
    x, y = _toy_problem()
    with config.seeded(0):
        model = models.MLP(hidden=(32,), in_features=16, num_classes=4).to("cuda")
    train.fit(model, x, y, losses.cross_entropy_loss, epochs=5, batch_size=64, lr=1e-2, progress=False)
    assert models.model_device(model).type == "cuda"
    logits = models.predict_logits(model, x)
    assert logits.device.type == "cpu" and evaluate.accuracy(logits, y) > 0.8
    with config.seeded(0):
        cpu_model = models.MLP(hidden=(32,), in_features=16, num_classes=4)
    train.fit(cpu_model, x, y, losses.cross_entropy_loss, epochs=5, batch_size=64, lr=1e-2, progress=False)
    torch.testing.assert_close(logits, models.predict_logits(cpu_model, x), atol=1e-2, rtol=1e-2)


def test_accuracy_is_exactly_the_share_of_right_answers():
    """``np.mean(pred == labels)``, bit for bit (the lessons' inline form), also where ``1 - wrong / n`` is not."""
    assert 1 - 1 / 3 != 2 / 3  # two roundings against one: why the share is right / n
    gen = np.random.default_rng(0)
    for n in (1, 3, 7, 100, 999, 1234):
        logits, labels = gen.normal(size=(n, 5)), gen.integers(0, 5, size=n)
        assert evaluate.accuracy(logits, labels) == float(np.mean(logits.argmax(1) == labels))
        assert evaluate.accuracy(torch.from_numpy(logits), torch.from_numpy(labels)) == evaluate.accuracy(logits, labels)
