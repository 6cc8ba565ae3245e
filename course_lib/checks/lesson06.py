"""Checks for lesson 06 (the optimisation stack): size on disk, latency after warm-up, pruning + KD fine-tune."""
from __future__ import annotations

import gzip
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import compress, train
from ..losses import distillation_loss
from ..router.timing import one_thread
from ._core import call_learner, learner_check


# --- the course's answers (each check times one run of them to scale its time limits) -----------------
def solution_size_on_disk(model_or_path) -> tuple[int, int]:
    """Exercise 6.1: ``(bytes, gzip_bytes)`` of a file, or of a model's saved state dict."""
    if isinstance(model_or_path, nn.Module):
        return compress.model_size_bytes(model_or_path), compress.model_size_bytes(model_or_path, compressed=True)
    return compress.file_size_bytes(model_or_path), compress.file_size_bytes(model_or_path, compressed=True)


def solution_median_latency_ms(predict_fn: Callable, batches: list, warmup: int = 3) -> float:
    """Exercise 6.2: median milliseconds per call over ``batches[warmup:]``, the first ``warmup`` calls untimed."""
    from ..evaluate import time_calls

    return time_calls(predict_fn, batches, warmup).median * 1e3


def solution_fine_tune_pruned(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    """Exercise 6.3: magnitude-prune a copy, fine-tune it with the distillation loss (masks in place), fold the masks in."""
    pruned = compress.prune_magnitude(student, amount, permanent=False)
    loss = lambda out, t, y: distillation_loss(out, t, y, temperature, alpha)  # noqa: E731
    train.fit(pruned, x, (teacher_logits, labels), loss, epochs=epochs, lr=lr, progress=False)
    return compress.make_permanent(pruned)


# --- exercise 6.1: size in bytes ------------------------------------------------------------------------
def _size_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)).eval()


def _as_pair(out, what: str) -> tuple[int, int]:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise AssertionError(f"size_on_disk({what}) returned {out!r}: return a pair (bytes, gzip_bytes) of ints.")
    return out[0], out[1]


@learner_check("size_on_disk", solution=solution_size_on_disk)
def check_size_on_disk(fn: Callable) -> None:
    """Check ``fn(model_or_path) -> (bytes, gzip_bytes)``: bytes of the file, not a count of numbers (exercise 6.1)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.bin"
        payload = torch.randint(0, 256, (5000,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        path.write_bytes(bytes(payload.tolist()) + bytes(5000))  # 5,000 random bytes, then 5,000 zeros
        size, zipped = _as_pair(call_learner(fn, path), "a path")
        if size != 10_000:
            raise AssertionError(f"size_on_disk(path) gave {size} bytes for a file of 10,000 bytes: return "
                                 "os.path.getsize(path) (or compress.file_size_bytes(path)).")
        expected_zip = len(gzip.compress(path.read_bytes(), 9, mtime=0))
        if not abs(zipped - expected_zip) <= 0.05 * expected_zip:
            raise AssertionError(f"size_on_disk(path) gave {zipped} gzip bytes; gzip.compress of the file's bytes gives "
                                 f"about {expected_zip} (half the file is zeros, which compress to almost nothing).")

    model = _size_model()
    expected = compress.model_size_bytes(model)
    parameters = sum(p.numel() for p in model.parameters())
    numbers = sum(t.numel() for t in model.state_dict().values())
    size, zipped = _as_pair(call_learner(fn, model), "a model")
    if size in (parameters, numbers):
        raise AssertionError(f"size_on_disk(model) returned {size}, the number of parameters: that is a count of numbers, "
                             "not bytes on disk. Save the state dict (torch.save) and measure the file it wrote.")
    if size in (4 * parameters, 4 * numbers):
        raise AssertionError(f"size_on_disk(model) returned {size} = 4 bytes x the parameter count. The file a service "
                             f"loads is {expected} bytes: it also holds the buffers (BatchNorm statistics), names, "
                             "shapes and the container. Save the state dict and measure the file.")
    # torch.save writes the file's name into each of its records: allow for a longer or shorter name
    if not abs(size - expected) <= 64 * (len(model.state_dict()) + 6) + 0.02 * expected:
        raise AssertionError(f"size_on_disk(model) returned {size} bytes; torch.save(model.state_dict(), path) writes "
                             f"about {expected}. Measure that file (os.path.getsize).")
    sparse = compress.prune_magnitude(model, 0.9)
    _, sparse_zipped = _as_pair(call_learner(fn, sparse), "a 90%-sparse model")
    if not sparse_zipped < 0.6 * zipped:
        raise AssertionError(f"gzip bytes: {sparse_zipped} for a model with 90% zero weights against {zipped} for the dense "
                             "one. Compress the saved file's bytes (gzip.compress), not something else.")


# --- exercise 6.2: latency after warm-up ------------------------------------------------------------------
class _SlowStart:
    """A fake model: its first calls are slow (lazy set-up), one later call is slow (another process ran)."""

    def __init__(self, slow_first: int, slow_at: int):
        self.calls, self.slow_first, self.slow_at = 0, slow_first, slow_at

    def __call__(self, batch):
        self.calls += 1
        slow = self.calls <= self.slow_first or self.calls == self.slow_at
        time.sleep(0.04 if slow else 0.002)
        return batch


@learner_check("median_latency_ms", solution=solution_median_latency_ms)
def check_median_latency_ms(fn: Callable) -> None:
    """Check ``fn(predict_fn, batches, warmup) -> median ms per call``, warm-up calls untimed (exercise 6.2)."""
    warmup, batches = 5, list(range(8))
    model = _SlowStart(slow_first=warmup, slow_at=warmup + 2)
    out = call_learner(fn, model, batches, warmup)
    if not isinstance(out, (int, float)):
        raise AssertionError(f"median_latency_ms returned a {type(out).__name__}: return one number, milliseconds.")
    if model.calls != len(batches):
        raise AssertionError(f"predict_fn was called {model.calls} times for {len(batches)} batches: call it once per "
                             f"batch; the first {warmup} calls are the warm-up.")
    if out < 0.5:
        raise AssertionError(f"median_latency_ms returned {out:.4g}: that looks like seconds. Return milliseconds "
                             "(seconds x 1000).")
    if out > 20:
        raise AssertionError(f"median_latency_ms returned {out:.1f} ms, but after warm-up each call takes about 2 ms: "
                             f"the first {warmup} calls (lazy set-up, cold caches) were timed. Call predict_fn on the first "
                             f"`warmup` batches without timing them, then time the rest.")
    timed = [2.0] * (len(batches) - warmup - 1) + [40.0]
    if abs(out - statistics.mean(timed)) < abs(out - 2.0):
        raise AssertionError(f"median_latency_ms returned {out:.1f} ms: that is the mean, which one slow call (another "
                             "process woke up) drags up. Report the median.")
    if not 1.5 <= out <= 10:
        raise AssertionError(f"median_latency_ms returned {out:.2f} ms; each timed call took about 2 ms.")


# --- exercise 6.3: prune, then fine-tune with the distillation loss ---------------------------------------
def _toy_task(n: int = 1024, features: int = 20, classes: int = 4):
    """Inputs, a linear teacher's logits, and labels that *disagree* with the teacher on every row."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=generator)
    teacher_logits = 3 * x @ torch.randn(features, classes, generator=generator)
    labels = (teacher_logits.argmax(1) + 1) % classes
    return x, teacher_logits, labels


def _toy_student(features: int = 20, classes: int = 4) -> nn.Module:
    from ..models import MLP

    torch.manual_seed(1)
    return MLP(hidden=(32,), in_features=features, num_classes=classes)


@learner_check("fine_tune_pruned", solution=solution_fine_tune_pruned)
def check_fine_tune_pruned(fn: Callable) -> None:
    """Check ``fn(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr)`` (exercise 6.3).

    It must return a pruned model (at least ``amount`` of the weights zero, masks folded in) fine-tuned
    with the distillation loss: on this task the labels disagree with the teacher on every row, so
    with ``alpha = 1`` the model must end up following the teacher, not the labels.
    """
    x, teacher_logits, labels = _toy_task()
    student, amount = _toy_student(), 0.6
    before = compress.prune_magnitude(student, amount)
    with one_thread():  # a toy model trains far faster without a thread pool (restored afterwards)
        out = call_learner(fn, student, amount, x, teacher_logits.clone(), labels.clone(), 2.0, 1.0, 10, 1e-2)
    if not isinstance(out, nn.Module):
        raise AssertionError(f"fine_tune_pruned returned a {type(out).__name__}: return the pruned, fine-tuned model.")
    if compress.has_masks(out):
        masked, folded = compress.model_size_bytes(out), compress.model_size_bytes(compress.make_permanent(out))
        raise AssertionError(f"the returned model still carries its pruning masks: its saved file is {masked:,} bytes, "
                             f"against {folded:,} with the masks folded in, so the 'pruned' model is not smaller at all. "
                             "After fine-tuning, call compress.make_permanent(model) (torch.nn.utils.prune.remove).")
    sparsity = compress.sparsity(out)
    if sparsity < amount - 0.01:
        raise AssertionError(f"only {sparsity:.0%} of the weights are zero after fine-tuning, not {amount:.0%}: the pruned "
                             "weights grew back. Keep the masks in place while fine-tuning "
                             "(compress.prune_magnitude(..., permanent=False)) and fold them in afterwards.")
    weights = [m.weight.detach() for m in out.modules() if isinstance(m, nn.Linear)]
    if all(torch.equal(a, b.weight.detach()) for a, b in zip(weights, [m for m in before.modules() if isinstance(m, nn.Linear)])):
        raise AssertionError("the weights are exactly those of magnitude pruning: nothing was fine-tuned. Train the pruned "
                             "model (train.fit) for `epochs` epochs after pruning.")
    with torch.no_grad():
        predictions = out.eval()(x).argmax(1)
    follows_teacher = float((predictions == teacher_logits.argmax(1)).float().mean())
    follows_labels = float((predictions == labels).float().mean())
    if follows_labels > follows_teacher:
        raise AssertionError(f"with alpha = 1 the model should learn the teacher's soft targets, yet it agrees with the hard "
                             f"labels on {follows_labels:.0%} of rows and with the teacher on {follows_teacher:.0%} (here "
                             "they always differ): it was fine-tuned on hard labels. Use "
                             "distillation_loss(student_logits, teacher_logits, labels, temperature, alpha) with the "
                             "teacher's cached logits as the targets.")
    if follows_teacher < 0.45:
        raise AssertionError(f"after fine-tuning the model agrees with the teacher on only {follows_teacher:.0%} of rows: "
                             "train with distillation_loss at the given temperature and alpha, for `epochs` epochs "
                             "at learning rate `lr`.")
