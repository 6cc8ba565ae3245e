"""Models for MNIST: the paper's MLP and a small CNN teacher (introduced in lesson 00).

Every model here shares one way to expose hidden features (used from lesson 03 on):
``model(x)`` returns logits; ``model(x, return_features=True)`` returns
``(logits, features)`` where ``features`` is a dict of named intermediate tensors,
in the order they are computed.

Running any of them (or any ``nn.Module``): :func:`model_device` and :func:`predict_logits`
(batched, no gradients, inputs moved to the model's device; the model itself is never moved).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """A fully connected ReLU network on flattened 28x28 images (Hinton et al.'s 800-800 student).

    Args:
        hidden: widths of the hidden layers, e.g. ``(800, 800)`` or ``(30, 30)``.
        dropout: dropout after each hidden layer (0 = no regularisation, the paper's student).
        input_dropout: dropout on the input pixels (the paper's teacher used 0.2).
        in_features, num_classes: input size (784 for MNIST) and number of classes.

    Features: ``hidden1``, ``hidden2``, ... (post-ReLU activations, shape (N, width)).
    """

    def __init__(self, hidden: Sequence[int] = (800, 800), dropout: float = 0.0, input_dropout: float = 0.0,
                 in_features: int = 784, num_classes: int = 10):
        super().__init__()
        self.hidden = tuple(int(h) for h in hidden)
        self.input_dropout = nn.Dropout(input_dropout)
        layers = []
        width = in_features
        for h in self.hidden:
            layers.append(nn.Sequential(nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)))
            width = h
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        h = self.input_dropout(x.flatten(1))
        features = {}
        for i, layer in enumerate(self.layers, start=1):
            h = layer(h)
            features[f"hidden{i}"] = h
        logits = self.head(h)
        return (logits, features) if return_features else logits


class CNNTeacher(nn.Module):
    """A small three-block CNN teacher for MNIST (conv-BN-ReLU blocks, max-pooling, dropout).

    Args:
        channels: output channels of the three conv blocks.
        hidden: width of the fully connected layer before the classifier.
        dropout: dropout before the classifier.

    Features: ``block1`` (N, c1, 14, 14), ``block2`` (N, c2, 7, 7), ``block3`` (N, c3, 7, 7),
    ``embedding`` (N, hidden).
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128), hidden: int = 256, dropout: float = 0.3,
                 num_classes: int = 10):
        super().__init__()
        c1, c2, c3 = channels

        def block(cin: int, cout: int, pool: bool) -> nn.Sequential:
            parts = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
            if pool:
                parts.append(nn.MaxPool2d(2))
            return nn.Sequential(*parts)

        self.block1 = block(1, c1, pool=True)  # 28 -> 14
        self.block2 = block(c1, c2, pool=True)  # 14 -> 7
        self.block3 = block(c2, c3, pool=False)  # 7 -> 7
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c3 * 7 * 7, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        features = {}
        h = x
        for name in ("block1", "block2", "block3"):
            h = getattr(self, name)(h)
            features[name] = h
        h = self.fc(h)
        features["embedding"] = h
        logits = self.head(h)
        return (logits, features) if return_features else logits


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class ThinCNN(nn.Module):
    """A thin two-block CNN student for MNIST (introduced in lesson 03): conv-BN-ReLU-pool twice, then a small MLP.

    Args:
        channels: output channels of the two conv blocks, e.g. ``(4, 8)``: far thinner than the teacher's.
        hidden: width of the fully connected layer before the classifier.

    Features: ``block1`` (N, c1, 14, 14), ``block2`` (N, c2, 7, 7), ``embedding`` (N, hidden):
    the same spatial sizes as ``CNNTeacher``'s ``block1`` and ``block2``, so layers pair up
    without resizing.
    """

    def __init__(self, channels: Sequence[int] = (4, 8), hidden: int = 32, num_classes: int = 10):
        super().__init__()
        c1, c2 = channels

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.block1 = block(1, c1)  # 28 -> 14
        self.block2 = block(c1, c2)  # 14 -> 7
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 7 * 7, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        features = {}
        h = self.block1(x)
        features["block1"] = h
        h = self.block2(h)
        features["block2"] = h
        h = self.fc(h)
        features["embedding"] = h
        logits = self.head(h)
        return (logits, features) if return_features else logits


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model with neither.

    Helpers read the device from the model and move their *inputs* there; they never move
    the model, so the caller's other code keeps finding it where it left it.
    """
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batched and without gradients, returned on the CPU.

    Args:
        x: inputs, first dimension N, on any device: each batch is moved to the model's device.
    Returns:
        (N, num_classes) float32 on the CPU. The model stays where it is, and its
        train/eval mode is restored afterwards.
    """
    if len(x) == 0:
        raise ValueError("predict_logits got an empty input (x has 0 rows)")
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        outputs = [model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outputs)
