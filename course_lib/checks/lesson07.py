"""Checks for lesson 07 (distilling a sequence model): token-level KD over padded rows, greedy decoding, and
on-policy distillation's loss on the student's own samples.

The right answers are computed here independently of ``course_lib.sequence`` and ``losses`` (the KL and
GKD's divergence written out in float64, argmax taken step by step). The models are wrapped in a recorder
that notes what each forward pass was given and whether autograd was on, so a check can say *why* an
answer is wrong: padding in the mean, the teacher run with gradients, its targets one position
off, a sample where the lesson asks for the most likely token, the teacher pulled towards the student.
``tests/test_checks_lesson07.py`` runs each mistake and asserts its hint.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .. import sequence
from ..answers import lesson07 as answers
from ._core import call_learner, inputs_compared_by_check, learner_check, name_mistakes

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
    "op_not_scalar": "Return one number, a 0-dim tensor: GKD's divergence averaged over the scored answer positions.",
    "op_prompt": "Score only the answer positions: mask = answer_mask[:, 1:], given to on_policy_kd_loss. The prompt "
                 "is given, not written by the student, and its table is random: there is nothing to learn about "
                 "predicting it.",
    "op_past_k": "Stop at each row's k: the student wrote num_steps tokens after every prompt, but only the first k of "
                 "a row are its answer (answer_mask). Scoring every position after the prompt counts what it wrote "
                 "past k, which is no part of the answer (padding, in the ground truth's rows).",
    "op_zeroed": "Zeroing the unscored positions' terms is not enough: divide by the number of scored positions "
                 "(mask.sum()), not by all of them, or short rows in a batch of long ones weigh less. "
                 "on_policy_kd_loss(student_logits, teacher_logits, mask, beta) does both.",
    "op_shift": "One position off: both models read the same inputs, rollouts[:, :-1], and the logit at position t "
                "predicts token t + 1, so the positions to score are answer_mask[:, 1:] (not answer_mask[:, :-1], "
                "and not a model given rollouts[:, 1:]).",
    "op_swapped": "The teacher's distribution is the target and the student is the one pulled: "
                  "on_policy_kd_loss(student_logits, teacher_logits, mask, beta), student first. With the two "
                  "swapped the student's distribution becomes the fixed target, and the gradient goes to the "
                  "teacher (or, once its logits are detached, nowhere).",
    "op_teacher_grad": "Run the teacher under torch.no_grad(): its distribution is the fixed target, a graph through "
                       "it costs memory and time, and without a detach the loss would also move the teacher towards "
                       "the student.",
    "op_beta_ignored": "Use the beta you were given: on_policy_kd_loss(..., beta=beta). The loss came out as GKD's at "
                       "beta = 0.5 (the default) whatever beta was.",
    "op_beta_reversed": "Pass beta on as it is, not 1 - beta: beta is the teacher's weight in the mixture "
                        "M = beta T + (1 - beta) S (TRL's GKDTrainer convention), so beta = 0 is the forward "
                        "KL(T || S) and beta = 1 the reverse KL(S || T).",
    "op_kd_loss": "kd_loss is Hinton's forward KL(T || S) (times T^2) whatever beta says: GKD's divergence depends on "
                  "beta (forward KL only at beta = 0). Use losses.on_policy_kd_loss(student_logits, teacher_logits, "
                  "mask, beta).",
    "op_beta_ends": "At beta = 0 and beta = 1 GKD's divergence is the plain KL (forward and reverse): the mixture "
                    "formula gives 0 there, as M is then one of the two distributions. on_policy_kd_loss handles "
                    "the ends.",
    "op_sum": "Average over the scored positions, do not sum them: a sum grows with the number of answer tokens in "
              "the batch (on_policy_kd_loss averages).",
    "op_no_grad": "No gradient reached the student: return a 0-dim tensor built from torch operations on "
                  "student(inputs) run with autograd on (no .item(), float(), .detach() or torch.no_grad() on the "
                  "student's side).",
    "op_in_place": "Do not change the caller's rollouts or answer_mask (they are reused, e.g. for the next beta): "
                   "compute new tensors (slices you only read, torch.where, masked_fill), never write into them or "
                   "into a slice of them (x[...] = ..., masked_fill_, +=).",
    "op_other": "Expected losses.on_policy_kd_loss(student(x), teacher(x), m, beta) with x = rollouts[:, :-1], "
                "m = answer_mask[:, 1:], and the teacher run under torch.no_grad().",
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


# ----------------------------------------------------------------------------- on-policy distillation (GKD)
def _gkd_terms(student_logits, teacher_logits, beta: float) -> torch.Tensor:
    """(B, L) float64: GKD's divergence at each position, written out (TRL's conventions).

    beta = 0: KL(T || S); beta = 1: KL(S || T); else beta KL(T || M) + (1 - beta) KL(S || M) with the
    mixture M = beta T + (1 - beta) S of the two distributions (probabilities, not logits).
    """
    s = torch.softmax(student_logits.double(), dim=-1)
    t = torch.softmax(teacher_logits.double(), dim=-1)

    def kl(p, q):
        return torch.where(p > 0, p * (p.log() - q.log()), torch.zeros_like(p)).sum(dim=-1)

    if beta == 0:
        return kl(t, s)
    if beta == 1:
        return kl(s, t)
    m = beta * t + (1 - beta) * s
    return beta * kl(t, m) + (1 - beta) * kl(s, m)


def _as_number(out) -> float | None:
    """The learner's loss as a float: a one-element tensor or a plain number; None for anything else."""
    if isinstance(out, torch.Tensor):
        return float(out.detach().double()) if out.numel() == 1 else None
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        return float(out)
    return None


def _gradients(out, student: nn.Module, teacher: nn.Module) -> tuple[bool, bool]:
    """(student got a gradient, teacher got one) from ``out.backward()``; (False, False) without a graph."""
    for model in (student, teacher):
        model.zero_grad(set_to_none=True)
    if not (isinstance(out, torch.Tensor) and out.requires_grad and out.numel() == 1):
        return False, False
    try:
        out.backward()
    except RuntimeError:
        return False, False

    def got(model):
        return any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())

    return got(student), got(teacher)


#: (beta, seed of the chains and of the student's sampling, chain lengths): betas on both sides of the default
#: and both ends, so a beta ignored, reversed or swapped models each give their own number.
_ON_POLICY_CASES = ((0.2, 3, (1, 2, 4)), (1.0, 4, (1, 3)), (0.0, 5, (2, 4)))


@learner_check("on_policy_loss", solution=answers.on_policy_loss)
def check_on_policy_loss(fn: Callable[..., torch.Tensor]) -> None:
    """Check on-policy distillation's loss on the student's own rollouts: GKD at beta = 0.2, 1 and 0 on answer
    positions only, the teacher's distribution the fixed target, student and teacher aligned (exercise 7.3)."""
    student_model, teacher_model = _model(3, 16, 20.0), _model(4, 32, 40.0)  # different widths
    p = sequence.prompt_length(NUM_SYMBOLS)
    ruled_out: set = set()
    for beta, seed, lengths in _ON_POLICY_CASES:
        chains = sequence.make_chains(6, list(lengths), seed=seed, num_symbols=NUM_SYMBOLS)
        rollouts = sequence.sample_rollouts(student_model, chains.prompts, chains.answers.shape[1], generator=seed)
        answer_mask = chains.target_mask
        what = (f"on_policy_loss with beta={beta} on {len(rollouts)} rollouts of chains of lengths "
                f"{sorted(set(chains.lengths.tolist()))}")
        student, teacher = _Recorder(student_model), _Recorder(teacher_model)
        given_rollouts, given_mask = rollouts.clone(), answer_mask.clone()
        with inputs_compared_by_check():
            out = call_learner(fn, student, teacher, given_rollouts, given_mask, beta=beta)
        if not (torch.equal(given_rollouts, rollouts) and torch.equal(given_mask, answer_mask)):
            _fail(f"{what}: the rollouts or the answer_mask changed", "op_in_place")
        got = _as_number(out)
        if got is None:
            _fail(f"{what}: got {type(out).__name__} {tuple(getattr(out, 'shape', ()))}", "op_not_scalar")
        student_grad, teacher_grad = _gradients(out, student_model, teacher_model)
        teacher_ran_with_grad = any(grad for _, grad in teacher.calls)
        shifted = rollouts[:, 1:]
        if any(inp.shape == shifted.shape and torch.equal(inp, shifted) for inp, _ in student.calls + teacher.calls):
            _fail(f"{what}: a model was given rollouts[:, 1:], the other rollouts[:, :-1]", "op_shift")

        x, m = rollouts[:, :-1], answer_mask[:, 1:]
        with torch.no_grad():
            s_x, t_x, s_all, t_all = student_model(x), teacher_model(x), student_model(rollouts), teacher_model(rollouts)
            s_next, t_next = student_model(shifted), teacher_model(shifted)
        terms = _gkd_terms(s_x, t_x, beta)
        expected = float(terms[m].mean())
        reversed_value = float(_gkd_terms(s_x, t_x, 1.0 - beta)[m].mean())  # also student and teacher swapped
        swapped = not (isinstance(out, torch.Tensor) and out.requires_grad) or teacher_grad or not student_grad
        after_prompt = (torch.arange(x.shape[1]) >= p - 1).expand_as(m)
        variants = {
            "op_prompt": [float(terms.mean()), float(_gkd_terms(s_all, t_all, beta).mean())],
            "op_past_k": float(terms[after_prompt].mean()),
            "op_zeroed": [float((terms * m).sum() / m.numel()), float((terms * m).sum() / after_prompt.sum())],
            "op_shift": [float(terms[answer_mask[:, :-1]].mean()),
                         float(_gkd_terms(s_next, t_x, beta)[m].mean()), float(_gkd_terms(s_x, t_next, beta)[m].mean()),
                         float(_gkd_terms(s_all, t_all, beta)[answer_mask].mean()),
                         float(_gkd_terms(s_all[:, :-1], t_all[:, 1:], beta)[m].mean()),
                         float(_gkd_terms(s_all[:, 1:], t_all[:, :-1], beta)[m].mean())],
            "op_beta_ignored": float(_gkd_terms(s_x, t_x, 0.5)[m].mean()),
            # the generalised JSD is symmetric in (S, T, beta) <-> (T, S, 1 - beta): a swap gives 1 - beta's
            # number, and the gradient (to the teacher, or nowhere) tells the two mistakes apart
            "op_swapped": ([reversed_value, float(_gkd_terms(s_x, t_x, 1.0)[m].mean())] if swapped else []),
            "op_beta_reversed": [] if swapped else reversed_value,
            "op_kd_loss": float(_gkd_terms(s_x, t_x, 0.0)[m].mean()),
            "op_beta_ends": [0.0] if beta in (0.0, 1.0) else [],
            "op_sum": float(terms[m].sum()),
        }
        mistakes = name_mistakes(got, expected, variants, ruled_out,
                                 lambda a, b: abs(a - b) <= 1e-5 + 1e-4 * abs(b))
        if mistakes is None:  # the right number: now how it was reached
            if teacher_ran_with_grad or teacher_grad:
                _fail(f"{what}: the teacher's forward pass ran with autograd on", "op_teacher_grad")
            if not student_grad:
                _fail(f"{what}: the loss ({type(out).__name__}) has no gradient to the student", "op_no_grad")
            continue
        detail = f"{what}: got {got:.5f}, expected {expected:.5f}"
        if not mistakes:
            _fail(detail, "op_other")
        raise AssertionError(f"{detail}. " + " ".join(HINTS[key] for key in mistakes))
