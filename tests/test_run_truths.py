"""Issue 19 items 6, 7, 8: rounding is not a gradient, a rounding split is said, a net at chance says so."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from initlab import apply_init, diagnose
from initlab.diagnostics.symmetry import gradient_rounding_scale
from initlab.experiments.findings import Findings, chance_loss, plain_verdict
from initlab.models import MLP
from initlab.report.explain import _step0_gradients, measured_sentences


def _balanced(n: int = 80, seed: int = 0):
    gen = np.random.default_rng(seed)
    X = gen.normal(size=(n, 2)).astype(np.float32)
    y = np.repeat([0, 1], n // 2).astype(np.int64)
    return X, y


def test_a_rounding_level_gradient_is_not_called_a_gradient():
    """Zero-init sigmoid 2-10-1 on balanced rows: the exact output gradient is 0; float32 gives ~1e-9."""
    X, y = _balanced()
    model = apply_init(MLP([2, 10, 1], "sigmoid", "sigmoid"), "zeros", "zeros")
    # independent float64 gradient: every hidden unit outputs sigmoid(0) = 1/2, the logit is 0, so
    # dL/dW_out = mean((1/2 - y) * 1/2) = 0 exactly on balanced labels
    h = np.full((len(X), 10), 0.5)
    exact = ((0.5 - y)[:, None] * h).mean(0)
    assert np.abs(exact).max() == 0.0
    diag = diagnose(model, torch.as_tensor(X), torch.as_tensor(y))
    out = diag.layers[-1]
    weight_scale, bias_scale = gradient_rounding_scale(out, len(X))
    assert out.grad_norm <= weight_scale and out.bias_grad_norm <= bias_scale
    # the scale is float32's: n u ||G|| ||X||, recomputed here
    expected = len(X) * 2.0 ** -24 * out.output_grad_norm * out.input_rms * math.sqrt(len(X) * 10)
    assert weight_scale == pytest.approx(expected, rel=1e-12)
    entry = {"diagnostics_init": {"layers": [vars(s) for s in diag.layers]}, "n_train": len(X)}
    text = _step0_gradients(entry)
    assert text.startswith("nothing") and "within float32 rounding" in text
    # a real gradient (random init) is far above the scale
    model = apply_init(MLP([2, 10, 1], "sigmoid", "sigmoid"), "glorot_uniform", "zeros", generator=0)
    real = diagnose(model, torch.as_tensor(X), torch.as_tensor(1 - y)).layers[-1]
    assert real.grad_norm > 100 * gradient_rounding_scale(real, len(X))[0]


def _findings(**changes) -> Findings:
    base = dict(hidden_units=10, distinct_units_init=10, distinct_units=10, dead_units_init=0, dead_units=0,
                dead_fraction=0.0, grad_layer="hidden1", grad_norm_init=0.2, grad_norm_end=0.1,
                next_weights_zero_init=False, codes_init=["healthy"], codes=["healthy"], at_chance=False,
                one_class=False, verdict="", hidden_layers=1, epochs=50, distinct_units_first=10)
    return Findings(**{**base, **changes})


def test_units_split_by_rounding_are_said_to_be():
    split = _findings(distinct_units_init=1, distinct_units=2, distinct_units_first=2, codes_init=["symmetry"],
                      codes=["symmetry"])
    text = plain_verdict(split)
    assert "broken by rounding" in text and "1 distinct of 10 at step 0" in text and "as 2 distinct" in text
    assert "broken by rounding" not in plain_verdict(replace(split, distinct_units=1, distinct_units_first=1))
    summary = {**vars(split), "hidden_units": 10}
    entry = {"summary": summary, "diagnostics": {"verdicts": []}, "epochs": 50, "chance_accuracy": 0.5,
             "train_accuracy": 0.86, "val_accuracy": 0.85}
    assert "ended as 2 distinct" in measured_sentences(entry)[0]


def test_chance_loss_is_the_entropy_of_the_class_shares():
    assert chance_loss([0, 1] * 40) == pytest.approx(math.log(2), rel=1e-12)
    assert chance_loss(list(range(10)) * 7) == pytest.approx(math.log(10), rel=1e-12)
    assert chance_loss([0] * 30 + [1] * 10) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_a_healthy_net_that_has_not_learned_says_so():
    """reproduce --only he_relu --epochs 50 --seed 1: train accuracy 0.50 read 'Healthy' (issue 19 item 8)."""
    stalled = _findings(train_loss=0.6925, chance_loss=math.log(2), train_at_chance=True)
    text = plain_verdict(stalled)
    assert text.startswith("Healthy") and "has not learned" in text and "0.693" in text
    assert "has not learned" not in plain_verdict(_findings(train_loss=0.2, chance_loss=math.log(2)))
    entry = {"summary": vars(stalled), "diagnostics": {"verdicts": []}, "epochs": 50, "chance_accuracy": 0.5,
             "train_accuracy": 0.5, "val_accuracy": 0.7}
    assert any("the net has not learned" in line for line in measured_sentences(entry))


@pytest.mark.slow
def test_lab_default_zero_sigmoid_split_is_said_to_be_rounding():
    """Issue 19 item 7, measured: 2-10-1 zero-init sigmoid, Adam 0.03, 200 epochs, 200 points (single trainer):
    1 distinct unit at step 0, 2 at the end; the verdict says rounding split them."""
    from initlab.experiments import RunSpec, execute
    from initlab.experiments.findings import findings
    from initlab.experiments.run import from_record

    spec = RunSpec(n_samples=200, init="zeros", activation="sigmoid", learning_rate=0.03, epochs=200)
    (record,) = execute([spec], single=True, keep=True)
    result = from_record(record)
    f = findings(result)
    assert (f.distinct_units_init, f.distinct_units) == (1, 2)
    assert "broken by rounding" in f.verdict


def _linear_agreement(model, X: np.ndarray) -> float:
    """Share of a 200x200 grid (the data's range + 0.5) where the best straight line (logistic regression by
    Newton steps) gives the model's predicted class: 1 means a straight boundary."""
    lo, hi = X.min(0) - 0.5, X.max(0) + 0.5
    axes = [np.linspace(lo[k], hi[k], 200) for k in range(2)]
    grid = np.stack(np.meshgrid(*axes), -1).reshape(-1, 2).astype(np.float32)
    with torch.no_grad():
        label = (model.predict_proba(torch.as_tensor(grid)).numpy().ravel() > 0.5).astype(float)
    A, w = np.c_[grid, np.ones(len(grid))].astype(np.float64), np.zeros(3)
    for _ in range(100):
        q = 1 / (1 + np.exp(-np.clip(A @ w, -30, 30)))
        w -= np.linalg.solve(A.T @ (A * (q * (1 - q))[:, None]) + 1e-6 * np.eye(3), A.T @ (q - label))
    return float(((A @ w > 0) == (label > 0.5)).mean())


@pytest.mark.slow
def test_boundary_shapes_told_in_readme_and_notebook():
    """Issue 19 item 12: README (reproduce defaults) and notebook 01 (ushape.csv, 60 epochs) say which fixed boundary
    bends and which stays almost straight; decided here by the grid agreement of a straight line."""
    import pathlib

    from initlab.experiments import RunSpec, execute
    from initlab.experiments.execute import load_split
    from initlab.experiments.reproduce import classic_specs

    readme = {s.name: s for s in classic_specs() if s.name in ("xavier_tanh", "he_relu")}
    csv = str(pathlib.Path(__file__).resolve().parents[1] / "examples" / "notebooks" / "ushape.csv")
    notebook = {n: RunSpec(name=n, dataset=csv, activation=a, init=i, hidden=[10], epochs=60, seed=0)
                for n, a, i in (("he_relu_nb", "relu", "he_normal"), ("glorot_sigmoid_nb", "sigmoid", "glorot_normal"))}
    agreement = {}
    for name, spec in {**readme, **notebook}.items():
        (record,) = execute([spec], monitor=True, keep=True)
        X = np.concatenate([load_split(spec)[1][0], load_split(spec)[1][2]])
        agreement[name] = _linear_agreement(record.artifacts.model, X)
    assert agreement["he_relu"] == pytest.approx(0.936, abs=0.005) and agreement["xavier_tanh"] > 0.98
    assert agreement["he_relu_nb"] == pytest.approx(0.923, abs=0.005) and agreement["glorot_sigmoid_nb"] > 0.995
