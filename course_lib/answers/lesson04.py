"""Answer keys of lesson 04's exercises, generated from solutions/04_email_router.ipynb: do not edit.

Regenerate with `python -m course_lib.exercises build`; the checks import these, and tests/test_exercises.py fails when this file is stale.
"""
# ruff: noqa
import numpy as np
import torch
import torch.nn.functional as F
from course_lib import router


def choose_temperature(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_router_student):
    """(best_temperature, {temperature: validation accuracy}) over students trained on soft pseudo-labels."""
    accuracies = {}
    for temperature in temperatures:
        targets = router.soft_targets(teacher_logits, temperature)
        student = train_router_student(traffic_texts, targets)
        accuracies[temperature] = float(np.mean(student.predict(val_texts) == val_labels))
    best = max(accuracies, key=accuracies.get)  # the first of ties
    return best, accuracies


def soft_label_loss(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student against soft target rows, averaged over the batch."""
    log_q = F.log_softmax(student_logits, dim=-1)
    return -(targets * log_q).sum(dim=-1).mean()
