import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from course_lib import plots  # noqa: E402


def test_soft_target_bars_titles_and_heights():
    logits = torch.tensor([4.0, 1.0, 0.0, 0, 0, 0, 0, 0, 0, 0])
    fig = plots.soft_target_bars(torch.rand(1, 28, 28), logits, [1, 20], title="digit")
    axes = fig.axes
    assert axes[1].get_title() == "temperature 1" and axes[2].get_xlabel() == "class (digit)"
    heights = [bar.get_height() for bar in axes[1].patches]
    expected = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum()
    assert np.allclose(heights, expected, atol=1e-6)


def test_heatmap_annotates_every_cell():
    fig = plots.heatmap(np.arange(6).reshape(2, 3) + 1.0, "t", "x", "y", log=True)
    ax = fig.axes[0]
    assert ax.get_title() == "t" and len(ax.texts) == 6


def test_temperature_explorer_draws_without_a_widget_frontend():
    import matplotlib.pyplot as plt

    plt.close("all")
    plots.temperature_explorer(torch.rand(3, 1, 28, 28), torch.randn(3, 10), torch.tensor([1, 2, 3]))
    # outside IPython the static figure for the starting values is drawn
    assert len(plt.get_fignums()) == 1
    assert plt.gcf().axes[1].get_title() == "temperature 4"
