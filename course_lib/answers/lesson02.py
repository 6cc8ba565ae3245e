"""Answer keys of lesson 02's exercises, generated from solutions/02_hinton_distillation.ipynb: do not edit.

Regenerate with `python -m course_lib.exercises build`; the checks import these, and tests/test_exercises.py fails when this file is stale.
"""
# ruff: noqa
import torch
import torch.nn.functional as F
from course_lib.losses import kd_loss as reference_kd_loss


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), summed over classes, averaged over the batch."""
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1).mean()
    return kl * temperature**2


def distillation_loss(student_logits, teacher_logits, labels, temperature=1.0, alpha=0.5):
    """alpha * kd_loss + (1 - alpha) * cross-entropy(student_logits, labels)."""
    soft = reference_kd_loss(student_logits, teacher_logits, temperature)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * hard


def choose_class_bias(logits: torch.Tensor, labels: torch.Tensor, cls: int, candidates) -> float:
    """The candidate bias for column `cls` that maximises overall accuracy (ties: the smallest)."""
    best, best_correct = None, -1
    for bias in sorted(candidates):  # in increasing order, so a tie keeps the smallest
        shifted = logits.clone()
        shifted[:, cls] += bias
        correct = int((shifted.argmax(dim=1) == labels).sum())
        if correct > best_correct:
            best, best_correct = float(bias), correct
    return best


def distill(student, x, teacher_logits, temperature, epochs, lr, batch_size, t_squared=True):
    """Plain SGD on kd_loss(student(xb), tb, temperature), batches in order; divided by T^2 if not t_squared."""
    optimizer = torch.optim.SGD(student.parameters(), lr=lr)
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            xb, tb = x[start:start + batch_size], teacher_logits[start:start + batch_size]
            loss = kd_loss(student(xb), tb, temperature)
            if not t_squared:
                loss = loss / temperature**2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
