"""Every sentence a verdict prints follows from a measurement (issue "Every sentence true")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from initlab import apply_init, diagnose
from initlab.diagnostics import distinct_units, thresholds
from initlab.models import MLP


def _x(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _y(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 0] * x[:, 1] > 0).float()


# -- item 1: units are interchangeable only when incoming AND outgoing weights agree -------------

def test_equal_incoming_weights_with_different_outgoing_weights_are_distinct_units():
    """Zero hidden weights, N(0, 1) output weights: the units get different gradients and separate."""
    x = _x(200, 2)
    model = apply_init(MLP([2, 10, 1], "tanh"), "zeros")
    with torch.no_grad():
        model.output.weight.normal_(generator=torch.Generator().manual_seed(1))
    diag = diagnose(model, x, _y(x))
    hidden = diag.layer("hidden1")
    assert hidden.outgoing_compared and hidden.distinct_units == 10
    assert distinct_units(model.hidden1.weight, model.hidden1.bias) == 1  # by incoming weights alone: 1
    assert "symmetry" not in diag.codes
    # ... and training does separate them, as the count says it would
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for i in range(0, 200, 32):
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(x[i:i + 32]).squeeze(-1), _y(x)[i:i + 32]).backward()
        opt.step()
    assert distinct_units(model.hidden1.weight, model.hidden1.bias) > 1


def test_fully_zero_net_is_one_unit_and_says_outgoing_weights_were_compared():
    x = _x(64, 2)
    diag = diagnose(apply_init(MLP([2, 10, 10, 1], "tanh"), "zeros"), x, _y(x))
    assert [diag.layer(n).distinct_units for n in ("hidden1", "hidden2")] == [1, 1]
    message = diag.verdicts[0].message
    assert diag.codes == ["symmetry"] and "outgoing weights" in message and "identical units get" not in message


def test_outgoing_weights_are_found_through_flatten_and_into_conv():
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(3 * 5 * 5, 1))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for conv in (model[0], model[2]):  # identical incoming weights and bias in both convs, units alive
            conv.weight.zero_()
            conv.bias.fill_(1.0)
        model[5].weight.normal_(generator=g)  # different outgoing blocks for conv2's 3 channels
    x = _x(8, 50).reshape(8, 2, 5, 5)
    diag = diagnose(model, x)
    first, second = diag.layers[0], diag.layers[1]
    assert first.outgoing_compared and second.outgoing_compared
    assert first.distinct_units == 1  # conv1 -> conv2, whose weights are all 0: the same outgoing weights
    assert second.distinct_units == 3  # conv2 -> Flatten -> Linear: each channel owns 25 different features
    with torch.no_grad():
        model[5].weight.copy_(torch.randn(1, 25, generator=g).repeat(1, 3))  # the same block for every channel
    assert diagnose(model, x).layers[1].distinct_units == 1


# -- item 2: the tolerance scales with the weights -------------------------------------------------

@pytest.mark.parametrize("std", [1e-7, 5e-7, 1e-6, 1.0, 1e3])
def test_random_weights_are_distinct_at_any_scale(std):
    x = _x(64, 2)
    model = apply_init(MLP([2, 10, 1], "tanh"), {"name": "normal", "std": std}, generator=3)
    diag = diagnose(model, x, _y(x))
    assert diag.layer("hidden1").distinct_units == 10 and "symmetry" not in diag.codes


@pytest.mark.parametrize("scale", [1e-7, 1.0, 1e3])
def test_equal_rows_are_one_unit_at_any_scale(scale):
    w = torch.randn(1, 5, generator=torch.Generator().manual_seed(0)).repeat(6, 1) * scale
    out = torch.randn(3, 1, generator=torch.Generator().manual_seed(1)).repeat(1, 6)
    from initlab.diagnostics.symmetry import outgoing_rows

    assert distinct_units(w, None, [outgoing_rows(out)]) == 1
    w[2, 0] *= 1 + 1e-3  # a relative difference of 1e-3 is a different unit at every scale
    assert distinct_units(w, None, [outgoing_rows(out)]) == 2


# -- item 5: "healthy" says what was measured --------------------------------------------------

def test_healthy_message_carries_the_measured_dead_units():
    x = _x(200, 2)
    model = apply_init(MLP([2, 10, 1], "relu"), "he_normal", generator=5)
    with torch.no_grad():
        model.hidden1.bias[:3] = -100.0  # 3 units below 0 on every input
    diag = diagnose(model, x, _y(x))
    message = diag.verdicts[0].message
    assert diag.codes == ["healthy"] and diag.layer("hidden1").dead_fraction == pytest.approx(0.3)
    assert "3 of 10 units dead in hidden1" in message and "no dead" not in message
    assert "saturation not checked" in message  # relu is unbounded above: not checked, and it says so
    assert "across" not in message and "signal" not in message  # one hidden layer: nothing across layers measured


def test_healthy_message_carries_the_measured_saturation():
    x = _x(400, 2) * 8
    diag = diagnose(apply_init(MLP([2, 10, 1], "tanh"), "glorot_normal", generator=5), x, _y(x))
    sat = diag.layer("hidden1").saturated_fraction
    assert diag.codes == ["healthy"] and 0.3 < sat < thresholds.SATURATED_FRACTION
    assert f"{sat:.0%} of hidden1's outputs saturated" in diag.verdicts[0].message
    assert "no saturation" not in diag.verdicts[0].message


def test_healthy_deep_net_reports_the_measured_rates():
    diag = diagnose(apply_init(MLP([64] * 11 + [10], "relu", output="linear"), "he_normal", generator=1), _x(256, 64))
    assert diag.codes == ["healthy"]
    assert "from hidden1 to hidden10 (9 steps) the activation std changes by x" in diag.verdicts[0].message


# -- item 8: the fix names the lever the measurement points at ---------------------------------

def test_saturation_from_large_inputs_asks_for_input_scaling_not_other_weights():
    x = _x(400, 20) * 50
    model = apply_init(MLP([20, 20, 1], "tanh"), "lecun_normal", generator=0)
    diag = diagnose(model, x, _y(x))
    sat = next(v for v in diag.verdicts if v.code == "saturation")
    assert "standardize the inputs" in sat.fix and "shrink the weights" not in sat.fix
    assert "rms 50" in sat.fix or "rms 49" in sat.fix
    # the same net with unit-scale inputs but oversized weights is told to shrink them
    big = apply_init(MLP([20, 20, 1], "tanh"), {"name": "normal", "std": 3.0}, generator=0)
    fix = next(v for v in diagnose(big, x / 50, _y(x)).verdicts if v.code == "saturation").fix
    assert fix.startswith("shrink the weights")


def test_deep_narrow_he_relu_net_is_not_told_to_use_he_normal():
    model = apply_init(MLP([16] * 51 + [1], "relu", output="linear"), "he_normal", generator=1)
    diag = diagnose(model, _x(256, 16, seed=11))
    problems = [v for v in diag.verdicts if v.code != "healthy"]
    assert problems  # finite-width drift over 50 layers of 16 units
    for v in problems:
        assert "use he_normal" not in v.fix and "residual connections" in v.fix, v


# -- item 11: what an activation can do is measured on it, not looked up by name -----------------

@pytest.mark.parametrize("act", [nn.ReLU6(), nn.Hardtanh(), nn.Hardtanh(-2.0, 2.0)])
def test_relu6_and_hardtanh_limits_are_checked_for_saturation(act):
    model = nn.Sequential(nn.Linear(4, 32), act, nn.Linear(32, 1))
    with torch.no_grad():
        model[0].weight.normal_(0, 10, generator=torch.Generator().manual_seed(4))
    diag = diagnose(model, _x(128, 4))
    assert diag.layers[0].saturable and diag.layers[0].saturated_fraction > 0.5 and "saturation" in diag.codes


def test_sigmoid_and_tanh_saturation_bands_agree():
    """tanh(z) = 2 sigmoid(2z) - 1: the same curve, so the same pre-activations must read the same."""
    x = _x(512, 8)
    tanh = nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 1))
    sig = nn.Sequential(nn.Linear(8, 64), nn.Sigmoid(), nn.Linear(64, 1))
    with torch.no_grad():
        tanh[0].weight.normal_(0, 1.5, generator=torch.Generator().manual_seed(0))
        tanh[0].bias.zero_()
        sig[0].weight.copy_(2 * tanh[0].weight)
        sig[0].bias.zero_()
    a, b = diagnose(tanh, x).layers[0].saturated_fraction, diagnose(sig, x).layers[0].saturated_fraction
    assert 0.05 < a < 0.95 and a == pytest.approx(b, abs=0.01)


def test_units_die_where_output_and_slope_are_both_zero_whatever_the_name():
    x = _x(64, 4)
    for act, dies in ((nn.ReLU(), True), (nn.ReLU6(), True), (nn.Hardtanh(0.0, 1.0), True),
                      (nn.LeakyReLU(0.01), False), (nn.Tanh(), False), (nn.ELU(), False)):
        model = nn.Sequential(nn.Linear(4, 8), act, nn.Linear(8, 1))
        with torch.no_grad():
            model[0].weight.zero_()
            model[0].bias.fill_(-3.0)
        assert diagnose(model, x).layers[0].dead_fraction == (1.0 if dies else 0.0), act


def test_unbounded_activations_are_not_checked_for_saturation_and_say_so():
    for act in (nn.ReLU(), nn.ELU(), nn.GELU(), nn.LeakyReLU()):
        model = nn.Sequential(nn.Linear(4, 32), act, nn.Linear(32, 1))
        diag = diagnose(model, _x(64, 4) * 100)
        assert not diag.layers[0].saturable and diag.layers[0].saturated_fraction == 0.0


def test_thresholds_hold_no_activation_name_sets():
    assert not any(isinstance(v, (set, frozenset)) for k, v in vars(thresholds).items() if k.isupper())


# -- layers: diagnostics never imports report --------------------------------------------------

def test_diagnostics_imports_no_higher_layer():
    root = Path(__file__).resolve().parents[1] / "src" / "initlab" / "diagnostics"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                top = (node.module or "").split(".")[0]
                assert top not in {"report", "experiments", "server", "cli"}, f"{path.name} imports ..{node.module}"


def test_pre_activation_scale_is_consistent_with_the_fix_numbers():
    """The saturation fix quotes input rms: it is the rms of what the layer received."""
    x = _x(256, 20) * 50
    model = apply_init(MLP([20, 20, 1], "tanh"), "lecun_normal", generator=0)
    diag = diagnose(model, x)
    with torch.no_grad():
        hidden = torch.tanh(model.hidden1(x))
    assert diag.layer("hidden1").input_rms == pytest.approx(float(x.pow(2).mean().sqrt()), rel=1e-5)
    assert diag.layer("output").input_rms == pytest.approx(float(hidden.pow(2).mean().sqrt()), rel=1e-5)
