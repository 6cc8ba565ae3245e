"""Distillation losses: softened probabilities, the KD loss and the full Hinton objective.

Introduced in lesson 02. Each function is short and self-contained so it can be
pasted into production code; the unit tests in ``tests/test_losses.py`` pin them
against the formula written out and against ``torch.nn.functional.kl_div``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["softmax_with_temperature", "kd_loss", "distillation_loss"]


def _check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float, or raise ValueError if it is not a finite number > 0."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return value


def _check_logits_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    """Raise ValueError unless both logits are (batch, num_classes) tensors of the same shape."""
    if student_logits.dim() != 2:
        raise ValueError(
            "student_logits must have shape (batch, num_classes), got shape "
            f"{tuple(student_logits.shape)}; flatten extra dimensions (e.g. tokens) into the batch"
        )
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits and teacher_logits must have the same shape, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )


def softmax_with_temperature(logits: torch.Tensor, temperature: float = 1.0,
                             dim: int = -1) -> torch.Tensor:
    """Probabilities softened (temperature > 1) or sharpened (temperature < 1): softmax(logits / T).

    Args:
        logits: tensor of any shape, e.g. (batch, num_classes).
        temperature: T > 0. T = 1 is the ordinary softmax; as T grows the probs
            approach uniform and the small ones (the "dark knowledge") become visible.
        dim: the class dimension, normalised to sum to 1.

    Returns:
        probs, same shape as ``logits``. ``torch.softmax`` subtracts the maximum
        first, so logits of size 1e4 do not overflow.

    Introduced in lesson 02.
    """
    temperature = _check_temperature(temperature)
    return torch.softmax(logits / temperature, dim=dim)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float = 1.0) -> torch.Tensor:
    """Hinton's soft-target loss: T^2 * KL(teacher_T || student_T), averaged over the batch.

    ``KL(p || q) = sum_c p_c (log p_c - log q_c)`` with p = softmax(teacher_logits / T)
    (the target) and q = softmax(student_logits / T). Three details matter:

    * **T^2**: the gradient of the soft-target term w.r.t. the student's logits
      scales as 1/T^2 (one 1/T from the softened probs, one from dividing the logits
      by T). Multiplying by T^2 keeps its size roughly independent of T, so changing
      the temperature does not silently rescale the learning rate or the balance
      with the hard-label loss.
    * **batchmean**: sum over classes, mean over the batch. This equals
      ``F.kl_div(..., reduction="batchmean")``; ``reduction="mean"`` (a common bug in
      public code) also divides by the number of classes, shrinking the loss by that factor.
    * **log_softmax**: both log-probs come from ``log_softmax``, never ``log(softmax(.))``,
      which gives log(0) = -inf (then nan) once a probability underflows, e.g. for
      logits of size 1e3 at T = 1 or 1e4 at T = 100.

    The teacher is treated as a constant: ``teacher_logits`` is detached, so no
    gradient flows into the teacher even if its logits were computed with autograd on.

    Args:
        student_logits: (batch, num_classes), the student's raw scores; gets the gradient.
        teacher_logits: (batch, num_classes), the teacher's raw scores for the same inputs.
        temperature: T > 0, applied to both student and teacher.

    Returns:
        A 0-dim tensor, >= 0, zero when student_logits == teacher_logits.

    Introduced in lesson 02.
    """
    temperature = _check_temperature(temperature)
    _check_logits_pair(student_logits, teacher_logits)
    teacher_log_probs = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    # p_teacher * (log p_teacher - log p_student); where p_teacher underflows to 0 the
    # log-probs stay finite (log_softmax), so the term is exactly 0, not 0 * inf = nan.
    kl_per_example = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=-1)
    return kl_per_example.mean() * temperature**2


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor, temperature: float = 1.0,
                      alpha: float = 0.5) -> torch.Tensor:
    """Hinton's full objective: alpha * kd_loss + (1 - alpha) * cross-entropy on the labels.

    The soft-target term is :func:`kd_loss` at ``temperature`` (with its T^2 factor,
    so alpha keeps the same meaning whatever T is); the hard-label term is the
    ordinary cross-entropy of the student's logits at temperature 1.
    ``teacher_logits`` is detached (the teacher is a constant target).

    Args:
        student_logits: (batch, num_classes), the student's raw scores.
        teacher_logits: (batch, num_classes), the teacher's raw scores.
        labels: (batch,) integer class indices in [0, num_classes).
        temperature: T > 0 for the soft-target term.
        alpha: weight in [0, 1] of the soft-target term; 1 - alpha goes to the labels.
            alpha = 1 is pure distillation (labels unused), alpha = 0 ordinary training.

    Returns:
        A 0-dim tensor.

    Introduced in lesson 02.
    """
    try:
        alpha_value = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}") from None
    if not 0.0 <= alpha_value <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    _check_logits_pair(student_logits, teacher_logits)
    if labels.shape != student_logits.shape[:1]:
        raise ValueError(
            f"labels must have shape (batch,) = ({student_logits.shape[0]},), got shape "
            f"{tuple(labels.shape)} (student_logits has shape {tuple(student_logits.shape)})"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    soft = kd_loss(student_logits, teacher_logits, temperature)
    hard = F.cross_entropy(student_logits, labels)
    return alpha_value * soft + (1.0 - alpha_value) * hard
