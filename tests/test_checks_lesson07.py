"""Tests for the lesson 07 checks: the reference passes, stubs are 'not implemented yet',
and each typical mistake (written out below) fails with its own hint."""
from __future__ import annotations

import functools

import pytest
import torch

from course_lib import sequence
from course_lib.checks._core import run_check
from course_lib.checks.lesson07 import HINTS, check_greedy_decode, check_on_policy_loss, check_token_kd_loss
from course_lib.losses import kd_loss, on_policy_kd_loss
import hint_checks
from hint_checks import stub


assert_hint = functools.partial(hint_checks.assert_hint, HINTS)


@pytest.mark.parametrize("check,reference", [
    (check_token_kd_loss, sequence.token_kd_loss),
    (check_greedy_decode, sequence.greedy_decode),
    (check_on_policy_loss, sequence.on_policy_loss),
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


# --- on_policy_loss: typical mistakes ---------------------------------------------------------------

def _teacher_fixed(teacher, inputs):
    with torch.no_grad():
        return teacher(inputs)


def op_no_mask(student, teacher, rollouts, answer_mask, beta=0.5):
    """(a) every position, the prompt included."""
    x = rollouts[:, :-1]
    return on_policy_kd_loss(student(x), _teacher_fixed(teacher, x), torch.ones_like(answer_mask[:, 1:]), beta)


def op_past_k(student, teacher, rollouts, answer_mask, beta=0.5):
    """(b) every position after the prompt: what the student wrote past its row's k counted."""
    x, p = rollouts[:, :-1], sequence.prompt_length(6)
    mask = (torch.arange(x.shape[1]) >= p - 1).expand(len(x), -1)
    return on_policy_kd_loss(student(x), _teacher_fixed(teacher, x), mask, beta)


def op_zeroed_not_selected(student, teacher, rollouts, answer_mask, beta=0.5):
    """(c) the unscored terms zeroed, the mean over all positions."""
    x, m = rollouts[:, :-1], answer_mask[:, 1:]
    s, t, one = student(x), _teacher_fixed(teacher, x), torch.ones(1, 1, dtype=torch.bool)
    per_position = torch.stack([torch.stack([on_policy_kd_loss(s[b:b + 1, i:i + 1], t[b:b + 1, i:i + 1], one, beta)
                                             for i in range(m.shape[1])]) for b in range(m.shape[0])])
    return (per_position * m).mean()


def op_swapped(student, teacher, rollouts, answer_mask, beta=0.5):
    """(d) the teacher's distribution pulled towards the student's (the student's logits detached by the loss)."""
    x, m = rollouts[:, :-1], answer_mask[:, 1:]
    return on_policy_kd_loss(_teacher_fixed(teacher, x), student(x), m, beta)


def op_swapped_models(student, teacher, rollouts, answer_mask, beta=0.5):
    """(d) the models swapped outright: the student run under no_grad, the teacher with its graph."""
    x, m = rollouts[:, :-1], answer_mask[:, 1:]
    return on_policy_kd_loss(teacher(x), _teacher_fixed(student, x), m, beta)


def op_teacher_with_grad(student, teacher, rollouts, answer_mask, beta=0.5):
    """(e) the teacher run with autograd on (on_policy_kd_loss detaches it, but the graph is built)."""
    x, m = rollouts[:, :-1], answer_mask[:, 1:]
    return on_policy_kd_loss(student(x), teacher(x), m, beta)


def op_teacher_not_detached(student, teacher, rollouts, answer_mask, beta=0.5):
    """(e) GKD written out by hand, the teacher neither under no_grad nor detached: it gets a gradient."""
    x, m = rollouts[:, :-1], answer_mask[:, 1:]
    log_s, log_t = torch.log_softmax(student(x)[m], -1), torch.log_softmax(teacher(x)[m], -1)
    if beta == 0:
        return (log_t.exp() * (log_t - log_s)).sum(-1).mean()
    if beta == 1:
        return (log_s.exp() * (log_s - log_t)).sum(-1).mean()
    log_m = torch.log(beta * log_t.exp() + (1 - beta) * log_s.exp())
    return (beta * (log_t.exp() * (log_t - log_m)).sum(-1) + (1 - beta) * (log_s.exp() * (log_s - log_m)).sum(-1)).mean()


def op_mask_not_shifted(student, teacher, rollouts, answer_mask, beta=0.5):
    """(f) the logits of rollouts[:, :-1] scored at answer_mask[:, :-1]: one position early."""
    x = rollouts[:, :-1]
    return on_policy_kd_loss(student(x), _teacher_fixed(teacher, x), answer_mask[:, :-1], beta)


def op_student_reads_ahead(student, teacher, rollouts, answer_mask, beta=0.5):
    """(f) the student given rollouts[:, 1:], the teacher rollouts[:, :-1]."""
    return on_policy_kd_loss(student(rollouts[:, 1:]), _teacher_fixed(teacher, rollouts[:, :-1]), answer_mask[:, 1:],
                             beta)


def op_beta_ignored(student, teacher, rollouts, answer_mask, beta=0.5):
    """(g) beta never passed on: always 0.5."""
    x, m = rollouts[:, :-1], answer_mask[:, 1:]
    return on_policy_kd_loss(student(x), _teacher_fixed(teacher, x), m)


def op_beta_reversed(student, teacher, rollouts, answer_mask, beta=0.5):
    """(g) 1 - beta passed on."""
    return sequence.on_policy_loss(student, teacher, rollouts, answer_mask, beta=1 - beta)


def op_item(student, teacher, rollouts, answer_mask, beta=0.5):
    """(h) a Python float."""
    return sequence.on_policy_loss(student, teacher, rollouts, answer_mask, beta=beta).item()


def op_student_detached(student, teacher, rollouts, answer_mask, beta=0.5):
    """(h) a tensor without a graph."""
    return sequence.on_policy_loss(student, teacher, rollouts, answer_mask, beta=beta).detach()


def op_summed(student, teacher, rollouts, answer_mask, beta=0.5):
    """(i) the sum over the scored positions."""
    return sequence.on_policy_loss(student, teacher, rollouts, answer_mask, beta=beta) * int(answer_mask.sum())


def op_kd_loss(student, teacher, rollouts, answer_mask, beta=0.5):
    """(j) Hinton's kd_loss (forward KL, T^2 = 1) whatever beta is."""
    x, m = rollouts[:, :-1], answer_mask[:, 1:]
    return kd_loss(student(x)[m], _teacher_fixed(teacher, x)[m])


def op_in_place(student, teacher, rollouts, answer_mask, beta=0.5):
    """(k) what the student wrote past k overwritten with PAD in the caller's rollouts."""
    p = sequence.prompt_length(6)
    rollouts[(torch.arange(rollouts.shape[1]) >= p) & ~answer_mask] = sequence.pad_token(6)
    return sequence.on_policy_loss(student, teacher, rollouts, answer_mask, beta=beta)


def op_mixture_at_the_ends(student, teacher, rollouts, answer_mask, beta=0.5):
    """The mixture formula used at beta = 0 and 1 too (it gives 0 there); right strictly between."""
    if beta in (0.0, 1.0):
        x, m = rollouts[:, :-1], answer_mask[:, 1:]
        return student(x)[m].sum() * 0.0
    return sequence.on_policy_loss(student, teacher, rollouts, answer_mask, beta=beta)


assert_hints = functools.partial(hint_checks.assert_hints, HINTS)


@pytest.mark.parametrize("fn,key", [
    (op_no_mask, "op_prompt"), (op_past_k, "op_past_k"), (op_zeroed_not_selected, "op_zeroed"),
    (op_swapped, "op_swapped"), (op_swapped_models, "op_swapped"), (op_teacher_with_grad, "op_teacher_grad"),
    (op_teacher_not_detached, "op_teacher_grad"), (op_mask_not_shifted, "op_shift"),
    (op_student_reads_ahead, "op_shift"), (op_beta_ignored, "op_beta_ignored"),
    (op_beta_reversed, "op_beta_reversed"), (op_item, "op_no_grad"), (op_student_detached, "op_no_grad"),
    (op_summed, "op_sum"), (op_kd_loss, "op_kd_loss"), (op_in_place, "op_in_place"),
    (op_mixture_at_the_ends, "op_beta_ends"),
])
def test_on_policy_loss_mistakes_get_their_own_hint(fn, key):
    """Each mistake is named by its hint and by no other (several betas and rows of several lengths keep the
    numbers apart: a swap gives 1 - beta's number, but sends the gradient elsewhere)."""
    assert_hints(check_on_policy_loss, fn, key)


def test_on_policy_loss_check_asks_several_betas_on_rows_of_several_lengths():
    from course_lib.checks.lesson07 import _ON_POLICY_CASES

    betas = [beta for beta, _, _ in _ON_POLICY_CASES]
    assert 0.5 not in betas and {0.0, 1.0} <= set(betas) and any(0 < b < 1 for b in betas)
    for beta, seed, lengths in _ON_POLICY_CASES:
        chains = sequence.make_chains(6, list(lengths), seed=seed, num_symbols=6)
        assert len(chains.lengths.unique()) > 1, (beta, seed)
