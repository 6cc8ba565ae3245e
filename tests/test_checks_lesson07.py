"""Tests for the lesson 07 checks: the reference passes, stubs are 'not implemented yet',
and each typical mistake (written out below) fails with its own hint."""
from __future__ import annotations

import functools

import pytest
import torch

from course_lib import sequence
from course_lib.checks._core import run_check
from course_lib.checks.lesson07 import HINTS, check_greedy_decode, check_token_kd_loss
from course_lib.losses import kd_loss
import hint_checks
from hint_checks import stub


assert_hint = functools.partial(hint_checks.assert_hint, HINTS)


@pytest.mark.parametrize("check,reference", [
    (check_token_kd_loss, sequence.token_kd_loss),
    (check_greedy_decode, sequence.greedy_decode),
])
def test_check_passes_reference_and_reports_stub(check, reference, capsys):
    assert check(reference) is True
    assert "all checks passed" in capsys.readouterr().out
    assert check(stub) is False
    assert "not implemented yet" in capsys.readouterr().out
    assert run_check(check, lambda *a, **k: 1 / 0).status == "failed"


def test_hints_are_distinct():
    assert len(set(HINTS.values())) == len(HINTS)


# --- token_kd_loss: typical mistakes ----------------------------------------------------------------

def kd_padding_in_mean(student, teacher, tokens, target_mask, temperature=1.0):
    x, m = tokens[:, :-1], target_mask[:, 1:]
    with torch.no_grad():
        t = teacher(x)
    log_p = torch.log_softmax(t / temperature, -1)
    log_q = torch.log_softmax(student(x) / temperature, -1)
    terms = (log_p.exp() * (log_p - log_q)).sum(-1) * m
    return terms.mean() * temperature**2


def kd_no_mask(student, teacher, tokens, target_mask, temperature=1.0):
    x = tokens[:, :-1]
    with torch.no_grad():
        t = teacher(x)
    return kd_loss(student(x).flatten(0, 1), t.flatten(0, 1), temperature)


def kd_teacher_with_grad(student, teacher, tokens, target_mask, temperature=1.0):
    x, m = tokens[:, :-1], target_mask[:, 1:]
    return kd_loss(student(x)[m], teacher(x)[m], temperature)


def kd_teacher_shifted(student, teacher, tokens, target_mask, temperature=1.0):
    m = target_mask[:, 1:]
    with torch.no_grad():
        t = teacher(tokens[:, 1:])  # the targets one position ahead
    return kd_loss(student(tokens[:, :-1])[m], t[m], temperature)


def kd_logits_shifted(student, teacher, tokens, target_mask, temperature=1.0):
    with torch.no_grad():
        t = teacher(tokens)
    s = student(tokens)
    m = target_mask[:, 1:]
    return kd_loss(s[:, :-1][m], t[:, 1:][m], temperature)


def kd_mask_not_shifted(student, teacher, tokens, target_mask, temperature=1.0):
    x, m = tokens[:, :-1], target_mask[:, :-1]
    with torch.no_grad():
        t = teacher(x)
    return kd_loss(student(x)[m], t[m], temperature)


def kd_whole_rows_unshifted_mask(student, teacher, tokens, target_mask, temperature=1.0):
    with torch.no_grad():
        t = teacher(tokens)
    return kd_loss(student(tokens)[target_mask], t[target_mask], temperature)


def kd_prompt_too(student, teacher, tokens, target_mask, temperature=1.0):
    x, m = tokens[:, :-1], (tokens != sequence.pad_token(6))[:, 1:]
    with torch.no_grad():
        t = teacher(x)
    return kd_loss(student(x)[m], t[m], temperature)


def kd_no_t2(student, teacher, tokens, target_mask, temperature=1.0):
    return sequence.token_kd_loss(student, teacher, tokens, target_mask, temperature) / temperature**2


def kd_temperature_ignored(student, teacher, tokens, target_mask, temperature=1.0):
    return sequence.token_kd_loss(student, teacher, tokens, target_mask, 1.0)


def kd_reversed(student, teacher, tokens, target_mask, temperature=1.0):
    x, m = tokens[:, :-1], target_mask[:, 1:]
    with torch.no_grad():
        t = teacher(x)
    return kd_loss(t[m], student(x)[m], temperature)


def kd_summed(student, teacher, tokens, target_mask, temperature=1.0):
    return sequence.token_kd_loss(student, teacher, tokens, target_mask, temperature) * int(target_mask.sum())


def kd_detached_student(student, teacher, tokens, target_mask, temperature=1.0):
    return sequence.token_kd_loss(student, teacher, tokens, target_mask, temperature).detach()


@pytest.mark.parametrize("fn,key", [
    (kd_padding_in_mean, "kd_padding"), (kd_no_mask, "kd_padding"), (kd_teacher_with_grad, "kd_teacher_grad"),
    (kd_teacher_shifted, "kd_shift"), (kd_logits_shifted, "kd_shift"), (kd_mask_not_shifted, "kd_shift"),
    (kd_whole_rows_unshifted_mask, "kd_shift"), (kd_prompt_too, "kd_prompt"), (kd_no_t2, "kd_t2"),
    (kd_temperature_ignored, "kd_temperature"), (kd_reversed, "kd_direction"), (kd_summed, "kd_sum"),
    (kd_detached_student, "kd_no_grad"),
])
def test_token_kd_loss_mistakes_get_their_hint(fn, key):
    assert_hint(check_token_kd_loss, fn, key)


# --- greedy_decode: typical mistakes ----------------------------------------------------------------

def gd_sampling(model, prompts, num_steps):
    tokens = prompts
    with torch.no_grad():
        for _ in range(num_steps):
            probs = torch.softmax(model(tokens)[:, -1], -1)
            tokens = torch.cat([tokens, torch.multinomial(probs, 1)], dim=1)
    return tokens[:, prompts.shape[1]:]


def gd_seeded_sampling(model, prompts, num_steps):
    g = torch.Generator().manual_seed(0)
    tokens = prompts
    with torch.no_grad():
        for _ in range(num_steps):
            probs = torch.softmax(model(tokens)[:, -1], -1)
            tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=g)], dim=1)
    return tokens[:, prompts.shape[1]:]


def gd_with_grad(model, prompts, num_steps):
    tokens = prompts
    for _ in range(num_steps):
        tokens = torch.cat([tokens, model(tokens)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return tokens[:, prompts.shape[1]:]


def gd_first_position(model, prompts, num_steps):
    tokens = prompts
    with torch.no_grad():
        for _ in range(num_steps):
            tokens = torch.cat([tokens, model(tokens)[:, 0].argmax(-1, keepdim=True)], dim=1)
    return tokens[:, prompts.shape[1]:]


def gd_with_prompt(model, prompts, num_steps):
    return torch.cat([prompts, sequence.greedy_decode(model, prompts, num_steps)], dim=1)


def gd_in_place(model, prompts, num_steps):
    out = sequence.greedy_decode(model, prompts, num_steps)
    prompts[:, 0] = 0
    return out


def gd_one_step_short(model, prompts, num_steps):
    return sequence.greedy_decode(model, prompts, num_steps - 1)


def gd_last_token_only(model, prompts, num_steps):
    tokens = prompts
    with torch.no_grad():
        for _ in range(num_steps):
            tokens = torch.cat([tokens, model(tokens[:, -1:])[:, -1].argmax(-1, keepdim=True)], dim=1)
    return tokens[:, prompts.shape[1]:]


def gd_feeds_back_the_new_token(model, prompts, num_steps):
    """The whole prompt first, then only the token just chosen (as if the model kept a cache: it does not)."""
    new, inputs = [], prompts
    with torch.no_grad():
        for _ in range(num_steps):
            token = model(inputs)[:, -1].argmax(-1, keepdim=True)
            new.append(token)
            inputs = token
    return torch.cat(new, dim=1)


def gd_as_list(model, prompts, num_steps):
    return sequence.greedy_decode(model, prompts, num_steps).tolist()


def gd_last_step_only(model, prompts, num_steps):
    return sequence.greedy_decode(model, prompts, num_steps)[:, -1:]


@pytest.mark.parametrize("fn,key", [
    (gd_sampling, "gd_sampling"), (gd_seeded_sampling, "gd_sampling"), (gd_with_grad, "gd_grad"),
    (gd_first_position, "gd_position"), (gd_with_prompt, "gd_with_prompt"), (gd_in_place, "gd_in_place"),
    (gd_one_step_short, "gd_shape"), (gd_last_token_only, "gd_last_token"),
    (gd_feeds_back_the_new_token, "gd_last_token"), (gd_as_list, "gd_not_tensor"), (gd_last_step_only, "gd_shape"),
])
def test_greedy_decode_mistakes_get_their_hint(fn, key):
    assert_hint(check_greedy_decode, fn, key)
