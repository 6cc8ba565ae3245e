"""Lessons 05 and 06's figures stay readable at full scale (issue 22).

Each figure is drawn with full-mode numbers (``results/lesson05.json``, ``results/lesson06.json``, or
synthetic data of the same size and shape) and checked in display coordinates, after a real draw:
no legend covers a plotted point, line, bar or label, and no text is smaller than 8 pt.
"""
import json

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from course_lib import config, evaluate, plots

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MIN_POINTS = 8
QUEUES = ["billing", "delivery", "refund", "fraud", "account", "other"]


def _legends(fig):
    found = list(fig.legends)
    for ax in fig.axes:
        if ax.get_legend() is not None:
            found.append(ax.get_legend())
    return found


def _line_pixels(points_px: np.ndarray, steps: int = 40) -> np.ndarray:
    """The pixels along a polyline (its vertices and points between them), so a segment crossing a box counts."""
    if len(points_px) < 2:
        return points_px
    t = np.linspace(0, 1, steps)[:, None]
    return np.concatenate([a + t * (b - a) for a, b in zip(points_px[:-1], points_px[1:])])


def data_artists_px(ax, renderer) -> tuple[list[np.ndarray], list]:
    """(pixel arrays of lines, markers and error bars; window boxes of bars and texts) plotted in ``ax``."""
    pixels, boxes = [], []
    for line in ax.lines:
        if not line.get_visible():
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        pixels.append(_line_pixels(xy) if line.get_linestyle() not in ("None", "none", "", " ") else xy)
    for collection in ax.collections:
        if isinstance(collection, LineCollection):
            transform = collection.get_transform()
            for segment in collection.get_segments():
                pixels.append(_line_pixels(transform.transform(np.asarray(segment, dtype=float))))
        elif isinstance(collection, PathCollection):
            offsets = np.asarray(collection.get_offsets(), dtype=float)
            pixels.append(collection.get_offset_transform().transform(offsets))
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and patch.get_visible():
            boxes.append(patch.get_window_extent(renderer))
    texts = list(ax.texts) + [ax.xaxis.label, ax.yaxis.label, ax.title]
    for axis in (ax.xaxis, ax.yaxis):      # the tick labels drawn: those of ticks inside the view
        low, high = sorted(axis.get_view_interval())
        texts += [tick.label1 for tick in axis.get_major_ticks() if low <= tick.get_loc() <= high]
    for text in texts:
        if text.get_visible() and text.get_text().strip():
            boxes.append(text.get_window_extent(renderer))
    return pixels, boxes


def legend_overlaps(fig) -> list[str]:
    """What each legend covers: plotted points, lines, bars, or texts of any axes in ``fig``."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for legend in _legends(fig):
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            pixels, boxes = data_artists_px(ax, renderer)
            for px in pixels:
                if len(px) and np.any((px[:, 0] > box.x0) & (px[:, 0] < box.x1) & (px[:, 1] > box.y0) & (px[:, 1] < box.y1)):
                    found.append(f"legend covers plotted data in '{ax.get_title()}'")
                    break
            for other in boxes:
                inter_w = min(box.x1, other.x1) - max(box.x0, other.x0)
                inter_h = min(box.y1, other.y1) - max(box.y0, other.y0)
                if inter_w > 1 and inter_h > 1:
                    found.append(f"legend covers a bar or text in '{ax.get_title()}'")
                    break
    return found


def small_texts(fig) -> list[str]:
    """Every visible, non-empty text of ``fig`` under 8 pt."""
    fig.canvas.draw()
    return [f"{t.get_text()!r} at {t.get_fontsize():.1f} pt" for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_POINTS]


def overlapping_titles_and_labels(fig) -> list[str]:
    """Pairs of overlapping texts among the figure title, axes titles and annotations."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.title] + list(ax.texts)
    texts = [t for t in texts if t.get_visible() and t.get_text().strip()]
    boxes = [t.get_window_extent(renderer) for t in texts]
    found = []
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            a, b = boxes[i], boxes[j]
            if min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1:
                found.append(f"{texts[i].get_text()!r} overlaps {texts[j].get_text()!r}")
    return found


def assert_readable(fig):
    assert legend_overlaps(fig) == []
    assert small_texts(fig) == []


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def lesson05():
    return json.loads((config.results_dir() / "lesson05.json").read_text())


def lesson06():
    return json.loads((config.results_dir() / "lesson06.json").read_text())


def slice_rows(prefix_edge: bool):
    rows = [{"name": name, **metrics} for name, metrics in lesson05()["router"]["slices"].items()
            if name.startswith("edge: ") == prefix_edge]
    return sorted(rows, key=lambda r: r["student_accuracy"]) if prefix_edge else rows


@pytest.mark.parametrize("edge", [False, True])
def test_slice_plot_legend_clear_and_paired_gap_drawn(edge):
    rows = slice_rows(edge)
    fig = plots.slice_plot(rows, "slices: teacher vs soft-target student")
    assert_readable(fig)
    gap_axes = [ax for ax in fig.axes if "gap" in ax.get_xlabel()]
    assert len(gap_axes) == 1                                      # the paired gap is plotted, not only the accuracies
    bars = [c for c in gap_axes[0].collections if isinstance(c, LineCollection)]
    assert sum(len(c.get_segments()) for c in bars) == len(rows)   # one paired-bootstrap interval per slice


def full_scale_matrix():
    """A disagreement matrix of 2,000 test emails: a heavy diagonal, a few dozen off it, zeros among them."""
    matrix = np.diag([311, 305, 319, 315, 298, 324])
    matrix[4, 3], matrix[0, 4], matrix[3, 0], matrix[1, 2], matrix[2, 0], matrix[5, 4] = 21, 14, 9, 6, 3, 1
    return matrix


def test_disagreement_matrix_counts_readable_and_scale_off_the_diagonal():
    matrix = full_scale_matrix()
    fig = plots.disagreement_matrix(matrix, QUEUES, "where teacher and student route differently")
    assert_readable(fig)
    ax = fig.axes[0]
    cell_texts = [t.get_text() for t in ax.texts]
    assert len(cell_texts) == matrix.size and cell_texts.count("0") == int(np.sum(matrix == 0))  # zeros written
    image = ax.images[0]
    assert image.norm.vmax == matrix[~np.eye(6, dtype=bool)].max()   # the diagonal does not set the colour scale


def confident_probs(n=2000, seed=0):
    """A router-like model on 2,000 emails: most rows above 0.95, a sparse tail of doubtful ones (as lesson 05's teacher)."""
    gen = np.random.default_rng(seed)
    labels = gen.integers(0, 6, n)
    top = np.where(gen.random(n) < 0.85, gen.uniform(0.97, 1.0, n), gen.uniform(0.3, 0.97, n))
    top[:3] = [0.24, 0.25, 0.26]                 # a sparse, doubtful bin that happens to be all right: a tall bar
    pred = np.where(gen.random(n) < top, labels, (labels + 1) % 6)
    pred[:3] = labels[:3]
    probs = np.full((n, 6), 0.0)
    probs[np.arange(n), pred] = top
    probs += (1 - top)[:, None] / 6
    probs[np.arange(n), pred] -= (1 - top) / 6
    return probs / probs.sum(1, keepdims=True), labels


def test_reliability_diagrams_show_bin_counts_and_legend_clear_of_bars():
    probs, labels = confident_probs()
    fig, axes = plt.subplots(2, 2, figsize=(9.6, 9))
    for ax in axes.ravel():
        plots.reliability_diagram(probs, labels, 15, ax=ax, title="teacher, as trained")
    fig.suptitle("Reliability diagrams on the test emails")
    fig.tight_layout()
    assert_readable(fig)
    counts = evaluate.calibration_bins(probs, labels, 15)["counts"]
    shown = {t.get_text() for t in axes[0, 0].texts}
    assert {f"{int(c):,}" for c in counts if c > 0} <= shown      # every non-empty bin says how many emails it holds


def test_digit_gallery_title_clear_of_three_line_panel_titles():
    images = [np.random.default_rng(k).random((28, 28)) for k in range(6)]
    titles = [f"true {k}\nstudent {(k + 1) % 10} (99%)\nteacher {k}" for k in range(6)]
    fig = plots.image_gallery(images, titles, "Digits the distilled student gets wrong and the teacher right")
    assert_readable(fig)
    assert overlapping_titles_and_labels(fig) == []


def test_cascade_cost_marks_threshold_and_student_alone():
    probs, labels = confident_probs()
    teacher, _ = confident_probs(seed=1)
    teacher[np.arange(len(labels)), labels] += 0.5
    teacher /= teacher.sum(1, keepdims=True)
    grid = np.unique(np.quantile(probs.max(1), np.linspace(0, 1, 61)))
    curve = evaluate.cascade_curve(probs, teacher, labels, grid, student_cost=22e-6, teacher_cost=0.0112)
    threshold = float(grid[20])
    fig = plots.cascade_cost(curve, threshold, 0.9545, float(np.mean(probs.argmax(1) == labels)), 22.15)
    assert_readable(fig)
    legend_texts = " ".join(t.get_text() for legend in _legends(fig) for t in legend.get_texts())
    assert f"threshold {threshold:.3f}" in legend_texts and "student alone" in legend_texts


def test_pareto_plot_labels_the_frontier_only_and_nothing_overlaps():
    rows = lesson06()["mnist"]["rows"]
    fig = plots.pareto_plot(rows, [("bytes", 1e6, "size on disk (MB, log scale)"),
                                   ("ms_batch1", 1.0, "latency at batch 1 (ms, log scale)")])
    assert_readable(fig)
    assert overlapping_titles_and_labels(fig) == []
    from course_lib.compress import pareto_front
    errors = -np.array([r["test_errors"] for r in rows], dtype=float)
    for ax, key in zip(fig.axes, ["bytes", "ms_batch1"]):
        front = pareto_front([r[key] for r in rows], errors)
        assert sorted(t.get_text() for t in ax.texts) == sorted(rows[i]["model"] for i in front)
        assert ax.get_yscale() == "log"


def test_the_checks_catch_what_they_are_for():
    """The checker itself: a legend inside on top of the points, and 6-pt text, are both reported."""
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="a diagonal through the middle")
    ax.text(0.1, 0.8, "tiny", fontsize=6)
    ax.legend(loc="center")
    assert legend_overlaps(fig) and small_texts(fig) == ["'tiny' at 6.0 pt"]
