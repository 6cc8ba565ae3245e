"""Checks for lesson 07 (distilling a sequence model): token-level KD over padded rows, and greedy decoding.

The right answers are computed here independently of ``course_lib.sequence`` and ``losses`` (the KL
written out in float64, argmax taken step by step). The models are wrapped in a recorder that
notes what each forward pass was given and whether autograd was on, so a check can say *why* an
answer is wrong: padding in the mean, the teacher run with gradients, its targets one position
off, a sample where the lesson asks for the most likely token. ``tests/test_checks_lesson07.py``
runs each mistake and asserts its hint.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .. import sequence
from ..answers import lesson07 as answers
from ._core import call_learner, inputs_compared_by_check, learner_check

#: One hint per typical mistake; a failing check's message contains the matching one.
HINTS: dict[str, str] = {
    "kd_not_scalar": "Return one number (a 0-dim tensor): the KD loss averaged over the answer positions.",
    "kd_padding": "Padding (and the prompt) must stay out of the loss and out of the mean: select the answer "
                  "positions first, student_logits[mask] and teacher_logits[mask] with mask = target_mask[:, 1:], "
                  "then call kd_loss on those (M, V) rows. Zeroing padded terms but dividing by every position "
                  "still counts the padding.",
    "kd_prompt": "Score only the answer positions (target_mask), not every non-padding token: the prompt's table "
                 "is random, and there is nothing to learn about predicting it.",
    "kd_teacher_grad": "Run the teacher under torch.no_grad(): it is a fixed target, and building a graph through "
                       "it costs memory and time (and, without a detach, trains it).",
    "kd_shift": "The teacher's soft targets are one position off the student's predictions. Feed the same inputs, "
                "tokens[:, :-1], to both models: then their logits line up position by position, and the logit at "
                "position t (which predicts token t + 1) is selected by target_mask[:, 1:].",
    "kd_no_grad": "No gradient reached the student: compute the student's logits with autograd on, and build the "
                  "loss from torch operations (no .item(), .detach() or .numpy() on the student's side).",
    "kd_t2": "Multiply by temperature**2 (kd_loss does it for you), so the size of the gradients does not depend on "
             "the temperature.",
    "kd_temperature": "Pass the temperature you were given on to kd_loss.",
    "kd_direction": "The KL divergence goes from the teacher to the student: sum_v p_teacher (log p_teacher - "
                    "log p_student), as kd_loss computes it, not the reverse.",
    "kd_sum": "Average over the answer positions (kd_loss's batchmean over the (M, V) rows), do not sum them: a sum "
              "grows with the number of answer tokens in the batch.",
    "kd_other": "Expected losses.kd_loss(student(x)[m], teacher(x)[m], temperature) with x = tokens[:, :-1], "
                "m = target_mask[:, 1:], and the teacher run under torch.no_grad().",
    "gd_not_tensor": "Return a torch.Tensor of token ids, shape (B, num_steps).",
    "gd_with_prompt": "Return only the num_steps generated tokens, shape (B, num_steps), without the prompt: "
                      "tokens[:, prompts.shape[1]:].",
    "gd_shape": "Return shape (B, num_steps): one new token per step, appended to every row at once.",
    "gd_sampling": "Greedy decoding takes the most likely token, argmax over the vocabulary, at every step; do not "
                   "sample (torch.multinomial, Categorical(...).sample()), not even with a fixed seed. Sequence-level "
                   "KD trains on the teacher's single best answer.",
    "gd_position": "Predict from the last position, model(tokens)[:, -1]: the logit at position t scores token t + 1, "
                   "so only the last position looks at the next, still missing, token.",
    "gd_last_token": "Feed the model the whole sequence so far, model(tokens), not only the last token: the next "
                     "token depends on the context before it (the chain's earlier steps). Read only the output at "
                     "the last position, model(tokens)[:, -1].",
    "gd_grad": "Decode under torch.no_grad() (or @torch.no_grad()): the transfer set is data, and graphs through "
               "every step of the teacher only cost memory and time.",
    "gd_in_place": "Do not change the caller's prompts: build the longer rows with torch.cat into a new tensor.",
    "gd_other": "Expected: num_steps times, next = model(tokens)[:, -1].argmax(-1), appended with torch.cat; "
                "return the new tokens only.",
}

NUM_SYMBOLS = 6


def _fail(what: str, key: str) -> None:
    raise AssertionError(f"{what}. {HINTS[key]}")


class _Recorder(nn.Module):
    """Wraps a model; records each forward pass's input and whether autograd was on."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.calls: list[tuple[torch.Tensor, bool]] = []

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.calls.append((tokens.detach().clone(), torch.is_grad_enabled()))
        return self.model(tokens)


def _model(seed: int, d_model: int, head_scale: float) -> nn.Module:
    model = sequence.build_model(dict(vocab=sequence.vocab_size(NUM_SYMBOLS), max_len=24, d_model=d_model,
                                      num_layers=1, num_heads=2), seed)
    with torch.no_grad():  # spread the logits so that distinct mistakes give distinct numbers
        model.head.weight.mul_(head_scale)
    return model.eval()


def _close(out, value: float) -> bool:
    return (isinstance(out, torch.Tensor) and out.numel() == 1
            and abs(float(out.detach()) - value) <= 1e-5 + 1e-4 * abs(value))


# ----------------------------------------------------------------------------- token-level KD
def _kl_terms(student_logits, teacher_logits, temperature, reverse=False) -> torch.Tensor:
    """(..., ) float64: sum_v p (log p - log q), p from the teacher (the student if ``reverse``)."""
    log_q = torch.log_softmax(student_logits.double() / temperature, dim=-1)
    log_p = torch.log_softmax(teacher_logits.double() / temperature, dim=-1)
    if reverse:
        log_p, log_q = log_q, log_p
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


@learner_check("token_kd_loss", solution=answers.token_kd_loss)
def check_token_kd_loss(fn: Callable[..., torch.Tensor]) -> None:
    """Check token-level KD over padded rows: aligned positions, padding out, teacher without gradients (exercise 7.1)."""
    chains = sequence.make_chains(6, [1, 2, 4], seed=0, num_symbols=NUM_SYMBOLS)
    tokens, target_mask = chains.tokens, chains.target_mask
    student_model, teacher_model = _model(0, 16, 20.0), _model(1, 32, 40.0)
    pad = sequence.pad_token(NUM_SYMBOLS)
    x, m = tokens[:, :-1], target_mask[:, 1:]
    with torch.no_grad():
        s_x, t_x, t_next = student_model(x), teacher_model(x), teacher_model(tokens[:, 1:])
        s_all, t_all = student_model(tokens), teacher_model(tokens)
    for temperature in (1.0, 3.0):
        student, teacher = _Recorder(student_model), _Recorder(teacher_model)
        student.zero_grad(set_to_none=True)
        teacher.zero_grad(set_to_none=True)
        out = call_learner(fn, student, teacher, tokens.clone(), target_mask.clone(), temperature=temperature)
        what = f"token_kd_loss on {len(tokens)} padded rows with temperature={temperature}"
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            _fail(f"{what}: got {type(out).__name__} {tuple(getattr(out, 'shape', ()))}", "kd_not_scalar")
        terms = _kl_terms(s_x, t_x, temperature)
        t2 = temperature**2
        expected = float(terms[m].mean() * t2)
        if any(grad for _, grad in teacher.calls):
            _fail(f"{what}: the teacher's forward pass ran with autograd on", "kd_teacher_grad")
        if any(inp.shape == tokens[:, 1:].shape and torch.equal(inp, tokens[:, 1:]) for inp, _ in teacher.calls):
            _fail(f"{what}: the teacher was given tokens[:, 1:], the student other inputs", "kd_shift")
        if _close(out, expected):
            if not out.requires_grad:
                _fail(f"{what}: the loss has no gradient", "kd_no_grad")
            out.backward()
            if any(p.grad is not None and p.grad.abs().sum() > 0 for p in teacher.parameters()):
                _fail(f"{what}: gradients reached the teacher's parameters", "kd_teacher_grad")
            if not any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters()):
                _fail(f"{what}: no gradient reached the student's parameters", "kd_no_grad")
            continue
        body = (tokens != pad)[:, 1:]
        mistakes = [
            (float(terms.mean() * t2), "kd_padding"),
            (float((terms * m).sum() / m.numel() * t2), "kd_padding"),
            (float(terms[body].mean() * t2), "kd_prompt"),
            (float(_kl_terms(s_x, t_next, temperature)[m].mean() * t2), "kd_shift"),
            (float(_kl_terms(s_x[:, 1:], t_x[:, :-1], temperature)[m[:, 1:]].mean() * t2), "kd_shift"),
            (float(_kl_terms(s_x[:, :-1], t_x[:, 1:], temperature)[m[:, :-1]].mean() * t2), "kd_shift"),
            (float(_kl_terms(s_x[:, :-1], t_x[:, 1:], temperature)[m[:, 1:]].mean() * t2), "kd_shift"),
            (float(_kl_terms(s_all, t_all, temperature)[target_mask].mean() * t2), "kd_shift"),
            (float(_kl_terms(s_all[:, :-1], t_all[:, 1:], temperature)[m].mean() * t2), "kd_shift"),
            (float(_kl_terms(s_all[:, 1:], t_all[:, :-1], temperature)[m].mean() * t2), "kd_shift"),
            (float(terms[target_mask[:, :-1]].mean() * t2), "kd_shift"),
            (float(terms[m].mean()), "kd_t2"),
            (float(_kl_terms(s_x, t_x, 1.0)[m].mean()), "kd_temperature"),
            (float(_kl_terms(s_x, t_x, temperature, reverse=True)[m].mean() * t2), "kd_direction"),
            (float(terms[m].sum() * t2), "kd_sum"),
        ]
        for value, key in mistakes:
            if _close(out, value) and abs(value - expected) > 1e-4 * abs(expected) + 1e-6:
                _fail(f"{what}: got {float(out.detach()):.5f}, expected {expected:.5f}", key)
        _fail(f"{what}: got {float(out.detach()):.5f}, expected {expected:.5f}", "kd_other")


# ----------------------------------------------------------------------------- greedy decoding


def _path_logits(model: nn.Module, prompts: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """(B, steps, V): the logits that chose each generated token, read along the learner's own path."""
    with torch.no_grad():
        logits = model(torch.cat([prompts, generated], dim=1))
    start = prompts.shape[1] - 1
    return logits[:, start:start + generated.shape[1]]


@learner_check("greedy_decode", solution=answers.greedy_decode)
def check_greedy_decode(fn: Callable[..., torch.Tensor]) -> None:
    """Check greedy decoding: argmax at every step from the last position, new tokens only, no gradients (exercise 7.2)."""
    model_ = _model(2, 16, 30.0)
    prompts = sequence.make_chains(6, 1, seed=1, num_symbols=NUM_SYMBOLS).prompts
    num_steps = 6
    expected = answers.greedy_decode(model_, prompts, num_steps)
    what = f"greedy_decode on {len(prompts)} prompts of {prompts.shape[1]} tokens, num_steps={num_steps}"
    outs = []
    for _ in range(2):
        model = _Recorder(model_)
        given = prompts.clone()
        with inputs_compared_by_check():
            out = call_learner(fn, model, given, num_steps)
        if not torch.equal(given, prompts):
            _fail(f"{what}: the prompts changed", "gd_in_place")
        if not isinstance(out, torch.Tensor):
            _fail(f"{what}: got {type(out).__name__}", "gd_not_tensor")
        if any(grad for _, grad in model.calls):
            _fail(f"{what}: the model ran with autograd on", "gd_grad")
        if prompts.shape[1] > 1 and any(inp.shape[1] == 1 for inp, _ in model.calls):
            _fail(f"{what}: a forward pass was given one token per row", "gd_last_token")
        out = out.detach().cpu()
        if out.shape == (len(prompts), prompts.shape[1] + num_steps) and torch.equal(out[:, :prompts.shape[1]], prompts):
            _fail(f"{what}: got shape {tuple(out.shape)}, the prompt included", "gd_with_prompt")
        if out.shape != expected.shape:
            _fail(f"{what}: got shape {tuple(out.shape)}, expected {tuple(expected.shape)}", "gd_shape")
        outs.append(out.long())
    if not torch.equal(outs[0], outs[1]):
        _fail(f"{what}: two calls on the same prompts gave different tokens", "gd_sampling")
    out = outs[0]
    if torch.equal(out, expected):
        return
    in_vocab = bool(((out >= 0) & (out < sequence.vocab_size(NUM_SYMBOLS))).all())
    if in_vocab:
        logits = _path_logits(model_, prompts, out)
        if not torch.equal(logits.argmax(dim=-1), out):
            # the learner's own path does not follow the argmax: from the first position, or a sample?
            tokens = prompts
            with torch.no_grad():
                for _ in range(num_steps):
                    tokens = torch.cat([tokens, model_(tokens)[:, 0].argmax(dim=-1, keepdim=True)], dim=1)
            if torch.equal(tokens[:, prompts.shape[1]:], out):
                _fail(f"{what}: wrong tokens", "gd_position")
            _fail(f"{what}: at some step the token chosen was not the most likely one", "gd_sampling")
    _fail(f"{what}: wrong tokens", "gd_other")
