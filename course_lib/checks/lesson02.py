"""Checks for lesson 02 (Hinton distillation): KD loss, full objective, class-bias search, training with
and without T^2; also the temperature softmax of exercise 1.1, which the losses build on.

The right answers are computed here, independently of ``course_lib.losses``: the
formula written out in float64. When a learner's answer is wrong, the check also
computes what each typical mistake would have given (T^2 missing,
``reduction="mean"``, teacher and student swapped, KL in the wrong direction,
``log(softmax)`` overflow, alpha on the wrong term, ...) and names the one that
matches. The test cases are chosen so that all these mistakes give clearly
different numbers (``tests/test_checks_lesson02.py`` asserts it).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import torch

from ..answers import lesson01, lesson02 as answers
from ._core import assert_close, assert_not_in_place, call_learner, inputs_compared_by_check, learner_check

#: One hint per typical mistake; a failing check's message contains exactly the matching one(s).
HINTS: dict[str, str] = {
    "softmax_multiply": "Divide the logits by the temperature (logits / temperature), do not multiply: "
                        "a higher temperature must give softer, flatter probs.",
    "softmax_after": "Apply the temperature to the logits before the softmax, softmax(logits / temperature), "
                     "not to the probs after it.",
    "softmax_ignored": "The temperature changed nothing: divide the logits by it before the softmax.",
    "softmax_dim": "Each row should sum to 1: normalise over the class dimension (dim=-1), "
                   "not over the batch (dim=0).",
    "softmax_overflow": "exp overflows for large logits / temperature: use torch.softmax, "
                        "or subtract each row's maximum before exp.",
    "softmax_other": "Expected softmax(logits / temperature) over the last dimension.",
    "softmax_dim_fixed": "Normalise along the `dim` you were given (default -1, the last dimension), not a "
                         "fixed one: dim=1 does not even exist for 1-D logits, and is the wrong axis for 3-D ones.",
    "softmax_no_dim": "Pass dim=dim to the softmax: without it PyTorch guesses the axis (dim 0 for 1-D and "
                      "3-D input, with a warning), which is not the last dimension of a 3-D batch.",
    "softmax_dim_ignored": "Normalise along the `dim` argument when the caller gives one (dim=0 here): it is part "
                           "of the function's promise, and lesson 01 calls it on other layouts.",
    "kd_not_scalar": "Return one number (a 0-dim tensor): sum the KL over classes, then average over the batch.",
    "kd_t_squared": "T^2 missing: multiply the KL by temperature**2. The soft-target gradients scale as 1/T^2; "
                    "T^2 keeps their size independent of the temperature.",
    "kd_t_once": "Multiply the KL by temperature**2, not by temperature.",
    "kd_mean": "reduction=\"mean\" divides by batch * num_classes: use reduction=\"batchmean\" "
               "(sum over classes, average over the batch only).",
    "kd_sum": "reduction=\"sum\" adds up the batch: use reduction=\"batchmean\" "
              "(sum over classes, average over the batch).",
    "kd_swapped": "Teacher and student swapped: the first argument is student_logits, the second teacher_logits. "
                  "The teacher's probs are the constant target (detach teacher_logits); the gradient of the "
                  "soft-target term must reach student_logits, and here it did not.",
    "kd_reverse": "KL in the wrong direction: you computed KL(student || teacher); Hinton's loss is "
                  "KL(teacher || student) = sum teacher_probs * (log teacher_probs - log student_probs). "
                  "F.kl_div(input, target) computes KL(target || input): input = the student's log-probs, "
                  "target = the teacher's probs.",
    "kd_probs_input": "F.kl_div expects log-probabilities as its first argument: pass "
                      "F.log_softmax(student_logits / temperature, dim=-1), not softmax.",
    "kd_cross_entropy": "You computed the cross-entropy between teacher and student probs; the KL subtracts the "
                        "teacher's entropy: sum teacher_probs * (log teacher_probs - log student_probs) "
                        "(same gradient, but the KL is 0 when the student matches the teacher).",
    "kd_log_softmax": "Use F.log_softmax, not torch.log(softmax(...)): with large logits / temperature the "
                      "softmax underflows to 0, log(0) = -inf, and the loss or its gradient becomes inf or nan "
                      "(adding a small eps inside the log gives a wrong value instead).",
    "kd_no_grad": "No gradient reached student_logits: build the loss from student_logits with torch operations "
                  "only (no .detach(), .item(), .numpy() or torch.tensor(...) on the student's side).",
    "kd_teacher_grad": "Detach the teacher (teacher_logits.detach()): its probs are a constant target, and "
                       "without the detach the loss would also train the teacher when its logits come from a "
                       "model with gradients on.",
    "kd_detach_in_place": "teacher_logits.detach_() (with the underscore) detaches the caller's tensor in place: "
                          "their teacher stops receiving gradients everywhere else too. Use "
                          "teacher_logits.detach(), which returns a detached copy and leaves the argument alone.",
    "kd_bad_grad": "The gradient w.r.t. student_logits is wrong: use student_logits only through "
                   "log_softmax(student_logits / temperature), and detach only the teacher.",
    "kd_other": "Expected temperature**2 * mean over the batch of "
                "sum_c teacher_probs * (log teacher_probs - log student_probs), both probs at the temperature.",
    "dl_alpha_swapped": "alpha is applied to the wrong term: alpha weights the soft-target (KD) loss and "
                        "1 - alpha the cross-entropy on the labels.",
    "dl_no_one_minus_alpha": "Weight the cross-entropy on the labels by (1 - alpha): "
                             "alpha * kd_loss + (1 - alpha) * cross_entropy.",
    "dl_ce_temperature": "The cross-entropy on the labels uses the student's ordinary logits (temperature 1), "
                         "not student_logits / temperature.",
    "dl_ce_sum": "Average the cross-entropy over the batch (F.cross_entropy's default reduction=\"mean\").",
    "dl_alpha_fixed": "Use the alpha you were given, not a fixed 0.5 (the default): the caller chooses the "
                      "balance between the teacher and the labels.",
    "dl_ce_t_squared": "Only the KD term carries temperature**2 (kd_loss has it already); the cross-entropy on the "
                       "labels is not scaled.",
    "dl_ce_teacher": "The cross-entropy on the labels is the *student's*: F.cross_entropy(student_logits, labels), "
                     "not the teacher's logits (which get no gradient and train nothing).",
    "dl_nll_on_logits": "F.nll_loss expects log-probabilities: use F.cross_entropy(student_logits, labels), which "
                        "applies log_softmax itself (or nll_loss on F.log_softmax(student_logits, dim=-1)).",
    "dl_other": "Expected alpha * kd_loss(student_logits, teacher_logits, temperature) + "
                "(1 - alpha) * F.cross_entropy(student_logits, labels).",
}

# A batch of 3 examples over 5 classes; at temperature 2 every mistake above gives a different number.
_STUDENT = [[2.0, -1.0, 0.5, 3.0, -2.0], [-0.5, 1.5, 2.5, -3.0, 0.0], [1.0, 0.0, -1.0, 2.0, 4.0]]
_TEACHER = [[5.0, -2.0, 1.0, 0.0, -4.0], [0.0, 6.0, 1.0, -2.0, -1.0], [-3.0, 2.0, 0.5, 1.0, 7.0]]
_LABELS = [3, 1, 4]
# Logits so large that softmax underflows to exactly 0 in float32: (logits, temperature) pairs.
_EXTREME = [
    ([[1e3, 0.0, -1e3], [0.0, 5.0, -5.0]], [[0.0, 1e3, -1e3], [5.0, 0.0, -5.0]], 1.0),
    ([[1e4, -1e4, 0.0], [-1e4, 0.0, 1e4]], [[-1e4, 1e4, 0.0], [1e4, 0.0, -1e4]], 100.0),
    ([[1e4, -1e4, 0.0], [-1e4, 0.0, 1e4]], [[-1e4, 1e4, 0.0], [1e4, 0.0, -1e4]], 0.5),
]


def _fail(what: str, keys: Iterable[str]) -> None:
    raise AssertionError(f"{what}: " + " ".join(HINTS[k] for k in keys))


def _log_probs64(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(logits / T) in float64, written out: z - max - log(sum(exp(z - max)))."""
    z = logits.detach().to(torch.float64) / temperature
    z = z - z.max(dim=-1, keepdim=True).values
    return z - z.exp().sum(dim=-1, keepdim=True).log()


def _kl_rows(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) for each row."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def _ce64(student: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    log_q = _log_probs64(student, temperature)
    return -log_q[torch.arange(len(labels)), labels].mean().item()


def _kd_variants(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> list:
    """[(value, hint keys)]: the right KD loss first, then what each typical mistake gives."""
    t2 = temperature**2
    batch, classes = student.shape
    log_s, log_t = _log_probs64(student, temperature), _log_probs64(teacher, temperature)
    ref = _kl_rows(log_t, log_s).mean().item() * t2
    return [
        (ref, []),
        (ref / t2, ["kd_t_squared"]),
        (ref / temperature, ["kd_t_once"]),
        (ref / classes, ["kd_mean"]),
        (ref / classes / t2, ["kd_mean", "kd_t_squared"]),
        (ref * batch, ["kd_sum"]),
        (ref * batch / t2, ["kd_sum", "kd_t_squared"]),
        (_kl_rows(log_s, log_t).mean().item() * t2, ["kd_reverse"]),
        ((log_t.exp() * (log_t - log_s.exp())).sum(-1).mean().item() * t2, ["kd_probs_input"]),
        (-(log_t.exp() * log_s).sum(-1).mean().item() * t2, ["kd_cross_entropy"]),
    ]


def _match(value: float, variants: Sequence) -> list | None:
    """Hint keys of the first variant equal to ``value`` (None if none matches)."""
    ref = variants[0][0]
    for candidate, keys in variants:
        close = abs(value - candidate) <= 1e-3 * abs(candidate) + 1e-6
        if close and (not keys or abs(candidate - ref) > 1e-3 * abs(ref) + 1e-6):
            return keys
    return None


def _grads(out: torch.Tensor, student: torch.Tensor, teacher: torch.Tensor) -> tuple:
    """(d out / d student, d out / d teacher), each None when no gradient reaches it."""
    if not teacher.requires_grad:  # the learner detached the caller's tensor in place (detach_)
        raise AssertionError(f"after the call, teacher_logits no longer requires grad. {HINTS['kd_detach_in_place']}")
    if not out.requires_grad:
        return None, None
    try:
        return tuple(torch.autograd.grad(out, [student, teacher], allow_unused=True))
    except Exception:  # a broken graph in the learner's code: treat as no gradient
        return None, None


def _check_teacher_detached(teacher_grad: torch.Tensor | None, what: str) -> None:
    if teacher_grad is not None and teacher_grad.abs().max() > 0:
        _fail(f"{what}: a gradient reached teacher_logits", ["kd_teacher_grad"])


def _scalar(out, what: str, not_scalar_key: str) -> float:
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(out).__name__}.")
    if out.dim() != 0:
        raise AssertionError(f"{what}: got shape {tuple(out.shape)}. {HINTS[not_scalar_key]}")
    return out.detach().to(torch.float64).item()


def _leaves(*rows) -> list:
    return [torch.tensor(r, dtype=torch.float32, requires_grad=True) for r in rows]


def _check_probs(out, logits: torch.Tensor, temperature: float) -> None:
    """Compare the learner's probs with softmax(logits / T), naming the mistake if one matches."""
    what = f"softmax_with_temperature at temperature {temperature:g}"
    expected = torch.softmax(logits / temperature, dim=-1)
    mistakes = [
        (torch.softmax(logits * temperature, dim=-1), "softmax_multiply"),
        (torch.softmax(logits, dim=-1) / temperature, "softmax_after"),
        (torch.softmax(logits, dim=-1) ** (1 / temperature), "softmax_after"),
        (torch.softmax(logits, dim=-1), "softmax_ignored"),
        (torch.softmax(logits / temperature, dim=0), "softmax_dim"),
    ]
    if isinstance(out, torch.Tensor) and out.shape == logits.shape:
        for candidate, key in mistakes:
            same = torch.allclose(out.detach().float(), candidate, atol=1e-5, rtol=1e-4)
            if same and not torch.allclose(candidate, expected, atol=1e-5, rtol=1e-4):
                _fail(what, [key])
    assert_close(out, expected, what, HINTS["softmax_other"])


@learner_check("softmax_with_temperature", solution=lesson01.softmax_with_temperature)
def check_softmax_with_temperature(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """Check softmax(logits / temperature) over the last dimension (exercise 1.1)."""
    logits = torch.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 0.0, 0.0, -2.0]])
    for temperature in (1.0, 4.0):
        _check_probs(call_learner(fn, logits.clone(), temperature), logits, temperature)

    big = torch.tensor([[1e3, 1001.0, 1002.0], [-1e4, 0.0, 1e4]])
    for temperature in (0.5, 100.0):
        z = big.to(torch.float64) / temperature
        expected = (z - z.logsumexp(dim=-1, keepdim=True)).exp()
        out = call_learner(fn, big.clone(), temperature)
        assert_close(out, expected, f"logits of size 1e3..1e4 at temperature {temperature:g}",
                     HINTS["softmax_overflow"])

    assert_not_in_place(fn, logits, 2.0, what="its input",
                        fix="`logits / temperature`, not `logits /= temperature`")

    g = torch.Generator().manual_seed(4)
    for shape, temperature, dim in (((5,), 2.0, None), ((2, 3, 4), 3.0, None), ((3, 4), 2.0, 0), ((2, 3, 4), 0.5, 1)):
        x = torch.randn(*shape, generator=g) * 3.0
        _check_dim(fn, x, temperature, dim)


def _check_dim(fn: Callable, logits: torch.Tensor, temperature: float, dim: int | None) -> None:
    """One call on 1-D or 3-D logits, or with an explicit ``dim``: name the axis the learner normalised."""
    what = (f"softmax_with_temperature on logits of shape {tuple(logits.shape)} at temperature {temperature:g}"
            + ("" if dim is None else f", dim={dim}"))
    kwargs = {} if dim is None else {"dim": dim}
    try:
        out = call_learner(fn, logits.clone(), temperature, **kwargs)
    except AssertionError as exc:
        text = str(exc)
        key = ("softmax_dim_fixed" if "IndexError" in text or "out of range" in text
               else "softmax_dim_ignored" if "unexpected keyword" in text else None)
        if key is None:
            raise
        raise AssertionError(f"{what}: {text} {HINTS[key]}") from None
    target = -1 if dim is None else dim
    expected = torch.softmax(logits.to(torch.float64) / temperature, dim=target)
    if isinstance(out, torch.Tensor) and out.shape == logits.shape:
        got = out.detach().to(torch.float64)
        for other in range(logits.dim()):
            candidate = torch.softmax(logits.to(torch.float64) / temperature, dim=other)
            if other % logits.dim() == target % logits.dim() or not torch.allclose(got, candidate, atol=1e-5):
                continue
            if dim is not None and other == logits.dim() - 1:
                _fail(what, ["softmax_dim_ignored"])
            guessed = 0 if logits.dim() in (0, 1, 3) else 1  # what F.softmax picks without dim
            _fail(f"{what}: the probabilities sum to 1 along dim {other}",
                  ["softmax_no_dim" if dim is None and other == guessed else "softmax_dim_fixed"])
    assert_close(out, expected, what, HINTS["softmax_other"])


@learner_check("kd_loss", solution=answers.kd_loss)
def check_kd_loss(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """Check T^2 * KL(teacher_T || student_T), batchmean, stable, teacher detached, with its gradient (exercise 2.1)."""
    for temperature in (2.0, 1.0):
        student, teacher = _leaves(_STUDENT, _TEACHER)
        what = f"kd_loss at temperature {temperature:g}"
        out = call_learner(fn, student, teacher, temperature)
        value = _scalar(out, what, "kd_not_scalar")
        variants = _kd_variants(student, teacher, temperature)
        keys = _match(value, variants)
        grad, teacher_grad = _grads(out, student, teacher)
        if keys == ["kd_reverse"] and grad is None:
            keys = ["kd_swapped"]
        if keys is None:
            _fail(f"{what}: got {value:.6g}, expected {variants[0][0]:.6g}", ["kd_other"])
        if keys:
            _fail(f"{what}: got {value:.6g}, expected {variants[0][0]:.6g}", keys)
        if grad is None:
            _fail(what, ["kd_no_grad"])
        _check_teacher_detached(teacher_grad, what)
        probs_s = _log_probs64(student, temperature).exp()
        probs_t = _log_probs64(teacher, temperature).exp()
        expected_grad = temperature * (probs_s - probs_t) / student.shape[0]  # d/ds of T^2 * KL
        assert_close(grad, expected_grad, f"{what}, gradient w.r.t. student_logits", HINTS["kd_bad_grad"])

    same = torch.tensor(_TEACHER)
    value = _scalar(call_learner(fn, same.clone(), same.clone(), 3.0), "kd_loss(x, x)", "kd_not_scalar")
    if abs(value) > 1e-5:
        keys = ["kd_cross_entropy"] if value > 0 else ["kd_other"]
        _fail(f"kd_loss with student_logits == teacher_logits gave {value:.6g}, expected 0", keys)

    for student_rows, teacher_rows, temperature in _EXTREME:
        student, teacher = _leaves(student_rows, teacher_rows)
        size = round(math.log10(student.abs().max().item()))
        what = f"kd_loss with logits of size 1e{size} at temperature {temperature:g}"
        out = call_learner(fn, student, teacher, temperature)
        _scalar(out, what, "kd_not_scalar")
        expected = torch.tensor(_kd_variants(student, teacher, temperature)[0][0], dtype=torch.float64)
        assert_close(out, expected, what, HINTS["kd_log_softmax"], atol=1e-3, rtol=1e-4)
        grad, _ = _grads(out, student, teacher)
        if grad is None:
            _fail(what, ["kd_no_grad"])
        if not torch.isfinite(grad).all():
            _fail(f"{what}: the gradient contains nan or inf", ["kd_log_softmax"])


@learner_check("distillation_loss", solution=answers.distillation_loss)
def check_distillation_loss(fn: Callable[..., torch.Tensor]) -> None:
    """Check alpha * kd_loss + (1 - alpha) * cross-entropy on the labels (exercise 2.2)."""
    labels = torch.tensor(_LABELS)
    for temperature, alpha in ((2.0, 0.7), (2.0, 1.0), (4.0, 0.0)):
        student, teacher = _leaves(_STUDENT, _TEACHER)
        what = f"distillation_loss at temperature {temperature:g}, alpha {alpha:g}"
        out = call_learner(fn, student, teacher, labels.clone(), temperature, alpha)
        value = _scalar(out, what, "kd_not_scalar")
        kd = _kd_variants(student, teacher, temperature)
        ce, ce_t = _ce64(student, labels), _ce64(student, labels, temperature)
        ref = alpha * kd[0][0] + (1 - alpha) * ce
        variants = [(ref, [])] + [
            (alpha * kd[0][0] + (1 - alpha) * ce * len(labels), ["dl_ce_sum"]),
            (alpha * kd[0][0] + (1 - alpha) * ce_t, ["dl_ce_temperature"]),
            ((1 - alpha) * kd[0][0] + alpha * ce, ["dl_alpha_swapped"]),
            (alpha * kd[0][0] + ce, ["dl_no_one_minus_alpha"]),
            (0.5 * kd[0][0] + 0.5 * ce, ["dl_alpha_fixed"]),
            (alpha * kd[0][0] + (1 - alpha) * ce * temperature**2, ["dl_ce_t_squared"]),
            (alpha * kd[0][0] + (1 - alpha) * _ce64(teacher, labels), ["dl_ce_teacher"]),
            (alpha * kd[0][0] - (1 - alpha) * student.detach().double()[torch.arange(len(labels)), labels].mean().item(),
             ["dl_nll_on_logits"]),
        ] + [(alpha * kd_value + (1 - alpha) * ce, keys) for kd_value, keys in kd[1:]]
        keys = _match(value, variants)
        grad, teacher_grad = _grads(out, student, teacher)
        onehot = torch.nn.functional.one_hot(labels, student.shape[1]).to(torch.float64)
        ce_grad = (1 - alpha) * (_log_probs64(student, 1.0).exp() - onehot) / len(labels)
        if keys == ["kd_reverse"] and (grad is None or torch.allclose(grad.double(), ce_grad, atol=1e-6)):
            keys = ["kd_swapped"]  # the soft-target term sent no gradient to the student
        if keys is None:
            _fail(f"{what}: got {value:.6g}, expected {ref:.6g}", ["dl_other"])
        if keys:
            _fail(f"{what}: got {value:.6g}, expected {ref:.6g}", keys)
        if grad is None:
            _fail(what, ["kd_no_grad"])
        _check_teacher_detached(teacher_grad, what)
        probs_s, probs_t = _log_probs64(student, temperature).exp(), _log_probs64(teacher, temperature).exp()
        expected_grad = alpha * temperature * (probs_s - probs_t) / len(labels) + ce_grad
        assert_close(grad, expected_grad, f"{what}, gradient w.r.t. student_logits", HINTS["kd_bad_grad"])

    for student_rows, teacher_rows, temperature in _EXTREME[1:]:
        student, teacher = _leaves(student_rows, teacher_rows)
        extreme_labels = torch.tensor([1, 0])
        what = f"distillation_loss with logits of size 1e4 at temperature {temperature:g}"
        out = call_learner(fn, student, teacher, extreme_labels, temperature, 0.5)
        _scalar(out, what, "kd_not_scalar")
        expected = 0.5 * _kd_variants(student, teacher, temperature)[0][0] + 0.5 * _ce64(student, extreme_labels)
        assert_close(out, torch.tensor(expected, dtype=torch.float64), what, HINTS["kd_log_softmax"],
                     atol=1e-3, rtol=1e-4)
        grad, _ = _grads(out, student, teacher)
        if grad is None or not torch.isfinite(grad).all():
            _fail(f"{what}: no finite gradient w.r.t. student_logits", ["kd_log_softmax"])


# ----------------------------------------------------------------------------- class-bias search
BIAS_HINTS: dict[str, str] = {
    "cb_in_place": "You changed the caller's logits: add each candidate to a copy (shifted = logits.clone()), "
                   "otherwise the biases accumulate from one candidate to the next and the caller's logits "
                   "are left shifted.",
    "cb_index": "You returned the position of the best candidate in the list; return the bias itself "
                "(candidates[i], not i).",
    "cb_count": "You returned the number of correct predictions; return the bias that gives it.",
    "cb_accuracy": "You returned the best accuracy; return the bias that gives it.",
    "cb_skip_first": "The first candidate was never tried (here it is the best): loop over all candidates "
                     "(for bias in candidates: ...), and start the best count below any real count (e.g. -1).",
    "cb_skip_last": "The last candidate was never tried (here it is the best): loop over all candidates.",
    "cb_largest_tie": "Several biases tie for the best accuracy: keep the smallest (update only when a count is "
                      "strictly higher, >, not >=), the least change to the model.",
    "cb_class_only": "That bias maximises the share of class-cls examples right, not the overall accuracy: a huge "
                     "bias makes everything that class. Count correct predictions over all rows.",
    "cb_wrong_column": "Add the bias to column cls, the class you were given, not to a fixed column.",
    "cb_probs": "Add the bias to the logits, not to the probabilities after a softmax: the candidates are "
                "logit offsets (the lesson's +3.5 on class 3 is in logit units), and on probabilities in [0, 1] "
                "a bias of 2 already makes every row that class.",
    "cb_subtract": "Add the bias to the class's logit (shifted[:, cls] += bias), do not subtract it.",
    "cb_other": "For each candidate, add it to column cls of a copy of the logits, count correct argmax "
                "predictions over all rows, and keep the candidate with the highest count (ties: the smallest).",
}


def _correct_with_bias(logits: torch.Tensor, labels: torch.Tensor, cls: int, bias: float) -> int:
    shifted = logits.clone()
    shifted[:, cls] += bias
    return int((shifted.argmax(dim=1) == labels).sum())


def _best_bias(logits, labels, cls, candidates, sign: float = 1.0) -> float | None:
    """The first candidate with the most correct rows (the reference, and variants of it)."""
    counts = [_correct_with_bias(logits, labels, cls, sign * b) for b in candidates]
    return candidates[counts.index(max(counts))] if counts else None


def _bias_variants(logits, labels, cls, candidates) -> dict:
    """What each typical mistake returns on this case."""
    counts = [_correct_with_bias(logits, labels, cls, b) for b in candidates]
    best = max(counts)
    ties = [b for b, c in zip(candidates, counts) if c == best]
    ones = labels == cls
    accumulated, total = [], 0.0
    for b in candidates:  # biases added in place, one after the other
        total += b
        accumulated.append(_correct_with_bias(logits, labels, cls, total))
    return {
        "cb_index": float(counts.index(best)),
        "cb_count": float(best),
        "cb_accuracy": best / len(labels),
        "cb_skip_first": _best_bias(logits, labels, cls, candidates[1:]),
        "cb_skip_last": _best_bias(logits, labels, cls, candidates[:-1]),
        "cb_largest_tie": ties[-1],
        "cb_class_only": _best_bias(logits[ones], labels[ones], cls, candidates),
        "cb_subtract": _best_bias(logits, labels, cls, candidates, sign=-1.0),
        "cb_probs": _best_bias(torch.softmax(logits, dim=1), labels, cls, candidates),
        "cb_in_place": candidates[accumulated.index(max(accumulated))],
        **{f"cb_wrong_column_{c}": _best_bias(logits, labels, c, candidates)
           for c in range(logits.shape[1]) if c != cls},
    }


def _bias_rows(rows: list) -> tuple:
    """[(logits row, label)] -> (logits (N, C), labels (N,))."""
    return torch.tensor([r for r, _ in rows]), torch.tensor([y for _, y in rows])


# Four cases whose answers differ from every index, count and default, and from what each mistake gives:
# (rows, cls, candidates). Z: every mistake gives its own wrong answer (found by a search; two rows tie at
# bias 0, which no candidate is); A: a tie at 1.75 and 2.75, the class-1 share keeps rising up to 5.5;
# B: the first candidate (negative) is the only best; C: the last candidate is the only best.
_BIAS_CASES = [
    ([([1.0, 6.0, 2.0], 0), ([6.0, 2.0, 4.5], 2), ([2.0, 4.5, 3.0], 0), ([2.0, 1.0, 2.0], 2), ([3.0, 6.0, 6.0], 1),
      ([4.5, 2.0, 2.0], 1), ([3.0, 4.5, 3.0], 2), ([2.0, 2.0, 4.5], 0)],
     1, [-0.75, 0.25, 1.75, 2.75, 4.25, 5.5]),
    ([([1.5, 1.0, 0.0], 1), ([2.5, 1.0, 0.0], 1), ([6.0, 1.0, 0.0], 1), ([4.5, 1.0, 0.0], 0),
      ([0.0, 1.0, 6.0], 2), ([20.0, 0.0, 0.0], 0), ([0.0, 0.0, 20.0], 2)],
     1, [-0.75, 0.25, 1.75, 2.75, 4.25, 5.5]),
    ([([1.0, 0.0, 2.0], 0)] * 3 + [([0.8, 0.0, 1.6], 2), ([2.0, 0.0, 1.0], 2), ([0.0, 9.0, 0.0], 1)],
     2, [-1.5, -0.5, 0.5, 2.0]),
    ([([0.0, 3.0, 0.0], 0), ([0.0, 3.0, 0.1], 0), ([0.0, 0.0, 9.0], 2), ([0.0, 3.6, 0.0], 1), ([9.0, 0.0, 0.0], 0),
      ([0.0, 1.0, 0.0], 0), ([0.0, 0.0, 2.0], 2)],
     0, [0.25, 1.25, 2.25, 3.25]),
]


@learner_check("choose_class_bias", solution=answers.choose_class_bias)
def check_choose_class_bias(fn: Callable) -> None:
    """Check the validation search for the bias of one class (exercise 2.3).

    ``fn(logits, labels, cls, candidates)`` must return the candidate bias that maximises the
    overall accuracy after adding it to column ``cls``; ties go to the smallest bias. Four cases
    (different classes, a negative best, the best first, last and tied) with the caller's tensors
    compared before and after.
    """
    ruled_out: set = set()  # mistakes a right answer on some case excludes: never named
    failures = []  # (message, the mistakes that give the learner's answer on that case)
    for rows, cls, candidates in _BIAS_CASES:  # every case, always: a mistake is named from all of them
        logits, labels = _bias_rows(rows)
        logits_before, labels_before = logits.clone(), labels.clone()
        expected = _best_bias(logits, labels, cls, candidates)
        what = f"choose_class_bias on {len(labels)} rows, cls={cls}, candidates={candidates}"
        with inputs_compared_by_check():
            out = call_learner(fn, logits, labels, cls, list(candidates))
        if not torch.equal(logits, logits_before) or not torch.equal(labels, labels_before):
            raise AssertionError(f"{what}: {BIAS_HINTS['cb_in_place']}")
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            out = out.item()
        try:
            value = float(out)
        except (TypeError, ValueError):
            raise AssertionError(f"{what}: returned {out!r}; return the chosen bias, one number.") from None
        variants = _bias_variants(logits, labels, cls, candidates)
        differ = {k for k, v in variants.items() if v is None or not math.isclose(v, expected, abs_tol=1e-9)}
        if math.isclose(value, expected, abs_tol=1e-9):
            ruled_out |= differ
            continue
        failures.append((f"{what}: got {value:g}, expected {expected:g}.",
                         {k for k, v in variants.items() if k in differ and k != "cb_in_place"
                          and v is not None and math.isclose(value, v, abs_tol=1e-9)}))
    if failures:
        # the mistakes that explain every wrong answer; else those that explain the first one
        common = set.intersection(*(keys for _, keys in failures)) - ruled_out
        keys = common or failures[0][1] - ruled_out
        keys = {"cb_wrong_column" if k.startswith("cb_wrong_column") else k for k in keys}
        hints = " ".join(text for k, text in BIAS_HINTS.items() if k in keys) or BIAS_HINTS["cb_other"]
        raise AssertionError(f"{failures[0][0]} {hints}")


# ----------------------------------------------------------------------------- training with and without T^2
TRAIN_HINTS: dict[str, str] = {
    "tr_no_t_squared": "With t_squared=True the student moved T^2 times too little: your kd_loss leaves out the "
                       "temperature**2 factor (run check 2.1 on it).",
    "tr_flag_ignored": "With t_squared=False divide the loss by temperature**2 before backward(): that is the "
                       "objective without T^2 whose smaller gradients the lesson compares.",
    "tr_t_squared_twice": "With t_squared=True use kd_loss as it is (it already has T^2); multiply by nothing more.",
    "tr_no_zero_grad": "Call optimizer.zero_grad() before each backward(): without it the gradients of all "
                       "earlier batches are added to this one.",
    "tr_temperature_ignored": "Pass the temperature you were given to kd_loss.",
    "tr_one_batch": "Go through x in mini-batches of batch_size rows, in order (x[start:start + batch_size]), "
                    "one optimizer step per batch.",
    "tr_epochs": "Make `epochs` passes over the data.",
    "tr_drop_last": "The last, shorter batch was skipped: range(0, len(x), batch_size) ends with a batch of the "
                    "rows left over (here 3 of 11); train on it too.",
    "tr_flag_inverted": "t_squared is the wrong way round: with t_squared=False divide kd_loss by temperature**2 "
                        "(the objective without T^2), with True use kd_loss as it is.",
    "tr_unchanged": "The student did not change: give its parameters to the optimizer, then call loss.backward() "
                    "and optimizer.step() for each batch.",
    "tr_teacher": "The teacher_logits are targets: the caller's tensor must not change.",
    "tr_other": "Expected plain SGD (torch.optim.SGD(student.parameters(), lr=lr)) on kd_loss(student(xb), tb, "
                "temperature), divided by temperature**2 when t_squared is False, over mini-batches in order.",
}


def _train_reference(state: dict, x, teacher, temperature, epochs, lr, batch_size, scale, zero_grad=True,
                     one_batch=False, drop_last=False) -> dict:
    """The student's weights after training, written out: SGD on scale * kd_loss, batches in order."""
    with torch.random.fork_rng():  # its default initialisation would draw from the caller's global RNG
        model = torch.nn.Linear(x.shape[1], teacher.shape[1]).double()
    model.load_state_dict({k: v.double() for k, v in state.items()})
    grads = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    size = len(x) if one_batch else batch_size
    stop = len(x) - len(x) % size if drop_last else len(x)
    for _ in range(epochs):
        for start in range(0, stop, size):
            xb, tb = x[start:start + size].double(), teacher[start:start + size].double()
            loss = scale * answers.kd_loss(model(xb), tb, temperature)
            new = torch.autograd.grad(loss, list(model.parameters()))
            with torch.no_grad():
                for (k, p), g in zip(model.named_parameters(), new):
                    grads[k] = grads[k] + g if not zero_grad else g
                    p -= lr * grads[k]
    return {k: v.detach() for k, v in model.state_dict().items()}


@learner_check("distill", solution=answers.distill)
def check_distill(fn: Callable) -> None:
    """Check ``fn(student, x, teacher_logits, temperature, epochs, lr, batch_size, t_squared)`` (exercise 2.4):
    plain SGD on kd_loss over mini-batches in order, the loss divided by T^2 when ``t_squared`` is False.

    Trains a tiny linear student twice (with and without T^2, at T = 4, 2 epochs of 3 uneven batches) and
    compares its weights with the same training written out; when they differ, names the training that
    would have given them (T^2 missing or doubled, the flag ignored, no zero_grad, ...).
    """
    g = torch.Generator().manual_seed(3)
    x = torch.randn(11, 4, generator=g)
    teacher = torch.randn(11, 3, generator=g) * 3.0
    with torch.random.fork_rng():
        torch.manual_seed(5)
        init = torch.nn.Linear(4, 3).state_dict()
    temperature, epochs, lr, batch_size = 4.0, 2, 0.5, 4
    ruled_out: set = set()
    for t_squared in (True, False):
        with torch.random.fork_rng():  # its default initialisation would draw from the caller's global RNG
            student = torch.nn.Linear(4, 3)
        student.load_state_dict(init)
        teacher_arg = teacher.clone()
        what = f"distill with t_squared={t_squared} (temperature {temperature:g}, {epochs} epochs, lr {lr:g}, " \
               f"batch_size {batch_size}, 11 rows)"
        with inputs_compared_by_check():
            call_learner(fn, student, x.clone(), teacher_arg, temperature, epochs, lr, batch_size, t_squared)
        if not torch.equal(teacher_arg, teacher):
            raise AssertionError(f"{what}: {TRAIN_HINTS['tr_teacher']}")
        got = {k: v.detach().double() for k, v in student.state_dict().items()}
        if all(torch.equal(got[k], init[k].double()) for k in got):
            raise AssertionError(f"{what}: {TRAIN_HINTS['tr_unchanged']}")
        scale = 1.0 if t_squared else 1 / temperature**2

        def run(scale=scale, **changes):
            args = dict(temperature=temperature, epochs=epochs, lr=lr, batch_size=batch_size, scale=scale)
            args.update(changes)
            return _train_reference(init, x, teacher, **args)

        expected = run()
        variants = {
            "tr_no_t_squared": run(scale=scale / temperature**2),
            "tr_flag_ignored": run(scale=1.0),
            "tr_t_squared_twice": run(scale=scale * temperature**2),
            "tr_no_zero_grad": run(zero_grad=False),
            "tr_temperature_ignored": run(temperature=1.0),
            "tr_one_batch": run(one_batch=True),
            "tr_epochs": run(epochs=1),
            "tr_drop_last": run(drop_last=True),
            "tr_flag_inverted": run(scale=temperature**2 if not t_squared else 1.0),
        }

        def same(a: dict, b: dict) -> bool:
            return all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)

        if same(got, expected):
            ruled_out |= {k for k, v in variants.items() if not same(v, expected)}
            continue
        keys = [k for k, v in variants.items() if k not in ruled_out and same(got, v) and not same(v, expected)]
        err = max((got[k] - expected[k]).abs().max().item() for k in got)
        raise AssertionError(f"{what}: the trained weights differ from the expected ones by up to {err:.3g}. "
                             + " ".join(TRAIN_HINTS[k] for k in (keys or ["tr_other"])))
