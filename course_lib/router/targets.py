"""What the router's student learns from: the teacher's soft targets (introduced in lesson 04).

:func:`soft_targets` is the router's NumPy-friendly front to :func:`course_lib.losses.softmax_with_temperature`
(the scikit-learn-like models hand it NumPy arrays). The loss the student trains with on these rows,
``soft_label_loss``, lives with every other loss in :mod:`course_lib.losses`.
"""
from __future__ import annotations

import numpy as np
import torch

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

