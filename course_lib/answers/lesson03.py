"""Answer keys of lesson 03's exercises, generated from solutions/03_hidden_state_distillation.ipynb: do not edit.

Regenerate with `python -m course_lib.exercises build`; the checks import these, and tests/test_exercises.py fails when this file is stale.
"""
# ruff: noqa
import functools
import torch
import torch.nn.functional as F
from course_lib import train
from course_lib.hidden import HintStudent
from course_lib.losses import distillation_loss
from torch import nn


def attention_map(features: torch.Tensor, p: float = 2) -> torch.Tensor:
    """(N, C, H, W) -> (N, H*W): sum over channels of |A|^p, flattened, each row L2-normalised."""
    summed = features.abs().pow(p).sum(dim=1)
    return F.normalize(summed.flatten(1), p=2, dim=1)


def hint_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, regressor: nn.Module) -> torch.Tensor:
    """Mean squared error between regressor(student_features) and the (detached) teacher_features."""
    return F.mse_loss(regressor(student_features), teacher_features.detach())


def fitnets(student, regressor, x, teacher_hints, teacher_logits, labels, layer="block2", hint_epochs=5,
            kd_epochs=20, temperature=4.0, alpha=0.9, lr=1e-3, seed=0):
    """FitNets: stage 1 trains the lower student and the regressor on the hints; stage 2 is KD on the whole student."""
    train.fit(HintStudent(student, regressor, layer), x, teacher_hints, F.mse_loss, epochs=hint_epochs, lr=lr,
              seed=seed, progress=False, desc="stage 1: hints")
    kd = functools.partial(distillation_loss, temperature=temperature, alpha=alpha)
    train.fit(student, x, (teacher_logits, labels), kd, epochs=kd_epochs, lr=lr, seed=seed, progress=False,
              desc="stage 2: KD")
