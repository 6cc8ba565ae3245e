"""Evaluation helpers: batched logits, accuracy, error counts (introduced in lesson 00)."""
from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import nn

from . import config


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024,
                   device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batched and without gradients, returned on the CPU.

    Args:
        x: inputs, first dimension N. Returns (N, num_classes) float32.
    The model's train/eval mode is restored afterwards.
    """
    device = torch.device(device) if device is not None else config.get_device()
    was_training = model.training
    model.to(device).eval()
    try:
        outputs = [model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    if not outputs:
        raise ValueError("predict_logits got an empty input (x has 0 rows)")
    return torch.cat(outputs)


def _logits_and_labels(logits_or_model, x_or_labels, labels):
    if isinstance(logits_or_model, nn.Module):
        if labels is None:
            raise TypeError("with a model, call accuracy(model, x, labels)")
        return predict_logits(logits_or_model, x_or_labels), labels
    return logits_or_model, x_or_labels


def error_count(logits_or_model, x_or_labels, labels: Optional[torch.Tensor] = None) -> int:
    """Number of wrong argmax predictions: ``error_count(logits, labels)`` or ``error_count(model, x, labels)``."""
    logits, labels = _logits_and_labels(logits_or_model, x_or_labels, labels)
    if logits.ndim != 2 or labels.ndim != 1 or len(logits) != len(labels):
        raise ValueError(f"expected logits (N, C) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    return int((logits.argmax(dim=1).cpu() != labels.cpu()).sum())


def accuracy(logits_or_model, x_or_labels, labels: Optional[torch.Tensor] = None) -> float:
    """Share of right argmax predictions in [0, 1]: ``accuracy(logits, labels)`` or ``accuracy(model, x, labels)``."""
    logits, labels = _logits_and_labels(logits_or_model, x_or_labels, labels)
    return 1.0 - error_count(logits, labels) / len(labels)


def time_calls(fn: Callable[[Any], object], inputs: Sequence[Any], warmup: int) -> tuple[list, list]:
    """Call ``fn`` on each input; time all but the first ``warmup`` calls (introduced in lesson 03).

    Warm-up calls pay for lazy initialisation and allocation, so they are never timed.
    Returns ``(wall_seconds, cpu_seconds)``, one entry per timed call: report their median.
    """
    if warmup < 0 or len(inputs) <= warmup:
        raise ValueError(f"need more inputs ({len(inputs)}) than warm-up calls ({warmup})")
    for item in inputs[:warmup]:
        fn(item)
    walls, cpus = [], []
    for item in inputs[warmup:]:
        wall, cpu = time.perf_counter(), time.process_time()
        fn(item)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus
