"""Checks for lesson 02 (Hinton distillation): temperature softmax, KD loss, full objective.

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

from ._core import assert_close, assert_not_in_place, call_learner, learner_check

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


def _student_grad(out: torch.Tensor, student: torch.Tensor) -> torch.Tensor | None:
    """d out / d student, or None when no gradient reaches the student."""
    if not out.requires_grad:
        return None
    try:
        (grad,) = torch.autograd.grad(out, student, allow_unused=True)
    except Exception:  # a broken graph in the learner's code: treat as no gradient
        return None
    return grad


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


@learner_check("softmax_with_temperature")
def check_softmax_with_temperature(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> None:
    """Check softmax(logits / temperature) over the last dimension (exercise 2.1)."""
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


@learner_check("kd_loss")
def check_kd_loss(fn: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> None:
    """Check T^2 * KL(teacher_T || student_T), batchmean, stable, with its gradient (exercise 2.2)."""
    for temperature in (2.0, 1.0):
        student, teacher = _leaves(_STUDENT, _TEACHER)
        what = f"kd_loss at temperature {temperature:g}"
        out = call_learner(fn, student, teacher, temperature)
        value = _scalar(out, what, "kd_not_scalar")
        variants = _kd_variants(student, teacher, temperature)
        keys = _match(value, variants)
        grad = _student_grad(out, student)
        if keys == ["kd_reverse"] and grad is None:
            keys = ["kd_swapped"]
        if keys is None:
            _fail(f"{what}: got {value:.6g}, expected {variants[0][0]:.6g}", ["kd_other"])
        if keys:
            _fail(f"{what}: got {value:.6g}, expected {variants[0][0]:.6g}", keys)
        if grad is None:
            _fail(what, ["kd_no_grad"])
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
        grad = _student_grad(out, student)
        if grad is None:
            _fail(what, ["kd_no_grad"])
        if not torch.isfinite(grad).all():
            _fail(f"{what}: the gradient contains nan or inf", ["kd_log_softmax"])


@learner_check("distillation_loss")
def check_distillation_loss(fn: Callable[..., torch.Tensor]) -> None:
    """Check alpha * kd_loss + (1 - alpha) * cross-entropy on the labels (exercise 2.3)."""
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
        ] + [(alpha * kd_value + (1 - alpha) * ce, keys) for kd_value, keys in kd[1:]]
        keys = _match(value, variants)
        grad = _student_grad(out, student)
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
        grad = _student_grad(out, student)
        if grad is None or not torch.isfinite(grad).all():
            _fail(f"{what}: no finite gradient w.r.t. student_logits", ["kd_log_softmax"])


# ----------------------------------------------------------------------------- class-bias search
def _accuracy_with_bias(logits: torch.Tensor, labels: torch.Tensor, cls: int, bias: float) -> int:
    shifted = logits.clone()
    shifted[:, cls] += bias
    return int((shifted.argmax(dim=1) == labels).sum())


@learner_check("choose_class_bias")
def check_choose_class_bias(fn: Callable) -> None:
    """Check the validation search for the bias of one class (exercise 2.3).

    ``fn(logits, labels, cls, candidates)`` must return the candidate bias that maximises the
    overall accuracy after adding it to column ``cls``; ties go to the smallest bias.
    """
    # 3 classes; class 1 is under-predicted. Overall correct counts over the candidates
    # [0, 1, 2, 3, 4, 6] are 4, 5, 6, 6, 5, 5: a tie at 2 and 3 (answer: 2), while the share of
    # class-1 rows right keeps rising up to 6, and subtracting the bias never helps (gives 0).
    logits = torch.tensor([
        [1.5, 1.0, 0.0],   # label 1: right once bias > 0.5
        [2.5, 1.0, 0.0],   # label 1: right once bias > 1.5
        [6.0, 1.0, 0.0],   # label 1: right once bias > 5
        [4.5, 1.0, 0.0],   # label 0: wrong once bias > 3.5
        [0.0, 1.0, 6.0],   # label 2: wrong once bias > 5
        [20.0, 0.0, 0.0],  # label 0: always right
        [0.0, 0.0, 20.0],  # label 2: always right
    ])
    labels = torch.tensor([1, 1, 1, 0, 2, 0, 2])
    candidates = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0]
    correct = [_accuracy_with_bias(logits, labels, 1, b) for b in candidates]
    best = max(correct)
    expected = candidates[correct.index(best)]
    ones = labels == 1
    recall = [_accuracy_with_bias(logits[ones], labels[ones], 1, b) for b in candidates]
    subtracted = [_accuracy_with_bias(logits, labels, 1, -b) for b in candidates]
    subtract_answer = candidates[subtracted.index(max(subtracted))]
    out = call_learner(fn, logits.clone(), labels.clone(), 1, list(candidates))
    if isinstance(out, torch.Tensor):
        out = out.item()
    try:
        out = float(out)
    except (TypeError, ValueError):
        raise AssertionError(f"choose_class_bias returned {out!r}: return the chosen bias, one number.") from None
    if math.isclose(out, expected):
        return
    ties = [b for b, c in zip(candidates, correct) if c == best]
    if out not in candidates:
        raise AssertionError(f"choose_class_bias returned {out:g}, which is not one of the candidates "
                             f"{candidates}: return the best bias itself, not its accuracy or its index.")
    if out == ties[-1] and len(ties) > 1:
        raise AssertionError(f"choose_class_bias returned {out:g}; biases {ties} tie for the best accuracy: "
                             "keep the smallest (use > rather than >= when you compare), the least change "
                             "to the model.")
    if recall[candidates.index(out)] == max(recall) and correct[candidates.index(out)] < best:
        raise AssertionError(f"choose_class_bias returned {out:g}, which maximises the share of class {1} "
                             "examples right, not the overall accuracy: a huge bias makes everything that class. "
                             "Count correct predictions over all rows.")
    if out == subtract_answer:
        raise AssertionError("Add the bias to the class's logit (logits[:, cls] += bias), do not subtract it.")
    raise AssertionError(f"choose_class_bias returned {out:g}, expected {expected:g}: for each candidate, add it "
                         "to column cls of a copy of the logits, count correct argmax predictions over all "
                         "rows, and keep the candidate with the highest count.")
