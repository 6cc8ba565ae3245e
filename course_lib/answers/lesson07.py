"""Answer keys of lesson 07's exercises, generated from solutions/07_sequence_distillation.ipynb: do not edit.

Regenerate with `python -m course_lib.exercises build`; the checks import these, and tests/test_exercises.py fails when this file is stale.
"""
# ruff: noqa
import torch
from course_lib.losses import kd_loss
from course_lib.losses import on_policy_kd_loss


def token_kd_loss(student, teacher, tokens, target_mask, temperature=1.0):
    """Mean over answer positions of kd_loss(student, teacher); both read tokens[:, :-1]."""
    inputs, mask = tokens[:, :-1], target_mask[:, 1:]
    with torch.no_grad():
        teacher_logits = teacher(inputs)
    return kd_loss(student(inputs)[mask], teacher_logits[mask], temperature)


def greedy_decode(model, prompts, num_steps):
    """(B, P) prompts -> (B, num_steps) tokens, each the argmax of the model's next-token logits."""
    tokens = prompts
    with torch.no_grad():
        for _ in range(num_steps):
            next_token = model(tokens)[:, -1].argmax(dim=-1, keepdim=True)
            tokens = torch.cat([tokens, next_token], dim=1)
    return tokens[:, prompts.shape[1]:]


def on_policy_loss(student, teacher, rollouts, answer_mask, beta=0.5):
    """GKD on the student's own rollouts: both read rollouts[:, :-1]; the teacher's distribution is the target."""
    inputs, mask = rollouts[:, :-1], answer_mask[:, 1:]
    with torch.no_grad():
        teacher_logits = teacher(inputs)
    return on_policy_kd_loss(student(inputs), teacher_logits, mask, beta=beta)
