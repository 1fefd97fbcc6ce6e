"""Initializer -> sigma_w2, theory vs measurement on real networks, the critical initializer, figures."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from initlab import initializers
from initlab._validation import ValidationError
from initlab.models import MLP
from initlab.theory import (
    MeanField,
    accuracy_heatmap,
    check_variance,
    critical_sigma_w2,
    effective_sigma_b2,
    effective_sigma_w2,
    phase_diagram,
    trainable_depth_plot,
    variance_check_plot,
)


@pytest.mark.parametrize(
    "init, fans, expected",
    [
        ("he_normal", (512, 512), 2.0),
        ("kaiming_uniform", (300, 100), 2.0),
        ("xavier_normal", (512, 512), 1.0),
        ("glorot_uniform", (100, 300), 2 * 100 / 400),
        ("lecun_normal", (64, 999), 1.0),
        ("lecun_uniform", (64, 999), 1.0),
        ({"name": "variance_scaling", "scale": 1.7, "mode": "fan_in"}, (50, 60), 1.7),
        ({"name": "normal", "std": 0.1}, (400, 400), 4.0),
        ({"name": "uniform", "low": -0.1, "high": 0.1}, (300, 300), 0.01 / 3 * 300),
        ("orthogonal", (256, 256), 1.0),
        ("zeros", (10, 10), 0.0),
        ({"name": "critical", "activation": "relu"}, (10, 10), 2.0),
    ],
)
def test_effective_sigma_w2(init, fans, expected):
    assert effective_sigma_w2(init, *fans) == pytest.approx(expected)


@pytest.mark.parametrize("name", ["he_normal", "glorot_uniform", "lecun_normal", "orthogonal", "truncated_normal", "sparse"])
def test_effective_sigma_w2_matches_a_real_draw(name):
    w = initializers.get(name)(torch.empty(400, 400), torch.Generator().manual_seed(0))
    measured = float(w.double().pow(2).mean()) * 400  # E[W^2] * fan_in
    assert effective_sigma_w2(name, 400, 400) == pytest.approx(measured, rel=0.02)


@pytest.mark.parametrize("init", ["ones", "identity", {"name": "normal", "mean": 0.5}, "lsuv"])
def test_effective_sigma_w2_rejects_non_mean_field_inits(init):
    with pytest.raises(ValidationError, match="mean-field|zero-mean"):
        effective_sigma_w2(init, 10, 10)


def test_critical_initializer_is_on_the_chi1_line():
    init = initializers.get({"name": "critical", "activation": "tanh", "sigma_b2": 0.05})
    w = init(torch.empty(1000, 1000), torch.Generator().manual_seed(1))
    sw2 = float(w.double().pow(2).mean()) * 1000
    assert sw2 == pytest.approx(critical_sigma_w2("tanh", 0.05), rel=0.01)
    assert MeanField("tanh", critical_sigma_w2("tanh", 0.05), 0.05).phase == "critical"
    assert initializers.get("edge_of_chaos").name == "critical"
    assert "critical" in initializers.names()


@pytest.mark.parametrize("activation, sigma_b2", [("tanh", 0.05), ("tanh", 0.2), ("selu", 0.05), ("relu", 0.1)])
def test_critical_spec_for_weights_and_biases_gives_chi1_equal_1(activation, sigma_b2):
    # The critical point is (s*, sigma_b2): the same spec as bias draws biases N(0, sigma_b2).
    spec = {"name": "critical", "activation": activation, "sigma_b2": sigma_b2}
    model = initializers.apply_init(MLP([300, 600, 600, 1], activation), spec, bias=spec, generator=0)
    hidden = model.linears[1]
    sw2 = float(hidden.weight.detach().double().pow(2).mean()) * 600  # E[W^2] * fan_in
    sb2 = float(torch.cat([lin.bias.detach() for lin in model.linears[:2]]).double().pow(2).mean())
    s_star = critical_sigma_w2(activation, sigma_b2)
    assert sw2 == pytest.approx(s_star, rel=0.01)
    assert sb2 == pytest.approx(sigma_b2, rel=0.1)
    assert effective_sigma_w2(spec, 600) == s_star and effective_sigma_b2(spec, 600) == sigma_b2
    mf = MeanField(activation, effective_sigma_w2(spec, 600), effective_sigma_b2(spec, 600))
    assert mf.chi_1 == pytest.approx(1, abs=1e-9)


def test_critical_weights_with_zero_biases_would_be_chaotic_so_the_biases_are_drawn():
    # The trap: s* for sigma_b2 = 0.05 with zero biases is chaotic (chi_1 = 1.074); apply_init draws the
    # biases N(0, sigma_b2) with such a spec (issue 19.11), so the net it builds is critical.
    spec = {"name": "critical", "activation": "tanh", "sigma_b2": 0.05}
    model = initializers.apply_init(MLP([4, 8, 1], "tanh"), spec, generator=0)
    assert all(torch.count_nonzero(lin.bias) == lin.bias.numel() for lin in model.linears)
    with_zeros = MeanField("tanh", effective_sigma_w2(spec, 8), effective_sigma_b2("zeros", 8)).chi_1
    assert with_zeros == pytest.approx(1.0736, abs=1e-3)
    drawn = MeanField("tanh", effective_sigma_w2(spec, 8), effective_sigma_b2(spec, 8)).chi_1
    assert drawn == pytest.approx(1.0, abs=1e-6)


def test_critical_bias_at_sigma_b2_zero_is_zeros_and_draws_nothing():
    a = initializers.apply_init(MLP([5, 7, 7, 1], "tanh"), "critical", bias="critical", generator=3)
    b = initializers.apply_init(MLP([5, 7, 7, 1], "tanh"), "critical", bias="zeros", generator=3)
    for x, y in zip(a.parameters(), b.parameters(), strict=False):
        assert torch.equal(x, y)


@pytest.mark.parametrize("bias, fan, expected", [
    ("zeros", 32, 0.0),
    ('"zeros"', 32, 0.0),
    ({"name": "constant", "value": 0.0}, 32, 0.0),
    ({"name": "normal", "std": 0.3}, 32, 0.09),
    ("{'name': 'normal', 'std': 0.3}", 32, 0.09),  # the sweep store's bias_init column
    ('{"name": "normal", "std": 0.3}', 32, 0.09),
    ({"name": "uniform", "low": -0.3, "high": 0.3}, 32, 0.03),
    ({"name": "critical", "activation": "tanh", "sigma_b2": 0.05}, 32, 0.05),
    ("critical", 32, 0.0),
    ("he_normal", 32, 2 / 32),  # biases drawn with the layer's weight fans
    (None, 27, 1 / 81),  # PyTorch's own nn.Linear bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
])
def test_effective_sigma_b2(bias, fan, expected):
    assert effective_sigma_b2(bias, fan) == pytest.approx(expected)


@pytest.mark.parametrize("bias", ["ones", {"name": "constant", "value": 0.1}, {"name": "normal", "mean": 1.0},
                                  "orthogonal", "{not a spec"])
def test_effective_sigma_b2_rejects_biases_outside_mean_field(bias):
    with pytest.raises(ValidationError, match="sigma_b2|zero-mean|spec"):
        effective_sigma_b2(bias, 16)


def test_effective_sigma_b2_matches_a_real_draw():
    for bias in ({"name": "normal", "std": 0.2}, {"name": "uniform", "low": -0.5, "high": 0.5}, "he_uniform",
                 {"name": "truncated_normal", "std": 0.4}):
        model = initializers.apply_init(MLP([200, 200, 200, 200, 1], "relu"), "he_normal", bias=bias, generator=1)
        b = torch.cat([lin.bias.detach() for lin in model.linears[:3]]).double()
        assert float(b.pow(2).mean()) == pytest.approx(effective_sigma_b2(bias, 200), rel=0.15), bias


@pytest.mark.slow  # measured 9-26 s on 2 busy cores
def test_initializers_do_not_import_theory():
    # Layers: theory builds on initializers, never the other way (no import cycle).
    package = Path(initializers.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "theory" not in (node.module or ""), f"{path.name} imports {node.module}"
            elif isinstance(node, ast.Import):
                assert not any("theory" in a.name for a in node.names), path.name
    code = ("import sys, torch, initlab.initializers as I; I.get({'name': 'critical', 'sigma_b2': 0.1})(torch.empty(3, 3)); "
            "print(sorted(m for m in sys.modules if m.startswith('initlab.theory')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow  # measured 9-26 s on 2 busy cores
def test_tanh_predicted_variance_within_5_percent():
    """Width 1000, depth 20, 5 networks: every layer's predicted q^l within 5% of the measured mean."""
    check = check_variance("xavier_normal", "tanh", depth=20, width=1000, sigma_b2=0.0, seeds=5, batch=500)
    assert check.max_relative_error < 0.05, check.relative_error
    # the prediction is not trivially flat: q^l falls by ~10x over the 20 layers
    assert check.predicted[-1] < 0.15 * check.predicted[0]


@pytest.mark.slow  # measured 9-26 s on 2 busy cores
def test_relu_predicted_variance_against_measured():
    """He + ReLU, width 1000, depth 20, 5 networks.

    The length map gives E_W[q^l] exactly for ReLU, but at sigma_w2 = 2 the per-network
    log-variance does a random walk (Hanin & Rolnick 2018: Var log q^L ~ 5 L / width), so a
    5-network mean scatters by ~10% at layer 20. The first layers are held to 5%; every layer
    to 4 standard errors of the 5-network mean. A 5% error in sigma_w2 fails both.
    """
    check = check_variance("he_normal", "relu", depth=20, width=1000, sigma_b2=0.0, seeds=5, batch=500)
    se = check.measured_std * math.sqrt(5 / 4) / math.sqrt(5)
    assert np.all(np.abs(check.relative_error[:5]) < 0.05), check.relative_error
    assert np.all(np.abs(check.predicted - check.measured) <= 4 * se + 1e-3 * check.measured)
    wrong = check.q0 * 1.9 ** np.arange(1, 21) / 2 ** np.arange(0, 20)  # sigma_w2 = 1.9 instead of 2
    assert not np.all(np.abs(wrong - check.measured) <= 4 * se + 1e-3 * check.measured)


def test_variance_check_to_dict_and_plot():
    check = check_variance("he_normal", "relu", depth=3, width=64, sigma_b2=0.1, seeds=2, batch=32)
    d = json.loads(json.dumps(check.to_dict()))
    assert [row["layer"] for row in d["layers"]] == [1, 2, 3]
    assert "pre-activation" in d["quantity"]
    fig = variance_check_plot(check)
    assert isinstance(fig, Figure) and fig.axes[0].get_title()


def test_figures_have_titles_labels_and_legends():
    fig = phase_diagram("tanh", resolution=(12, 6))
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
    assert "xi_c" in fig.axes[1].get_ylabel()  # colour bar label
    fig = trainable_depth_plot("relu", points=20)
    assert fig.axes[0].get_legend() is not None


def test_accuracy_heatmap_from_a_dataframe():
    rows = [
        {"depth": d, "init": json.dumps({"name": "variance_scaling", "scale": w, "mode": "fan_in", "distribution": "normal"}),
         "activation": "tanh", "val_accuracy": float(d < 6 * MeanField("tanh", w, 0.0).xi_c)}
        for d in (5, 10, 20, 40) for w in (0.5, 1.0, 1.5, 2.5)
    ]
    fig = accuracy_heatmap(pd.DataFrame(rows))
    assert "tanh" in fig.axes[0].get_title()
    assert fig.axes[1].get_ylabel().startswith("measured val accuracy")
    with pytest.raises(ValidationError, match="needs columns"):
        accuracy_heatmap(pd.DataFrame({"depth": [1], "val_accuracy": [0.5]}), "tanh")


def _curve_label(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts() if "xi_c" in t.get_text()][0]


@pytest.mark.slow  # measured 9-26 s on 2 busy cores
def test_accuracy_heatmap_uses_the_runs_bias_variance():
    rows = [{"depth": d, "init": json.dumps({"name": "variance_scaling", "scale": w, "distribution": "normal"}),
             "activation": "tanh", "width": 32, "val_accuracy": 0.5}
            for d in (5, 10) for w in (1.0, 2.0)]
    critical = str({"name": "critical", "activation": "tanh", "sigma_b2": 0.05})  # as the store writes it
    assert "$\\sigma_b^2$=0)" in _curve_label(accuracy_heatmap(pd.DataFrame(rows)))  # no bias column: zeros
    def with_bias(bias):
        return pd.DataFrame([{**r, "bias_init": bias} for r in rows])

    assert "=0.09)" in _curve_label(accuracy_heatmap(with_bias("{'name': 'normal', 'std': 0.3}")))
    assert "=0.05)" in _curve_label(accuracy_heatmap(with_bias(critical)))
    assert "=0)" in _curve_label(accuracy_heatmap(with_bias("zeros")))
    assert "=0.2)" in _curve_label(accuracy_heatmap(with_bias(critical), sigma_b2=0.2))  # the argument wins
    mixed = pd.DataFrame([{**r, "bias_init": b} for r in rows for b in ("zeros", critical)])
    with pytest.raises(ValidationError, match="sigma_b2"):
        accuracy_heatmap(mixed)


def test_phase_diagram_marks_inits_at_their_bias_variance():
    for bias, b0 in (("zeros", 0.0), ({"name": "normal", "std": 0.3}, 0.09)):
        ax = phase_diagram("tanh", resolution=(8, 4), bias_init=bias).axes[0]
        marks = [line for line in ax.get_lines() if line.get_marker() == "o"]
        assert marks and all(line.get_ydata()[0] == pytest.approx(b0) for line in marks)
