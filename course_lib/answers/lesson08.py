"""Answer keys of lesson 08's exercises, generated from solutions/08_distilling_a_ranker.ipynb: do not edit.

Regenerate with `python -m course_lib.exercises build`; the checks import these, and tests/test_exercises.py fails when this file is stale.
"""
# ruff: noqa
from course_lib.losses import kd_loss


def listwise_kd_loss(student_scores, teacher_scores, mask, temperature=1.0):
    """T^2 * mean over queries of KL(teacher || student), each a softmax over the query's valid candidates."""
    hidden = ~mask
    return kd_loss(student_scores.masked_fill(hidden, float("-inf")),
                   teacher_scores.masked_fill(hidden, float("-inf")), temperature)
