"""Decision-boundary and training-curve figures."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex

from initlab.models import MLP
from initlab.plots.boundary import BoundaryPanel, ProbabilityGrid, boundaries_figure, boundary_figure, probability_grid
from initlab.plots.history import Curves, histories_figure, history_figure
from initlab.plots.style import CLASS_COLORS, init_color


def _panel(proba, title="t", color="#2ca02c"):
    g = np.linspace(-1, 1, proba.shape[0])
    X = np.array([[0.0, 0.0], [0.5, 0.5], [-0.5, 0.2]], dtype=np.float32)
    return BoundaryPanel(ProbabilityGrid(g, g, proba), X, np.array([0, 1, 0]), X[:2] + 0.1, np.array([1, 0]), title, color)


def test_probability_grid_covers_the_data():
    torch.manual_seed(0)
    model = MLP([2, 4, 1], "tanh")
    X = np.array([[0.0, 1.0], [2.0, -1.0]], dtype=np.float32)
    grid = probability_grid(model, X, size=20, margin=0.5)
    assert grid.proba.shape == (20, 20) and (grid.x[0], grid.x[-1], grid.y[0], grid.y[-1]) == (-0.5, 2.5, -1.5, 1.5)
    assert np.all((grid.proba > 0) & (grid.proba < 1))


def test_boundary_figure_has_contour_points_and_colour_bar():
    xx = np.linspace(0, 1, 30)
    fig = boundary_figure(_panel(np.tile(xx, (30, 1)), title="he: val 0.9"))
    ax, cbar = fig.axes
    assert ax.get_title() == "he: val 0.9" and ax.get_xlabel() == "feature 1" and ax.get_ylabel() == "feature 2"
    assert cbar.get_ylabel() == "P(class 1)"
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 4 and len(ax.collections) == 6  # + the filled bands and the 0.5 contour
    train0, val0 = scatters[:2]
    assert to_hex(train0.get_facecolor()[0]) == CLASS_COLORS[0] and len(train0.get_offsets()) == 2
    assert len(val0.get_facecolor()) == 0 and to_hex(val0.get_edgecolor()[0]) == CLASS_COLORS[0]  # outlined
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "class 0, train", "class 0, validation", "class 1, train", "class 1, validation", "P = 0.5 boundary"]


def test_constant_model_says_there_is_no_boundary():
    fig = boundary_figure(_panel(np.full((10, 10), 0.501)))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["no P = 0.5 boundary in view:\nP = 0.501 everywhere"]


def test_side_by_side_titles_take_the_initializer_colour():
    panels = [_panel(np.full((10, 10), 0.3), "zeros", init_color("zeros")),
              _panel(np.tile(np.linspace(0, 1, 10), (10, 1)), "he", init_color("he_normal")),
              _panel(np.full((10, 10), 0.7), "xavier", init_color("xavier"))]
    fig = boundaries_figure(panels)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["zeros", "he", "xavier"]
    assert [to_hex(ax.title.get_color()) for ax in axes] == ["#d62728", "#2ca02c", "#6baed6"]
    assert fig.legends and fig._suptitle.get_text() == "Decision boundaries"


def test_history_figures():
    h = {"loss": [0.7, 0.5, 0.4], "accuracy": [0.5, 0.7, 0.8], "val_loss": [0.7, 0.6, 0.5], "val_accuracy": [0.5, 0.6, 0.9]}
    fig = history_figure(Curves("run", h, "#2ca02c"))
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in acc_ax.get_lines()] == ["training", "validation"]
    assert list(acc_ax.get_lines()[1].get_ydata()) == [0.5, 0.6, 0.9] and acc_ax.get_lines()[1].get_linestyle() == "--"
    assert loss_ax.get_ylabel() == "loss" and acc_ax.get_xlabel() == "epoch"
    both = histories_figure([Curves("a", h, "#d62728"), Curves("b", h, "#d62728")])
    styles = [line.get_linestyle() for line in both.axes[1].get_lines()]
    assert styles == ["-", "--"]  # same initializer colour, told apart by line style
    assert both.axes[1].get_title() == "validation accuracy"


def test_run_titles_say_the_setup_once_and_captions_name_the_real_steps():
    from pathlib import Path

    from initlab.experiments import RunSpec, run_experiment
    from initlab.experiments.outputs import boundary_figures, experiment_figures, history_figures

    csv = str(Path(__file__).resolve().parents[1] / "examples" / "notebooks" / "ushape.csv")
    result = run_experiment(RunSpec(name="zeros + relu", dataset=csv, activation="relu", init="zeros",
                                    hidden=[10], epochs=30, seed=0))
    (_, _, boundary), = boundary_figures(result)
    assert boundary.axes[0].get_title().startswith("zeros + relu, ")  # not "zeros + relu: zeros + relu"
    (_, _, history), = history_figures(result)
    assert history.get_suptitle() == "zeros + relu"
    captions = {file: caption for file, caption, _ in experiment_figures(result)}
    monitor = result.monitor
    snaps = [s["step"] for s in monitor.snapshots]
    shown = [snaps[0], snaps[len(snaps) // 2], snaps[-1]] if len(snaps) > 3 else snaps
    caption = captions["zeros_relu_histograms.png"]
    assert f"steps {shown[0]} (initialization)" in caption
    total = 3 * 30  # 80 training rows in minibatches of 32: 3 steps per epoch
    assert monitor.steps_seen == total
    assert shown[-1] < total  # histograms are kept at geometric recordings: the last is before the end
    assert f"{shown[-1]} (the last kept; training ran {total} steps)" in caption
    assert "the end" not in caption
