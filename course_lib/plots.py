"""Figures shared by the lessons: soft-target bars, heatmaps, the temperature (01) and cascade (05) explorers.

Presentation only: nothing here changes a number. Each function draws one titled figure
with labelled axes and returns the matplotlib ``Figure``; the explorers return their widgets.
"""
from __future__ import annotations

import base64
import io
import threading
from typing import Optional, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .losses import softmax_with_temperature

#: The explorer's temperatures: a fixed grid, so the slider's value is exactly one of them.
EXPLORER_TEMPERATURES = (0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0)


def _draw_soft_target_bars(fig: Figure, image: torch.Tensor, logits: torch.Tensor,
                           temperatures: Sequence[float], title: str) -> Figure:
    """Fill ``fig`` with the digit and one bar chart per temperature (pyplot-free, so any thread may call it)."""
    axes = fig.subplots(1, len(temperatures) + 1, gridspec_kw={"width_ratios": [0.8] + [1.0] * len(temperatures)})
    axes[0].imshow(image.squeeze().cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    axes[0].set_title("input digit")
    for ax, temperature in zip(axes[1:], temperatures):
        probs = softmax_with_temperature(logits.unsqueeze(0).float(), temperature)[0]
        ax.bar(range(10), probs.numpy(), color="tab:blue")
        ax.set_xticks(range(10))
        ax.set_xlim(-0.6, 9.6)
        ax.set_ylim(0, 1)
        ax.set_title(f"temperature {temperature:g}")
        ax.set_xlabel("class (digit)")
        ax.set_ylabel("probability")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def soft_target_bars(image: torch.Tensor, logits: torch.Tensor, temperatures: Sequence[float],
                     title: str = "") -> Figure:
    """One digit and its teacher's probabilities at several temperatures, side by side (lesson 01)."""
    fig = plt.figure(figsize=(3.0 * (len(temperatures) + 1), 2.8))
    return _draw_soft_target_bars(fig, image, logits, temperatures, title)


def heatmap(matrix: np.ndarray, title: str, xlabel: str, ylabel: str, fmt: Optional[str] = None,
            cmap: str = "viridis", colorbar_label: str = "", log: bool = False) -> Figure:
    """A 2-D array as a titled heatmap with every cell annotated (lesson 01).

    ``fmt`` defaults to the colour scale's: two decimals on a linear scale, two significant
    digits on a log scale (``{:.2g}``), so a cell of 3e-05 reads "3e-05", never "0.00".
    """
    from matplotlib.colors import LogNorm

    matrix = np.asarray(matrix, dtype=float)
    if fmt is None:
        fmt = "{:.2g}" if log else "{:.2f}"
    fig, ax = plt.subplots(figsize=(6.8, 5.6))
    norm = LogNorm(vmin=max(matrix[matrix > 0].min(), 1e-6), vmax=matrix.max()) if log else None
    im = ax.imshow(matrix, cmap=cmap, norm=norm)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, fmt.format(matrix[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if im.norm(matrix[i, j]) < 0.5 else "black")
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=colorbar_label)
    fig.tight_layout()
    return fig


def _png(fig: Figure) -> bytes:
    """A figure as PNG bytes, rendered by Agg directly (no pyplot, no global state)."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


class _ExplorerBox(widgets.VBox):
    """A VBox whose display also carries a PNG of its figure, for front ends that cannot show widgets."""

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["image/png"] = base64.b64encode(self.children[-1].value).decode("ascii")
        bundle["text/plain"] = "interactive figure (its sliders need a widget front end such as JupyterLab)"
        return bundle


def temperature_explorer(images: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                         temperature: float = 4.0, index: int = 0) -> widgets.VBox:
    """Sliders over temperature and digit showing the teacher's softened distribution (lesson 01).

    Returns an ipywidgets box; make it a cell's last line to show it. A front end with widgets
    (JupyterLab, Notebook 7, VS Code) shows the live sliders and figure; one without (nbval, an
    HTML export, GitHub) shows a static PNG of the starting values instead, never both.

    Safe against a redraw while other cells run: JupyterLab may deliver slider changes on a kernel
    subshell thread, and pyplot is not thread-safe, so the figure is drawn with matplotlib's
    object API on a private ``Figure``, under a lock, into an ``Image`` widget.

    Args:
        images: test digits, shape (N, 1, 28, 28), values in [0, 1].
        logits: the teacher's logits for them, shape (N, 10).
        labels: true digits, shape (N,).
        temperature: starting temperature; added to :data:`EXPLORER_TEMPERATURES` if not on it.
        index: starting digit, 0 <= index < N.
    """
    options = sorted(set(EXPLORER_TEMPERATURES) | {float(temperature)})
    temperature_slider = widgets.SelectionSlider(options=[(f"{t:g}", t) for t in options], value=float(temperature),
                                                 description="temperature", style={"description_width": "initial"})
    index_slider = widgets.IntSlider(value=index, min=0, max=len(images) - 1, description="digit #",
                                     continuous_update=False, style={"description_width": "initial"})
    lock = threading.Lock()

    def png() -> bytes:
        with lock:
            i, t = int(index_slider.value), float(temperature_slider.value)
            fig = Figure(figsize=(6.4, 2.6), dpi=100)
            _draw_soft_target_bars(fig, images[i], logits[i], [t],
                                   title=f"test digit #{i} (true label {int(labels[i])}): teacher's probabilities")
            return _png(fig)

    picture = widgets.Image(value=png(), format="png", layout=widgets.Layout(max_width="100%", height="auto"))

    def redraw(change=None) -> None:
        picture.value = png()

    temperature_slider.observe(redraw, names="value")
    index_slider.observe(redraw, names="value")
    return _ExplorerBox([widgets.HBox([temperature_slider, index_slider]), picture])


def draw_cascade(ax, curve: Sequence[dict], threshold: Optional[float] = None, teacher_accuracy: Optional[float] = None,
                 title: str = "cascade: accuracy vs share sent to the teacher"):
    """Draw the rows of :func:`course_lib.evaluate.cascade_curve` on ``ax`` (introduced in lesson 05).

    Accuracy (%) against the share of emails the teacher reads (%).

    Marks the row of ``threshold`` (the nearest one in the curve) and the teacher-alone accuracy.
    Uses matplotlib's object API only (no pyplot), so a widget callback on any thread may call it.
    """
    share = [100 * row["share_to_teacher"] for row in curve]
    acc = [100 * row["accuracy"] for row in curve]
    ax.plot(share, acc, color="tab:blue", label="cascade")
    if teacher_accuracy is not None:
        ax.axhline(100 * teacher_accuracy, color="black", linestyle="--", label="teacher alone")
    if threshold is not None:
        row = min(curve, key=lambda r: abs(r["threshold"] - threshold))
        ax.plot(100 * row["share_to_teacher"], 100 * row["accuracy"], "o", color="tab:red", markersize=8,
                label=f"threshold {row['threshold']:.3f}: {100 * row['share_to_teacher']:.1f}% to the teacher, "
                      f"{100 * row['accuracy']:.1f}% right")
    ax.set_xlabel("emails the teacher reads (%)")
    ax.set_ylabel("cascade accuracy (%)")
    ax.set_title(title)
    # below the axes: inside, wherever it sat, it hid part of some curve
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, frameon=False)
    return ax


def cascade_explorer(curve: Sequence[dict], threshold: float, teacher_accuracy: Optional[float] = None):
    """A threshold slider over a cascade curve (lesson 05); a static PNG where widgets cannot run.

    Args:
        curve: :func:`course_lib.evaluate.cascade_curve`'s rows (e.g. on the test set, for a chosen grid of thresholds).
        threshold: the slider's starting value (the threshold chosen on validation).
        teacher_accuracy: drawn as a dashed line.
    Returns an ipywidgets box; as a cell's last line a widget front end shows the live slider, any other
    (nbval, an HTML export) the PNG of the starting threshold (the pattern of lesson 01's explorer).
    """
    thresholds = [row["threshold"] for row in curve]
    start = min(thresholds, key=lambda t: abs(t - threshold))
    slider = widgets.SelectionSlider(options=[(f"{t:.3f}", t) for t in thresholds], value=start,
                                     description="threshold", continuous_update=False,
                                     style={"description_width": "initial"}, layout=widgets.Layout(width="60%"))
    lock = threading.Lock()

    def png() -> bytes:
        with lock:
            fig = Figure(figsize=(6.4, 4.4), dpi=100)
            draw_cascade(fig.subplots(), curve, float(slider.value), teacher_accuracy)
            fig.tight_layout()
            return _png(fig)

    picture = widgets.Image(value=png(), format="png", layout=widgets.Layout(max_width="100%", height="auto"))
    slider.observe(lambda change: setattr(picture, "value", png()), names="value")
    return _ExplorerBox([slider, picture])
