"""Every loss of the course, each short and self-contained so it can be pasted into production code.

Hard labels (lesson 00): :func:`cross_entropy_loss`. Logit losses (lesson 02): softened
probabilities, the KD loss and the full Hinton objective. Hidden-state losses (lesson 03):
FitNets' hint loss, attention transfer, cosine representation matching and RKD's relational
distances; each takes the student's features first and the teacher's second, treats the teacher
as a constant (its features are detached) and returns a 0-dim tensor that is 0 when the student
matches the teacher. Soft labels (lesson 04): :func:`soft_label_loss`. Sequences (lesson 07):
:func:`masked_cross_entropy` and :func:`masked_kd_loss`, averaged over the answer positions only;
on-policy distillation (GKD): :func:`on_policy_kd_loss`, the generalised Jensen-Shannon divergence.
Rankers (lesson 08): :func:`listwise_kd_loss` (the teacher's ordering of a candidate list as a
distribution), :func:`embedding_regression_loss` (match the teacher's vectors) and
:func:`contrastive_loss` (InfoNCE with labels only, no teacher).

``train.fit`` calls ``loss_fn(model(x_batch), *target_batches)``; a loss with settings gets them
bound once with ``functools.partial``, e.g.
``functools.partial(distillation_loss, temperature=4.0, alpha=0.9)`` (the course's one form).

The unit tests (``tests/test_losses.py``) pin every loss against the formula written out and,
where PyTorch has one, against its reference (``torch.nn.functional.kl_div``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["cross_entropy_loss", "softmax_with_temperature", "kd_loss", "distillation_loss", "hint_loss",
           "attention_map", "attention_transfer_loss", "cosine_representation_loss", "relational_distance_loss",
           "soft_label_loss", "masked_cross_entropy", "masked_kd_loss", "on_policy_kd_loss",
           "listwise_kd_loss", "embedding_regression_loss", "contrastive_loss"]


def _check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float, or raise ValueError if it is not a finite number > 0."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return value


def _check_unit_interval(value, name: str, prefix: str = "") -> float:
    """``value`` as a float in [0, 1] (a mixing weight such as alpha or beta), or a ValueError naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{prefix}{name} must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{prefix}{name} must be in [0, 1], got {value!r}")
    return number


def _check_logits_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    """Raise ValueError unless both logits are (batch, num_classes) tensors of the same shape."""
    if student_logits.dim() != 2:
        raise ValueError(
            "student_logits must have shape (batch, num_classes), got shape "
            f"{tuple(student_logits.shape)}; flatten extra dimensions (e.g. tokens) into the batch"
        )
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student_logits and teacher_logits must have the same shape, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Plain cross-entropy on hard labels, averaged over the batch: the ``loss_fn`` for a teacher or a baseline.

    Args:
        logits: (batch, num_classes). labels: (batch,) integer class indices.

    Introduced in lesson 00.
    """
    return F.cross_entropy(logits, labels)


def softmax_with_temperature(logits: torch.Tensor, temperature: float = 1.0,
                             dim: int = -1) -> torch.Tensor:
    """Probabilities softened (temperature > 1) or sharpened (temperature < 1): softmax(logits / T).

    Args:
        logits: tensor of any shape, e.g. (batch, num_classes).
        temperature: T > 0. T = 1 is the ordinary softmax; as T grows the probs
            approach uniform and the small ones (the "dark knowledge") become visible.
        dim: the class dimension, normalised to sum to 1.

    Returns:
        probs, same shape as ``logits``. ``torch.softmax`` subtracts the maximum
        first, so logits of size 1e4 do not overflow.

    Introduced in lesson 02.
    """
    temperature = _check_temperature(temperature)
    return torch.softmax(logits / temperature, dim=dim)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float = 1.0) -> torch.Tensor:
    """Hinton's soft-target loss: T^2 * KL(teacher_T || student_T), averaged over the batch.

    ``KL(p || q) = sum_c p_c (log p_c - log q_c)`` with p = softmax(teacher_logits / T)
    (the target) and q = softmax(student_logits / T). Three details matter:

    * **T^2**: the gradient of the soft-target term w.r.t. the student's logits
      scales as 1/T^2 (one 1/T from the softened probs, one from dividing the logits
      by T). Multiplying by T^2 keeps its size roughly independent of T, so changing
      the temperature does not silently rescale the learning rate or the balance
      with the hard-label loss.
    * **batchmean**: sum over classes, mean over the batch. This equals
      ``F.kl_div(..., reduction="batchmean")``; ``reduction="mean"`` (a common bug in
      public code) also divides by the number of classes, shrinking the loss by that factor.
    * **log_softmax**: both log-probs come from ``log_softmax``, never ``log(softmax(.))``,
      which gives log(0) = -inf (then nan) once a probability underflows, e.g. for
      logits of size 1e3 at T = 1 or 1e4 at T = 100.
    * **masked classes**: teacher logits of -inf (classes the teacher rules out, as in
      vocabulary distillation) have probability 0 and contribute exactly 0, also where the
      student masks them too; the naive ``p * (log p - log q)`` gives 0 * inf = nan there.

    The teacher is treated as a constant: ``teacher_logits`` is detached, so no
    gradient flows into the teacher even if its logits were computed with autograd on.

    Args:
        student_logits: (batch, num_classes), the student's raw scores; gets the gradient.
        teacher_logits: (batch, num_classes), the teacher's raw scores for the same inputs.
        temperature: T > 0, applied to both student and teacher.

    Returns:
        A 0-dim tensor, >= 0, zero when student_logits == teacher_logits.

    Introduced in lesson 02.
    """
    temperature = _check_temperature(temperature)
    _check_logits_pair(student_logits, teacher_logits)
    teacher_log_probs = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_probs = teacher_log_probs.exp()
    # p_teacher * (log p_teacher - log p_student), defined as exactly 0 where p_teacher = 0: a
    # class masked with -inf (e.g. outside a vocabulary) would otherwise give 0 * -inf = nan.
    terms = torch.where(teacher_probs > 0, teacher_probs * (teacher_log_probs - student_log_probs),
                        torch.zeros_like(teacher_probs))
    return terms.sum(dim=-1).mean() * temperature**2


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor, temperature: float = 1.0,
                      alpha: float = 0.5) -> torch.Tensor:
    """Hinton's full objective: alpha * kd_loss + (1 - alpha) * cross-entropy on the labels.

    The soft-target term is :func:`kd_loss` at ``temperature`` (with its T^2 factor,
    so alpha keeps the same meaning whatever T is); the hard-label term is the
    ordinary cross-entropy of the student's logits at temperature 1.
    ``teacher_logits`` is detached (the teacher is a constant target).

    Args:
        student_logits: (batch, num_classes), the student's raw scores.
        teacher_logits: (batch, num_classes), the teacher's raw scores.
        labels: (batch,) integer class indices in [0, num_classes).
        temperature: T > 0 for the soft-target term.
        alpha: weight in [0, 1] of the soft-target term; 1 - alpha goes to the labels.
            alpha = 1 is pure distillation (labels unused), alpha = 0 ordinary training.

    Returns:
        A 0-dim tensor.

    Introduced in lesson 02.
    """
    alpha_value = _check_unit_interval(alpha, "alpha")
    _check_logits_pair(student_logits, teacher_logits)
    if labels.shape != student_logits.shape[:1]:
        raise ValueError(
            f"labels must have shape (batch,) = ({student_logits.shape[0]},), got shape "
            f"{tuple(labels.shape)} (student_logits has shape {tuple(student_logits.shape)})"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    soft = kd_loss(student_logits, teacher_logits, temperature)
    hard = F.cross_entropy(student_logits, labels)
    return alpha_value * soft + (1.0 - alpha_value) * hard


# ----------------------------------------------------------------------------- hidden-state losses (lesson 03)
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
        student_embeddings: (N, D_s), extra dimensions flattened; a batch of one gives 0 (no pairs).
        teacher_embeddings: (N, D_t), detached.

    Returns:
        A 0-dim tensor >= 0; 0 when the two batches have proportional pairwise distances.

    Introduced in lesson 03.
    """
    _check_batch(student_embeddings, teacher_embeddings, "relational_distance_loss")
    if student_embeddings.shape[0] < 2:
        # one example has no pairs, so nothing to match; this happens in the last batch of an
        # epoch when N % batch_size == 1. A zero that keeps the graph lets backward() run.
        return student_embeddings.sum() * 0.0
    d_s = _normalised_distances(student_embeddings.flatten(1))
    with torch.no_grad():
        d_t = _normalised_distances(teacher_embeddings.detach().flatten(1))
    return F.smooth_l1_loss(d_s, d_t, reduction="mean")


# ----------------------------------------------------------------------------- soft labels (lesson 04)
def soft_label_loss(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student against soft targets, averaged over the batch.

    ``-(targets * log_softmax(student_logits)).sum(-1).mean()``: with one-hot targets this is the
    ordinary cross-entropy; with a teacher's probability rows (e.g. ``router.soft_targets``) every
    class the teacher found plausible pulls on the student in proportion to its probability. The
    targets already carry their temperature, so none is applied to the student here.

    Args:
        student_logits: (batch, num_classes). targets: (batch, num_classes) probability rows.

    Returns:
        A 0-dim tensor; its gradient w.r.t. the logits is ``(softmax(student_logits) - targets) / batch``.

    Introduced in lesson 04.
    """
    if student_logits.dim() != 2 or targets.shape != student_logits.shape:
        raise ValueError(f"soft_label_loss expects student_logits and targets of the same shape (batch, num_classes), "
                         f"got {tuple(student_logits.shape)} and {tuple(targets.shape)}")
    return -(targets * F.log_softmax(student_logits, dim=-1)).sum(dim=-1).mean()


# ----------------------------------------------------------------------------- sequences (lesson 07)
def _check_mask(logits: torch.Tensor, mask: torch.Tensor, what: str) -> None:
    """Raise ValueError unless ``mask`` is a bool (B, L) tensor matching ``logits`` (B, L, V) with a True entry."""
    if logits.dim() != 3 or mask.dtype != torch.bool or mask.shape != logits.shape[:2]:
        raise ValueError(f"{what}: expected logits (B, L, V) and a bool mask (B, L), got logits "
                         f"{tuple(logits.shape)} and a {mask.dtype} mask {tuple(mask.shape)}")
    if not bool(mask.any()):
        raise ValueError(f"{what}: the mask selects no position, so there is nothing to average over")


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the ground truth, averaged over the positions where ``mask`` is True.

    Args:
        logits: (B, L, V), already aligned with ``targets`` (logit t scores token t + 1 of the row).
        targets: (B, L) int64. mask: (B, L) bool; padding and prompt positions are False.

    Introduced in lesson 07.
    """
    _check_mask(logits, mask, "masked_cross_entropy")
    return F.cross_entropy(logits[mask], targets[mask])


def masked_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """Token-level KD: :func:`kd_loss` at every position where ``mask`` is True, averaged over those positions.

    Padding must stay out of both the sum and the count: selecting the masked rows first
    (``logits[mask]``, shape (M, V)) does both, because ``kd_loss`` averages over its rows.
    Multiplying by the mask and averaging over all B * L positions would shrink the loss of
    short rows, and the more padding a batch had, the weaker its signal.

    Args:
        student_logits, teacher_logits: (B, L, V), aligned (same input tokens, same positions).
        mask: (B, L) bool. temperature: as in :func:`kd_loss` (the T^2 factor is applied there).

    Introduced in lesson 07.
    """
    _check_mask(student_logits, mask, "masked_kd_loss")
    return kd_loss(student_logits[mask], teacher_logits[mask], temperature)


def _kl_terms(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """(M,) KL(p || q) per row from log-probs; a class with p = 0 contributes exactly 0 (never 0 * inf = nan)."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(dim=-1)


def on_policy_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor,
                      beta: float = 0.5, temperature: float = 1.0) -> torch.Tensor:
    """GKD's generalised Jensen-Shannon divergence (Agarwal et al. 2024), averaged over the positions where ``mask`` is True.

    Meant for on-policy distillation: the student writes its own answers (``sequence.sample_rollouts``),
    both models read them, and at every answer position the student's next-token distribution S is pulled
    towards the teacher's T. With the mixture ``M = beta * T + (1 - beta) * S`` (TRL's
    ``GKDTrainer.generalized_jsd_loss`` conventions, which this matches)::

        beta = 0:      KL(T || S)   forward KL, the ordinary KD target: mass-covering, S must put
                                    probability wherever T does.
        0 < beta < 1:  beta * KL(T || M) + (1 - beta) * KL(S || M), bounded; beta = 0.5 is the symmetric JSD.
        beta = 1:      KL(S || T)   reverse KL: mode-seeking, S is punished for tokens T finds unlikely.

    Why the direction matters for compounding errors: on its own samples a student that spreads mass over
    tokens the teacher rules out will sooner or later write one of them, and every later step then starts
    from a prefix the teacher would never have produced. Reverse KL (and the JSD towards it) penalises
    exactly that mass; forward KL tolerates it as long as the teacher's likely tokens are covered.

    Args:
        student_logits, teacher_logits: (B, L, V), aligned (both models read the same tokens).
            ``teacher_logits`` is detached: the teacher is the target and receives no gradient.
        mask: (B, L) bool, True at the answer positions; padding and prompt positions are neither summed
            nor counted. beta: in [0, 1]. temperature: T > 0 dividing both logits (no T^2 factor, as in TRL).

    Returns:
        A 0-dim tensor >= 0, zero when the two distributions agree. Everything stays in log space (log-softmax,
        and logsumexp for log M), so logits in the hundreds are fine.

    Introduced for lesson 07's on-policy distillation.
    """
    beta = _check_unit_interval(beta, "beta", "on_policy_kd_loss: ")
    temperature = _check_temperature(temperature)
    _check_mask(student_logits, mask, "on_policy_kd_loss")
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"on_policy_kd_loss: student_logits and teacher_logits must have the same shape, got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    log_s = F.log_softmax(student_logits[mask] / temperature, dim=-1)  # (M, V): answer positions only
    log_t = F.log_softmax(teacher_logits.detach()[mask] / temperature, dim=-1)
    if beta == 0.0:
        per_position = _kl_terms(log_t, log_s)
    elif beta == 1.0:
        per_position = _kl_terms(log_s, log_t)
    else:
        log_m = torch.logsumexp(torch.stack([log_t + math.log(beta), log_s + math.log(1.0 - beta)]), dim=0)
        per_position = beta * _kl_terms(log_t, log_m) + (1.0 - beta) * _kl_terms(log_s, log_m)
    return per_position.mean()


# ----------------------------------------------------------------------------- rankers (lesson 08)
def _check_scores(scores: torch.Tensor, mask, what: str, name: str = "scores", mask_name: str = "mask") -> torch.Tensor:
    """The (Q, C) bool mask of valid candidates (all True when ``mask`` is None), or a ValueError."""
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise ValueError(f"{what}: {name} must be a (queries, candidates) tensor, got {shape}")
    if mask is None:
        return torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != scores.shape:
        got = f"a {mask.dtype} tensor of shape {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) \
            else type(mask).__name__
        raise ValueError(f"{what}: {mask_name} must be a bool tensor of shape {tuple(scores.shape)} "
                         f"(queries, candidates), got {got}")
    return mask.to(scores.device)


def listwise_kd_loss(student_scores: torch.Tensor, teacher_scores: torch.Tensor, mask: torch.Tensor | None = None,
                     temperature: float = 1.0) -> torch.Tensor:
    """Listwise ranking distillation: :func:`kd_loss` over each query's candidate list, masked candidates left out.

    For each query (a row) the teacher's scores of its candidates become a distribution,
    ``p = softmax(teacher_scores / T)`` over the valid candidates, and the student's scores another,
    ``q = softmax(student_scores / T)``; the loss is ``T^2 * mean over queries of KL(p || q)``.

    * **The teacher is the target**: p is fixed (``teacher_scores`` is detached) and the student's
      scores move towards it; KL(p || q) is large where the teacher ranks a candidate high and the
      student does not, the forward, mass-covering direction of :func:`kd_loss`.
    * **T^2** (Hinton's scaling, as in :func:`kd_loss`): the gradient w.r.t. the student's scores
      scales as 1 / T^2, so the factor keeps its size roughly independent of the temperature that
      is being tuned on validation.
    * **The mask**: False marks a query's own row in the candidates (it would top every list with
      cosine 1 and teach nothing) and padding. Those scores are set to -inf on *both* sides before the
      softmax, so they get probability 0, add nothing to the KL and are never counted.

    Args:
        student_scores: (Q, C), e.g. dot products of the student's unit vectors; gets the gradient.
        teacher_scores: (Q, C), the teacher's scores (e.g. cosines) of the same candidates; detached.
        mask: (Q, C) bool, True = a real candidate; None: all are. Every row needs one True.
        temperature: T > 0 dividing both scores.

    Returns:
        A 0-dim tensor >= 0, zero when the two rows agree on the valid candidates (up to a constant per row).

    Introduced in lesson 08.
    """
    temperature = _check_temperature(temperature)
    valid = _check_scores(student_scores, mask, "listwise_kd_loss", "student_scores")
    if not isinstance(teacher_scores, torch.Tensor) or teacher_scores.shape != student_scores.shape:
        shape = tuple(teacher_scores.shape) if isinstance(teacher_scores, torch.Tensor) else type(teacher_scores).__name__
        raise ValueError(f"listwise_kd_loss: student_scores and teacher_scores must have the same shape, got "
                         f"{tuple(student_scores.shape)} and {shape}")
    if not bool(valid.any(dim=1).all()):
        rows = torch.nonzero(~valid.any(dim=1)).flatten().tolist()
        raise ValueError(f"listwise_kd_loss: query row(s) {rows[:5]} have no valid candidate (mask all False): "
                         "a softmax over nothing is undefined; drop those queries or give them candidates")
    minus_inf = torch.tensor(float("-inf"), dtype=student_scores.dtype, device=student_scores.device)
    log_t = F.log_softmax(torch.where(valid, teacher_scores.detach() / temperature, minus_inf), dim=-1)
    log_s = F.log_softmax(torch.where(valid, student_scores / temperature, minus_inf), dim=-1)
    return _kl_terms(log_t, log_s).mean() * temperature**2


def embedding_regression_loss(student_vectors: torch.Tensor, teacher_vectors: torch.Tensor,
                              kind: str = "cosine") -> torch.Tensor:
    """Match the teacher's vectors: mean ``1 - cosine`` (``kind="cosine"``) or mean squared error (``"mse"``).

    How static-embedding students such as Model2Vec are distilled: each text's vector is pulled
    towards the teacher's vector of the same text. ``"cosine"`` matches directions only (what a
    cosine ranking reads); ``"mse"`` also matches lengths, averaged over all N * d entries.

    Args:
        student_vectors: (N, d); gets the gradient.
        teacher_vectors: (N, d), the same texts' teacher vectors, already mapped to d dimensions
            (e.g. by ``ranking.pca_projection``); detached.
        kind: ``"cosine"`` or ``"mse"``.

    Returns:
        A 0-dim tensor >= 0, zero when the student's vectors equal the teacher's (cosine: point the same way).

    Introduced in lesson 08.
    """
    if kind not in ("cosine", "mse"):
        raise ValueError(f"embedding_regression_loss: kind must be 'cosine' or 'mse', got {kind!r}")
    _check_batch(student_vectors, teacher_vectors, "embedding_regression_loss")
    if student_vectors.dim() != 2 or student_vectors.shape != teacher_vectors.shape:
        raise ValueError(f"embedding_regression_loss: student_vectors and teacher_vectors must both be (N, d), got "
                         f"{tuple(student_vectors.shape)} and {tuple(teacher_vectors.shape)}; map the teacher's "
                         "vectors to the student's width first (ranking.pca_projection)")
    teacher_vectors = teacher_vectors.detach()
    if kind == "mse":
        return F.mse_loss(student_vectors, teacher_vectors)
    return (1.0 - F.cosine_similarity(student_vectors, teacher_vectors, dim=1, eps=1e-8)).mean()


def contrastive_loss(query_vectors: torch.Tensor, candidate_vectors: torch.Tensor, positive_mask: torch.Tensor,
                     temperature: float = 0.05, mask: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE with several positives, from labels only (no teacher): the labels-only ranker's loss.

    For query i, ``s_ij = q_i . c_j / T`` over the candidates j, and the loss of the query is
    ``-log(sum over positives j of softmax(s_i)_j)``: the probability the softmax puts on *any*
    positive (e.g. any email of the same queue), averaged over the queries with at least one
    positive; a query without a positive has nothing to pull towards and is skipped. All candidates
    are in the softmax except those ``mask`` rules out: pass ``mask`` False at the query's own row
    when queries are among the candidates (in-batch training), or it would be the easiest "negative".

    Args:
        query_vectors: (Q, d); candidate_vectors: (C, d), usually unit length (then s is cosine / T).
        positive_mask: (Q, C) bool, True where candidate j is a positive of query i (masked-out
            candidates never count as positives).
        temperature: T > 0; small T (0.05) sharpens the softmax over cosines in [-1, 1].
        mask: optional (Q, C) bool, True = a candidate in the softmax; None: all are.

    Returns:
        A 0-dim tensor >= 0; a batch where no query has a positive is a ValueError.

    Introduced in lesson 08.
    """
    temperature = _check_temperature(temperature)
    for name, v in (("query_vectors", query_vectors), ("candidate_vectors", candidate_vectors)):
        if not isinstance(v, torch.Tensor) or v.dim() != 2:
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"contrastive_loss: {name} must be (n, d), got {shape}")
    if query_vectors.shape[1] != candidate_vectors.shape[1]:
        raise ValueError(f"contrastive_loss: query and candidate vectors must have the same width, got "
                         f"{query_vectors.shape[1]} and {candidate_vectors.shape[1]}")
    scores = query_vectors @ candidate_vectors.T / temperature
    valid = _check_scores(scores, mask, "contrastive_loss")
    if positive_mask is None:
        raise ValueError("contrastive_loss: positive_mask is required (True where a candidate is a positive)")
    positives = _check_scores(scores, positive_mask, "contrastive_loss", mask_name="positive_mask") & valid
    rows = positives.any(dim=1)
    if not bool(rows.any()):
        raise ValueError("contrastive_loss: no query has a positive candidate, so there is nothing to learn from")
    minus_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
    log_all = torch.logsumexp(torch.where(valid, scores, minus_inf), dim=1)
    log_pos = torch.logsumexp(torch.where(positives, scores, minus_inf), dim=1)
    return (log_all - log_pos)[rows].mean()
