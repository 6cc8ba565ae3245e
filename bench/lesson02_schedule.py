"""Lesson 02's schedule choice, judged on validation: plain transfer set vs jittered copies, 20 vs 40 passes.

    .venv/bin/python bench/lesson02_schedule.py

Seed 0, the 800-800 student, T = 20, alpha = 0.9 (full mode; the teacher and its logits come from the
cache that lesson 02 fills). Prints validation errors only: the schedule is chosen on them, never on test.
About 80 passes over 55,000 images: a few minutes on an idle 2-core CPU.
"""
from __future__ import annotations

import time

import torch

from course_lib import data, distill, evaluate

RUNS = [  # (name, jittered copies, epochs over them) -> passes over 55,000 images = copies x epochs
    ("plain transfer set, 20 passes", 0, 20),
    ("10 jittered copies, 20 passes", 10, 2),
    ("10 jittered copies, 40 passes", 10, 4),
]


def main() -> None:
    splits = data.load_mnist(fast=False)
    teacher, _ = distill.mnist_teacher(splits, progress=False)
    key = distill.teacher_key(splits)
    for name, views, epochs in RUNS:
        if views:
            x, logits = distill.jittered_views(teacher, splits.x_train, views, key)
            labels = splits.y_train.repeat(views)
        else:
            x, labels = splits.x_train, splits.y_train
            logits = distill.cached_logits(teacher, x, "mnist-teacher-logits-train", key)
        start = time.perf_counter()
        student, _ = distill.train_student(x, labels, logits, temperature=20.0, alpha=0.9, epochs=epochs, seed=0,
                                           progress=False)
        errors = evaluate.error_count(student, splits.x_val, splits.y_val)
        print(f"{name}: {errors} validation errors ({time.perf_counter() - start:.0f} s, "
              f"{torch.get_num_threads()} threads)", flush=True)


if __name__ == "__main__":
    main()
