"""Answer keys of lesson 04's exercises, generated from solutions/04_email_router.ipynb: do not edit.

Regenerate with `python -m course_lib.exercises build`; the checks import these, and tests/test_exercises.py fails when this file is stale.
"""
# ruff: noqa
import numpy as np
import statistics
import time
from course_lib import router


def choose_temperature(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_student):
    """(best_temperature, {temperature: validation accuracy}) over students trained on soft pseudo-labels."""
    accuracies = {}
    for temperature in temperatures:
        targets = router.soft_targets(teacher_logits, temperature)
        student = train_student(traffic_texts, targets)
        accuracies[temperature] = float(np.mean(student.predict(val_texts) == val_labels))
    best = max(accuracies, key=accuracies.get)  # the first of ties
    return best, accuracies


def median_latency(predict_fn, batch, warmup: int = 3, repeats: int = 20) -> float:
    """Median wall-clock seconds of predict_fn(batch) over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        predict_fn(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_fn(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
