"""Distilling a sequence model (introduced in lesson 07): a pointer-following task whose chain length k is a
dial, a tiny decoder-only transformer, token-level and sequence-level KD, greedy decoding, the student's own
rollouts (on-policy distillation) and chain metrics (exact match, first errors and their hazard rate).

**The task.** A row holds a table ``f`` of ``num_symbols`` symbols (``f(0), f(1), ...``, a random
permutation), a separator, a start symbol ``x0``, then the chain ``x1 = f(x0), x2 = f(x1), ..., xk``::

    f(0) ... f(n-1)  SEP  x0 | x1 x2 ... xk  PAD ...
    <------------- prompt -> | <- answer: k dependent steps ->

Each answer symbol needs the one before it: one wrong step and every later one is (almost surely)
wrong, which is what makes k a chain length and not just a length. Rows are right-padded with PAD;
``target_mask`` marks the answer positions, the only ones any loss looks at.

**The model** is minGPT in miniature: token and learned position embeddings, pre-norm blocks of
causal self-attention and an MLP, a final norm and a linear head; nothing beyond ``torch``. A
logit at position t is the model's distribution over the token at position t + 1.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import cache, config, train
from .losses import masked_cross_entropy, masked_kd_loss, on_policy_kd_loss
from .models import model_device

# ----------------------------------------------------------------------------- the task
NUM_SYMBOLS = 16


def sep_token(num_symbols: int = NUM_SYMBOLS) -> int:
    """The separator between the table and the start symbol."""
    return num_symbols


def pad_token(num_symbols: int = NUM_SYMBOLS) -> int:
    """The padding token after a row's last answer symbol."""
    return num_symbols + 1


def vocab_size(num_symbols: int = NUM_SYMBOLS) -> int:
    """Symbols, SEP and PAD."""
    return num_symbols + 2


def prompt_length(num_symbols: int = NUM_SYMBOLS) -> int:
    """Table, SEP and start symbol: the answer starts at this position."""
    return num_symbols + 2


@dataclass
class Chains:
    """A batch of pointer-following rows (see the module docstring).

    tokens: (N, prompt + max_k) int64, right-padded with PAD. target_mask: (N, prompt + max_k) bool,
    True at answer positions. lengths: (N,) int64, each row's chain length k.
    """

    tokens: torch.Tensor
    target_mask: torch.Tensor
    lengths: torch.Tensor
    num_symbols: int = NUM_SYMBOLS

    @property
    def prompts(self) -> torch.Tensor:
        """(N, prompt_length): what a model is given."""
        return self.tokens[:, :prompt_length(self.num_symbols)]

    @property
    def answers(self) -> torch.Tensor:
        """(N, max_k): the chains, PAD after each row's k steps."""
        return self.tokens[:, prompt_length(self.num_symbols):]

    def __len__(self) -> int:
        return len(self.tokens)


def make_chains(num_rows: int, lengths, seed: int, num_symbols: int = NUM_SYMBOLS,
                max_length: Optional[int] = None) -> Chains:
    """``num_rows`` random rows, chain lengths drawn uniformly from ``lengths``; deterministic given ``seed``.

    Args:
        lengths: the chain lengths k to draw from, e.g. ``range(1, 9)``; one int for a fixed k.
        seed: a local ``torch.Generator`` is seeded with it (the global RNG is never touched).
        max_length: pad every row to this many answer positions (default: the largest k drawn from).
    """
    lengths = [lengths] if isinstance(lengths, int) else list(lengths)
    if not lengths or min(lengths) < 1:
        raise ValueError(f"chain lengths must be >= 1, got {lengths}")
    max_length = max_length or max(lengths)
    if max(lengths) > max_length:
        raise ValueError(f"max_length={max_length} is shorter than the longest chain {max(lengths)}")
    generator = torch.Generator().manual_seed(seed)
    tables = torch.argsort(torch.rand(num_rows, num_symbols, generator=generator), dim=1)  # random permutations
    ks = torch.tensor(lengths)[torch.randint(len(lengths), (num_rows,), generator=generator)]
    start = torch.randint(num_symbols, (num_rows,), generator=generator)
    answers = torch.full((num_rows, max_length), pad_token(num_symbols), dtype=torch.long)
    current = start
    rows = torch.arange(num_rows)
    for step in range(max_length):
        current = tables[rows, current]  # one pointer hop for every row at once
        answers[:, step] = torch.where(step < ks, current, answers[:, step])
    sep = torch.full((num_rows, 1), sep_token(num_symbols), dtype=torch.long)
    tokens = torch.cat([tables, sep, start[:, None], answers], dim=1)
    positions = torch.arange(tokens.shape[1])
    p = prompt_length(num_symbols)
    target_mask = (positions >= p) & (positions < p + ks[:, None])
    return Chains(tokens, target_mask, ks, num_symbols)


# ----------------------------------------------------------------------------- the model
class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t sees positions 0..t only."""

    def __init__(self, d_model: int, num_heads: int, max_len: int):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be a multiple of num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.register_buffer("causal", torch.tril(torch.ones(max_len, max_len, dtype=torch.bool)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        q, k, v = self.qkv(x).split(d_model, dim=2)
        # (B, L, D) -> (B, heads, L, D / heads)
        q, k, v = (t.view(batch, length, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        scores = scores.masked_fill(~self.causal[:length, :length], float("-inf"))  # no peeking ahead
        out = torch.softmax(scores, dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, length, d_model))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, d_model: int, num_heads: int, max_len: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = CausalSelfAttention(d_model, num_heads, max_len)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyGPT(nn.Module):
    """A decoder-only transformer: tokens (B, L) int64 -> next-token logits (B, L, vocab).

    Args:
        vocab: number of token ids. max_len: the longest row it can read (learned positions).
        d_model, num_layers, num_heads: width, depth and heads per attention layer.
        answer_start, max_offset: random position offsets in training. With ``max_offset > 0``, in training
            mode each row's positions from ``answer_start`` on are shifted by its own random offset in
            ``0..max_offset`` (drawn from the global RNG, like dropout; ``train.fit`` seeds it), so the answer
            is read at every position a longer answer will use, though no training row is that long. A learned
            position row that no loss reaches keeps its random initial value, and a model then fails at those
            positions for no reason to do with the task. Eval mode never shifts.
    """

    def __init__(self, vocab: int, max_len: int, d_model: int = 64, num_layers: int = 2, num_heads: int = 4,
                 answer_start: int = 0, max_offset: int = 0):
        super().__init__()
        if max_offset < 0 or not 0 <= answer_start <= max_len:
            raise ValueError(f"need max_offset >= 0 and 0 <= answer_start <= max_len, got {max_offset}, {answer_start}")
        self.max_len, self.answer_start, self.max_offset = max_len, answer_start, max_offset
        self.token_embedding = nn.Embedding(vocab, d_model)
        self.position_embedding = nn.Embedding(max_len + max_offset, d_model)
        self.blocks = nn.Sequential(*[Block(d_model, num_heads, max_len) for _ in range(num_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)  # GPT-2's initialisation
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(f"rows of {length} tokens are longer than this model's max_len={self.max_len}")
        positions = torch.arange(length, device=tokens.device)
        if self.training and self.max_offset:
            offsets = torch.randint(self.max_offset + 1, (len(tokens), 1), device=tokens.device)
            positions = positions + offsets * (positions >= self.answer_start)  # (B, L): each row shifted
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        return self.head(self.norm(self.blocks(x)))


# ----------------------------------------------------------------------------- the token-level KD exercise
def token_kd_loss(student: nn.Module, teacher: nn.Module, tokens: torch.Tensor, target_mask: torch.Tensor,
                  temperature: float = 1.0) -> torch.Tensor:
    """Token-level KD on whole rows: both models read ``tokens[:, :-1]`` (teacher forcing), and at every answer
    position the student's next-token distribution is pulled to the teacher's. Exercise 7.1.

    Both models see the same prefix, so their logits line up position by position; the logit at
    position t predicts token t + 1, so the mask is ``target_mask[:, 1:]``. The teacher runs under
    ``torch.no_grad()``: it is a fixed target, and a graph through it would only cost memory and time.
    """
    inputs = tokens[:, :-1].to(model_device(student))
    mask = target_mask[:, 1:].to(inputs.device)
    with torch.no_grad():
        teacher_logits = teacher(inputs)
    return masked_kd_loss(student(inputs), teacher_logits, mask, temperature)


def on_policy_loss(student: nn.Module, teacher: nn.Module, rollouts: torch.Tensor, answer_mask: torch.Tensor,
                   beta: float = 0.5, temperature: float = 1.0) -> torch.Tensor:
    """On-policy distillation's loss on the student's own samples (GKD): both models read ``rollouts[:, :-1]``,
    and at every answer position the student's next-token distribution is pulled towards the teacher's with
    :func:`losses.on_policy_kd_loss` (``beta``: 0 forward KL, 1 reverse KL, between them the generalised JSD).
    Exercise 7.3.

    The rows are the student's answers (:func:`sample_rollouts`), so the prefixes are the student's, mistakes
    included, and the teacher says what it would write next after each of them. The target is the teacher's
    distribution: it runs under ``torch.no_grad()``, a fixed target that must not move towards the student
    (and a graph through it would only cost memory and time). The logit at position t predicts token t + 1,
    so the positions scored are ``answer_mask[:, 1:]``; the prompt and whatever the student wrote past a
    row's k steps are neither summed nor counted in the mean.

    Args:
        rollouts: (B, L) int64, prompts followed by what the student wrote. answer_mask: (B, L) bool, True at
            the answer tokens to score (for this task the prompts' ``Chains.target_mask``); never at position
            0, which nothing predicts. Both are moved to the student's device; the models never move.
    """
    if rollouts.dim() != 2 or rollouts.dtype.is_floating_point or rollouts.dtype == torch.bool:
        raise ValueError(f"rollouts must be (B, L) integer token ids, got {rollouts.dtype} {tuple(rollouts.shape)}")
    if answer_mask.dtype != torch.bool or answer_mask.shape != rollouts.shape:
        raise ValueError(f"answer_mask must be a bool tensor shaped like rollouts {tuple(rollouts.shape)}, got "
                         f"{answer_mask.dtype} {tuple(answer_mask.shape)}")
    if bool(answer_mask[:, 0].any()):
        raise ValueError("answer_mask is True at position 0, which no logit predicts: mark answer tokens only")
    inputs = rollouts[:, :-1].to(model_device(student))
    mask = answer_mask[:, 1:].to(inputs.device)
    with torch.no_grad():
        teacher_logits = teacher(inputs)
    return on_policy_kd_loss(student(inputs), teacher_logits, mask, beta, temperature)


# ----------------------------------------------------------------------------- decoding
@torch.no_grad()
def greedy_decode(model: nn.Module, prompts: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Greedy decoding: append the most likely next token ``num_steps`` times. Exercise 7.2.

    Args:
        prompts: (B, P) int64, all of the same length (true of this task), on any device.
    Returns:
        (B, num_steps) int64 on the CPU: the generated tokens only. The model stays where it is;
        eval mode during the call, its mode restored after. No cache of keys and values: every step
        re-reads the whole row (simple; at these lengths the cost is small).
    """
    was_training = model.training
    model.eval()
    try:
        tokens = prompts.to(model_device(model))
        for _ in range(num_steps):
            next_token = model(tokens)[:, -1].argmax(dim=-1, keepdim=True)  # the last position's prediction
            tokens = torch.cat([tokens, next_token], dim=1)
    finally:
        model.train(was_training)
    return tokens[:, prompts.shape[1]:].cpu()


@torch.no_grad()
def sample_rollouts(model: nn.Module, prompts: torch.Tensor, num_steps: int, temperature: float = 1.0,
                    generator: Optional[torch.Generator | int] = None) -> torch.Tensor:
    """The student writes its own answers (on-policy distillation's data): ``num_steps`` tokens after each prompt.

    Each step draws the next token from ``softmax(logits / temperature)`` at the row's last position;
    ``temperature == 0`` takes the argmax instead (then the rows equal the prompts followed by
    :func:`greedy_decode`'s output). The draws come from a local ``torch.Generator`` on the CPU, never the
    global RNG: pass one and reuse it across training steps (each call then draws fresh rollouts, and a run
    is reproducible, on any device), or an int seed; ``None`` gives a fresh, unseeded generator.

    Args:
        prompts: (B, P) int64, all of the same length, on any device. num_steps: tokens to write, >= 0.
        temperature: >= 0.
    Returns:
        (B, P + num_steps) int64 on the CPU: the prompt, kept, then the sampled tokens. No gradient; the
        model stays where it is, in eval mode during the call, its mode restored after.
    """
    if prompts.dim() != 2 or prompts.dtype.is_floating_point or prompts.dtype == torch.bool:
        raise ValueError(f"prompts must be (B, P) integer token ids, got {prompts.dtype} {tuple(prompts.shape)}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be an int >= 0, got {num_steps!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if not isinstance(generator, torch.Generator):
        seed, generator = generator, torch.Generator()
        if seed is None:
            generator.seed()  # fresh entropy for this generator only; the global RNG is untouched
        else:
            generator.manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        tokens = prompts.to(model_device(model))
        for _ in range(num_steps):
            logits = model(tokens)[:, -1]
            if temperature == 0:
                next_token = logits.argmax(dim=-1, keepdim=True)
            else:
                probs = torch.softmax(logits.float().cpu() / temperature, dim=-1)
                next_token = torch.multinomial(probs, 1, generator=generator).to(tokens.device)
            tokens = torch.cat([tokens, next_token], dim=1)
    finally:
        model.train(was_training)
    return tokens.cpu()


def first_error_hazard(first_errors, num_steps: int) -> np.ndarray:
    """The hazard rate of first errors: for each step s = 1..num_steps, errors at s / rows that reached s.

    A row reaches step s when it has not gone wrong before s: its first error is >= s, or it never erred
    (``0`` in :func:`first_error`'s convention). Raw counts of first errors are the wrong picture: under
    independent slips with probability p per step they fall geometrically (p (1 - p)^(s-1) of the rows), only
    because fewer rows are left to slip, while the hazard stays flat at p. A hazard that rises with s is what
    says late steps are harder. Rows of different chain lengths mix badly (a short row never reaches late
    steps, yet counts as reaching them here): pass the rows of one length at a time.

    Args:
        first_errors: (N,) ints, e.g. from :func:`first_error`: 0 = no error, s >= 1 = first wrong step.
        num_steps: the number of steps to report, >= 1.
    Returns:
        (num_steps,) float64; entry s - 1 is step s's hazard, NaN where no row reaches step s.
    """
    errors = np.asarray(first_errors.cpu() if isinstance(first_errors, torch.Tensor) else first_errors)
    if errors.ndim != 1 or not np.issubdtype(errors.dtype, np.integer) or (errors < 0).any():
        raise ValueError(f"first_errors must be a 1-d array of ints >= 0 (0 = no error), got {errors.dtype} "
                         f"{errors.shape}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}")
    steps = np.arange(1, num_steps + 1)
    erred_at = (errors[None, :] == steps[:, None]).sum(axis=1)
    reached = ((errors[None, :] >= steps[:, None]) | (errors[None, :] == 0)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(reached > 0, erred_at / np.maximum(reached, 1), np.nan)


def transfer_set(teacher: nn.Module, prompts: torch.Tensor, lengths: torch.Tensor,
                 num_symbols: int = NUM_SYMBOLS, max_length: Optional[int] = None, batch_size: int = 1024) -> Chains:
    """Sequence-level KD's training data (Kim & Rush 2016): fresh prompts completed by the teacher's greedy outputs.

    No labels are used: each row's answer is whatever the teacher generates for its k steps
    (right or wrong), padded after step k like the ground-truth rows, so every training helper
    takes it as it takes ground truth. ``max_length``: answer positions per row (default: the longest k).
    """
    lengths = lengths.cpu()
    max_k = int(lengths.max())
    max_length = max_length or max_k
    if max_length < max_k:
        raise ValueError(f"max_length={max_length} is shorter than the longest chain {max_k}")
    answers = torch.cat([greedy_decode(teacher, prompts[i:i + batch_size], max_k)
                         for i in range(0, len(prompts), batch_size)])
    answers = F.pad(answers, (0, max_length - max_k))
    steps = torch.arange(max_length)
    answers = torch.where(steps < lengths[:, None], answers, pad_token(num_symbols))
    tokens = torch.cat([prompts.cpu(), answers], dim=1)
    p = prompt_length(num_symbols)
    target_mask = (torch.arange(tokens.shape[1]) >= p) & (torch.arange(tokens.shape[1]) < p + lengths[:, None])
    return Chains(tokens, target_mask, lengths, num_symbols)


# ----------------------------------------------------------------------------- metrics
def _check_answers(predicted: torch.Tensor, answers: torch.Tensor, lengths: torch.Tensor) -> None:
    if predicted.shape[0] != answers.shape[0] or predicted.shape[0] != lengths.shape[0]:
        raise ValueError(f"predicted {tuple(predicted.shape)}, answers {tuple(answers.shape)} and lengths "
                         f"{tuple(lengths.shape)} must have the same number of rows")
    if int(lengths.max()) > min(predicted.shape[1], answers.shape[1]):
        raise ValueError(f"a chain of length {int(lengths.max())} needs that many predicted and true steps, got "
                         f"{predicted.shape[1]} and {answers.shape[1]}")


def first_error(predicted: torch.Tensor, answers: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N,) int64: the step (1 = the first hop) at which each row's chain first goes wrong; 0 where all k are right.

    Only the first ``lengths[i]`` steps of row i count: what a model writes after them is ignored.
    """
    _check_answers(predicted, answers, lengths)
    k = int(lengths.max())
    steps = torch.arange(1, k + 1)
    wrong = (predicted[:, :k].cpu() != answers[:, :k].cpu()) & (steps <= lengths.cpu()[:, None])
    return torch.where(wrong.any(dim=1), wrong.float().argmax(dim=1) + 1, 0)


def exact_match(predicted: torch.Tensor, answers: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N,) bool: whether each row's first ``lengths[i]`` steps are all right."""
    return first_error(predicted, answers, lengths) == 0


def exact_match_by_length(predicted: torch.Tensor, chains: Chains) -> dict[int, float]:
    """Exact-match accuracy of ``predicted`` answers for each chain length in ``chains``.

    Args:
        predicted: (N, >= max k) answers to ``chains``' prompts, e.g. from :func:`decode_chains` (decode
            once, then score, find first errors, ... on the same predictions).
    Returns:
        ``{k: share of rows of length k whose first k steps are all right}``, k ascending.
    """
    right = exact_match(predicted, chains.answers, chains.lengths)
    return {int(k): float(right[chains.lengths == k].float().mean()) for k in chains.lengths.unique()}


def accuracy_by_length(model: nn.Module, chains: Chains, batch_size: int = 1024) -> dict[int, float]:
    """Exact-match accuracy of ``model``'s greedy answers for each chain length: :func:`exact_match_by_length`."""
    return exact_match_by_length(decode_chains(model, chains, batch_size), chains)


def decode_chains(model: nn.Module, chains: Chains, batch_size: int = 1024) -> torch.Tensor:
    """(N, max_k) greedy answers of ``model`` to every prompt of ``chains``."""
    max_k = chains.answers.shape[1]
    return torch.cat([greedy_decode(model, chains.prompts[i:i + batch_size], max_k)
                      for i in range(0, len(chains), batch_size)])


# ----------------------------------------------------------------------------- training
def fit_chains(model: nn.Module, chains: Chains, teacher_logits: Optional[torch.Tensor] = None,
               temperature: float = 1.0, epochs: int = 10, batch_size: int = 128, lr: float = 3e-3,
               seed: int = 0, progress: bool = True, desc: str = "train") -> train.History:
    """Train ``model`` in place on ``chains`` with teacher forcing, through ``train.fit``.

    Without ``teacher_logits``: cross-entropy on the answer tokens of ``chains`` (ground truth, or the
    teacher's greedy outputs for sequence-level KD). With ``teacher_logits`` ((N, L - 1, V), the
    teacher's logits on ``chains.tokens[:, :-1]``, see :func:`teacher_logits`): token-level KD at every
    answer position, no labels.
    """
    x, mask = chains.tokens[:, :-1], chains.target_mask[:, 1:]
    if teacher_logits is None:
        return train.fit(model, x, (chains.tokens[:, 1:], mask), masked_cross_entropy, epochs=epochs,
                         batch_size=batch_size, lr=lr, seed=seed, progress=progress, desc=desc)
    if teacher_logits.shape[:2] != x.shape:
        raise ValueError(f"teacher_logits {tuple(teacher_logits.shape)} must be the teacher's logits on "
                         f"chains.tokens[:, :-1] {tuple(x.shape)}")
    loss_fn = functools.partial(masked_kd_loss, temperature=temperature)
    return train.fit(model, x, (teacher_logits, mask), loss_fn, epochs=epochs, batch_size=batch_size, lr=lr,
                     seed=seed, progress=progress, desc=desc)


def fit_on_policy(student: nn.Module, teacher: nn.Module, chains: Chains, epochs: int = 10, batch_size: int = 128,
                  lr: float = 3e-3, beta: float = 0.5, sample_temperature: float = 1.0, seed: int = 0,
                  progress: bool = True, desc: str = "on-policy") -> train.History:
    """On-policy distillation (GKD, Agarwal et al. 2024): train ``student`` in place on its own answers.

    Every step takes a batch of ``chains``' prompts (their answers are never read: no labels), lets the
    student write each row's k answer tokens (:func:`sample_rollouts` at ``sample_temperature``, fresh
    samples every step), and pulls the student's next-token distribution at every answer position towards
    the teacher's, read on those same rows (:func:`on_policy_loss` with ``beta``). A student trained only on
    perfect prefixes never sees the prefixes its own mistakes lead to; here every prefix is one it wrote.

    Adam with a cosine schedule, as ``train.fit``; shuffling and sampling come from local generators seeded
    with ``seed`` and the student's own randomness (position offsets) from a forked, seeded RNG, so a run
    repeats exactly and the caller's RNG is untouched. The teacher is only read (eval mode, no gradient).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1 or len(chains) == 0:
        raise ValueError(f"need epochs >= 1 and at least one prompt, got epochs={epochs!r}, {len(chains)} prompts")
    n, p = len(chains), prompt_length(chains.num_symbols)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    shuffle, sampler = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    teacher_was_training = teacher.training
    teacher.eval()
    history = train.History()
    start = time.perf_counter()
    with config.seeded(seed):
        optimizer = torch.optim.Adam(student.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
        try:
            for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
                order, running = torch.randperm(n, generator=shuffle), 0.0
                for step in range(steps_per_epoch):
                    idx = order[step * batch_size:(step + 1) * batch_size]
                    num_steps = int(chains.lengths[idx].max())
                    rollouts = sample_rollouts(student, chains.prompts[idx], num_steps, sample_temperature, sampler)
                    student.train()
                    loss = on_policy_loss(student, teacher, rollouts, chains.target_mask[idx, :p + num_steps],
                                          beta=beta)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    running += float(loss.detach()) * len(idx)
                history.loss.append(running / n)
        finally:
            teacher.train(teacher_was_training)
    student.eval()
    history.seconds = time.perf_counter() - start
    return history


@torch.no_grad()
def teacher_logits(teacher: nn.Module, chains: Chains, batch_size: int = 1024) -> torch.Tensor:
    """(N, L - 1, V) float32 on the CPU: the teacher's next-token logits on ``chains.tokens[:, :-1]``."""
    was_training = teacher.training
    teacher.eval()
    try:
        x = chains.tokens[:, :-1]
        device = model_device(teacher)
        out = torch.cat([teacher(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
    finally:
        teacher.train(was_training)
    return out


@torch.no_grad()
def answer_nll(model: nn.Module, chains: Chains, batch_size: int = 1024) -> float:
    """Mean cross-entropy (nats per answer token) of ``chains``' answers under ``model``, teacher forcing.

    A continuous score where exact match saturates: two students both at 100% exact match still differ in
    how sure they are of the right tokens (lower is better). Eval mode during the call, mode restored after.
    """
    was_training = model.training
    model.eval()
    try:
        device, total, count = model_device(model), 0.0, 0
        for i in range(0, len(chains), batch_size):
            tokens, mask = chains.tokens[i:i + batch_size].to(device), chains.target_mask[i:i + batch_size, 1:].to(device)
            logits = model(tokens[:, :-1])
            total += float(F.cross_entropy(logits[mask].double(), tokens[:, 1:][mask], reduction="sum"))
            count += int(mask.sum())
    finally:
        model.train(was_training)
    return total / max(count, 1)


def answer_entropy(logits: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean entropy (nats) of the next-token distributions ``softmax(logits)`` at the positions where ``mask`` is True.

    How uncertain a teacher is where a student learns from it: 0 for one-hot targets, log(V) for uniform ones.
    ``logits`` (B, L, V) and ``mask`` (B, L) bool, e.g. :func:`teacher_logits` and ``chains.target_mask[:, 1:]``.
    """
    if logits.shape[:2] != mask.shape or mask.dtype != torch.bool:
        raise ValueError(f"logits (B, L, V) and a bool mask (B, L) must match, got {tuple(logits.shape)} and "
                         f"{mask.dtype} {tuple(mask.shape)}")
    log_p = F.log_softmax(logits[mask.to(logits.device)].double(), dim=-1)
    return float(-(log_p.exp() * log_p).sum(dim=-1).mean()) if len(log_p) else float("nan")


def position_drift(model: TinyGPT, initial: TinyGPT) -> torch.Tensor:
    """(num_position_rows,) float: how far each learned position embedding moved from ``initial``'s (L2 norm).

    A row that no loss ever reached is exactly where it started (0.0): the model reads that position with a
    random vector. Pass the untrained model built with the same seed (:func:`build_model`) as ``initial``.
    """
    trained, start = model.position_embedding.weight.detach().cpu(), initial.position_embedding.weight.detach().cpu()
    if trained.shape != start.shape:
        raise ValueError(f"position tables differ in shape: {tuple(trained.shape)} and {tuple(start.shape)}")
    return (trained - start).norm(dim=1)


def build_model(spec: dict, seed: int) -> TinyGPT:
    """A TinyGPT from a spec dict (``vocab, max_len, d_model, num_layers, num_heads``), seeded weights, on the CPU."""
    with config.seeded(seed):
        return TinyGPT(**spec)


def chains_key(chains: Chains) -> str:
    """A fingerprint of a set of chains: part of the cache key of anything computed from it."""
    return config.config_hash({"tokens": chains.tokens, "lengths": chains.lengths})


def cached_teacher(recipe: dict, chains: Chains, device: Optional[torch.device] = None,
                   progress: bool = True) -> tuple[TinyGPT, bool]:
    """The trained teacher: loaded from the verified cache, or trained once on ``chains`` with cross-entropy.

    The cache key is the full recipe (architecture, schedule, seed) and a fingerprint of the
    training rows. Returns ``(teacher, from_cache)``; the teacher is in eval mode on ``device``.
    """
    key = {"recipe": recipe, "data": chains_key(chains)}

    def build():
        return build_model(recipe["model"], recipe["seed"]).to(device or config.get_device())

    def fit_teacher(model):
        fit_chains(model, chains, epochs=recipe["epochs"], batch_size=recipe["batch_size"], lr=recipe["lr"],
                   seed=recipe["seed"], progress=progress, desc="teacher")

    return cache.cached_model("sequence-teacher", key, build, fit_teacher)
