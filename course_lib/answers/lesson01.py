"""Answer keys of lesson 01's exercises, generated from solutions/01_soft_targets.ipynb: do not edit.

Regenerate with `python -m course_lib.exercises build`; the checks import these, and tests/test_exercises.py fails when this file is stale.
"""
# ruff: noqa
import torch


def softmax_with_temperature(logits: torch.Tensor, temperature: float = 1.0, dim: int = -1) -> torch.Tensor:
    """Probabilities softmax(logits / temperature) along `dim`."""
    scaled = logits / temperature
    scaled = scaled - scaled.max(dim=dim, keepdim=True).values
    exps = scaled.exp()
    return exps / exps.sum(dim=dim, keepdim=True)


def first_temperature_above(logits: torch.Tensor, cls: int, share: float, temperatures):
    """The first T in `temperatures` with softmax(logits / T)[cls] > share, or None."""
    for temperature in temperatures:
        if torch.softmax(logits / temperature, dim=-1)[cls] > share:
            return temperature
    return None


def dark_knowledge_matrix(teacher_logits: torch.Tensor, labels: torch.Tensor, temperature: float,
                          num_classes: int) -> torch.Tensor:
    """Row i: the mean soft target softmax(teacher_logits / temperature) of the examples labelled i."""
    probs = torch.softmax(teacher_logits / temperature, dim=-1)
    return torch.stack([probs[labels == c].mean(dim=0) for c in range(num_classes)])
