"""Checks for lesson 08 (distilling a ranker): the listwise ranking KD loss over each query's candidate list.

The right answer is computed here independently of ``course_lib.losses``: the two softmaxes over each
query's valid candidates and the KL written out in float64. When a learner's answer is wrong the check
recomputes what each typical mistake gives (the mask ignored or filled with 0, the KL reversed, T^2
missing, the temperature on one side only, a sum over queries, a mean over candidates, the softmax over
the query axis, ...) and names the one that matches; the gradients tell a reversed KL from teacher and
student swapped, and catch a teacher that is not detached. The cases differ in temperature, number of
queries and candidates, ragged masks (the masked entries hold large scores, so counting them shows),
and the scale of the two models' scores. ``tests/test_checks_lesson08.py`` runs each mistake and
asserts its hint.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..answers import lesson08 as answers
from ._core import call_learner, inputs_compared_by_check, learner_check, name_mistakes

#: One hint per typical mistake; a failing check's message contains the matching one(s).
HINTS: dict[str, str] = {
    "lw_float": "Return a 0-dim torch.Tensor, not a Python number: .item() or float() cut the graph, and the "
                "student's scores would get no gradient to learn from.",
    "lw_not_scalar": "Return one number (a 0-dim tensor): sum the KL over each query's candidates, then average "
                     "over the queries.",
    "lw_no_grad": "No gradient reached student_scores: build the loss from student_scores with torch operations "
                  "only (no .detach(), torch.no_grad() or torch.tensor(...) on the student's side).",
    "lw_nan": "The loss or its gradient has nan or inf: where a masked candidate has probability 0 on both sides, "
              "p * (log p - log q) is 0 * (-inf - -inf) = nan. Count a term only where the teacher's probability "
              "is > 0 (torch.where(p > 0, p * (log_p - log_q), 0)), or give the -inf-filled scores to kd_loss, "
              "which does that for you.",
    "lw_mask_ignored": "Masked candidates (the query's own row and the padding) were counted: before either "
                       "softmax set their scores to -inf, scores.masked_fill(~mask, float('-inf')), for the "
                       "teacher and the student alike. The own row would be the teacher's top match, with most "
                       "of its probability, and teach nothing about ranking the other emails.",
    "lw_mask_zero": "Filling the masked scores with 0 does not remove them: exp(0 / T) is a share of the softmax "
                    "like any other candidate's. Fill them with -inf (probability exactly 0).",
    "lw_mask_inverted": "The mask is inverted: True marks a real candidate, False the query's own row and the "
                        "padding. Fill with -inf where the mask is False: scores.masked_fill(~mask, float('-inf')).",
    "lw_direction": "KL in the wrong direction: you computed KL(student || teacher). The teacher's distribution "
                    "over the candidates is the target: sum_c p_teacher (log p_teacher - log p_student), as "
                    "kd_loss(student_scores, teacher_scores, temperature) computes it.",
    "lw_swapped": "Teacher and student swapped: the student's scores came first and were treated as the target, "
                  "and the gradient went to teacher_scores instead of student_scores. The target is "
                  "softmax(teacher_scores / T), detached; the student's log_softmax(student_scores / T) is pulled "
                  "towards it (kd_loss(student_scores, teacher_scores, T), student first).",
    "lw_teacher_grad": "Detach the teacher (teacher_scores.detach()): its distribution over the candidates is a "
                       "fixed target, and without the detach the loss would also train the teacher's encoder "
                       "towards the student.",
    "lw_t_squared": "T^2 missing: multiply the KL by temperature**2. The gradient of the softened KL scales as "
                    "1/T^2; T^2 keeps its size independent of the temperature you choose on validation.",
    "lw_one_side": "Divide both the teacher's and the student's scores by the temperature: both distributions are "
                   "softened, softmax(teacher_scores / T) and log_softmax(student_scores / T).",
    "lw_temperature_ignored": "Use the temperature you were given: divide both sides' scores by it before the "
                              "softmaxes (and multiply the KL by temperature**2).",
    "lw_sum": "Average over the queries, do not sum them: a sum grows with the number of queries in the batch.",
    "lw_mean": "Sum the KL over each query's candidates, then average over the queries only (kd_loss's batchmean). "
               "A mean over every entry also divides by the number of candidates, shrinking the loss of long "
               "candidate lists.",
    "lw_dim": "Each query's distribution is over its candidates, along the last dimension (dim=-1), not over the "
              "queries (dim=0): the teacher ranks candidates for one query at a time.",
    "lw_in_place": "Do not change the caller's scores or mask (the training loop reuses them, and the teacher's "
                   "scores are cached): masked_fill (no underscore) returns a new tensor; masked_fill_, x[~mask] = "
                   "..., x /= T, or an in-place op on x.detach() (which shares x's memory) write into the caller's.",
    "lw_other": "Expected temperature**2 * mean over queries of sum over valid candidates of p_teacher * (log "
                "p_teacher - log p_student), with p = softmax over the valid candidates (others filled with -inf) "
                "of scores / temperature, the teacher detached.",
}

#: (queries, candidates, temperature (None: the default), each query's list length, seed): the query's own row
#: is candidate i for query i; a row's candidates past its length are padding; every candidate is real for some
#: query (a softmax over the query axis stays finite, and gets its own hint).
_CASES = ((5, 7, 0.5, (7, 4, 5, 3, 6), 0), (4, 6, 3.0, (5, 3, 6, 4), 1), (3, 5, None, (4, 5, 3), 2))


def _fail(what: str, key: str) -> None:
    raise AssertionError(f"{what}. {HINTS[key]}")


def _case(queries: int, candidates: int, counts: tuple, seed: int):
    """(student_scores, teacher_scores, mask): the teacher's scores on a wider scale, masked entries large."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(candidates).expand(queries, candidates) < torch.tensor(counts).unsqueeze(1)
    mask = mask & ~torch.eye(queries, candidates, dtype=torch.bool)
    teacher = torch.randn(queries, candidates, generator=g) * 4.0
    student = torch.randn(queries, candidates, generator=g)
    own = torch.eye(queries, candidates, dtype=torch.bool)
    # the own row: the teacher's best match by far; padding: large scores of either sign
    teacher = torch.where(own, teacher.max() + 6.0, teacher)
    teacher = torch.where(~mask & ~own, 8.0 * torch.randn(queries, candidates, generator=g).sign() + 2.0, teacher)
    student = torch.where(~mask, 2.0 + torch.rand(queries, candidates, generator=g), student)
    return student, teacher, mask


def _log_probs(scores: torch.Tensor, keep: torch.Tensor, temperature: float, fill: float = float("-inf"),
               dim: int = -1) -> torch.Tensor:
    """log softmax over ``dim`` of scores / T in float64, entries outside ``keep`` replaced by ``fill``."""
    z = torch.where(keep, scores.detach().double() / temperature, torch.full((), fill, dtype=torch.float64))
    z = z - z.max(dim=dim, keepdim=True).values
    return z - z.exp().sum(dim=dim, keepdim=True).log()


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Elementwise p (log p - log q), exactly 0 where p = 0."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))


def _variants(student, teacher, mask, temperature: float) -> tuple[float, dict]:
    """(the right loss, {hint key: what that mistake gives}) in float64."""
    t2, (queries, candidates) = temperature**2, mask.shape
    everything = torch.ones_like(mask)
    log_t, log_s = _log_probs(teacher, mask, temperature), _log_probs(student, mask, temperature)
    terms = _kl(log_t, log_s)
    ref = float(terms.sum(-1).mean()) * t2
    by_query = _kl(_log_probs(teacher, mask, temperature, dim=0), _log_probs(student, mask, temperature, dim=0))

    def loss(log_p, log_q, scale=t2):
        return float(_kl(log_p, log_q).sum(-1).mean()) * scale

    one_side = [loss(_log_probs(teacher, mask, 1.0), log_s), loss(log_t, _log_probs(student, mask, 1.0))]
    return ref, {
        "lw_mask_ignored": loss(_log_probs(teacher, everything, temperature),
                                _log_probs(student, everything, temperature)),
        "lw_mask_zero": loss(_log_probs(teacher, mask, temperature, fill=0.0),
                             _log_probs(student, mask, temperature, fill=0.0)),
        "lw_mask_inverted": loss(_log_probs(teacher, ~mask, temperature), _log_probs(student, ~mask, temperature)),
        "lw_reversed": loss(log_s, log_t),  # KL(student || teacher): reversed or swapped, the gradients decide
        "lw_t_squared": ref / t2,
        "lw_one_side": one_side + [v / t2 for v in one_side],
        "lw_temperature_ignored": [loss(_log_probs(teacher, mask, 1.0), _log_probs(student, mask, 1.0), scale)
                                   for scale in (1.0, t2)],
        "lw_sum": ref * queries,
        "lw_mean": [float(terms.sum()) / terms.numel() * t2, float(terms.sum() / mask.sum()) * t2,
                    float((terms.sum(-1) / mask.sum(-1)).mean()) * t2],
        "lw_dim": [float(by_query.sum()) / queries * t2, float(by_query.sum()) / candidates * t2],
    }


def _gradients(out, student: torch.Tensor, teacher: torch.Tensor) -> tuple:
    """(d out / d student_scores, d out / d teacher_scores), each None where no gradient reaches it."""
    if not (isinstance(out, torch.Tensor) and out.requires_grad and out.numel() == 1):
        return None, None
    try:
        grads = torch.autograd.grad(out.sum(), [student, teacher], allow_unused=True)
    except RuntimeError:  # a broken graph in the learner's code: no usable gradient
        return None, None
    # a gradient of exactly zero is none; one with nan is kept, so that the check can say so
    return tuple(g if g is not None and not bool((g == 0).all()) else None for g in grads)


def _call(fn: Callable, student, teacher, mask, temperature, what: str):
    """The learner's loss, failing with the in-place hint when it changed (or tried to change) an input."""
    given = (student.detach().clone(), teacher.detach().clone(), mask.clone())
    kwargs = {} if temperature is None else {"temperature": temperature}
    try:
        with inputs_compared_by_check():
            out = call_learner(fn, student, teacher, mask, **kwargs)
    except AssertionError as exc:
        if "in-place operation" in str(exc):  # masked_fill_ on a leaf that requires grad
            _fail(f"{what}: {exc}", "lw_in_place")
        raise
    changed = [name for name, before, after in zip(("student_scores", "teacher_scores", "mask"), given,
                                                    (student, teacher, mask)) if not torch.equal(before, after.detach())]
    if changed:
        _fail(f"{what}: {' and '.join(changed)} changed in place", "lw_in_place")
    return out


@learner_check("listwise_kd_loss", solution=answers.listwise_kd_loss)
def check_listwise_kd_loss(fn: Callable[..., torch.Tensor]) -> None:
    """Check the listwise ranking KD loss: T^2 * mean over queries of KL(teacher || student) over each query's
    valid candidates, at T = 0.5, 3 and the default 1, ragged masks, the teacher detached (exercise 8.1)."""
    ruled_out: set = set()
    for queries, candidates, temperature, counts, seed in _CASES:
        student_scores, teacher_scores, mask = _case(queries, candidates, counts, seed)
        student = student_scores.clone().requires_grad_(True)
        teacher = teacher_scores.clone().requires_grad_(True)
        t = 1.0 if temperature is None else temperature
        what = (f"listwise_kd_loss on {queries} queries x {candidates} candidates ({mask.sum(-1).tolist()} valid "
                f"per query), " + ("temperature not given (default 1)" if temperature is None
                                   else f"temperature={temperature:g}"))
        out = _call(fn, student, teacher, mask, temperature, what)
        if not isinstance(out, torch.Tensor):
            _fail(f"{what}: got {type(out).__name__}", "lw_float")
        if out.numel() != 1:
            _fail(f"{what}: got shape {tuple(out.shape)}", "lw_not_scalar")
        got = float(out.detach().double())
        student_grad, teacher_grad = _gradients(out, student, teacher)
        if not torch.isfinite(out.detach()).all():
            _fail(f"{what}: got {got}", "lw_nan")
        expected, variants = _variants(student_scores, teacher_scores, mask, t)
        swapped = student_grad is None and teacher_grad is not None
        reversed_value = variants.pop("lw_reversed")
        variants["lw_swapped"] = [reversed_value] if swapped else []
        variants["lw_direction"] = [] if swapped else [reversed_value]
        mistakes = name_mistakes(got, expected, variants, ruled_out, lambda a, b: abs(a - b) <= 1e-5 + 1e-4 * abs(b))
        if mistakes is None:  # the right number: now how it was reached
            if teacher_grad is not None:
                _fail(f"{what}: a gradient reached teacher_scores", "lw_teacher_grad")
            if student_grad is None:
                _fail(f"{what}: the loss has no gradient to student_scores", "lw_no_grad")
            if not torch.isfinite(student_grad).all():
                _fail(f"{what}: the gradient w.r.t. student_scores has nan or inf", "lw_nan")
            continue
        detail = f"{what}: got {got:.5f}, expected {expected:.5f}"
        if not mistakes:
            _fail(detail, "lw_other")
        raise AssertionError(f"{detail}. " + " ".join(HINTS[key] for key in mistakes))
