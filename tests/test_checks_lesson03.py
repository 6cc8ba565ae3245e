"""Tests for the lesson 03 checks: the reference passes, stubs are 'not implemented yet',
and each typical mistake (written out below) fails with its own hint."""
from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from course_lib import hidden, losses, train
from course_lib.checks._core import run_check
from course_lib.checks.lesson03 import HINTS, check_attention_map, check_fitnets, check_hint_loss
from course_lib.losses import distillation_loss
import hint_checks
from hint_checks import stub


assert_hint = functools.partial(hint_checks.assert_hint, HINTS)


def fitnets_reference(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2", hint_epochs=5,
                      kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    hidden.fitnets(student, regressor, x, teacher_hints, teacher_logits, labels, layer=layer,
                   hint_epochs=hint_epochs, kd_epochs=kd_epochs, temperature=temperature, alpha=alpha, lr=lr,
                   seed=seed, progress=False)


@pytest.mark.parametrize("check,reference", [
    (check_attention_map, losses.attention_map),
    (check_hint_loss, losses.hint_loss),
    (check_fitnets, fitnets_reference),
])
def test_check_passes_reference_and_reports_stub(check, reference, capsys, pinned_one_thread):
    assert check(reference) is True
    assert "all checks passed" in capsys.readouterr().out
    assert check(stub) is False
    assert "not implemented yet" in capsys.readouterr().out
    assert run_check(check, lambda *a, **k: 1 / 0).status == "failed"


def test_hints_are_distinct():
    assert len(set(HINTS.values())) == len(HINTS)


# --- attention_map: typical mistakes -------------------------------------------------------------

def am_no_normalise(features, p=2):
    return features.abs().pow(p).sum(dim=1).flatten(1)


def am_spatial_sum(features, p=2):
    return F.normalize(features.abs().pow(p).sum(dim=(2, 3)), dim=1)


def am_not_flat(features, p=2):
    summed = features.abs().pow(p).sum(dim=1)
    return summed / summed.flatten(1).norm(dim=1).view(-1, 1, 1)


def am_batch_normalise(features, p=2):
    return F.normalize(features.abs().pow(p).sum(dim=1).flatten(1), dim=0)


def am_l1(features, p=2):
    return F.normalize(features.abs().pow(p).sum(dim=1).flatten(1), p=1, dim=1)


def am_no_abs(features, p=2):
    return F.normalize(features.pow(p).sum(dim=1).flatten(1), dim=1)


def am_p_ignored(features, p=2):
    return F.normalize(features.pow(2).sum(dim=1).flatten(1), dim=1)


def am_mean_over_channels(features, p=2):  # a valid variant: the normalisation removes the 1/C
    return F.normalize(features.abs().pow(p).mean(dim=1).flatten(1), dim=1)


@pytest.mark.parametrize("fn,key", [
    (am_no_normalise, "am_no_normalise"), (am_spatial_sum, "am_wrong_axis"), (am_not_flat, "am_not_flat"),
    (am_batch_normalise, "am_normalise_dim"), (am_l1, "am_l1"), (am_no_abs, "am_no_abs"),
    (am_p_ignored, "am_p_ignored"),
])
def test_attention_map_mistakes(fn, key):
    assert_hint(check_attention_map, fn, key)


def test_attention_map_accepts_mean_over_channels():
    assert check_attention_map(am_mean_over_channels) is True


# --- hint_loss: typical mistakes ---------------------------------------------------------------------

def hint_wrong_side(student_features, teacher_features, regressor):
    return F.mse_loss(student_features, regressor(teacher_features.detach()))


def hint_no_regressor(student_features, teacher_features, regressor):
    return F.mse_loss(student_features, teacher_features.detach())


def hint_sum(student_features, teacher_features, regressor):
    return F.mse_loss(regressor(student_features), teacher_features.detach(), reduction="sum")


def hint_per_example(student_features, teacher_features, regressor):
    return (regressor(student_features) - teacher_features.detach()).pow(2).flatten(1).sum(1).mean()


def hint_half(student_features, teacher_features, regressor):
    return 0.5 * F.mse_loss(regressor(student_features), teacher_features.detach())


def hint_l1(student_features, teacher_features, regressor):
    return F.l1_loss(regressor(student_features), teacher_features.detach())


def hint_rmse(student_features, teacher_features, regressor):
    return F.mse_loss(regressor(student_features), teacher_features.detach()).sqrt()


def hint_not_detached(student_features, teacher_features, regressor):
    return F.mse_loss(regressor(student_features), teacher_features)


def hint_item(student_features, teacher_features, regressor):
    return torch.tensor(F.mse_loss(regressor(student_features), teacher_features).item())


@pytest.mark.parametrize("fn,key", [
    (hint_wrong_side, "hint_wrong_side"), (hint_no_regressor, "hint_no_regressor"), (hint_sum, "hint_sum"),
    (hint_per_example, "hint_per_example"), (hint_half, "hint_half"), (hint_l1, "hint_l1"),
    (hint_rmse, "hint_rmse"), (hint_not_detached, "hint_teacher_grad"), (hint_item, "hint_no_grad"),
])
def test_hint_loss_mistakes(fn, key):
    assert_hint(check_hint_loss, fn, key)


def test_hint_loss_wrong_side_that_crashes_gets_the_hint():
    def wrong_side_only_shapes(student_features, teacher_features, regressor):
        if student_features.shape[1] == teacher_features.shape[1]:
            return F.mse_loss(regressor(student_features), teacher_features.detach())
        return F.mse_loss(student_features, regressor(teacher_features))  # crashes: 5 channels into Conv2d(2, 5)
    assert_hint(check_hint_loss, wrong_side_only_shapes, "hint_wrong_side")


# --- the FitNets loop: typical mistakes ----------------------------------------------------------------

def _kd(temperature, alpha):
    return functools.partial(distillation_loss, temperature=temperature, alpha=alpha)


def fit_no_stage1(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2", hint_epochs=5,
                  kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    train.fit(student, x, (teacher_logits, labels), _kd(temperature, alpha), kd_epochs, lr=lr, seed=seed,
              progress=False)


def fit_order(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2", hint_epochs=5,
              kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    train.fit(student, x, (teacher_logits, labels), _kd(temperature, alpha), kd_epochs, lr=lr, seed=seed,
              progress=False)
    train.fit(hidden.HintStudent(student, regressor, layer), x, teacher_hints, F.mse_loss, hint_epochs, lr=lr,
              seed=seed, progress=False)


def fit_stage1_with_kd(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2",
                       hint_epochs=5, kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    model = hidden.WithFeatures(student)
    model.regressor = regressor

    def loss(out, hints, t, y):
        logits, features = out
        return losses.hint_loss(features[layer], hints, regressor) + distillation_loss(logits, t, y, temperature,
                                                                                       alpha)
    train.fit(model, x, (teacher_hints, teacher_logits, labels), loss, hint_epochs, lr=lr, seed=seed,
              progress=False)
    train.fit(student, x, (teacher_logits, labels), _kd(temperature, alpha), kd_epochs, lr=lr, seed=seed,
              progress=False)


def fit_regressor_frozen(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2",
                         hint_epochs=5, kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    loss = lambda out, hints: losses.hint_loss(out[1][layer], hints, regressor)  # noqa: E731
    train.fit(hidden.WithFeatures(student), x, teacher_hints, loss, hint_epochs, lr=lr, seed=seed, progress=False)
    train.fit(student, x, (teacher_logits, labels), _kd(temperature, alpha), kd_epochs, lr=lr, seed=seed,
              progress=False)


def fit_no_stage2(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2", hint_epochs=5,
                  kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    hidden.hint_stage(student, regressor, x, teacher_hints, layer, hint_epochs, lr=lr, seed=seed, progress=False)


def fit_stage2_labels(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2",
                      hint_epochs=5, kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    hidden.hint_stage(student, regressor, x, teacher_hints, layer, hint_epochs, lr=lr, seed=seed, progress=False)
    train.fit(student, x, labels, losses.cross_entropy_loss, kd_epochs, lr=lr, seed=seed, progress=False)


@pytest.mark.parametrize("fn,key", [
    (fit_no_stage1, "fit_no_stage1"), (fit_order, "fit_order"), (fit_stage1_with_kd, "fit_stage1_upper"),
    (fit_regressor_frozen, "fit_regressor_frozen"), (fit_no_stage2, "fit_no_stage2"),
    (fit_stage2_labels, "fit_stage2_labels"),
])
def test_fitnets_mistakes(fn, key, pinned_one_thread):
    assert_hint(check_fitnets, fn, key)


def _two_stages(student, regressor, x, teacher_hints, teacher_logits, labels, layer, hint_epochs, kd_epochs, loss,
                lr, seed):
    hidden.hint_stage(student, regressor, x, teacher_hints, layer, hint_epochs, lr=lr, seed=seed, progress=False)
    train.fit(student, x, (teacher_logits, labels), loss, kd_epochs, lr=lr, seed=seed, progress=False)


def fit_ignores_temperature(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2",
                            hint_epochs=5, kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    _two_stages(student, regressor, x, teacher_hints, teacher_logits, labels, layer, hint_epochs, kd_epochs,
                _kd(4.0, alpha), lr, seed)


def fit_ignores_alpha(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2",
                      hint_epochs=5, kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    _two_stages(student, regressor, x, teacher_hints, teacher_logits, labels, layer, hint_epochs, kd_epochs,
                _kd(temperature, 0.9), lr, seed)


def fit_default_arguments(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2",
                          hint_epochs=5, kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    """distillation_loss called without temperature and alpha: its defaults (1.0, 0.5) are used."""
    _two_stages(student, regressor, x, teacher_hints, teacher_logits, labels, layer, hint_epochs, kd_epochs,
                lambda logits, t, y: distillation_loss(logits, t, y), lr, seed)


def fit_own_loss_fixed_alpha(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2",
                             hint_epochs=5, kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    """A loss of the learner's own (not the library's), with alpha fixed at 1: seen only by its behaviour."""
    _two_stages(student, regressor, x, teacher_hints, teacher_logits, labels, layer, hint_epochs, kd_epochs,
                lambda logits, t, y: losses.kd_loss(logits, t, temperature), lr, seed)


@pytest.mark.parametrize("fn,key", [
    (fit_ignores_temperature, "fit_args_ignored"), (fit_ignores_alpha, "fit_args_ignored"),
    (fit_default_arguments, "fit_args_ignored"), (fit_own_loss_fixed_alpha, "fit_alpha_ignored"),
])
def test_fitnets_must_use_the_temperature_and_alpha_it_is_given(fn, key, pinned_one_thread):
    assert_hint(check_fitnets, fn, key)


def test_the_spy_on_distillation_loss_is_removed_afterwards(pinned_one_thread):
    original = losses.distillation_loss
    with pytest.raises(AssertionError):
        check_fitnets(fit_ignores_alpha)
    assert losses.distillation_loss is original and globals()["distillation_loss"] is original


# --- issue 21: the layer, the two stages' epochs and the learning rate are the caller's -------------------

def make_fitnets(layer_used=None, swap_epochs=False, hint_epochs_used=None, kd_epochs_used=None, lr_hint=None,
                 lr_kd=None, batch_size=256):
    """A fitnets with one argument replaced by a fixed value (or the stages' epochs swapped)."""
    def fitnets(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2", hint_epochs=5,
                kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
        first, second = (kd_epochs, hint_epochs) if swap_epochs else (hint_epochs, kd_epochs)
        train.fit(hidden.HintStudent(student, regressor, layer_used or layer), x, teacher_hints, F.mse_loss,
                  hint_epochs_used or first, batch_size=batch_size, lr=lr_hint or lr, seed=seed, progress=False)
        train.fit(student, x, (teacher_logits, labels), _kd(temperature, alpha), kd_epochs_used or second,
                  batch_size=batch_size, lr=lr_kd or lr, seed=seed, progress=False)
    return fitnets


@pytest.mark.parametrize("fn,key", [
    (make_fitnets(layer_used="block2"), "fit_layer"),
    (make_fitnets(swap_epochs=True), "fit_epochs_swapped"),
    (make_fitnets(hint_epochs_used=5), "fit_epochs"),
    (make_fitnets(kd_epochs_used=20), "fit_epochs"),
    (make_fitnets(hint_epochs_used=3, kd_epochs_used=30), "fit_epochs"),
    (make_fitnets(lr_hint=1e-3, lr_kd=1e-3), "fit_lr"),
    (make_fitnets(lr_kd=1e-3), "fit_lr"),
    (make_fitnets(lr_hint=1e-3), "fit_lr"),
    (make_fitnets(lr_hint=1e-2, lr_kd=1e-2), "fit_lr"),
])
def test_fitnets_uses_the_layer_epochs_and_lr_it_is_given(fn, key, pinned_one_thread):
    assert_hint(check_fitnets, fn, key)


@pytest.mark.parametrize("fn", [make_fitnets(batch_size=32), make_fitnets(batch_size=1000)])
def test_fitnets_accepts_any_batch_size(fn, pinned_one_thread):
    assert check_fitnets(fn) is True


# --- issue 21: more wrong answers for 3.1 and 3.2 -----------------------------------------------------------------
@pytest.mark.parametrize("fn,key", [
    (lambda f, p=2: F.normalize(f.abs().sum(1).pow(p).flatten(1), dim=1), "am_power_after_sum"),
    (lambda f, p=2: torch.softmax(f.abs().pow(p).sum(1).flatten(1), dim=1), "am_softmax"),
    (lambda f, p=2: F.normalize(f.abs().pow(p).sum(0).flatten(1), dim=1), "am_batch_axis"),
    (lambda f, p=2: F.normalize(f.abs().pow(p).sum(1).flatten(1), dim=1).detach().numpy(), "am_not_tensor"),
    (lambda f, p=2: f.abs().pow(p).sum(1).flatten(1) / f.abs().pow(p).sum(1).flatten(1).amax(1, keepdim=True),
     "am_other"),
])
def test_attention_map_names_more_mistakes(fn, key):
    assert_hint(check_attention_map, fn, key)


@pytest.mark.parametrize("fn,key", [
    (lambda s, t, r: (r(s) - t.detach()).pow(2).sum(1).mean(), "hint_per_position"),
    (lambda s, t, r: F.mse_loss(r(s).mean(1), t.detach().mean(1)), "hint_pooled"),
    (lambda s, t, r: F.smooth_l1_loss(r(s), t.detach()), "hint_other"),
    (lambda s, t, r: (r(s) - t.detach()).pow(2).mean(dim=(1, 2, 3)), "hint_not_scalar"),
])
def test_hint_loss_names_more_mistakes(fn, key):
    assert_hint(check_hint_loss, fn, key)
