import base64
import threading

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from course_lib import plots  # noqa: E402
from tolerance import close32  # noqa: E402


def test_soft_target_bars_titles_and_heights():
    logits = torch.tensor([4.0, 1.0, 0.0, 0, 0, 0, 0, 0, 0, 0])
    fig = plots.soft_target_bars(torch.rand(1, 28, 28), logits, [1, 20], title="digit")
    axes = fig.axes
    assert axes[1].get_title() == "temperature 1" and axes[2].get_xlabel() == "class (digit)"
    assert axes[1].get_ylabel() == "probability"
    heights = [bar.get_height() for bar in axes[1].patches]
    z = logits.double().numpy()  # the reference in float64, the bars from float32 probabilities
    expected = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(heights, expected, **close32())
    plt.close(fig)


def test_heatmap_annotates_every_cell():
    fig = plots.heatmap(np.arange(6).reshape(2, 3) + 1.0, "t", "x", "y", log=True)
    ax = fig.axes[0]
    assert ax.get_title() == "t" and ax.get_xlabel() == "x" and len(ax.texts) == 6
    plt.close(fig)


def test_log_heatmap_labels_read_back_as_their_values():
    """On a log scale no cell may read '0.00': each label, parsed back, is within 5% of its value."""
    matrix = np.array([[0.9, 3e-5, 2e-3], [4e-4, 0.8, 0.07], [1.2e-6, 0.011, 0.95]])
    fig = plots.heatmap(matrix, "t", "x", "y", log=True)
    labels = [float(text.get_text()) for text in fig.axes[0].texts]
    assert np.allclose(labels, matrix.ravel(), rtol=0.05, atol=0)
    plt.close(fig)
    linear = plots.heatmap(matrix, "t", "x", "y")
    assert linear.axes[0].texts[1].get_text() == "0.00"  # a linear scale keeps two decimals
    plt.close(linear)


def _explorer():
    torch.manual_seed(0)
    return plots.temperature_explorer(torch.rand(3, 1, 28, 28), torch.randn(3, 10) * 4, torch.tensor([1, 2, 3]))


def test_temperature_explorer_bundle_has_widget_and_fallback_png_and_no_pyplot_figure():
    plt.close("all")
    box = _explorer()
    bundle = box._repr_mimebundle_()
    # a widget front end renders the view; any other renders the PNG: one picture either way
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert "function" not in bundle["text/plain"]
    assert plt.get_fignums() == []  # drawn off pyplot, so it cannot collide with a cell's plt calls


def test_temperature_explorer_starts_on_its_slider_grid_and_redraws():
    box = _explorer()
    temperature_slider, index_slider = box.children[0].children
    assert temperature_slider.value == 4.0 and 4.0 in plots.EXPLORER_TEMPERATURES
    before = box.children[-1].value
    temperature_slider.value = 20.0
    assert box.children[-1].value != before
    shown = box.children[-1].value
    index_slider.value = 2
    assert box.children[-1].value != shown


def test_temperature_explorer_redraws_safely_beside_pyplot_in_another_thread():
    """Slider changes may arrive on a kernel subshell thread while a cell plots with pyplot."""
    box = _explorer()
    temperature_slider = box.children[0].children[0]
    errors = []

    def move():
        try:
            for temperature in plots.EXPLORER_TEMPERATURES * 2:
                temperature_slider.value = temperature
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    thread = threading.Thread(target=move)
    thread.start()
    for _ in range(20):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        fig.canvas.draw()
        plt.close(fig)
    thread.join()
    assert errors == []
    assert bytes(box.children[-1].value).startswith(b"\x89PNG")
