"""The MNIST distillation experiments of lessons 01-03: teacher, cached soft targets, students.

Introduced in lesson 01 (the teacher and its cached logits) and lesson 02 (students,
the class-bias search). Every recipe is a plain dict, so the cache key of what it makes
is the hash of that dict (plus a fingerprint of the data it saw).
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np
import torch

from . import cache, config, data, hashing, models, train
from .losses import cross_entropy_loss, distillation_loss

#: The teacher recipe: a small CNN trained with the paper's jitter (random shifts of up to 2 pixels).
TEACHER_RECIPE = {"arch": "CNNTeacher", "channels": [16, 32, 64], "hidden": 128, "dropout": 0.3,
                  "epochs": 8, "batch_size": 128, "lr": 2e-3, "max_shift": 2, "seed": 0}
#: FAST mode: the same network, fewer epochs (on the FAST subset).
FAST_TEACHER_RECIPE = {**TEACHER_RECIPE, "epochs": 2}


def fingerprint(x: torch.Tensor) -> str:
    """A short sha256 of a tensor's values: part of the cache key of anything computed from it."""
    array = np.ascontiguousarray(x.detach().cpu().numpy())
    return hashing.sha256_bytes(array.tobytes())[:16] + f"-{tuple(x.shape)}"


def build_teacher(recipe: dict) -> torch.nn.Module:
    """An untrained teacher network from a recipe."""
    return models.CNNTeacher(channels=recipe["channels"], hidden=recipe["hidden"], dropout=recipe["dropout"])


def mnist_teacher(splits: data.MnistSplits, recipe: Optional[dict] = None, progress: bool = True):
    """The trained MNIST teacher: loaded from the cache, or trained once (8 epochs of a small CNN).

    Args:
        splits: the data (its training split trains the teacher; the key includes its fingerprint).
        recipe: defaults to ``TEACHER_RECIPE`` (``FAST_TEACHER_RECIPE`` in FAST mode).
    Returns:
        ``(teacher, from_cache)``; the teacher is in eval mode.
    """
    recipe = recipe or (FAST_TEACHER_RECIPE if config.is_fast() else TEACHER_RECIPE)
    key = teacher_key(splits, recipe)

    def fit_teacher(model):
        shift = lambda xb, generator=None: data.random_shift(xb, recipe["max_shift"], generator)  # noqa: E731
        train.fit(model, splits.x_train, splits.y_train, cross_entropy_loss, epochs=recipe["epochs"],
                  batch_size=recipe["batch_size"], lr=recipe["lr"], seed=recipe["seed"], augment=shift,
                  progress=progress, desc="teacher")

    def build():
        with config.seeded(recipe["seed"]):
            return build_teacher(recipe).to(config.get_device())

    return cache.cached_model("mnist-teacher", key, build, fit_teacher)


@torch.no_grad()
def teacher_outputs(teacher: torch.nn.Module, x: torch.Tensor, teacher_key: dict, layers: Sequence[str] = (),
                    batch_size: int = 1000, name: str = "mnist-teacher-features") -> dict:
    """The teacher's logits (and named features) on ``x``, computed once and cached: "scoring old examples".

    The one cached-teacher-outputs helper of the course (offline distillation: each student run then
    costs no more than training the baseline).

    Args:
        teacher_key: the recipe that made the teacher (``teacher_key(splits)``), part of the cache key
            with a fingerprint of ``x`` and the layer names.
        layers: names from the teacher's features dict (``model(x, return_features=True)``), e.g.
            ``["block2", "embedding"]``; empty for logits only.
        name: the cache file's name.
    Returns:
        ``{"logits": (N, num_classes), layer: (N, ...) for each layer}``, float32 on the CPU. The teacher
        stays where it is; each batch of ``x`` is moved to the teacher's device.
    """
    def compute():
        device = models.model_device(teacher)
        was_training = teacher.training
        teacher.eval()
        out = {key: [] for key in ["logits", *layers]}
        try:
            for i in range(0, len(x), batch_size):
                batch = x[i:i + batch_size].to(device)
                logits, features = teacher(batch, return_features=True) if layers else (teacher(batch), {})
                out["logits"].append(logits.float().cpu())
                for layer in layers:
                    out[layer].append(features[layer].float().cpu())
        finally:
            teacher.train(was_training)
        return {key: torch.cat(parts) for key, parts in out.items()}

    key = {"model": teacher_key, "inputs": fingerprint(x)}
    if layers:
        key["layers"] = list(layers)
    # Whatever is on disk must be rows of *these* inputs: one row per image, float32.
    expected = {"logits": ((len(x), None), torch.float32), **{layer: ((len(x), ...), torch.float32) for layer in layers}}
    tensors, _ = cache.cached_tensors(name, key, compute, expected)
    return tensors


def cached_logits(model: torch.nn.Module, x: torch.Tensor, name: str, model_key: dict) -> torch.Tensor:
    """``model``'s logits on ``x``, computed once and cached (:func:`teacher_outputs` without features).

    Args:
        model_key: the recipe that made the model (with its data fingerprint), part of the cache key.
    """
    return teacher_outputs(model, x, model_key, (), name=name)["logits"]


def jittered_views(teacher: torch.nn.Module, x: torch.Tensor, views: int, model_key: dict,
                   max_shift: int = 2, seed: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """A bigger transfer set: ``views`` jittered copies of ``x``, each scored once by the teacher (cached).

    Copy ``v`` shifts every image by its own random offset of up to ``max_shift`` pixels (seed
    ``seed + v``), as the teacher's own training did. A student trained on these sees a new
    version of each digit every pass, with the teacher's soft targets *for that version*: the
    teacher and student always look at the same image, so the targets stay consistent.

    Returns:
        ``(x_views, teacher_logits)`` of shapes ``(views * N, ...)`` and ``(views * N, num_classes)``;
        row ``v * N + i`` is copy ``v`` of image ``i``, so labels are ``labels.repeat(views)``.
    """
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    xs, logits = [], []
    for view in range(views):
        shifted = data.random_shift(x, max_shift, torch.Generator().manual_seed(seed + view))
        xs.append(shifted)
        logits.append(cached_logits(teacher, shifted, "mnist-teacher-logits-view", model_key))
    return torch.cat(xs), torch.cat(logits)


def teacher_key(splits: data.MnistSplits, recipe: Optional[dict] = None) -> dict:
    """The cache key of the teacher made by ``mnist_teacher(splits, recipe)``."""
    recipe = recipe or (FAST_TEACHER_RECIPE if config.is_fast() else TEACHER_RECIPE)
    return {**recipe, "data": fingerprint(splits.x_train), "labels": fingerprint(splits.y_train)}


def train_student(x: torch.Tensor, labels: torch.Tensor, teacher_logits: Optional[torch.Tensor] = None,
                  hidden: Sequence[int] = (800, 800), temperature: float = 20.0, alpha: float = 0.9,
                  epochs: int = 20, batch_size: int = 256, lr: float = 1e-3, seed: int = 0,
                  progress: bool = True, x_eval: Optional[torch.Tensor] = None,
                  y_eval: Optional[torch.Tensor] = None):
    """Train an MLP student: on hard labels (``teacher_logits=None``) or with :func:`distillation_loss`.

    Args:
        x, labels: the transfer set (N, 1, 28, 28) and its labels (N,).
        teacher_logits: (N, 10) cached teacher logits for the same rows, or None for the baseline.
        hidden: the student's widths, e.g. (800, 800) or (30, 30). No dropout: the paper's student.
        temperature, alpha: the KD temperature and the weight of the soft-target term.
        x_eval, y_eval: if given, accuracy on them is recorded after every epoch
            (``history.val_accuracy``), e.g. to draw a learning curve.
    Returns:
        ``(student, history)``.
    """
    with config.seeded(seed):  # the same initial weights for every student of this seed
        student = models.MLP(hidden=hidden).to(config.get_device())
    if teacher_logits is None:
        history = train.fit(student, x, labels, cross_entropy_loss, epochs=epochs, batch_size=batch_size,
                            lr=lr, seed=seed, x_val=x_eval, y_val=y_eval, progress=progress,
                            desc=f"student {tuple(hidden)} labels")
    else:
        loss = functools.partial(distillation_loss, temperature=temperature, alpha=alpha)
        history = train.fit(student, x, (teacher_logits, labels), loss, epochs=epochs, batch_size=batch_size,
                            lr=lr, seed=seed, x_val=x_eval, y_val=y_eval, progress=progress,
                            desc=f"student {tuple(hidden)} T={temperature:g} alpha={alpha:g}")
    return student, history


def choose_class_bias(logits: torch.Tensor, labels: torch.Tensor, cls: int,
                      candidates: Sequence[float] = tuple(np.arange(0.0, 10.01, 0.25))) -> float:
    """The bias added to class ``cls``'s logit that maximises accuracy on (validation) data.

    Ties go to the smallest bias. Use the validation split: tuning on test would report
    an optimistic number (the paper tuned its bias of 3.5 on the test set).
    """
    biases = torch.as_tensor([float(b) for b in candidates], dtype=logits.dtype, device=logits.device)
    if biases.numel() == 0:
        raise ValueError("no candidate biases to try")
    shifted = logits.unsqueeze(0).repeat(len(biases), 1, 1)  # one copy of the logits per candidate
    shifted[:, :, cls] += biases[:, None]
    correct = (shifted.argmax(dim=2) == labels.to(logits.device)).sum(dim=1)
    return float(biases[correct == correct.max()].min())  # ties: the smallest bias
