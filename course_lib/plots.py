"""Figures shared by the lessons: soft-target bars, heatmaps, the temperature explorer (lesson 01).

Presentation only: nothing here changes a number. Each function draws one titled figure
with labelled axes and returns the matplotlib ``Figure``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .losses import softmax_with_temperature


def soft_target_bars(image: torch.Tensor, logits: torch.Tensor, temperatures: Sequence[float],
                     title: str = "") -> plt.Figure:
    """One digit and its teacher's probabilities at several temperatures, side by side."""
    fig, axes = plt.subplots(1, len(temperatures) + 1, figsize=(3.0 * (len(temperatures) + 1), 2.8))
    axes[0].imshow(image.squeeze().cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    axes[0].set_title("input digit")
    for ax, temperature in zip(axes[1:], temperatures):
        probs = softmax_with_temperature(logits.unsqueeze(0).float(), temperature)[0]
        ax.bar(range(10), probs.numpy(), color="tab:blue")
        ax.set_xticks(range(10))
        ax.set_ylim(0, 1)
        ax.set_title(f"temperature {temperature:g}")
        ax.set_xlabel("class (digit)")
        ax.set_ylabel("probability")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap(matrix: np.ndarray, title: str, xlabel: str, ylabel: str, fmt: str = "{:.2f}",
            cmap: str = "viridis", colorbar_label: str = "", log: bool = False) -> plt.Figure:
    """A 2-D array as a titled heatmap with every cell annotated."""
    from matplotlib.colors import LogNorm

    matrix = np.asarray(matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    norm = LogNorm(vmin=max(matrix[matrix > 0].min(), 1e-6), vmax=matrix.max()) if log else None
    im = ax.imshow(matrix, cmap=cmap, norm=norm)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, fmt.format(matrix[i, j]), ha="center", va="center", fontsize=6.5,
                    color="white" if im.norm(matrix[i, j]) < 0.5 else "black")
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=colorbar_label)
    fig.tight_layout()
    return fig


def temperature_explorer(images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                         temperature: float = 4.0, index: int = 0) -> Optional[object]:
    """Sliders over temperature and digit showing the softened distribution.

    Draws a static figure for the starting values first, so a headless run (CI, HTML
    export) still shows a picture; then adds the ipywidgets sliders when a widget
    front end can show them.
    """
    def draw(temperature: float = temperature, index: int = index):
        fig = soft_target_bars(images[index], logits[index], [temperature],
                               title=f"test digit #{index} (true label {int(labels[index])})")
        plt.show()
        return fig

    try:
        import ipywidgets as widgets
        from IPython import get_ipython
    except ImportError:
        draw()
        return None
    if get_ipython() is None:
        draw()
        return None
    return widgets.interact(draw,
                            temperature=widgets.FloatLogSlider(value=temperature, base=10, min=-0.3, max=2, step=0.05,
                                                               description="temperature"),
                            index=widgets.IntSlider(value=index, min=0, max=len(images) - 1, description="digit #"))
