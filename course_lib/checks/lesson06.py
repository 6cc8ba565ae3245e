"""Checks for lesson 06 (the optimisation stack): size on disk, latency after warm-up, pruning + KD fine-tune."""
from __future__ import annotations

import gzip
import math
import os
import statistics
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import compress
from ..answers import lesson06 as answers
from ..config import seeded
from ..timing import pinned_threads
from ._clock import FakeClock, FakeModel, fake_time
from ._core import call_learner, learner_check, name_mistakes
from .lesson03 import _spy_on_distillation_loss


# --- exercise 6.1: size in bytes ------------------------------------------------------------------------
def _size_model() -> nn.Module:
    with seeded(0):  # the caller's global RNG is left as it was
        return nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)).eval()


def _saved_size_range(model: nn.Module) -> tuple[int, int]:
    """Bytes of torch.save(model.state_dict()) under a 1-character and a 240-character file name: torch.save
    writes the name into each record, so any name a learner chooses gives a size in between."""
    with tempfile.TemporaryDirectory() as folder:
        sizes = []
        for name in ("m", "m" * 240):
            path = os.path.join(folder, name)
            torch.save(model.state_dict(), path)
            sizes.append(os.path.getsize(path))
    return min(sizes), max(sizes)


def _as_pair(out, what: str) -> tuple[int, int]:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise AssertionError(f"size_on_disk({what}) returned {out!r}: return a pair (bytes, gzip_bytes) of ints.")
    return out[0], out[1]


@learner_check("size_on_disk", solution=answers.size_on_disk)
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
    shortest, longest = _saved_size_range(model)  # the file's name is in each record: any name is right
    if not shortest - 64 <= size <= longest + 64:
        raise AssertionError(f"size_on_disk(model) returned {size} bytes; torch.save(model.state_dict(), path) writes "
                             f"about {expected}. Measure that file (os.path.getsize).")
    sparse = compress.prune_magnitude(model, 0.9)
    _, sparse_zipped = _as_pair(call_learner(fn, sparse), "a 90%-sparse model")
    if not sparse_zipped < 0.6 * zipped:
        raise AssertionError(f"gzip bytes: {sparse_zipped} for a model with 90% zero weights against {zipped} for the dense "
                             "one. Compress the saved file's bytes (gzip.compress), not something else.")


# --- exercise 6.2: latency after warm-up ------------------------------------------------------------------
#: What each known mistake of exercise 6.2 returned instead of the median milliseconds.
LATENCY_HINTS: dict[str, str] = {
    "seconds": "that is seconds: return milliseconds (seconds x 1000).",
    "microseconds": "that is microseconds: return milliseconds (seconds x 1000, not x 1,000,000).",
    "warmup_timed": "the warm-up calls were timed too: call predict_fn on the first `warmup` batches without "
                    "timing them (lazy set-up, cold caches), then time the rest.",
    "warmup_extra": "one batch too many went untimed: the first `warmup` batches are the warm-up, all the others "
                    "(batches[warmup:]) are timed.",
    "warmup_short": "one warm-up batch too few: the first `warmup` batches are untimed, batches[warmup:] timed.",
    "mean": "that is the mean, which one slow call (another process woke up) drags up: report the median.",
    "max": "that is the slowest call: report the median.",
    "min": "that is the fastest call, a lucky one: report the median.",
    "middle": "that is one of the two middle times: with an even number of timed calls the median is the mean "
              "of the two middle ones (statistics.median; torch.median and median_low/high return one of them).",
    "cpu": "that is CPU time (time.process_time or thread_time): a call that waits (for I/O, another thread) costs "
           "wall-clock time the CPU clock does not see. Time with time.perf_counter().",
    "total": "that is the total of the timed calls: return the median per call.",
}

# (warmup, milliseconds per batch): slow warm-up batches, then timed ones with one hiccup; an odd and an even
# number of timed batches; None: the default warm-up (3). Each batch takes its own time, so timing the wrong
# batch shows.
_LATENCY_MS_CASES = [
    (5, [40.0, 35.0, 30.0, 28.0, 25.0, 3.3, 2.1, 2.5, 45.0, 2.9, 2.2, 3.0]),
    (2, [60.0, 50.0, 4.0, 2.0, 2.6, 9.0, 2.2, 2.8]),
    (None, [30.0, 20.0, 15.0, 1.5, 1.8, 1.2, 1.6, 7.0, 1.4, 1.3, 1.7, 1.1, 1.9]),
]


def _latency_variants(durations: list, warmup: int) -> dict:
    timed = durations[warmup:]
    ordered = sorted(timed)
    return {
        "seconds": statistics.median(timed) / 1000, "microseconds": statistics.median(timed) * 1000,
        "warmup_timed": statistics.median(durations), "warmup_extra": statistics.median(durations[warmup + 1:]),
        "warmup_short": statistics.median(durations[warmup - 1:]), "mean": statistics.mean(timed),
        "max": max(timed), "min": min(timed), "total": sum(timed),
        "middle": [ordered[len(timed) // 2], ordered[(len(timed) - 1) // 2]],
    }


def _number(out) -> float | None:
    if isinstance(out, bool):
        return None
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        out = out.item()
    try:
        return float(out)
    except (TypeError, ValueError):
        return None


@learner_check("median_latency_ms", solution=answers.median_latency_ms)
def check_median_latency_ms(fn: Callable) -> None:
    """Check ``fn(predict_fn, batches, warmup) -> median ms per call``, warm-up calls untimed (exercise 6.2).

    Three cases (an odd and an even number of timed batches, and the default warm-up); each batch takes its own
    time on a fake clock (``checks._clock``: every allowed wall clock reads it), so the answer is exact, the
    batches timed must be the right ones, and the check takes no real time.
    """
    ruled_out: set = set()
    for warmup, durations in _LATENCY_MS_CASES:
        clock = FakeClock()
        batches = [f"batch {i}" for i in range(len(durations))]
        model = FakeModel(clock, lambda batch, d=durations, b=batches: d[b.index(batch)] / 1000)
        args = () if warmup is None else (warmup,)
        with fake_time(fn, clock):
            out = call_learner(fn, model, list(batches), *args)
        warmup = 3 if warmup is None else warmup
        what = (f"median_latency_ms with {len(batches)} batches and warmup={warmup}"
                + ("" if args else " (the default)"))
        value = _number(out)
        if value is None:
            raise AssertionError(f"{what}: returned a {type(out).__name__}; return one number, milliseconds.")
        if model.batches != batches:
            if len(model.batches) == len(batches):
                raise AssertionError(f"{what}: predict_fn was given {model.batches[:4]}... instead of each batch in "
                                     "order: call it once per batch, `predict_fn(batch) for batch in batches`, "
                                     "the first `warmup` untimed, the rest timed (timing batches[0] over and over "
                                     "measures one batch, not the traffic).")
            raise AssertionError(f"{what}: predict_fn was called {len(model.batches)} times for {len(batches)} "
                                 f"batches: call it once per batch; the first {warmup} calls are the warm-up.")
        expected = statistics.median(durations[warmup:])
        keys = name_mistakes(value, expected, _latency_variants(durations, warmup), ruled_out,
                             lambda a, b: math.isclose(a, b, rel_tol=1e-5))
        if keys is None:
            continue
        if clock.cpu_clock_read:
            keys = ["cpu"]
        hint = " ".join(LATENCY_HINTS[k] for k in keys) if keys else (
            "time each call of batches[warmup:] with time.perf_counter() and return the median, in ms.")
        raise AssertionError(f"{what}: got {value:.6g} ms, expected {expected:.6g} ms: {hint}")


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

    with seeded(1):  # the caller's global RNG is left as it was
        return MLP(hidden=(32,), in_features=features, num_classes=classes)


#: One hint per typical mistake of exercise 6.3.
PRUNE_HINTS: dict[str, str] = {
    "in_place": "the caller's student was pruned in place: prune a copy (compress.prune_magnitude returns one), "
                "so the dense student is still there to compare with.",
    "masks": "the returned model still carries its pruning masks, so the 'pruned' model is not smaller at all. "
             "After fine-tuning, call compress.make_permanent(model) (torch.nn.utils.prune.remove).",
    "grew_back": "the pruned weights grew back. Keep the masks in place while fine-tuning "
                 "(compress.prune_magnitude(..., permanent=False)) and fold them in afterwards.",
    "over_pruned": "more weights are zero than `amount` asks for: prune once, globally, with the amount you were "
                   "given (pruning twice, or each layer on top of a global pass, removes more).",
    "not_tuned": "the weights are exactly those of magnitude pruning: nothing was fine-tuned. Train the pruned "
                 "model (train.fit) for `epochs` epochs after pruning.",
    "hard_labels": "it was fine-tuned on hard labels. Use distillation_loss(student_logits, teacher_logits, "
                   "labels, temperature, alpha) with the teacher's cached logits as the targets.",
    "args": "pass the temperature and alpha you were given to distillation_loss, not fixed numbers or the "
            "defaults.",
    "alpha_ignored": "with alpha = 0 the model must learn from the labels alone: pass alpha on to the loss.",
    "weak": "train with distillation_loss at the given temperature and alpha, for `epochs` epochs at learning "
            "rate `lr`.",
}


def _prune_run(fn: Callable, amount: float, temperature: float, alpha: float, epochs: int, lr: float):
    """One call of the learner's fine_tune_pruned on the toy task; fails on what it did to the model."""
    x, teacher_logits, labels = _toy_task()
    student = _toy_student()
    original = {k: v.clone() for k, v in student.state_dict().items()}
    before = compress.prune_magnitude(student, amount)
    what = (f"fine_tune_pruned(amount={amount:g}, temperature={temperature:g}, alpha={alpha:g}, epochs={epochs}, "
            f"lr={lr:g})")
    with pinned_threads(1), _spy_on_distillation_loss(fn) as calls:  # a toy model trains faster on one thread
        out = call_learner(fn, student, amount, x, teacher_logits.clone(), labels.clone(), temperature, alpha,
                           epochs, lr)
    state = student.state_dict()
    if set(state) != set(original) or any(not torch.equal(state[k], v) for k, v in original.items()):
        raise AssertionError(f"{what}: {PRUNE_HINTS['in_place']}")
    if not isinstance(out, nn.Module):
        raise AssertionError(f"{what} returned a {type(out).__name__}: return the pruned, fine-tuned model.")
    if compress.has_masks(out):
        masked, folded = compress.model_size_bytes(out), compress.model_size_bytes(compress.make_permanent(out))
        raise AssertionError(f"{what}: its saved file is {masked:,} bytes, against {folded:,} with the masks folded "
                             f"in: {PRUNE_HINTS['masks']}")
    sparsity = compress.sparsity(out)
    if sparsity < amount - 0.01:
        raise AssertionError(f"{what}: only {sparsity:.0%} of the weights are zero after fine-tuning, not "
                             f"{amount:.0%}: {PRUNE_HINTS['grew_back']}")
    if sparsity > amount + 0.02:
        raise AssertionError(f"{what}: {sparsity:.0%} of the weights are zero, not {amount:.0%}: "
                             f"{PRUNE_HINTS['over_pruned']}")
    weights = [m.weight.detach() for m in out.modules() if isinstance(m, nn.Linear)]
    pruned = [m.weight.detach() for m in before.modules() if isinstance(m, nn.Linear)]
    if all(torch.equal(a, b) for a, b in zip(weights, pruned)):
        raise AssertionError(f"{what}: {PRUNE_HINTS['not_tuned']}")
    wrong = sorted({c for c in calls if c != (temperature, alpha)})
    if wrong:
        seen = ", ".join(f"temperature={t:g}, alpha={a:g}" for t, a in wrong)
        raise AssertionError(f"{what}: distillation_loss received {seen}: {PRUNE_HINTS['args']}")
    with torch.no_grad():
        predictions = out.eval()(x).argmax(1)
    return (float((predictions == teacher_logits.argmax(1)).float().mean()),
            float((predictions == labels).float().mean()), what)


@learner_check("fine_tune_pruned", solution=answers.fine_tune_pruned)
def check_fine_tune_pruned(fn: Callable) -> None:
    """Check ``fn(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr)`` (exercise 6.3).

    It must return a pruned copy (exactly ``amount`` of the weights zero, masks folded in, the caller's student
    untouched) fine-tuned with the distillation loss at the temperature and alpha given (the library's
    ``distillation_loss`` is watched for them). On this task the labels disagree with the teacher on every
    row: with ``alpha = 0.9`` the model must end up following the teacher, with ``alpha = 0`` the labels.
    """
    follows_teacher, follows_labels, what = _prune_run(fn, 0.6, 3.0, 0.9, 10, 1e-2)
    if follows_labels > follows_teacher:
        raise AssertionError(f"{what}: the model should learn mostly the teacher's soft targets, yet it agrees with "
                             f"the hard labels on {follows_labels:.0%} of rows and with the teacher on "
                             f"{follows_teacher:.0%} (here they always differ): {PRUNE_HINTS['hard_labels']}")
    if follows_teacher < 0.45:
        raise AssertionError(f"{what}: after fine-tuning the model agrees with the teacher on only "
                             f"{follows_teacher:.0%} of rows: {PRUNE_HINTS['weak']}")
    follows_teacher, follows_labels, what = _prune_run(fn, 0.5, 2.0, 0.0, 10, 1e-2)
    if follows_labels <= follows_teacher:
        raise AssertionError(f"{what}: the model agrees with the teacher on {follows_teacher:.0%} of rows and with "
                             f"the labels on {follows_labels:.0%}: {PRUNE_HINTS['alpha_ignored']}")
