"""Hidden-state distillation, the training side: FitNets' two stages and one trainer for every lesson-03 method.

Introduced in lesson 03. Logit distillation (lesson 02) passes on the teacher's last
layer only; lesson 03 also passes on what its *intermediate* layers compute. The losses
themselves (``hint_loss``, ``attention_transfer_loss``, ``cosine_representation_loss``,
``relational_distance_loss``) live with the other losses in ``course_lib.losses``; this
module wires them into ``train.fit``.

Features come from the shared interface of ``course_lib.models``:
``model(x, return_features=True)`` returns ``(logits, features)``, a dict of named tensors.
Helpers here never move a model: they read its device and move their inputs to it.
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from . import config, train
from .losses import (attention_transfer_loss, cosine_representation_loss, cross_entropy_loss, distillation_loss,
                     relational_distance_loss)
from .models import model_device

__all__ = ["WithFeatures", "HintStudent", "hint_regressor", "hint_stage", "fitnets", "METHODS",
           "train_hidden_student"]


# ----------------------------------------------------------------------------- training helpers
class WithFeatures(nn.Module):
    """Wrap a model so that ``wrapper(x)`` returns ``(logits, features)``: what ``train.fit`` passes to a loss.

    ``train.fit`` calls ``loss_fn(model(x_batch), *targets)``; with this wrapper the loss
    sees the student's features too. The parameters are the student's own.
    """

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, x: torch.Tensor):
        return self.student(x, return_features=True)


class HintStudent(nn.Module):
    """FitNets stage 1: ``forward(x) = regressor(student's features[layer])``, trained to match the teacher's hint.

    Its parameters are the student's and the regressor's; only the student's layers up to
    ``layer`` (and the regressor) receive gradients, so the layers above stay as they were.
    """

    def __init__(self, student: nn.Module, regressor: nn.Module, layer: str):
        super().__init__()
        self.student, self.regressor, self.layer = student, regressor, layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regressor(self.student(x, return_features=True)[1][self.layer])


def hint_regressor(student_channels: int, teacher_channels: int) -> nn.Module:
    """A 1x1 convolution from the student's channels to the teacher's: the FitNets regressor for CNN features."""
    return nn.Conv2d(student_channels, teacher_channels, kernel_size=1)


def hint_stage(student: nn.Module, regressor: nn.Module, x: torch.Tensor, teacher_hints: torch.Tensor,
               layer: str, epochs: int, lr: float = 1e-3, batch_size: int = 128, seed: int = 0,
               progress: bool = True):
    """FitNets stage 1: train the student up to ``layer`` (and the regressor) to predict the teacher's hints."""
    loss = lambda mapped, hints: F.mse_loss(mapped, hints)  # noqa: E731  (= hint_loss with the regressor inside)
    return train.fit(HintStudent(student, regressor, layer), x, teacher_hints, loss, epochs=epochs,
                     batch_size=batch_size, lr=lr, seed=seed, progress=progress, desc="FitNets stage 1: hints")


def fitnets(student: nn.Module, regressor: nn.Module, x: torch.Tensor, teacher_hints: torch.Tensor,
            teacher_logits: torch.Tensor, labels: torch.Tensor, layer: str = "block2", hint_epochs: int = 5,
            kd_epochs: int = 20, temperature: float = 4.0, alpha: float = 0.9, lr: float = 1e-3,
            batch_size: int = 128, seed: int = 0, progress: bool = True):
    """FitNets in two stages: hints for the lower student (stage 1), then KD on the whole student (stage 2).

    Returns the stage-2 :class:`train.History`. The regressor is only used in stage 1.
    """
    hint_stage(student, regressor, x, teacher_hints, layer, hint_epochs, lr=lr, batch_size=batch_size,
               seed=seed, progress=progress)
    kd = functools.partial(distillation_loss, temperature=temperature, alpha=alpha)
    return train.fit(student, x, (teacher_logits, labels), kd, epochs=kd_epochs, batch_size=batch_size, lr=lr,
                     seed=seed, progress=progress, desc="FitNets stage 2: KD")


#: The methods compared in lesson 03, in table order.
METHODS = ["baseline", "soft targets", "hint+KD", "AT+KD", "cosine+KD", "RKD+KD"]


def train_hidden_student(method: str, build_student, x: torch.Tensor, labels: torch.Tensor, teacher: dict,
                         epochs: int, temperature: float = 4.0, alpha: float = 0.9, beta: float = 1.0,
                         hint_epochs: int = 5, pairs: Optional[dict] = None, lr: float = 1e-3,
                         batch_size: int = 128, seed: int = 0, progress: bool = True):
    """Train one student with one of :data:`METHODS`; every method sees the same data, seed and KD stage.

    Args:
        build_student: makes an untrained student on the device to train on (called inside
            ``config.seeded(seed)``, so each seed starts the same and the caller's RNG is left alone).
        teacher: ``distill.teacher_outputs(...)``: ``"logits"`` plus the teacher layers named in ``pairs``.
        epochs: epochs of the main stage (FitNets adds ``hint_epochs`` of stage 1 before it).
        temperature, alpha: of the logit term, :func:`distillation_loss`.
        beta: weight of the hidden-state term (its scale differs per loss: choose it on validation data).
        pairs: ``{student_layer: teacher_layer}`` matched by the hidden-state term (``"hint+KD"`` uses the first).
    Returns:
        ``(student, history)``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    with config.seeded(seed):
        student = build_student()
    pairs = dict(pairs or {})
    common = dict(batch_size=batch_size, lr=lr, seed=seed, progress=progress, desc=method)
    if method == "baseline":  # true labels only, no teacher
        return student, train.fit(student, x, labels, cross_entropy_loss, epochs=epochs, **common)
    if method == "soft targets":  # the teacher's soft targets, no hidden-state term
        kd = functools.partial(distillation_loss, temperature=temperature, alpha=alpha)
        return student, train.fit(student, x, (teacher["logits"], labels), kd, epochs=epochs, **common)
    if method == "hint+KD":
        s_layer, t_layer = next(iter(pairs.items()))
        device = model_device(student)
        with torch.no_grad():
            _, features = student(x[:2].to(device), return_features=True)
        with config.seeded(seed):  # a new module, made beside the student it serves
            regressor = hint_regressor(features[s_layer].shape[1], teacher[t_layer].shape[1]).to(device)
        history = fitnets(student, regressor, x, teacher[t_layer], teacher["logits"], labels, layer=s_layer,
                          hint_epochs=hint_epochs, kd_epochs=epochs, temperature=temperature, alpha=alpha,
                          lr=lr, batch_size=batch_size, seed=seed, progress=progress)
        return student, history
    feature_loss = {"AT+KD": attention_transfer_loss, "cosine+KD": cosine_representation_loss,
                    "RKD+KD": relational_distance_loss}[method]
    names = list(pairs.items())

    def loss(out, t_logits, y, *t_features):
        logits, features = out
        hidden = sum(feature_loss(features[s], tf) for (s, _), tf in zip(names, t_features))
        return distillation_loss(logits, t_logits, y, temperature, alpha) + beta * hidden

    targets = (teacher["logits"], labels, *(teacher[t] for _, t in names))
    return student, train.fit(WithFeatures(student), x, targets, loss, epochs=epochs, **common)
