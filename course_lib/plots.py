"""Figures shared by the lessons: soft-target bars, heatmaps, the temperature (01) and cascade (05) explorers,
the reliability diagram (04, 05) and lesson 05-06's slice, disagreement, cascade-cost and Pareto plots.

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

from . import evaluate
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


def reliability_diagram(probs, labels, n_bins: int = 15, ax=None, title: str = "reliability diagram"):
    """Accuracy per confidence bin against the diagonal of perfect calibration; returns the Figure (lesson 05).

    Bars below the diagonal are over-confident bins; the number above each bar is the bin's
    count, so a sparse bin is not read as weighty as a full one. The title carries the ECE, the
    legend sits below the axes (never over a bar). Draws on ``ax`` when given (its figure is
    returned); never calls ``plt.show``.
    """
    bins = evaluate.calibration_bins(probs, labels, n_bins)
    ece = evaluate.expected_calibration_error(probs, labels, n_bins)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.8, 4.4))
    else:
        fig = ax.figure
    full = bins["counts"] > 0
    width = np.diff(bins["edges"])
    ax.bar(bins["edges"][:-1][full], bins["accuracy"][full], width=width[full], align="edge",
           color="tab:blue", edgecolor="white", label="accuracy in bin (number: emails in it)")
    # each bin's count above its bar: a bin of 3 rows looks as weighty as one of 1,500 without it
    for left, w, acc, count in zip(bins["edges"][:-1][full], width[full], bins["accuracy"][full], bins["counts"][full]):
        ax.text(left + w / 2, acc + 0.02, f"{int(count):,}", rotation=90, ha="center", va="bottom", fontsize=8)
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.3)           # room for the counts above a bar at 1.0
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("confidence (top probability, 0-1)")
    ax.set_ylabel("accuracy (share correct, 0-1)")
    ax.set_title(f"{title}\n(ECE {ece:.3f}, {n_bins} bins)")
    # below the axes: inside, the legend hid the tallest bar of a confident model
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    return fig


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


# --- Lesson 05 and 06 figures, readable at full scale -------------------------------------------------------
# Every text is at least 8 pt, and every legend sits outside the axes, where it cannot hide a point
# (tests/test_figures_readable.py draws each with full-mode numbers and checks both).

MIN_FONT = 8


def slice_plot(rows: Sequence[dict], title: str, names: tuple[str, str] = ("teacher", "student")) -> Figure:
    """Per slice: both accuracies with Wilson intervals, and the paired gap with its bootstrap interval (lesson 05).

    ``rows`` are :func:`course_lib.evaluate.slice_metrics`'s dicts. The left panel shows each
    model's accuracy (unpaired Wilson intervals); the right one the teacher-minus-student gap
    with its paired-bootstrap interval, which is what says whether a slice's gap is more than
    noise (both accuracies are measured on the same emails). The legend sits below the axes.
    """
    fig = plt.figure(figsize=(11, 0.42 * len(rows) + 2.4), layout="constrained")
    ax_acc, ax_gap = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [1.4, 1]})
    y = np.arange(len(rows))
    for offset, who, color in [(-0.17, "teacher", "black"), (0.17, "student", "tab:green")]:
        acc = np.array([100 * r[f"{who}_accuracy"] for r in rows])
        ci = np.array([[100 * r[f"{who}_ci"][0], 100 * r[f"{who}_ci"][1]] for r in rows])
        ax_acc.errorbar(acc, y + offset, xerr=[acc - ci[:, 0], ci[:, 1] - acc], fmt="o", capsize=3, color=color,
                        label=f"{names[0 if who == 'teacher' else 1]} accuracy (95% Wilson interval)")
    gap = np.array([100 * r["accuracy_gap"] for r in rows])
    gap_ci = np.array([[100 * r["gap_ci"][0], 100 * r["gap_ci"][1]] for r in rows])
    ax_gap.errorbar(gap, y, xerr=[gap - gap_ci[:, 0], gap_ci[:, 1] - gap], fmt="s", capsize=3, color="tab:purple",
                    label=f"{names[0]} minus {names[1]} (95% paired-bootstrap interval)")
    ax_gap.axvline(0, color="grey", linewidth=1)
    ax_acc.set_yticks(y, [f"{r['name']} (n={r['n']:,})" for r in rows])
    ax_acc.invert_yaxis()
    ax_acc.set_xlabel("accuracy (%)")
    ax_gap.set_xlabel(f"gap, {names[0]} minus {names[1]} (points)")
    ax_acc.set_title("accuracy per slice")
    ax_gap.set_title("paired gap: right of 0, the teacher is better")
    fig.suptitle(title)
    fig.legend(loc="outside lower center", ncol=3, fontsize=MIN_FONT + 1, frameon=False)
    return fig


def disagreement_matrix(matrix: np.ndarray, names: Sequence[str], title: str,
                        xlabel: str = "student's queue", ylabel: str = "teacher's queue") -> Figure:
    """Counts of (teacher's class, student's class), coloured by the off-diagonal cells only (lesson 05).

    The diagonal (both agree) holds most of the rows; on a shared colour scale it would wash out the
    disagreements the figure is for, so it is drawn in grey with its count and kept off the scale.
    Every cell carries its count, zeros included (written "0", in grey).
    """
    from matplotlib.colors import ListedColormap, Normalize

    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    diagonal = np.eye(n, dtype=bool)
    off_max = max(int(matrix[~diagonal].max()) if n > 1 else 0, 1)
    fig, ax = plt.subplots(figsize=(7.6, 6.4), layout="constrained")
    im = ax.imshow(np.ma.masked_where(diagonal, matrix), cmap="viridis", norm=Normalize(0, off_max))
    ax.imshow(np.ma.masked_where(~diagonal, np.ones_like(matrix)), cmap=ListedColormap(["#d9d9d9"]))
    for i in range(n):
        for j in range(matrix.shape[1]):
            value = int(matrix[i, j])
            if i == j:
                color = "black"
            elif value == 0:
                color = "grey"
            else:
                color = "white" if im.norm(value) < 0.5 else "black"
            ax.text(j, i, f"{value:,}", ha="center", va="center", fontsize=10, color=color)
    ax.set_xticks(range(matrix.shape[1]), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel(xlabel + "\n(grey diagonal: same queue, not on the colour scale; 0: no email)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="emails routed differently (off the diagonal)")
    return fig


def image_gallery(images: Sequence[np.ndarray], titles: Sequence[str], title: str) -> Figure:
    """Small images side by side, each with a (multi-line) title under one figure title (lesson 05).

    Constrained layout keeps the figure title clear of the panel titles, however many lines they have.
    """
    fig = plt.figure(figsize=(max(1.9 * len(images), 6.4), 3.1), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(images)))
    for ax, image, text in zip(axes, images, titles):
        ax.imshow(np.asarray(image).squeeze(), cmap="gray")
        ax.set_title(text, fontsize=MIN_FONT + 1)
        ax.axis("off")
    fig.suptitle(title)
    return fig


def cascade_cost(curve: Sequence[dict], threshold: float, teacher_accuracy: float, student_accuracy: float,
                 student_cpu_s_per_million: float, title: str = "What accuracy costs: the cascade on test") -> Figure:
    """Cascade accuracy against CPU-seconds per million emails, with the chosen threshold and the student alone (lesson 05).

    ``curve`` is :func:`course_lib.evaluate.cascade_curve`'s rows, computed with costs.
    """
    fig, ax = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
    ax.plot([r["cpu_s_per_million"] for r in curve], [100 * r["accuracy"] for r in curve], marker=".",
            color="tab:blue", label="cascade, one point per threshold")
    ax.axhline(100 * teacher_accuracy, color="black", linestyle="--", label="teacher alone")
    ax.plot(student_cpu_s_per_million, 100 * student_accuracy, "s", color="tab:green", markersize=8,
            label=f"student alone: {100 * student_accuracy:.1f}% at {student_cpu_s_per_million:,.0f} CPU-s")
    row = min(curve, key=lambda r: abs(r["threshold"] - threshold))
    ax.plot(row["cpu_s_per_million"], 100 * row["accuracy"], "o", color="tab:red", markersize=9,
            label=f"threshold {row['threshold']:.3f} (chosen on validation): {100 * row['accuracy']:.1f}% at "
                  f"{row['cpu_s_per_million']:,.0f} CPU-s")
    ax.set_xscale("log")
    ax.set_xlabel("CPU-seconds per million emails (log scale)")
    ax.set_ylabel("accuracy on test (%)")
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncol=2, fontsize=MIN_FONT + 1, frameon=False)
    return fig


def _place_labels(ax, points: Sequence[tuple[float, float]], labels: Sequence[str], avoid_points) -> None:
    """Annotate each point, trying a few offsets until its label overlaps no earlier label, marker or frontier line."""
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    line_px = ax.transData.transform(np.asarray(points, dtype=float))
    steps = np.linspace(0, 1, 25)[:, None]
    along = [a + steps * (b - a) for a, b in zip(line_px[:-1], line_px[1:])]   # the line between the points
    marker_px = [ax.transData.transform(p) for p in avoid_points] + [xy for segment in along for xy in segment]
    inside = ax.get_window_extent(renderer)
    offsets = [(7, 4, "left"), (7, -13, "left"), (-7, 4, "right"), (-7, -13, "right"),
               (7, 16, "left"), (7, -25, "left"), (-7, 16, "right"), (-7, -25, "right"),
               (7, 28, "left"), (7, -37, "left")]
    for point, label in zip(points, labels):
        for dx, dy, ha in offsets:
            text = ax.annotate(label, point, xytext=(dx, dy), textcoords="offset points", ha=ha, fontsize=MIN_FONT + 1)
            box = text.get_window_extent(renderer).expanded(1.05, 1.2)
            clear = (not any(box.overlaps(other) for other in placed)
                     and not any(box.contains(x, y) for x, y in marker_px)
                     and inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1)
            if clear or (dx, dy, ha) == offsets[-1]:
                placed.append(box)
                break
            text.remove()


def pareto_plot(rows: Sequence[dict], costs: Sequence[tuple[str, float, str]], title: str = "") -> Figure:
    """Test errors (log scale) against each cost, every model a grey point, the Pareto frontier named (lesson 06).

    Args:
        rows: dicts with ``model``, ``test_errors`` and each cost key.
        costs: ``(key, divisor, axis label)`` per panel, e.g. ``("bytes", 1e6, "size on disk (MB)")``.
    Errors on a log axis spread the good models apart (accuracy would crowd them into one band);
    only the frontier is labelled, and the legend sits below the axes.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from .compress import pareto_front

    fig = plt.figure(figsize=(7.0 * len(costs), 5.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(costs)))
    errors = np.array([max(int(r["test_errors"]), 1) for r in rows], dtype=float)
    for ax, (key, divisor, label) in zip(axes, costs):
        cost = np.array([r[key] / divisor for r in rows], dtype=float)
        front = pareto_front(cost, -errors)
        ax.scatter(cost, errors, color="tab:grey", s=30, label="a model (off the frontier: dominated)")
        ax.plot(cost[front], errors[front], color="tab:green", marker="o", label="Pareto frontier (named)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):           # plain numbers at 1, 2, 5 x 10^k: no crowded minor labels
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel("test errors (log scale; lower is better)")
        ax.set_title(f"errors against {label.split(' (')[0]}")
        ax.margins(x=0.25, y=0.15)
    fig.canvas.draw()   # the axes limits are final before the labels are placed
    for ax, (key, divisor, _) in zip(axes, costs):
        cost = np.array([r[key] / divisor for r in rows], dtype=float)
        front = pareto_front(cost, -errors)
        _place_labels(ax, [(cost[i], errors[i]) for i in front], [rows[i]["model"] for i in front],
                      list(zip(cost, errors)))
    if title:
        fig.suptitle(title)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=MIN_FONT + 1, frameon=False)
    return fig
