"""Monitor: the same statistics as diagnose, recorded during training, hooks only when recording."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from initlab import Monitor, apply_init, diagnose
from initlab.diagnostics import figures
from initlab.models import MLP
from initlab.plots.style import save
from initlab.training import Trainer, minibatch_order


def _data(n: int = 96, d: int = 6):
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(n, d, generator=gen)
    y = (X[:, 0] * X[:, 1] > 0).float()
    return X, y


def _model(activation: str = "tanh", sizes=(6, 16, 16, 16, 1)) -> MLP:
    return apply_init(MLP(list(sizes), activation), "glorot_normal", generator=1)  # not the data's seed


def _hooked(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_records_every_n_steps_with_trainer_and_removes_hooks():
    X, y = _data()
    model = _model()
    monitor = Monitor(model, every=4)
    trainer = Trainer(model, epochs=3, batch_size=16, callbacks=[monitor], seed=0).fit(X, y)
    assert trainer.step_ == 18
    assert monitor.steps == [1, 5, 9, 13, 17]
    assert monitor.layer_names == ["hidden1", "hidden2", "hidden3", "output"]
    assert [s["step"] for s in monitor.snapshots] == [1, 5, 9, 17]  # recordings 0, 1, 2, 4
    assert _hooked(model) == 0
    std = monitor.series("std")
    assert std.shape == (4, 5) and np.isfinite(std).all()
    ratio = monitor.series("update_ratio")
    assert (ratio > 0).all() and (ratio < 0.5).all()  # Adam's first steps move each weight ~1e-3


def test_first_recorded_step_matches_diagnose_on_the_same_batch():
    """One code path: the monitor's step-1 numbers are diagnose's numbers for the first minibatch."""
    X, y = _data()
    model = _model("relu")
    reference = _model("relu")
    monitor = Monitor(model, every=100)
    Trainer(model, epochs=1, batch_size=32, callbacks=[monitor], seed=0).fit(X, y)
    first = torch.from_numpy(minibatch_order(0, 0, len(X))[:32])  # the first minibatch Trainer(seed=0) takes
    diag = diagnose(reference, X[first], y[first].reshape(-1, 1))
    record = monitor.records[0]["layers"]
    for stats in diag.layers:
        got = record[stats.name]
        assert got["std"] == pytest.approx(stats.std, rel=1e-5)
        assert got["dead_fraction"] == pytest.approx(stats.dead_fraction)
        assert got["output_grad_norm"] == pytest.approx(stats.output_grad_norm, rel=1e-4)
        assert got["grad_norm"] == pytest.approx(stats.grad_norm, rel=1e-4)


def test_own_loop_hooks_only_on_recording_steps():
    X, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    attached = []
    with Monitor(model, every=3) as monitor:
        for _ in range(1, 8):
            attached.append(_hooked(model) > 0)  # before this step's forward
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(model(X).squeeze(-1), y).backward()
            opt.step()
            monitor.step()
    # armed for steps 1, 4, 7 only
    assert attached == [True, False, False, True, False, False, True]
    assert monitor.steps == [1, 4, 7]
    assert _hooked(model) == 0


def test_evaluation_under_no_grad_is_not_recorded():
    X, y = _data()
    model = _model()
    monitor = Monitor(model, every=1)
    with torch.no_grad():
        model(X[:5])  # an evaluation pass while armed
    out = model(X)
    torch.nn.functional.binary_cross_entropy_with_logits(out.squeeze(-1), y).backward()
    monitor.step()
    monitor.close()
    assert monitor.steps == [1]
    assert monitor.records[0]["layers"]["output"]["output_grad_norm"] > 0
    kept = monitor.snapshots[0]["layers"]["hidden1"]["activation"]
    with torch.no_grad():
        assert np.array_equal(kept, torch.tanh(model.hidden1(X)).reshape(-1).numpy())  # 96 * 16 <= 2048: all kept
    small = Monitor(model, every=1, sample_size=100)
    model(X).sum().backward()
    small.step()
    small.close()
    assert len(small.snapshots[0]["layers"]["hidden1"]["gradient"]) == 96  # every 16th of 1536


def test_series_rejects_unknown_statistic():
    from initlab import ValidationError

    with pytest.raises(ValidationError, match="did you mean 'std'"):
        Monitor(_model(), every=2).series("stdd")


def test_figures_from_monitor_and_diagnoses(tmp_path):
    X, y = _data()
    model = _model()
    monitor = Monitor(model, every=2)
    Trainer(model, epochs=2, batch_size=16, callbacks=[monitor], seed=0).fit(X, y)
    heat = figures.heatmap_figure(monitor)
    hist = figures.layer_histograms(monitor)
    assert isinstance(heat, Figure) and isinstance(hist, Figure)
    titles = [ax.get_title() for ax in heat.axes]
    assert "log10 activation std" in titles and "log10 |dL/d(layer output)|" in titles
    # 2 rows (activations, gradients) x 3 snapshots (first, middle, last)
    assert sum(1 for ax in hist.axes if ax.get_title().startswith("activations")) == 3
    first = [ax for ax in hist.axes if ax.get_title() == "activations, step 1 (init)"][0]
    assert len(first.lines) == 3  # one curve per hidden layer
    diags = {"glorot_normal": diagnose(_model(), X), "he_normal": diagnose(apply_init(_model(), "he_normal"), X)}
    profile = figures.depth_profile(diags)
    assert len(profile.axes[0].lines) == 2
    for name, fig in (("heat", heat), ("hist", hist), ("profile", profile)):
        path = save(fig, tmp_path / f"{name}.png")
        assert path.stat().st_size > 10_000


def test_pickled_monitor_keeps_records_not_the_model():
    import pickle

    model = apply_init(MLP([2, 8, 1], "relu"), "he_normal", generator=0)
    X = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    y = (X[:, 0] > 0).long()
    monitor = Monitor(model, every=2)
    Trainer(model, epochs=2, callbacks=[monitor]).fit(X, y)
    again = pickle.loads(pickle.dumps(monitor))
    assert again.model is None and again.steps == monitor.steps and len(again.steps) >= 2
    np.testing.assert_array_equal(again.series("std"), monitor.series("std"))


def _trained_monitor(init: str, sizes=(2, 10, 1)) -> Monitor:
    X, y = _data(80, 2)
    model = apply_init(MLP(list(sizes), "relu"), init, generator=0)
    monitor = Monitor(model, every=5)
    Trainer(model, epochs=30, batch_size=32, callbacks=[monitor], seed=0).fit(X, y)
    return monitor


def test_heatmap_draws_rounding_noise_as_zero(tmp_path):
    """A zero-initialized ReLU net: the hidden layer outputs exact zeros and the output layer one value
    per batch, whose float32 std is rounding noise (std/|mean| ~ 1 eps); both panels' std is grey."""
    monitor = _trained_monitor("zeros")
    std, mean = monitor.series("std"), monitor.series("mean")
    eps = float(np.finfo(np.float32).eps)
    noisy = std[1] > 0
    assert noisy.any() and (std[1][noisy] <= 2 * eps * np.abs(mean[1][noisy])).all()  # the noise is there
    heat = figures.heatmap_figure(monitor)
    image = heat.axes[0].images[0]
    drawn = image.to_rgba(image.get_array())
    zero = np.array(to_rgba(figures.ZERO_COLOR))
    assert np.allclose(drawn.reshape(-1, 4), zero)  # every cell is the zero colour
    assert len(heat.axes) == 3  # no colour bar for the all-zero panel, one for the gradient panel
    assert "grey" in heat.axes[2].get_ylabel()
    save(heat, tmp_path / "zero.png")


def test_heatmap_keeps_a_healthy_nets_structure():
    monitor = _trained_monitor("he_normal", (2, 10, 10, 1))
    heat = figures.heatmap_figure(monitor)
    image = heat.axes[0].images[0]
    data = image.get_array()
    assert not np.ma.getmaskarray(data).any()
    np.testing.assert_allclose(data, np.log10(monitor.series("std")))
    assert np.unique(image.to_rgba(data).reshape(-1, 4), axis=0).shape[0] > 10
