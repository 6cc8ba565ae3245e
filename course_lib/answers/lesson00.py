"""Answer keys of lesson 00's exercises, generated from solutions/00_warmup.ipynb: do not edit.

Regenerate with `python -m course_lib.exercises build`; the checks import these, and tests/test_exercises.py fails when this file is stale.
"""
# ruff: noqa
import torch


def count_errors(logits: torch.Tensor, labels: torch.Tensor) -> int:
    """Number of rows whose argmax differs from the label. logits (N, C), labels (N,)."""
    return int((logits.argmax(dim=1) != labels).sum())
