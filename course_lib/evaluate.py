"""Evaluation helpers: batched logits, accuracy, error counts (lesson 00) and timing (lesson 03)."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import nn


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model with neither.

    Helpers read the device from the model and move their *inputs* there; they never move
    the model, so the caller's other code keeps finding it where it left it.
    """
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batched and without gradients, returned on the CPU.

    Args:
        x: inputs, first dimension N, on any device: each batch is moved to the model's device.
    Returns:
        (N, num_classes) float32 on the CPU. The model stays where it is, and its
        train/eval mode is restored afterwards.
    """
    if len(x) == 0:
        raise ValueError("predict_logits got an empty input (x has 0 rows)")
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        outputs = [model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
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


@dataclass
class Timing:
    """Wall and CPU seconds of repeated calls, summarised by the median and the interquartile range.

    A single timing misleads on a shared machine: report the median (robust to the odd
    slow call) with its spread, ``q1``-``q3``.
    """

    wall: list
    cpu: list

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def q1(self) -> float:
        return quartiles(self.wall)[0]

    @property
    def q3(self) -> float:
        return quartiles(self.wall)[2]

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def as_dict(self, per: float = 1.0) -> dict:
        """Median, quartiles and IQR of wall seconds (and median CPU seconds), each divided by ``per``."""
        return {"median": self.median / per, "q1": self.q1 / per, "q3": self.q3 / per, "iqr": self.iqr / per,
                "cpu_median": self.cpu_median / per, "n": len(self.wall)}


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """``(q1, median, q3)`` of ``values`` with linear interpolation (numpy's default); one value gives it thrice."""
    if len(values) == 1:
        return (float(values[0]),) * 3
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def time_calls(fn: Callable[[Any], object], inputs: Sequence[Any], warmup: int = 3) -> Timing:
    """Call ``fn`` on each input; time all but the first ``warmup`` calls (introduced in lesson 04).

    Warm-up calls pay for lazy initialisation and allocation, so they are never timed.
    Returns a :class:`Timing` (one wall and one CPU time per timed call): report its median and IQR.
    """
    return time_interleaved({"fn": fn}, inputs, warmup)["fn"]


def time_interleaved(fns: Mapping[str, Callable[[Any], object]], inputs: Sequence[Any],
                     warmup: int = 3) -> dict:
    """Time several functions on the same inputs, interleaved: ``{name: Timing}`` (introduced in lesson 03).

    For each input every function is called once, in an order that rotates from input to
    input, so a burst of background load slows all of them alike and their *ratio* stays
    stable enough to quote. The first ``warmup`` inputs are called but not timed.
    """
    if not fns:
        raise ValueError("time_interleaved needs at least one function")
    if warmup < 0 or len(inputs) <= warmup:
        raise ValueError(f"need more inputs ({len(inputs)}) than warm-up calls ({warmup})")
    names = list(fns)
    walls = {name: [] for name in names}
    cpus = {name: [] for name in names}
    for i, item in enumerate(inputs):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            wall, cpu = time.perf_counter(), time.process_time()
            fns[name](item)
            if i >= warmup:
                walls[name].append(time.perf_counter() - wall)
                cpus[name].append(time.process_time() - cpu)
    return {name: Timing(walls[name], cpus[name]) for name in names}
