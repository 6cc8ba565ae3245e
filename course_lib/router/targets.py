"""What the student learns from: soft targets and the soft-label loss (introduced in lesson 04).

These are the library versions lesson 04 uses (its exercises choose the target temperature and time the models).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..losses import softmax_with_temperature


def soft_targets(teacher_logits, temperature: float = 1.0):
    """Soft labels: ``softmax(teacher_logits / temperature)`` over the last axis (introduced in lesson 04).

    Built on :func:`course_lib.losses.softmax_with_temperature` (lesson 02); this wrapper also
    accepts numpy arrays and refuses logits that are not finite.

    Args:
        teacher_logits: ``(n, num_classes)`` logits, a torch tensor or numpy array.
        temperature: > 0; above 1 flattens the rows, below 1 sharpens them.

    Returns:
        ``probs`` of the same shape and type (numpy: float32), each row summing to 1.

    Raises:
        ValueError: a temperature that is not a finite number > 0, or a NaN or infinite logit
            (a softmax would silently turn it into a NaN row or a one-hot row).
    """
    is_tensor = isinstance(teacher_logits, torch.Tensor)
    logits = teacher_logits if is_tensor else torch.from_numpy(np.asarray(teacher_logits, dtype=np.float64))
    finite = torch.isfinite(logits)
    if not bool(finite.all()):
        row = int(torch.nonzero(~finite)[0, 0]) if logits.dim() > 1 else 0
        raise ValueError(f"teacher_logits contain NaN or inf (first in row {row}): check the teacher's "
                         "output before turning it into targets")
    probs = softmax_with_temperature(logits, temperature, dim=-1)
    return probs if is_tensor else probs.numpy().astype(np.float32)


def soft_label_loss(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student against soft targets, averaged over the batch (introduced in lesson 04).

    Args:
        student_logits: ``(batch, num_classes)``.
        targets: ``(batch, num_classes)`` probability rows (e.g. from :func:`soft_targets`).

    Returns:
        A scalar: ``-(targets * log_softmax(student_logits)).sum(-1).mean()``.
    """
    return -(targets * F.log_softmax(student_logits, dim=-1)).sum(dim=-1).mean()
