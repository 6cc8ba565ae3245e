"""Checks for lesson 04 (the email router): choosing the target temperature on validation, the soft-label loss.

Lesson 04's data are numpy arrays (texts in lists, labels and logits in arrays), and so are the
inputs these checks pass; answers may be numpy arrays, torch tensors or plain numbers.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..answers import lesson04 as answers
from ._core import call_learner, inputs_compared_by_check, learner_check, name_mistakes

#: One hint per typical mistake; a failing check's message contains the matching one(s).
HINTS: dict[str, str] = {
    "ct_return": "Return two things: (best_temperature, accuracies), where accuracies maps each temperature to "
                 "the validation accuracy of the student trained at it.",
    "ct_in_place": "You changed the caller's teacher_logits: compute teacher_logits / temperature as a new array "
                   "(not /=), otherwise each temperature divides the logits again.",
    "ct_calls": "Train one student per temperature: call train_router_student(traffic_texts, targets) once for each "
                "temperature, in the order given.",
    "ct_texts": "Train on the unlabelled traffic (traffic_texts): that is what the teacher pseudo-labels.",
    "ct_hard": "You trained on hard labels (the argmax, one-hot): pass the soft labels "
               "softmax(teacher_logits / temperature), rows of probabilities; that is what carries the teacher's "
               "second opinions, and what the temperature changes.",
    "ct_temperature_ignored": "Every student got the same targets: make each temperature's targets "
                              "softmax(teacher_logits / temperature) with that temperature.",
    "ct_multiply": "Divide the logits by the temperature (teacher_logits / temperature), do not multiply.",
    "ct_targets_other": "The targets should be probability rows softmax(teacher_logits / temperature) over the "
                        "classes (axis=-1), one row per traffic email (router.soft_targets computes them).",
    "ct_not_validation": "Measure each student on the validation emails (val_texts against val_labels): the "
                         "traffic has no labels, and agreeing with the teacher on the emails a student was "
                         "trained on says little about how it routes new ones.",
    "ct_accuracy": "accuracies should hold each student's accuracy on the validation emails, a fraction in [0, 1]: "
                   "np.mean(student.predict(val_texts) == val_labels).",
    "ct_rounded": "Keep the accuracies exact: rounded ones (here 0.751 and 0.754 both become 0.75) tie, and the "
                  "choice falls on the wrong temperature. Round only when you print.",
    "ct_index": "Return the temperature itself, not its position in temperatures.",
    "ct_largest_tie": "Several temperatures tie for the best validation accuracy: keep the smallest (the first in "
                      "the order given; update only on a strictly higher accuracy).",
    "ct_worst": "You returned the temperature with the lowest validation accuracy: keep the highest.",
    "ct_other": "Return the temperature whose student has the highest validation accuracy (ties: the first).",
}


def _fail(what: str, *keys: str) -> None:
    raise AssertionError(f"{what}. " + " ".join(HINTS[k] for k in keys))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _as_array(x) -> np.ndarray | None:
    try:
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return None


class _FakeStudent:
    """What ``train_router_student`` returns: its predictions are set by the check, per temperature and per text set."""

    def __init__(self, case: "_TemperatureCase", kind):
        self.case, self.kind = case, kind

    def predict(self, texts):
        return self.case.predictions(self.kind, list(texts))


class _TemperatureCase:
    """One case of the temperature search: teacher logits, texts, and a student per temperature whose
    validation accuracy (and agreement with the teacher on the traffic) the check decides."""

    def __init__(self, seed: int, temperatures: list, val_correct: dict, traffic_agree: dict, n_val: int,
                 n_traffic: int = 12, num_classes: int = 5):
        rng = np.random.default_rng(seed)
        self.temperatures = temperatures
        self.logits = rng.normal(0.0, 3.0, size=(n_traffic, num_classes))
        self.traffic = [f"traffic email {seed}-{i}" for i in range(n_traffic)]
        self.val_texts = [f"validation email {seed}-{i}" for i in range(n_val)]
        self.val_labels = rng.integers(0, num_classes, size=n_val)
        self.num_classes = num_classes
        self.val_correct, self.traffic_agree = val_correct, traffic_agree
        self.calls: list = []  # (texts, kind of targets) per train_router_student call
        self.predicted_on: list = []  # which text sets the students predicted

    def kind_of(self, targets) -> object:
        """The temperature that made ``targets`` (a float), or what went wrong (a string)."""
        t = _as_array(targets)
        if t is not None and t.ndim == 1 and np.array_equal(t, self.logits.argmax(axis=1)):
            return "hard"
        if t is None or t.shape != self.logits.shape:
            return "other"
        for temperature in [*self.temperatures, 1.0, 2.0, 3.0, 4.0, 20.0]:  # the given ones, then usual defaults
            if np.allclose(t, _softmax(self.logits / temperature), atol=1e-5):
                return float(temperature)
        if np.allclose(t, np.eye(self.num_classes)[self.logits.argmax(axis=1)]):
            return "hard"
        for temperature in self.temperatures:
            if np.allclose(t, _softmax(self.logits * temperature), atol=1e-5):
                return "multiply"
        return "other"

    def train_router_student(self, texts, targets) -> _FakeStudent:
        kind = self.kind_of(targets)
        self.calls.append((list(texts), kind))
        return _FakeStudent(self, kind)

    def predictions(self, kind, texts: list) -> np.ndarray:
        """Right on the first ``val_correct[kind]`` validation emails; on the traffic, agrees with the teacher
        on the first ``traffic_agree[kind]`` emails; wrong everywhere else."""
        if texts == self.val_texts:
            self.predicted_on.append("validation")
            right = self.val_correct.get(kind, 0)
            truth = self.val_labels
        elif texts == self.traffic:
            self.predicted_on.append("traffic")
            right = self.traffic_agree.get(kind, 0)
            truth = self.logits.argmax(axis=1)
        else:
            self.predicted_on.append("other")
            return np.full(len(texts), -1)
        wrong = (truth + 1) % self.num_classes
        return np.where(np.arange(len(truth)) < right, truth, wrong)

    def expected(self) -> tuple:
        accuracies = {t: self.val_correct[t] / len(self.val_texts) for t in self.temperatures}
        return max(accuracies, key=accuracies.get), accuracies  # max keeps the first of ties

    def variants(self) -> dict:
        """What the choice mistakes return: {hint key: temperature or index}."""
        accuracies = [self.val_correct[t] for t in self.temperatures]
        agree = [self.traffic_agree[t] for t in self.temperatures]
        best = max(accuracies)
        return {
            "ct_index": float(accuracies.index(best)),
            "ct_largest_tie": [t for t, a in zip(self.temperatures, accuracies) if a == best][-1],
            "ct_worst": self.temperatures[accuracies.index(min(accuracies))],
            "ct_not_validation": self.temperatures[agree.index(max(agree))],
            "ct_rounded": [max(self.temperatures, key=lambda t: round(self.val_correct[t] / len(self.val_texts), d))
                           for d in (1, 2)],
        }


# Two cases whose answers are neither an index nor the default temperature 1: (seed, temperatures,
# correct validation emails per temperature, traffic emails agreeing with the teacher per temperature, n_val).
_TEMPERATURE_CASES = [
    (0, [0.5, 1.0, 2.5, 5.0, 10.0], {0.5: 12, 1.0: 15, 2.5: 18, 5.0: 18, 10.0: 11},
     {0.5: 12, 1.0: 11, 2.5: 9, 5.0: 8, 10.0: 6}, 20),
    (1, [1.5, 3.0, 6.0], {1.5: 9, 3.0: 7, 6.0: 8}, {1.5: 8, 3.0: 7, 6.0: 12}, 10),
    # 1,000 validation emails: 0.751 and 0.754 are different, though both round to 0.75
    (2, [1.0, 3.0, 6.0], {1.0: 751, 3.0: 754, 6.0: 700}, {1.0: 5, 3.0: 6, 6.0: 12}, 1000),
]


@learner_check("choose_temperature", solution=answers.choose_temperature)
def check_choose_temperature(fn: Callable) -> None:
    """Check the temperature search on validation data (exercise 4.1).

    ``fn(teacher_logits, traffic_texts, val_texts, val_labels, temperatures, train_router_student)`` must, for each
    temperature, train a student with ``train_router_student(traffic_texts, softmax(teacher_logits / temperature))``,
    measure its accuracy on the validation emails, and return ``(best_temperature, accuracies)`` (ties: the
    first). The students are fakes whose accuracies the check sets, so the check runs in milliseconds.
    """
    ruled_out: set = set()
    for seed, temperatures, val_correct, traffic_agree, n_val in _TEMPERATURE_CASES:
        case = _TemperatureCase(seed, temperatures, val_correct, traffic_agree, n_val)
        logits_before = case.logits.copy()
        what = f"choose_temperature with temperatures {temperatures}"
        with inputs_compared_by_check():
            out = call_learner(fn, case.logits, list(case.traffic), list(case.val_texts), case.val_labels.copy(),
                               list(temperatures), case.train_router_student)
        if not np.array_equal(case.logits, logits_before):
            _fail(what, "ct_in_place")
        kinds = [kind for _, kind in case.calls]
        for key in ("hard", "multiply", "other"):
            if key in kinds:
                _fail(f"{what}: train_router_student got targets that are not softmax(teacher_logits / temperature)",
                      f"ct_{'targets_other' if key == 'other' else key}")
        if any(texts != case.traffic for texts, _ in case.calls):
            _fail(f"{what}: train_router_student was given other texts than the traffic", "ct_texts")
        if len(kinds) > 1 and len(set(kinds)) == 1 and len(temperatures) > 1:
            _fail(f"{what}: every student was trained on the targets of temperature {kinds[0]:g}",
                  "ct_temperature_ignored")
        if kinds != [float(t) for t in temperatures]:
            _fail(f"{what}: train_router_student was called for the temperatures {kinds}", "ct_calls")
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            _fail(f"{what}: got {type(out).__name__}", "ct_return")
        best, accuracies = out
        if "validation" not in case.predicted_on:
            _fail(f"{what}: no student predicted the validation emails", "ct_not_validation")
        expected_best, expected_acc = case.expected()
        got = {float(k): v for k, v in accuracies.items()} if all(
            isinstance(k, (int, float, np.floating, np.integer)) for k in accuracies) else {}
        if set(got) != set(expected_acc) or any(
                not isinstance(_scalar(got[t]), float) or not math.isclose(_scalar(got[t]), a, abs_tol=1e-6)
                for t, a in expected_acc.items()):
            shown = {k: _scalar(v) for k, v in accuracies.items()}
            rounded = set(got) == set(expected_acc) and any(
                all(isinstance(_scalar(got[t]), float) and math.isclose(_scalar(got[t]), round(scale * a, d))
                    for t, a in expected_acc.items()) for d in (0, 1, 2, 3) for scale in (1, 100))
            _fail(f"{what}: accuracies {shown}, expected {expected_acc}", "ct_rounded" if rounded else "ct_accuracy")
        value = _scalar(best)
        if value is None:
            _fail(f"{what}: best_temperature is {best!r}", "ct_return")
        keys = name_mistakes(value, expected_best, case.variants(), ruled_out, math.isclose)
        if keys is not None:
            _fail(f"{what}: got {value:g}, expected {expected_best:g}", *(keys or ["ct_other"]))


def _scalar(x) -> float | None:
    try:
        return float(x.item() if hasattr(x, "item") else x)
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- exercise 4.2: the soft-label loss
SOFT_HINTS: dict[str, str] = {
    "sl_sum": "Average over the emails of the batch (.mean() over rows), not the sum: the loss must not grow with "
              "the batch size, or the learning rate would have to change with it.",
    "sl_mean_classes": "Sum over the classes, then average over the rows: .sum(dim=-1).mean(). A .mean() over "
                       "every element also divides by the number of classes.",
    "sl_softmax": "Weight the student's log-probabilities, log_softmax(student_logits), not its probabilities: "
                  "cross-entropy is -sum_c target_c * log q_c.",
    "sl_sign": "Cross-entropy is minus the sum: -(targets * log_softmax(student_logits)).sum(-1).mean(). Yours is its "
               "negative, so minimising it would push the student away from the teacher.",
    "sl_hard": "Use the soft targets as they are: taking their argmax (hard labels) throws away the teacher's "
               "second opinions, which is the point of distilling from soft labels.",
    "sl_kl": "Return the cross-entropy, not the KL divergence: they differ by the targets' entropy (the gradients "
             "agree, the value the lesson reports does not).",
    "sl_swapped": "The targets weight the student's log-probabilities, -sum targets * log q, not the other way "
                  "round (log of the targets, weighted by the student).",
    "sl_dim0": "Take log_softmax over the classes (dim=-1), not over the batch (dim=0).",
    "sl_unstable": "log(softmax(x)) underflows to log(0) = -inf for large logits: use F.log_softmax, which "
                   "computes it stably.",
    "sl_temperature": "The targets already carry their temperature: use student_logits as they are, without "
                      "dividing them by anything.",
}


def _soft_cases():
    """(student_logits, targets) cases of different shapes and answers; the last has logits in the hundreds."""
    import torch

    g = torch.Generator().manual_seed(404)
    cases = []
    for rows, classes, spread, temperature in ((1, 3, 2.0, 1.0), (4, 5, 3.0, 2.0), (7, 2, 1.5, 4.0),
                                               (3, 4, 300.0, 100.0)):
        student = torch.randn(rows, classes, generator=g, dtype=torch.float64) * spread
        teacher = torch.randn(rows, classes, generator=g, dtype=torch.float64) * spread
        cases.append((student, torch.softmax(teacher / temperature, dim=-1)))
    return cases


def _soft_variants(student, targets) -> dict:
    import torch
    import torch.nn.functional as F

    log_q = F.log_softmax(student, dim=-1)
    with torch.no_grad():
        return {
            "sl_sum": -(targets * log_q).sum(),
            "sl_mean_classes": -(targets * log_q).mean(),
            "sl_softmax": [-(targets * log_q.exp()).sum(-1).mean(), (targets * log_q.exp()).sum(-1).mean()],
            "sl_sign": (targets * log_q).sum(-1).mean(),
            "sl_hard": F.cross_entropy(student, targets.argmax(-1)),
            "sl_kl": (targets * (targets.clamp_min(1e-300).log() - log_q)).sum(-1).mean(),
            "sl_swapped": -(log_q.exp() * targets.clamp_min(1e-300).log()).sum(-1).mean(),
            "sl_dim0": -(targets * F.log_softmax(student, dim=0)).sum(-1).mean(),
            "sl_temperature": [-(targets * F.log_softmax(student / t, dim=-1)).sum(-1).mean() for t in (2.0, 4.0)],
        }


@learner_check("soft_label_loss", solution=answers.soft_label_loss)
def check_soft_label_loss(fn: Callable) -> None:
    """Check ``fn(student_logits, targets)``: cross-entropy against soft targets, averaged over the batch (exercise 4.2).

    Four batches of different shapes (one row, two classes, logits in the hundreds) whose answers differ; the
    gradient must reach ``student_logits`` and equal (softmax(student_logits) - targets) / batch.
    """
    import torch

    ruled_out: set = set()
    for student, targets in _soft_cases():
        logits = student.clone().requires_grad_(True)
        what = f"soft_label_loss on {tuple(student.shape)} logits (largest |logit| {student.abs().max():.3g})"
        expected = -(targets * torch.log_softmax(student, dim=-1)).sum(-1).mean()
        out = call_learner(fn, logits, targets.clone())
        if not isinstance(out, torch.Tensor):
            raise AssertionError(f"{what}: returned a {type(out).__name__}; return a torch scalar (a 0-d tensor) that "
                                 "the training loop can call .backward() on.")
        if out.numel() != 1:
            raise AssertionError(f"{what}: returned shape {tuple(out.shape)}; return one number for the batch "
                                 f"(.sum(dim=-1).mean()). {SOFT_HINTS['sl_mean_classes']}")
        value = out.detach().double().reshape(())
        if not torch.isfinite(value):
            raise AssertionError(f"{what}: got {value.item()}. {SOFT_HINTS['sl_unstable']}")
        same = lambda a, b: math.isclose(float(a), float(b), rel_tol=1e-4, abs_tol=1e-6)  # noqa: E731
        keys = name_mistakes(value, expected, _soft_variants(student, targets), ruled_out, same)
        if keys is not None:
            hints = " ".join(SOFT_HINTS[k] for k in keys) or ("Compute -(targets * log_softmax(student_logits, "
                                                                 "dim=-1)).sum(dim=-1).mean().")
            raise AssertionError(f"{what}: got {float(value):.6g}, expected {float(expected):.6g}. {hints}")
        if not out.requires_grad:
            raise AssertionError(f"{what}: the result has no gradient: compute it from student_logits with torch "
                                 "operations (no .detach(), .item() or numpy in between).")
        (grad,) = torch.autograd.grad(out, logits, allow_unused=True)
        if grad is None:
            raise AssertionError(f"{what}: no gradient reaches student_logits: compute the loss from them with torch "
                                 "operations (a new tensor made from a number has no path back to the logits).")
        want = (torch.softmax(student, dim=-1) - targets) / len(student)
        if not torch.allclose(grad.double(), want, rtol=1e-4, atol=1e-7):
            raise AssertionError(f"{what}: the gradient with respect to student_logits is wrong (largest difference "
                                 f"{(grad.double() - want).abs().max():.3g}); it should be (softmax(logits) - targets) "
                                 "/ batch size.")
