"""Answer keys of lesson 06's exercises, generated from solutions/06_optimisation_stack.ipynb: do not edit.

Regenerate with `python -m course_lib.exercises build`; the checks import these, and tests/test_exercises.py fails when this file is stale.
"""
# ruff: noqa
import tempfile
from course_lib import compress


def size_on_disk(model_or_path):
    """(bytes, gzip_bytes) of a file, or of the file torch.save(model.state_dict()) writes."""
    import gzip
    import os

    import torch

    if isinstance(model_or_path, torch.nn.Module):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.pt")
            torch.save(model_or_path.state_dict(), path)
            return size_on_disk(path)
    with open(model_or_path, "rb") as f:
        raw = f.read()
    return os.path.getsize(model_or_path), len(gzip.compress(raw))


def median_latency_ms(predict_fn, batches, warmup: int = 3) -> float:
    """Median milliseconds of predict_fn(batch) over batches[warmup:], after untimed calls on batches[:warmup]."""
    import statistics
    import time

    for batch in batches[:warmup]:
        predict_fn(batch)
    times = []
    for batch in batches[warmup:]:
        start = time.perf_counter()
        predict_fn(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def fine_tune_pruned(student, amount, x, teacher_logits, labels, temperature, alpha, epochs, lr):
    """A magnitude-pruned copy of student, fine-tuned with the distillation loss, masks folded in."""
    import functools

    from course_lib import train
    from course_lib.losses import distillation_loss

    pruned = compress.prune_magnitude(student, amount, permanent=False)
    loss = functools.partial(distillation_loss, temperature=temperature, alpha=alpha)
    train.fit(pruned, x, (teacher_logits, labels), loss, epochs=epochs, lr=lr, progress=False)
    return compress.make_permanent(pruned)
