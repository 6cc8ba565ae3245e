"""One training loop for every lesson, fed from in-memory tensors (introduced in lesson 00).

Why not ``Dataset`` + ``DataLoader``? MNIST fits in memory as one tensor; slicing a
shuffled index costs microseconds per batch, while a per-sample ``__getitem__``
(PIL image, ``ToTensor``, collate) costs tens of microseconds per *image*.
``bench/data_pipeline.py`` measures the difference.
"""
from __future__ import annotations

import functools
import inspect
import numbers
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from . import config
from .evaluate import accuracy
from .models import model_device, predict_logits

Targets = Union[torch.Tensor, Sequence[torch.Tensor]]


@dataclass
class History:
    """What ``fit`` measured: mean training loss and (optional) validation accuracy per epoch."""

    loss: list = field(default_factory=list)
    val_accuracy: list = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"loss": self.loss, "val_accuracy": self.val_accuracy, "seconds": self.seconds}


def _as_tuple(targets: Targets) -> tuple:
    if isinstance(targets, torch.Tensor):
        return (targets,)
    return tuple(targets)


def fit(model: nn.Module, x: torch.Tensor, targets: Targets, loss_fn: Callable[..., torch.Tensor],
        epochs: int, batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 0.0,
        schedule: str = "cosine", seed: int = 0, augment: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        x_val: Optional[torch.Tensor] = None, y_val: Optional[torch.Tensor] = None,
        progress: bool = True, desc: str = "train") -> History:
    """Train ``model`` with Adam on in-memory tensors; returns a :class:`History`.

    Args:
        x: inputs (N, ...). targets: a tensor (N, ...) or a tuple of them (e.g. teacher
            logits and labels); each is sliced with the same batch indices.
        loss_fn: called as ``loss_fn(model(x_batch), *target_batches)``; returns a scalar.
        epochs, batch_size, lr, weight_decay: the usual; ``schedule`` is ``"cosine"``
            (learning rate decays to 0 over the run) or ``"constant"``.
        seed: fixes the shuffling, augmentation and dropout, so a run repeats exactly.
        augment: optional function applied to each input batch (e.g. ``data.random_shift``).
        x_val, y_val: if given, validation accuracy is measured after every epoch.

    The model trains where it is (put it on a device first, e.g. ``model.to(config.get_device())``);
    ``x`` and ``targets`` may be anywhere and are moved to the model's device. The global RNGs
    are left as they were: dropout masks come from a forked, seeded RNG. No rows, or ``epochs``
    or ``batch_size`` that is not an integer >= 1, is a ``ValueError`` (never an untrained model).
    """
    targets = _as_tuple(targets)
    n = len(x)
    for i, t in enumerate(targets):
        if len(t) != n:
            raise ValueError(f"targets[{i}] has {len(t)} rows but x has {n}: they must match")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}: fit would return an untrained model")
    if n == 0:
        raise ValueError("no data to train on: x has 0 rows")
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")

    device = model_device(model)
    # Move the whole set once; batches then never cross the bus (a no-op for CPU tensors on the CPU).
    x = x.to(device)
    targets = tuple(t.to(device) for t in targets)

    generator = torch.Generator().manual_seed(seed)
    with config.seeded(seed):  # dropout masks: seeded, and the caller's RNG left untouched
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        steps_per_epoch = (n + batch_size - 1) // batch_size
        total_steps = epochs * steps_per_epoch
        scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
                     if schedule == "cosine" else None)

        if augment is not None and _takes_generator(augment):  # seeded augmentation repeats exactly
            augment = functools.partial(augment, generator=generator)
        history = History()
        start = time.perf_counter()
        bar = tqdm(total=total_steps, desc=desc, disable=not progress, leave=False)
        # Read the loss back (a GPU sync) and update the bar about 20 times an epoch, not every step.
        every = max(1, steps_per_epoch // 20)
        try:
            for epoch in range(epochs):
                model.train()
                order = torch.randperm(n, generator=generator)
                if device.type != "cpu":
                    order = order.to(device)
                running = 0.0  # sum of loss * batch size: a float64 tensor where the loss lives, read back rarely
                for step in range(steps_per_epoch):
                    idx = order[step * batch_size:(step + 1) * batch_size]
                    xb = x.index_select(0, idx)  # = x[idx], about twice as fast on the CPU
                    if augment is not None:
                        xb = augment(xb)
                    loss = loss_fn(model(xb), *(t.index_select(0, idx) for t in targets))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    if scheduler is not None:
                        scheduler.step()
                    running = running + loss.detach().double() * len(idx)
                    if (step + 1) % every == 0 or step + 1 == steps_per_epoch:
                        _check_finite(running, epoch, step)
                        bar.update(step + 1 - bar.n + epoch * steps_per_epoch)
                history.loss.append(float(running) / n)
                postfix = {"epoch": epoch + 1, "loss": f"{history.loss[-1]:.4f}"}
                if x_val is not None and y_val is not None:
                    history.val_accuracy.append(accuracy(predict_logits(model, x_val), y_val))
                    postfix["val_acc"] = f"{history.val_accuracy[-1]:.4f}"
                bar.set_postfix(postfix)
        finally:
            bar.close()
    model.eval()
    history.seconds = time.perf_counter() - start
    return history


def _check_finite(running: torch.Tensor, epoch: int, step: int) -> None:
    if not torch.isfinite(running):
        raise FloatingPointError(
            f"loss became {running.item()} by epoch {epoch + 1}, step {step + 1}: lower the learning rate "
            "or check the loss function")


def _takes_generator(fn: Callable) -> bool:
    try:
        return "generator" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False

