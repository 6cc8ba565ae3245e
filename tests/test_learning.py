"""Tests that fail when the learning breaks: distillation must actually transfer something.

Unit tests pin each function's arithmetic; these pin the behaviour the course is about,
on problems small enough for CI: a student trained on a teacher's soft targets follows
the teacher more closely than the same student trained on the labels alone.
"""
from __future__ import annotations

import pytest
import torch

from course_lib import config, data, distill, models


def _bars(n_per_class: int = 8, seed: int = 0):
    """Class k is a bright horizontal bar at row 2k + 4 on faint noise: (10 * n_per_class, 1, 28, 28)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat(n_per_class)
    x = torch.rand(len(labels), 1, 28, 28, generator=g) * 0.2
    for i, k in enumerate(labels.tolist()):
        x[i, 0, 2 * k + 4: 2 * k + 6, 4:24] = 1.0
    return x, labels


@pytest.mark.parametrize("alpha,follows", [(1.0, "teacher"), (0.0, "labels")])
def test_train_student_alpha_decides_whom_the_student_follows(alpha, follows, pinned_one_thread):
    """The teacher says class (k + 1) % 10 where the label says k: alpha = 1 follows the teacher, 0 the labels."""
    x, labels = _bars()
    teacher_logits = 8.0 * torch.nn.functional.one_hot((labels + 1) % 10, 10).float()
    student, _ = distill.train_student(x, labels, teacher_logits, hidden=(32,), temperature=2.0, alpha=alpha,
                                       epochs=30, batch_size=20, lr=3e-3, seed=0, progress=False)
    predictions = models.predict_logits(student, x).argmax(dim=1)
    target = teacher_logits.argmax(dim=1) if follows == "teacher" else labels
    assert (predictions == target).float().mean().item() > 0.9


def test_distillation_on_mnist_agrees_with_the_teacher_more_than_labels_alone(tmp_path, monkeypatch, pinned_one_thread):
    """FAST MNIST: 1,000 transfer images, an MLP (400,) student, distilled at T = 4 vs trained on labels.

    Measured (2,000 test digits, seeds 0, 1, 2): agreement with the teacher 92.9-93.3% distilled vs
    90.3-90.5% on labels, a gap of +2.65 to +2.75 points every time. The assertion asks for 1.5.
    """
    monkeypatch.setattr(config, "FAST", True)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))  # the FAST teacher is trained here (about 10 s)
    splits = data.load_mnist(fast=True)
    teacher, _ = distill.mnist_teacher(splits, progress=False)
    x, labels = splits.x_train[:1000], splits.y_train[:1000]
    teacher_logits = models.predict_logits(teacher, x)
    teacher_test = models.predict_logits(teacher, splits.x_test).argmax(dim=1)
    settings = dict(hidden=(400,), epochs=40, batch_size=128, lr=3e-3, seed=0, progress=False)
    distilled, _ = distill.train_student(x, labels, teacher_logits, temperature=4.0, alpha=0.9, **settings)
    baseline, _ = distill.train_student(x, labels, None, **settings)

    def agreement(student):
        return (models.predict_logits(student, splits.x_test).argmax(dim=1) == teacher_test).float().mean().item()

    gain = agreement(distilled) - agreement(baseline)
    assert gain > 0.015, f"distilled student agrees with the teacher only {100 * gain:+.2f} points more than baseline"
