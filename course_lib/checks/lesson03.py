"""Checks for lesson 03 (hidden-state distillation): attention maps, the hint loss, the FitNets loop.

The right answers are computed here independently of ``course_lib.losses`` (formulas
written out in float64). When a learner's answer is wrong, each check also computes
what the typical mistakes would give (no normalisation, summing over the wrong axis,
the regressor on the teacher's side, ...) and names the one that matches.
``tests/test_checks_lesson03.py`` runs each mistake and asserts its hint.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import inspect
from typing import Callable

import torch
from torch import nn

from ..answers import lesson03 as answers
from ..config import seeded
from ._core import assert_close, assert_not_in_place, call_learner, learner_check

#: One hint per typical mistake; a failing check's message contains the matching one.
HINTS: dict[str, str] = {
    "am_not_tensor": "Return a torch.Tensor of shape (N, H*W).",
    "am_wrong_axis": "Sum over the channel axis (dim=1), not over the spatial positions: the map has one value "
                     "per position, shape (N, H*W), so a thin student and a wide teacher give maps of the same size.",
    "am_not_flat": "Flatten each example's (H, W) map to one row: shape (N, H*W), e.g. `.flatten(1)`.",
    "am_no_normalise": "Normalise each row to unit L2 norm (F.normalize(map, p=2, dim=1)): without it the map's "
                       "size depends on the scale of the features, and a thin student cannot match a wide "
                       "teacher's scale.",
    "am_normalise_dim": "Normalise each example's row (dim=1), not each position across the batch (dim=0).",
    "am_l1": "Normalise with the L2 norm (p=2 in F.normalize), not by the sum of the row.",
    "am_no_abs": "Take the absolute value before the power: |A|^p. With odd p (or p=1) negative activations "
                 "would cancel positive ones.",
    "am_p_ignored": "Use the power p you were given: |A|^p, not always |A|^2.",
    "am_not_invariant": "Scaling the features by a positive constant must not change the attention map: normalise "
                        "each row to unit L2 norm after summing |A|^p over channels.",
    "am_batch_axis": "Sum over the channel axis (dim=1), not over the batch (dim=0): each example keeps its own "
                     "map, shape (N, H*W).",
    "am_power_after_sum": "Raise |A| to the power p before summing over the channels, sum_c |A_c|^p, not after "
                          "((sum_c |A_c|)^p): the power is what makes strong activations count more.",
    "am_softmax": "Normalise each row to unit L2 norm (F.normalize(..., p=2, dim=1)), not with a softmax: the "
                  "attention map keeps the ratios between positions.",
    "am_other": "Expected F.normalize(features.abs().pow(p).sum(dim=1).flatten(1), p=2, dim=1).",
    "hint_not_scalar": "Return one number (a 0-dim tensor): the mean squared error over all elements.",
    "hint_wrong_side": "Apply the regressor to the student's features, not the teacher's: "
                       "mse(regressor(student_features), teacher_features). The regressor is trained with the "
                       "student to reach the teacher's shape; the teacher is a fixed target.",
    "hint_no_regressor": "Use the regressor: mse(regressor(student_features), teacher_features). Without it the "
                         "student's layer is forced to copy the teacher's exactly, which a thinner layer cannot.",
    "hint_sum": "Average the squared errors over all elements (F.mse_loss's default reduction='mean'), "
                "do not sum them: a sum grows with the batch size and the layer's size.",
    "hint_per_example": "Average over all elements (F.mse_loss), not sum per example then average over the batch.",
    "hint_per_position": "Average over all elements, channels included (F.mse_loss), not sum over the channels "
                         "and average over the positions: that grows with the teacher's width.",
    "hint_pooled": "Compare the feature maps element by element: averaging over the channels (or positions) "
                   "before the squared error throws away what the hint is meant to transfer.",
    "hint_half": "Use the plain mean squared error (F.mse_loss), without the factor 1/2.",
    "hint_l1": "Square the differences (mean squared error), do not take their absolute value.",
    "hint_rmse": "Return the mean squared error itself, without the square root.",
    "hint_teacher_grad": "Detach the teacher's features (teacher_features.detach()): the teacher is a fixed target "
                         "and must receive no gradient.",
    "hint_no_grad": "No gradient reached the student's features or the regressor: build the loss with torch "
                    "operations only (no .item(), .detach() or .numpy() on the student's side).",
    "hint_other": "Expected F.mse_loss(regressor(student_features), teacher_features.detach()).",
    "fit_no_stage1": "Stage 1 never used the regressor: first train the student's lower layers and the regressor "
                     "on the hint loss, e.g. train.fit(HintStudent(student, regressor, layer), x, teacher_hints, "
                     "F.mse_loss, epochs=hint_epochs, ...).",
    "fit_order": "The stages are in the wrong order: stage 1 (hints for the lower layers) comes first, then stage 2 "
                 "(KD on the whole student).",
    "fit_stage1_upper": "Stage 1 changed the student's upper layers (above the hint layer): in stage 1 train only "
                        "the layers up to the hint layer and the regressor, on the hint loss alone (no KD or "
                        "label term yet).",
    "fit_lower_frozen": "Stage 1 did not change the student's lower layers: train them together with the regressor "
                        "(HintStudent's parameters include both).",
    "fit_regressor_frozen": "The regressor was never trained: give its parameters to the optimizer in stage 1 "
                            "(train HintStudent(student, regressor, layer), not the student alone).",
    "fit_no_stage2": "The student's upper layers never changed: after the hints, train the whole student with the "
                     "KD loss (stage 2).",
    "fit_args_ignored": "Pass the temperature and alpha you were given to distillation_loss "
                        "(distillation_loss(logits, teacher_logits, labels, temperature, alpha)), not fixed numbers "
                        "or the defaults: the caller chose them on validation data.",
    "fit_alpha_ignored": "With alpha = 0 the student must learn from the labels alone: pass alpha to "
                         "distillation_loss (alpha weights the teacher's term, 1 - alpha the labels').",
    "fit_layer": "Use the hint layer you were given (HintStudent(student, regressor, layer)), not a fixed "
                 "\"block2\": the caller chooses which layer the teacher's hints are for, and the regressor is "
                 "built for that layer's channels.",
    "fit_epochs_swapped": "The two stages' epochs are swapped: stage 1 (hints) runs for hint_epochs, stage 2 (KD) "
                          "for kd_epochs.",
    "fit_epochs": "Run stage 1 for hint_epochs epochs and stage 2 for kd_epochs epochs (the arguments, not fixed "
                  "numbers or the defaults).",
    "fit_lr": "Train both stages at the learning rate you were given (lr=lr in each train.fit), not a fixed one "
              "or train.fit's default.",
    "fit_stage2_labels": "Stage 2 did not follow the teacher: train the whole student with "
                         "distillation_loss(logits, teacher_logits, labels, temperature, alpha), not on the labels "
                         "alone.",
}


def _fail(what: str, key: str) -> None:
    raise AssertionError(f"{what}. {HINTS[key]}")


# ----------------------------------------------------------------------------- attention_map
def _map64(features: torch.Tensor, p: float, abs_: bool = True, power: bool = True) -> torch.Tensor:
    f = features.to(torch.float64)
    f = f.abs() if abs_ else f
    return (f ** p if power else f).sum(dim=1).reshape(len(f), -1)


def _l2_rows(m: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return m / (m ** 2).sum(dim=dim, keepdim=True).sqrt()


def _features(seed: int, shape=(2, 3, 4, 5)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * 1.5 + 0.3


def _same(out: torch.Tensor, candidate: torch.Tensor) -> bool:
    return (isinstance(out, torch.Tensor) and out.shape == candidate.shape
            and torch.allclose(out.detach().to(torch.float64), candidate.to(torch.float64), atol=1e-5, rtol=1e-4))


@learner_check("attention_map", solution=answers.attention_map)
def check_attention_map(fn: Callable[..., torch.Tensor]) -> None:
    """Check sum over channels of |A|^p, flattened to (N, H*W), each row L2-normalised (exercise 3.1)."""
    features = _features(0)  # (N=2, C=3, H=4, W=5): H*W = 20 differs from C = 3
    n, c, h, w = features.shape
    for p in (2, 1, 3):
        out = call_learner(fn, features.clone(), p=p)
        what = f"attention_map on features of shape {tuple(features.shape)} with p={p}"
        if not isinstance(out, torch.Tensor):
            _fail(f"{what}: got {type(out).__name__}", "am_not_tensor")
        expected = _l2_rows(_map64(features, p))
        if out.shape != expected.shape:
            if tuple(out.shape) in {(c, h * w), (c, h, w)}:
                _fail(f"{what}: got shape {tuple(out.shape)}, expected {tuple(expected.shape)}", "am_batch_axis")
            if tuple(out.shape) in {(n, c), (c,), (n, c, 1, 1)}:
                _fail(f"{what}: got shape {tuple(out.shape)}, expected {tuple(expected.shape)}", "am_wrong_axis")
            if tuple(out.shape) in {(n, h, w), (n, 1, h, w)}:
                _fail(f"{what}: got shape {tuple(out.shape)}, expected {tuple(expected.shape)}", "am_not_flat")
            if out.numel() == n * h * w and _same(out.reshape(n, -1), expected):
                _fail(f"{what}: got shape {tuple(out.shape)}, expected {tuple(expected.shape)}", "am_not_flat")
            _fail(f"{what}: got shape {tuple(out.shape)}, expected {tuple(expected.shape)}", "am_wrong_axis")
        mistakes = [
            (_map64(features, p), "am_no_normalise"),
            (_map64(features, p) / _map64(features, p).shape[1], "am_no_normalise"),
            (_l2_rows(_map64(features, p), dim=0), "am_normalise_dim"),
            (_map64(features, p) / _map64(features, p).sum(dim=1, keepdim=True), "am_l1"),
            (_l2_rows(_map64(features, p, abs_=False)), "am_no_abs"),
            (_l2_rows(_map64(features, 2)), "am_p_ignored"),
            (_l2_rows(_map64(features, 1) ** p), "am_power_after_sum"),
            (torch.softmax(_map64(features, p), dim=1), "am_softmax"),
        ]
        for candidate, key in mistakes:
            if _same(out, candidate) and not _same(expected, candidate):
                _fail(f"{what}: wrong values", key)
        assert_close(out, expected, what, HINTS["am_other"])

    for scale in (10.0, 0.1):
        out = call_learner(fn, features.clone() * scale, p=2)
        assert_close(out, _l2_rows(_map64(features, 2)), f"attention_map of the features times {scale:g}",
                     HINTS["am_not_invariant"])
    assert_not_in_place(fn, features, 2, what="its input", fix="features.abs(), not features.abs_()")


# ----------------------------------------------------------------------------- hint_loss
def _regressor(cin: int, cout: int, seed: int) -> nn.Conv2d:
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # its default initialisation would draw from the caller's global RNG
        conv = nn.Conv2d(cin, cout, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.8)
        conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.5)
    return conv


def _apply64(regressor: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return nn.functional.conv2d(x.detach().to(torch.float64), regressor.weight.detach().to(torch.float64),
                                regressor.bias.detach().to(torch.float64))


def _scalar(out, what: str) -> float:
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"{what}: expected a torch.Tensor, got {type(out).__name__}.")
    if out.dim() != 0:
        _fail(f"{what}: got shape {tuple(out.shape)}", "hint_not_scalar")
    return out.detach().to(torch.float64).item()


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * abs(b) + 1e-6


@learner_check("hint_loss", solution=answers.hint_loss)
def check_hint_loss(fn: Callable[..., torch.Tensor]) -> None:
    """Check mse(regressor(student_features), teacher_features), with the teacher detached (exercise 3.2)."""
    # Case 1: student and teacher of the same shape, so a regressor on the wrong side runs and gives a
    # different number instead of crashing.
    student = _features(1, (2, 3, 2, 2)).requires_grad_(True)
    teacher = _features(2, (2, 3, 2, 2)).requires_grad_(True)
    regressor = _regressor(3, 3, 3)
    what = "hint_loss with student and teacher features of shape (2, 3, 2, 2)"
    out = call_learner(fn, student, teacher, regressor)
    value = _scalar(out, what)
    diff = _apply64(regressor, student) - teacher.detach().double()
    ref = diff.pow(2).mean().item()
    per_example = diff.pow(2).flatten(1).sum(1).mean().item()
    mistakes = [
        ((student.detach().double() - _apply64(regressor, teacher)).pow(2).mean().item(), "hint_wrong_side"),
        ((student.detach().double() - teacher.detach().double()).pow(2).mean().item(), "hint_no_regressor"),
        (diff.pow(2).sum().item(), "hint_sum"),
        (per_example, "hint_per_example"),
        (0.5 * ref, "hint_half"),
        (0.5 * per_example, "hint_per_example"),
        (diff.abs().mean().item(), "hint_l1"),
        (ref ** 0.5, "hint_rmse"),
        (diff.pow(2).sum(1).mean().item(), "hint_per_position"),
        ((_apply64(regressor, student).mean(1) - teacher.detach().double().mean(1)).pow(2).mean().item(),
         "hint_pooled"),
    ]
    if not _close(value, ref):
        for candidate, key in mistakes:
            if _close(value, candidate):
                _fail(f"{what}: got {value:.6g}, expected {ref:.6g}", key)
        _fail(f"{what}: got {value:.6g}, expected {ref:.6g}", "hint_other")
    if not out.requires_grad:
        _fail(what, "hint_no_grad")
    out.backward()
    if teacher.grad is not None and teacher.grad.abs().max() > 0:
        _fail(what, "hint_teacher_grad")
    if student.grad is None or regressor.weight.grad is None:
        _fail(what, "hint_no_grad")
    expected_grad = 2 * diff / diff.numel()  # d mean((R s - t)^2) / d (R s)
    w = regressor.weight.detach().double()[:, :, 0, 0]  # (C_t, C_s)
    expected_student_grad = torch.einsum("nthw,ts->nshw", expected_grad, w)
    assert_close(student.grad, expected_student_grad, f"{what}, gradient w.r.t. student_features",
                 HINTS["hint_other"])

    # Case 2: a thin student (2 channels) and a wide teacher (5 channels): only the right side runs.
    student = _features(4, (3, 2, 3, 3))
    teacher = _features(5, (3, 5, 3, 3))
    regressor = _regressor(2, 5, 6)
    what = "hint_loss with a 2-channel student and a 5-channel teacher, regressor Conv2d(2, 5, 1)"
    try:
        out = call_learner(fn, student, teacher, regressor)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc} {HINTS['hint_wrong_side']}") from None
    value = _scalar(out, what)
    ref = (_apply64(regressor, student) - teacher.double()).pow(2).mean().item()
    if not _close(value, ref):
        _fail(f"{what}: got {value:.6g}, expected {ref:.6g}", "hint_other")


# ----------------------------------------------------------------------------- the FitNets loop
class _SpyRegressor(nn.Module):
    """A 1x1-conv regressor that records, at each training call, which parts of the student had changed, and
    how far its own weights had moved since the previous call (the first step's size shows the learning rate)."""

    def __init__(self, student: nn.Module, cin: int, cout: int, lower: list, upper: list):
        super().__init__()
        self.conv = _regressor(cin, cout, 7)
        self._student = [student]  # a list, so the student is not registered as a submodule
        self._lower = lower
        self._upper = upper
        self._initial = {name: p.detach().clone() for name, p in student.named_parameters()}
        self._last = self.conv.weight.detach().clone()
        self.calls = []  # (upper_changed, lower_changed) at each call with gradients on
        self.steps = []  # the largest change of the regressor's weights since the previous call

    def _changed(self, names: list) -> bool:
        params = dict(self._student[0].named_parameters())
        return any(not torch.equal(params[n].detach(), self._initial[n]) for n in names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self.calls.append((self._changed(self._upper), self._changed(self._lower)))
            self.steps.append((self.conv.weight.detach() - self._last).abs().max().item())
            self._last = self.conv.weight.detach().clone()
        return self.conv(x)


class _HeadSpy:
    """Counts the student's head calls with gradients on, keeping the head's weights at each (stage 2's first
    step shows its learning rate)."""

    def __init__(self, student: nn.Module, regressor: _SpyRegressor):
        self.regressor = regressor
        self.weights = []  # the head's weights at each call with gradients on
        self.handle = student.head.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if torch.is_grad_enabled():
            self.weights.append(module.weight.detach().clone())

    def first_step(self) -> float | None:
        """The head's largest change between the first two stage-2 calls (those after the last hint call)."""
        stage2 = self.weights[len(self.regressor.calls):]
        return (stage2[1] - stage2[0]).abs().max().item() if len(stage2) > 1 else None


def _fitnets_case():
    """A tiny problem: class k's images are a bright bar at row 2k; the teacher says class (k + 1) % 10."""
    from ..models import ThinCNN

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(10).repeat(8)  # 80 images
    x = torch.rand(len(labels), 1, 28, 28, generator=g) * 0.2
    for i, k in enumerate(labels.tolist()):
        x[i, 0, 2 * k + 4: 2 * k + 6, 4:24] = 1.0
    teacher_logits = 8.0 * nn.functional.one_hot((labels + 1) % 10, 10).float()
    teacher_hints = torch.randn(len(labels), 5, 7, 7, generator=g)
    student = ThinCNN(channels=(2, 3), hidden=16)  # the caller seeds it
    return student, x, labels, teacher_logits, teacher_hints


@contextlib.contextmanager
def _spy_on_distillation_loss(fn: Callable):
    """Record (temperature, alpha) of every call of the library's distillation_loss while ``fn`` runs.

    Replaces it in ``course_lib.losses`` and wherever the learner's module holds it under any name, and
    puts it back afterwards. A learner who wrote a loss of their own is not seen (the list stays empty).
    """
    from .. import losses

    original = losses.distillation_loss
    signature = inspect.signature(original)
    calls: list = []

    @functools.wraps(original)
    def spy(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append((float(bound.arguments["temperature"]), float(bound.arguments["alpha"])))
        return original(*args, **kwargs)

    from ._clock import _unwrapped

    module = getattr(_unwrapped(fn)[-1], "__globals__", {})  # the learner's module, under any recorder's wrapper
    names = [k for k, v in list(module.items()) if v is original]
    losses.distillation_loss = spy
    for k in names:
        module[k] = spy
    try:
        yield calls
    finally:
        losses.distillation_loss = original
        for k in names:
            module[k] = original


def _agreement(student: nn.Module, x: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor) -> tuple:
    student.eval()
    with torch.no_grad():
        predictions = student(x).argmax(dim=1)
    return ((predictions == teacher_logits.argmax(dim=1)).float().mean().item(),
            (predictions == labels).float().mean().item())


def _first_step_lr(step: float | None, lr: float, others: tuple) -> bool:
    """False when Adam's first step (about lr per weight) matches another learning rate and not ``lr``."""
    if step is None or step == 0:
        return True
    near = lambda value: 0.6 * value <= step <= 1.5 * value  # noqa: E731
    return near(lr) or not any(near(o) for o in others if not near(lr) and o != lr)


def _fitnets_run(fn: Callable, student: nn.Module, layer: str, x, teacher_hints, teacher_logits, labels, *,
                 hint_epochs: int, kd_epochs: int, temperature: float, alpha: float, lr: float,
                 other_lrs: tuple) -> None:
    """One call of the learner's fitnets with these arguments; fails on what the spies saw."""
    names = [n for n, _ in student.named_parameters()]
    lower_blocks = ("block1.",) if layer == "block1" else ("block1.", "block2.")
    lower = [n for n in names if n.startswith(lower_blocks)]
    upper = [n for n in names if n not in lower]
    channels = dict(block1=student.block1[0].out_channels, block2=student.block2[0].out_channels)[layer]
    with seeded(0):
        regressor = _SpyRegressor(student, channels, teacher_hints.shape[1], lower, upper)
    heads = _HeadSpy(student, regressor)
    initial_regressor = copy.deepcopy(regressor.conv.state_dict())
    initial_upper = {n: p.detach().clone() for n, p in student.named_parameters() if n in upper}
    what = (f"fitnets(layer={layer!r}, hint_epochs={hint_epochs}, kd_epochs={kd_epochs}, "
            f"temperature={temperature:g}, alpha={alpha:g}, lr={lr:g})")
    try:
        with _spy_on_distillation_loss(fn) as calls:
            call_learner(fn, student, regressor, x, teacher_hints, teacher_logits, labels, layer=layer,
                         hint_epochs=hint_epochs, kd_epochs=kd_epochs, temperature=temperature, alpha=alpha, lr=lr,
                         seed=0)
    except AssertionError as exc:
        if layer != "block2" and ("size" in str(exc) or "channels" in str(exc) or "shape" in str(exc)):
            raise AssertionError(f"{what}: {exc} {HINTS['fit_layer']}") from None
        raise
    finally:
        heads.handle.remove()
    if not regressor.calls:
        _fail(f"{what}: the regressor was never called with gradients on", "fit_no_stage1")
    if regressor.calls[0][0]:
        _fail(f"{what}: the student's upper layers had already changed when stage 1 began", "fit_order")
    if any(upper_changed for upper_changed, _ in regressor.calls):
        above = "block2, fc, head" if layer == "block1" else "fc, head"
        _fail(f"{what}: during stage 1 the student's layers above {layer} ({above}) changed",
              "fit_layer" if layer != "block2" else "fit_stage1_upper")
    if not regressor.calls[-1][1] and len(regressor.calls) > 1:
        _fail(f"{what}: after stage 1 the student's lower layers were unchanged", "fit_lower_frozen")
    if all(torch.equal(v, regressor.conv.state_dict()[k]) for k, v in initial_regressor.items()):
        _fail(f"{what}: the regressor's weights are unchanged after stage 1", "fit_regressor_frozen")
    params = dict(student.named_parameters())
    if all(torch.equal(params[n].detach(), v) for n, v in initial_upper.items()):
        _fail(f"{what}: the student's upper layers (fc, head) are unchanged after fitnets", "fit_no_stage2")
    hint_steps, kd_steps = len(regressor.calls), len(heads.weights) - len(regressor.calls)
    if hint_steps * kd_epochs != kd_steps * hint_epochs:  # the same batches per epoch in both stages
        swapped = hint_steps * hint_epochs == kd_steps * kd_epochs
        _fail(f"{what}: stage 1 ran {hint_steps} training steps and stage 2 {kd_steps}",
              "fit_epochs_swapped" if swapped else "fit_epochs")
    steps = (regressor.steps[1] if len(regressor.steps) > 1 else None, heads.first_step())
    if not all(_first_step_lr(step, lr, other_lrs) for step in steps):
        shown = ", ".join("-" if st is None else f"{st:.2g}" for st in steps)
        _fail(f"{what}: the first Adam steps moved the weights by up to {shown} (stage 1, stage 2), about a "
              f"learning rate other than {lr:g}", "fit_lr")
    wrong = sorted({c for c in calls if c != (temperature, alpha)})
    if wrong:
        seen = ", ".join(f"temperature={t:g}, alpha={a:g}" for t, a in wrong)
        _fail(f"fitnets was called with temperature={temperature:g}, alpha={alpha:g}, but distillation_loss "
              f"received {seen}", "fit_args_ignored")


@learner_check("fitnets", solution=answers.fitnets)
def check_fitnets(fn: Callable[..., object]) -> None:
    """Check the two FitNets stages: hints train only the lower student and the regressor, then KD (exercise 3.3).

    Calls ``fn(student, regressor, x, teacher_hints, teacher_logits, labels, layer=..., hint_epochs=...,
    kd_epochs=..., temperature=..., alpha=..., lr=..., seed=0)`` twice on a tiny problem where the teacher
    disagrees with the labels: with ``layer="block2"``, alpha = 1 (the student should follow the teacher),
    then with ``layer="block1"``, alpha = 0 (it should follow the labels), other epochs and another learning
    rate. Temperature and alpha are not the defaults, and the library's ``distillation_loss`` is watched for
    the values it receives (a temperature ignored by a loss the learner wrote themselves is not detected);
    the number of training steps of each stage is counted, and Adam's first step shows the learning rate.
    """
    with seeded(0):  # the same tiny problem every time, without reseeding the learner's global RNG
        student, x, labels, teacher_logits, teacher_hints = _fitnets_case()
        student_copy = copy.deepcopy(student)
        hints_block1 = torch.randn(len(labels), 5, 14, 14, generator=torch.Generator().manual_seed(1))
    _fitnets_run(fn, student, "block2", x, teacher_hints, teacher_logits, labels, hint_epochs=3, kd_epochs=30,
                 temperature=3.0, alpha=1.0, lr=1e-2, other_lrs=(1e-3, 2e-2))
    follows_teacher, follows_labels = _agreement(student, x, teacher_logits, labels)
    if follows_teacher <= follows_labels:
        _fail(f"with alpha = 1 the trained student agrees with the labels on {100 * follows_labels:.0f}% of the "
              f"images and with the teacher on {100 * follows_teacher:.0f}%", "fit_stage2_labels")

    _fitnets_run(fn, student_copy, "block1", x, hints_block1, teacher_logits, labels, hint_epochs=4, kd_epochs=25,
                 temperature=2.0, alpha=0.0, lr=2e-2, other_lrs=(1e-3, 1e-2))
    follows_teacher, follows_labels = _agreement(student_copy, x, teacher_logits, labels)
    if follows_labels <= follows_teacher:
        _fail(f"with alpha = 0 the trained student agrees with the teacher on {100 * follows_teacher:.0f}% of the "
              f"images and with the labels on {100 * follows_labels:.0f}%", "fit_alpha_ignored")
