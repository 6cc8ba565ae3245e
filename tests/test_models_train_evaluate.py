import pytest
import torch
from torch import nn

from course_lib import evaluate, models, train
from course_lib.config import seed_everything


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
    hist = train.fit(model, x, y, train.cross_entropy_loss, epochs=15, batch_size=64, lr=1e-2,
                     x_val=x, y_val=y, device="cpu", progress=False)
    assert len(hist.loss) == 15 and len(hist.val_accuracy) == 15
    assert hist.loss[-1] < hist.loss[0] * 0.5
    assert evaluate.accuracy(model, x, y) > 0.9
    assert hist.seconds > 0


def test_fit_is_deterministic_for_a_seed():
    x, y = _toy_problem()

    def run(seed):
        seed_everything(0)
        model = models.MLP(hidden=(16,), in_features=16, num_classes=4, dropout=0.2)
        train.fit(model, x, y, train.cross_entropy_loss, epochs=2, batch_size=32, seed=seed,
                  device="cpu", progress=False)
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
    train.fit(model, x, (t1, t2), loss_fn, epochs=2, batch_size=3, device="cpu", progress=False)
    assert seen and all(seen)


def test_fit_rejects_bad_input():
    x, y = _toy_problem(32)
    model = models.MLP(hidden=(8,), in_features=16, num_classes=4)
    with pytest.raises(ValueError, match="rows but x has"):
        train.fit(model, x, y[:10], train.cross_entropy_loss, epochs=1, device="cpu", progress=False)
    with pytest.raises(FloatingPointError, match="loss became"):
        train.fit(model, x, y, lambda out, t: out.sum() * float("nan"), epochs=1, device="cpu", progress=False)


def test_predict_logits_accuracy_and_error_count():
    seed_everything(0)
    model = models.MLP(hidden=(8,), in_features=16, num_classes=4).train()
    x, y = _toy_problem(100)
    logits = evaluate.predict_logits(model, x, batch_size=7, device="cpu")
    with torch.no_grad():
        direct = model.eval()(x)
    assert torch.allclose(logits, direct, atol=1e-6)
    model.train()
    evaluate.predict_logits(model, x, device="cpu")
    assert model.training  # mode restored
    wrong = sum(int(torch.argmax(logits[i])) != int(y[i]) for i in range(len(y)))  # loop, independent
    assert evaluate.error_count(logits, y) == wrong
    assert evaluate.accuracy(logits, y) == pytest.approx(1 - wrong / 100)
    assert evaluate.error_count(model, x, y) == wrong
    with pytest.raises(ValueError):
        evaluate.error_count(logits, y[:5])


def test_time_calls_skips_warmup_and_times_the_rest():
    import time

    seen = []

    def fn(item):
        seen.append(item)
        time.sleep(0.01 if item >= 2 else 0.0)

    walls, cpus = evaluate.time_calls(fn, [0, 1, 2, 3, 4], warmup=2)
    assert seen == [0, 1, 2, 3, 4]
    assert len(walls) == len(cpus) == 3
    assert all(w >= 0.009 for w in walls)  # each timed call slept 10 ms
    assert all(c < w for c, w in zip(cpus, walls))  # sleeping uses wall time, not CPU time
    with pytest.raises(ValueError, match="warm-up"):
        evaluate.time_calls(fn, [0, 1], warmup=2)
