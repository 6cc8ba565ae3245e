"""Hidden-state distillation: hints, attention transfer, representation and relational losses.

Introduced in lesson 03. Logit distillation (lesson 02) passes on the teacher's last
layer only; these losses also pass on what its *intermediate* layers compute. Each loss
takes the student's features first and the teacher's second, treats the teacher as a
constant (its features are detached) and returns a 0-dim tensor that is 0 when the
student matches the teacher. ``tests/test_hidden.py`` pins them against the formulas
written out.

Features come from the shared interface of ``course_lib.models``:
``model(x, return_features=True)`` returns ``(logits, features)``, a dict of named tensors.
"""
from __future__ import annotations

import statistics
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import cache, config, train
from .evaluate import time_calls
from .losses import distillation_loss

__all__ = [
    "hint_loss", "attention_map", "attention_transfer_loss", "cosine_representation_loss",
    "relational_distance_loss", "WithFeatures", "HintStudent", "hint_regressor", "teacher_outputs",
    "hint_stage", "fitnets", "METHODS", "train_hidden_student", "latency_ms_per_batch",
]


# ----------------------------------------------------------------------------- the losses
def _check_batch(student: torch.Tensor, teacher: torch.Tensor, what: str, min_dim: int = 2) -> None:
    for name, t in (("student", student), ("teacher", teacher)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{what}: {name} features must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < min_dim:
            raise ValueError(f"{what}: {name} features need at least {min_dim} dimensions (batch first), "
                             f"got shape {tuple(t.shape)}")
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"{what}: student and teacher features must have the same batch size, got "
                         f"{student.shape[0]} and {teacher.shape[0]}")


def hint_loss(student_features: torch.Tensor, teacher_features: torch.Tensor,
              regressor: nn.Module) -> torch.Tensor:
    """FitNets' hint loss (Romero et al. 2015): mean squared error between regressor(student) and teacher.

    The student's guided layer is thinner than the teacher's hint layer, so a small
    trainable **regressor** (e.g. a 1x1 convolution) maps the *student's* features to
    the teacher's shape. It goes on the student's side: the teacher is a fixed target,
    and the regressor is trained together with the student (then thrown away).

    Args:
        student_features: the student's guided layer, e.g. (N, C_s, H, W).
        teacher_features: the teacher's hint layer, e.g. (N, C_t, H, W); detached.
        regressor: maps student_features to teacher_features' shape.

    Returns:
        A 0-dim tensor: the mean over all elements of (regressor(student) - teacher)^2
        (FitNets writes 1/2 ||.||^2; the constant only rescales the learning rate).

    Introduced in lesson 03.
    """
    _check_batch(student_features, teacher_features, "hint_loss")
    mapped = regressor(student_features)
    if mapped.shape != teacher_features.shape:
        raise ValueError(
            f"hint_loss: regressor(student_features) has shape {tuple(mapped.shape)} but teacher_features has "
            f"shape {tuple(teacher_features.shape)}: the regressor must map the student's features to the "
            "teacher's shape (e.g. nn.Conv2d(C_student, C_teacher, kernel_size=1))")
    return F.mse_loss(mapped, teacher_features.detach())


def attention_map(features: torch.Tensor, p: float = 2) -> torch.Tensor:
    """Spatial attention map (Zagoruyko & Komodakis 2017): sum over channels of |A|^p, flattened, L2-normalised.

    Args:
        features: activations (N, C, H, W).
        p: the power; p = 2 is the paper's default (larger p weights the hottest spots more).

    Returns:
        (N, H*W): each row has unit L2 norm, so multiplying the features by a positive
        constant does not change the map. Channels are summed, so a student and a teacher
        with different channel counts give maps of the same size.

    Introduced in lesson 03.
    """
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"attention_map expects features of shape (N, C, H, W), got {shape}")
    if not p > 0:
        raise ValueError(f"attention_map: p must be > 0, got {p!r}")
    summed = features.abs().pow(p).sum(dim=1)  # (N, H, W): one value per position
    return F.normalize(summed.flatten(1), p=2, dim=1)


def attention_transfer_loss(student_features: torch.Tensor, teacher_features: torch.Tensor,
                            p: float = 2) -> torch.Tensor:
    """Attention transfer: squared L2 distance between the student's and teacher's normalised attention maps.

    ``mean over the batch of sum_j (Q_s[j] - Q_t[j])^2`` with Q = :func:`attention_map`.
    Channel counts may differ. Spatial sizes should match; if they do not, the larger
    (H, W) map (channel-summed |A|^p) is average-pooled to the smaller size before the
    normalisation (``F.adaptive_avg_pool2d``). The paper's reference code averages over
    positions too; that only divides by H*W, which the loss weight absorbs.

    Args:
        student_features: (N, C_s, H_s, W_s). teacher_features: (N, C_t, H_t, W_t), detached.
        p: the power of :func:`attention_map`.

    Returns:
        A 0-dim tensor in [0, 4]; 0 when the two maps are proportional.

    Introduced in lesson 03.
    """
    _check_batch(student_features, teacher_features, "attention_transfer_loss", min_dim=4)
    if student_features.dim() != 4 or teacher_features.dim() != 4:
        raise ValueError("attention_transfer_loss expects (N, C, H, W) features, got "
                         f"{tuple(student_features.shape)} and {tuple(teacher_features.shape)}")
    teacher_features = teacher_features.detach()
    hs, ws = student_features.shape[-2:]
    ht, wt = teacher_features.shape[-2:]
    if (hs, ws) == (ht, wt):
        q_s, q_t = attention_map(student_features, p), attention_map(teacher_features, p)
    else:
        size = (min(hs, ht), min(ws, wt))
        maps = []
        for f in (student_features, teacher_features):
            summed = f.abs().pow(p).sum(dim=1, keepdim=True)
            pooled = F.adaptive_avg_pool2d(summed, size) if tuple(f.shape[-2:]) != size else summed
            maps.append(F.normalize(pooled.flatten(1), p=2, dim=1))
        q_s, q_t = maps
    return (q_s - q_t).pow(2).sum(dim=1).mean()


def _pool_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average-pool (N, D) to (N, size) over neighbouring units (as the PyTorch KD tutorial does)."""
    return x if x.shape[1] == size else F.adaptive_avg_pool1d(x.unsqueeze(1), size).squeeze(1)


def cosine_representation_loss(student_features: torch.Tensor,
                               teacher_features: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity between the flattened student and teacher features, averaged over the batch.

    As in PyTorch's knowledge-distillation tutorial: both are flattened to (N, D); if the
    widths differ, the wider one is average-pooled over neighbouring units down to the
    narrower width (``F.adaptive_avg_pool1d``). Only the direction is matched, not the size.

    Args:
        student_features: (N, ...). teacher_features: (N, ...), detached.

    Returns:
        A 0-dim tensor in [0, 2]; 0 when the features point the same way.

    Introduced in lesson 03.
    """
    _check_batch(student_features, teacher_features, "cosine_representation_loss")
    s, t = student_features.flatten(1), teacher_features.detach().flatten(1)
    width = min(s.shape[1], t.shape[1])
    s, t = _pool_to(s, width), _pool_to(t, width)
    return (1.0 - F.cosine_similarity(s, t, dim=1, eps=1e-8)).mean()


def _normalised_distances(embeddings: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """(N, N) Euclidean distances divided by their mean over the pairs i != j (diagonal 0)."""
    squared = (embeddings.unsqueeze(1) - embeddings.unsqueeze(0)).pow(2).sum(-1)
    off_diagonal = ~torch.eye(len(embeddings), dtype=torch.bool, device=embeddings.device)
    # sqrt of a clamped square: the gradient of sqrt at 0 (the diagonal) would be inf
    distances = squared.clamp(min=eps).sqrt() * off_diagonal
    return distances / distances[off_diagonal].mean().clamp(min=eps)


def relational_distance_loss(student_embeddings: torch.Tensor,
                             teacher_embeddings: torch.Tensor) -> torch.Tensor:
    """RKD distance loss (Park et al. 2019): match the *shape* of the batch, not the features themselves.

    For each model, the Euclidean distances between every pair of examples in the batch are
    divided by their mean over pairs i != j; the loss is the smooth-L1 (Huber, beta 1)
    difference between the student's and teacher's (N, N) matrices, averaged over all N*N
    entries (the diagonal is 0 in both), as in the paper's reference code. The widths may
    differ, so no regressor is needed; scaling either embedding does not change the loss.

    Args:
        student_embeddings: (N, D_s), N >= 2 (extra dimensions are flattened).
        teacher_embeddings: (N, D_t), detached.

    Returns:
        A 0-dim tensor >= 0; 0 when the two batches have proportional pairwise distances.

    Introduced in lesson 03.
    """
    _check_batch(student_embeddings, teacher_embeddings, "relational_distance_loss")
    if student_embeddings.shape[0] < 2:
        raise ValueError("relational_distance_loss needs at least 2 examples in the batch (it compares pairs)")
    d_s = _normalised_distances(student_embeddings.flatten(1))
    with torch.no_grad():
        d_t = _normalised_distances(teacher_embeddings.detach().flatten(1))
    return F.smooth_l1_loss(d_s, d_t, reduction="mean")


# ----------------------------------------------------------------------------- training helpers
class WithFeatures(nn.Module):
    """Wrap a model so that ``wrapper(x)`` returns ``(logits, features)``: what ``train.fit`` passes to a loss.

    ``train.fit`` calls ``loss_fn(model(x_batch), *targets)``; with this wrapper the loss
    sees the student's features too. The parameters are the student's own.
    """

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, x: torch.Tensor):
        return self.student(x, return_features=True)


class HintStudent(nn.Module):
    """FitNets stage 1: ``forward(x) = regressor(student's features[layer])``, trained to match the teacher's hint.

    Its parameters are the student's and the regressor's; only the student's layers up to
    ``layer`` (and the regressor) receive gradients, so the layers above stay as they were.
    """

    def __init__(self, student: nn.Module, regressor: nn.Module, layer: str):
        super().__init__()
        self.student, self.regressor, self.layer = student, regressor, layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.regressor(self.student(x, return_features=True)[1][self.layer])


def hint_regressor(student_channels: int, teacher_channels: int) -> nn.Module:
    """A 1x1 convolution from the student's channels to the teacher's: the FitNets regressor for CNN features."""
    return nn.Conv2d(student_channels, teacher_channels, kernel_size=1)


@torch.no_grad()
def teacher_outputs(teacher: nn.Module, x: torch.Tensor, teacher_key: dict, layers: Sequence[str],
                    batch_size: int = 1000) -> dict:
    """The teacher's logits and named features on ``x``, computed once and cached ("scoring old examples").

    Args:
        teacher_key: the recipe of the teacher (``distill.teacher_key(splits)``), part of the cache key
            with a fingerprint of ``x`` and the layer names.
        layers: names from the teacher's features dict, e.g. ``["block2", "embedding"]``.
    Returns:
        ``{"logits": (N, 10), layer: (N, ...) for each layer}``, float32 on the CPU.
    """
    from .distill import fingerprint

    def compute():
        was_training = teacher.training
        teacher.eval()
        out = {name: [] for name in ["logits", *layers]}
        try:
            for i in range(0, len(x), batch_size):
                logits, features = teacher(x[i:i + batch_size], return_features=True)
                out["logits"].append(logits.float().cpu())
                for name in layers:
                    out[name].append(features[name].float().cpu())
        finally:
            teacher.train(was_training)
        return {name: torch.cat(parts) for name, parts in out.items()}

    key = {"model": teacher_key, "inputs": fingerprint(x), "layers": list(layers)}
    tensors, _ = cache.cached_tensors("mnist-teacher-features", key, compute)
    return tensors


def hint_stage(student: nn.Module, regressor: nn.Module, x: torch.Tensor, teacher_hints: torch.Tensor,
               layer: str, epochs: int, lr: float = 1e-3, batch_size: int = 128, seed: int = 0,
               progress: bool = True):
    """FitNets stage 1: train the student up to ``layer`` (and the regressor) to predict the teacher's hints."""
    loss = lambda mapped, hints: F.mse_loss(mapped, hints)  # noqa: E731  (= hint_loss with the regressor inside)
    return train.fit(HintStudent(student, regressor, layer), x, teacher_hints, loss, epochs=epochs,
                     batch_size=batch_size, lr=lr, seed=seed, progress=progress, desc="FitNets stage 1: hints")


def fitnets(student: nn.Module, regressor: nn.Module, x: torch.Tensor, teacher_hints: torch.Tensor,
            teacher_logits: torch.Tensor, labels: torch.Tensor, layer: str = "block2", hint_epochs: int = 5,
            kd_epochs: int = 20, temperature: float = 4.0, alpha: float = 0.9, lr: float = 1e-3,
            batch_size: int = 128, seed: int = 0, progress: bool = True):
    """FitNets in two stages: hints for the lower student (stage 1), then KD on the whole student (stage 2).

    Returns the stage-2 :class:`train.History`. The regressor is only used in stage 1.
    """
    hint_stage(student, regressor, x, teacher_hints, layer, hint_epochs, lr=lr, batch_size=batch_size,
               seed=seed, progress=progress)
    kd = lambda logits, t, y: distillation_loss(logits, t, y, temperature, alpha)  # noqa: E731
    return train.fit(student, x, (teacher_logits, labels), kd, epochs=kd_epochs, batch_size=batch_size, lr=lr,
                     seed=seed, progress=progress, desc="FitNets stage 2: KD")


#: The methods compared in lesson 03, in table order.
METHODS = ["student alone", "logit KD", "hint+KD", "AT+KD", "cosine+KD", "RKD+KD"]


def train_hidden_student(method: str, build_student, x: torch.Tensor, labels: torch.Tensor, teacher: dict,
                         epochs: int, temperature: float = 4.0, alpha: float = 0.9, beta: float = 1.0,
                         hint_epochs: int = 5, pairs: Optional[dict] = None, lr: float = 1e-3,
                         batch_size: int = 128, seed: int = 0, progress: bool = True):
    """Train one student with one of :data:`METHODS`; every method sees the same data, seed and KD stage.

    Args:
        build_student: makes an untrained student (called after seeding, so each seed starts the same).
        teacher: ``teacher_outputs(...)``: ``"logits"`` plus the teacher layers named in ``pairs``.
        epochs: epochs of the main stage (FitNets adds ``hint_epochs`` of stage 1 before it).
        temperature, alpha: of the logit term, :func:`distillation_loss`.
        beta: weight of the hidden-state term (its scale differs per loss: choose it on validation data).
        pairs: ``{student_layer: teacher_layer}`` matched by the hidden-state term (``"hint+KD"`` uses the first).
    Returns:
        ``(student, history)``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    config.seed_everything(seed)
    student = build_student()
    pairs = dict(pairs or {})
    common = dict(batch_size=batch_size, lr=lr, seed=seed, progress=progress, desc=method)
    if method == "student alone":
        return student, train.fit(student, x, labels, train.cross_entropy_loss, epochs=epochs, **common)
    if method == "logit KD":
        kd = lambda logits, t, y: distillation_loss(logits, t, y, temperature, alpha)  # noqa: E731
        return student, train.fit(student, x, (teacher["logits"], labels), kd, epochs=epochs, **common)
    if method == "hint+KD":
        s_layer, t_layer = next(iter(pairs.items()))
        with torch.no_grad():
            _, features = student(x[:2], return_features=True)
        regressor = hint_regressor(features[s_layer].shape[1], teacher[t_layer].shape[1])
        history = fitnets(student, regressor, x, teacher[t_layer], teacher["logits"], labels, layer=s_layer,
                          hint_epochs=hint_epochs, kd_epochs=epochs, temperature=temperature, alpha=alpha,
                          lr=lr, batch_size=batch_size, seed=seed, progress=progress)
        return student, history
    feature_loss = {"AT+KD": attention_transfer_loss, "cosine+KD": cosine_representation_loss,
                    "RKD+KD": relational_distance_loss}[method]
    names = list(pairs.items())

    def loss(out, t_logits, y, *t_features):
        logits, features = out
        hidden = sum(feature_loss(features[s], tf) for (s, _), tf in zip(names, t_features))
        return distillation_loss(logits, t_logits, y, temperature, alpha) + beta * hidden

    targets = (teacher["logits"], labels, *(teacher[t] for _, t in names))
    return student, train.fit(WithFeatures(student), x, targets, loss, epochs=epochs, **common)


@torch.no_grad()
def latency_ms_per_batch(model: nn.Module, batch_size: int = 256, repeats: int = 20, warmup: int = 3) -> float:
    """Median CPU wall time (milliseconds) of one forward pass on a batch of MNIST-sized images.

    Runs ``warmup`` untimed passes first (allocations, lazy initialisation), then ``repeats``
    timed ones; the median ignores the odd pass slowed down by other processes.
    """
    was_training = model.training
    model.eval().cpu()
    x = torch.rand(batch_size, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    try:
        walls, _ = time_calls(model, [x] * (warmup + repeats), warmup)
    finally:
        model.train(was_training)
    return 1000 * statistics.median(walls)
