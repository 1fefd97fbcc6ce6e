"""diagnose: the classic initialization failures get the verdict their measurements call for."""

from __future__ import annotations

import json
import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab import Diagnosis, apply_init, diagnose
from initlab.diagnostics import thresholds
from initlab.models import MLP


def _batch(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _mlp(sizes, activation, init, seed=1) -> MLP:
    model = MLP(sizes, activation, output="linear")
    return apply_init(model, init, generator=seed)


# -- the cases the issue asks to show -------------------------------------------------------------

def test_tanh_20_layers_with_unit_normal_weights_saturates():
    model = _mlp([256] * 20 + [10], "tanh", {"name": "normal", "std": 1.0})
    diag = diagnose(model, _batch(128, 256))
    assert diag.codes[0] == "saturation"
    sat = diag.verdicts[0]
    assert len(sat.layers) == 19  # every hidden layer
    # pre-activations have std ~ sqrt(256) = 16, so ~89% of |tanh| is within 0.02 of 1
    assert all(diag.layer(name).saturated_fraction > 0.8 for name in sat.layers)
    assert diag.layer("hidden5").pre_std == pytest.approx(16, rel=0.15)
    assert "lecun_normal" in sat.fix and "0.0625" in sat.fix  # 1/sqrt(256)


def test_tanh_20_layers_with_tiny_weights_decays_geometrically_and_vanishes():
    model = _mlp([256] * 20 + [10], "tanh", {"name": "normal", "std": 0.01})
    diag = diagnose(model, _batch(128, 256))
    assert diag.codes == ["vanishing_gradients"]
    # each layer multiplies the std by ~ 0.01 * sqrt(256) = 0.16 (tanh is linear near 0)
    assert diag.activation_std_rate == pytest.approx(0.16, rel=0.06)
    assert diag.gradient_rate == pytest.approx(0.16, rel=0.06)
    changes = [s.std_change for s in diag.layers[1:-1]]
    assert all(c == pytest.approx(0.16, rel=0.15) for c in changes)  # geometric: the same ratio at every depth
    assert "x0.16 per layer over 18 layers" in diag.verdicts[0].message


@pytest.mark.parametrize("seed", [1, 2])
def test_relu_30_layers_glorot_vanishes_by_one_over_sqrt2_per_layer(seed):
    model = _mlp([64] * 30 + [10], "relu", "glorot_normal", seed)
    diag = diagnose(model, _batch(256, 64))
    assert diag.codes == ["vanishing_gradients"]
    # He et al. (2015): Var grows by n * Var(w) / 2 = 64 * (2/128) / 2 = 1/2 per layer -> std x 1/sqrt(2)
    assert diag.activation_std_rate == pytest.approx(1 / math.sqrt(2), abs=0.03)
    assert diag.gradient_rate == pytest.approx(1 / math.sqrt(2), abs=0.03)
    message = diag.verdicts[0].message
    assert "activation std shrinks by x0.7" in message and "over 28 layers" in message
    assert "he_normal" in diag.verdicts[0].fix and "0.177" in diag.verdicts[0].fix  # sqrt(2/64)


@pytest.mark.parametrize("seed", [1, 2])
def test_relu_30_layers_he_is_healthy(seed):
    model = _mlp([64] * 30 + [10], "relu", "he_normal", seed)
    diag = diagnose(model, _batch(256, 64))
    assert diag.codes == ["healthy"]
    assert diag.activation_std_rate == pytest.approx(1.0, abs=0.05)
    assert diag.gradient_rate == pytest.approx(1.0, abs=0.05)


def test_the_weight_gradient_norm_alone_would_not_show_the_relu_glorot_problem():
    """Why verdicts use activation std and output gradients: |dL/dW| is similar at both ends."""
    model = _mlp([64] * 30 + [10], "relu", "glorot_normal")
    diag = diagnose(model, _batch(256, 64))
    hidden = diag.layers[:-1]
    weight_ratio = hidden[0].grad_norm / hidden[-1].grad_norm
    output_ratio = hidden[0].output_grad_norm / hidden[-1].output_grad_norm
    assert 0.1 < weight_ratio < 10  # the forward shrink and the backward shrink cancel
    assert output_ratio < 1e-3


def test_relu_too_large_weights_explode():
    scheme = {"name": "variance_scaling", "scale": 8.0, "mode": "fan_in", "distribution": "normal"}  # std x 2 per layer
    model = _mlp([64] * 20 + [10], "relu", scheme)
    diag = diagnose(model, _batch(256, 64))
    assert diag.codes == ["exploding_gradients"]
    assert diag.activation_std_rate == pytest.approx(2.0, rel=0.1)
    assert "grows by x2" in diag.verdicts[0].message


def _targets(n: int) -> torch.Tensor:
    return (torch.arange(n) % 2).float()


def test_zero_init_relu_2_10_1_has_dead_units_not_vanishing():
    model = MLP([2, 10, 1], "relu")
    apply_init(model, "zeros")
    diag = diagnose(model, _batch(100, 2), _targets(100))
    assert diag.codes == ["dead_units"]
    hidden = diag.layer("hidden1")
    assert hidden.dead_fraction == 1.0
    assert hidden.grad_norm == 0.0  # exactly: the output weights are zero
    assert "10 of 10 relu units output 0" in diag.verdicts[0].message


def test_zero_init_sigmoid_2_10_1_is_symmetric_one_distinct_unit():
    model = MLP([2, 10, 1], "sigmoid")
    apply_init(model, "zeros")
    diag = diagnose(model, _batch(100, 2), _targets(100))
    assert diag.codes == ["symmetry"]
    hidden = diag.layer("hidden1")
    assert (hidden.distinct_units, hidden.units) == (1, 10)
    assert hidden.grad_norm == 0.0 and hidden.dead_fraction == 0.0
    assert hidden.mean == pytest.approx(0.5)
    assert "only 1 distinct unit(s) of 10" in diag.verdicts[0].message


def test_verdicts_come_from_measurements_not_names():
    """The same architecture gets different verdicts for different weights, and renaming changes nothing."""
    x = _batch(128, 64)
    layers = []
    for i in range(12):
        layers += [(f"tanh_layer{i}", nn.Linear(64, 64)), (f"relu{i}", nn.ReLU())]  # misleading names
    model = nn.Sequential(OrderedDict(layers + [("out", nn.Linear(64, 1))]))
    apply_init(model, "he_normal", generator=1)
    assert diagnose(model, x).codes == ["healthy"]
    apply_init(model, {"name": "normal", "std": 0.02}, generator=1)
    assert diagnose(model, x).codes == ["vanishing_gradients"]


# -- any nn.Module: conv, residual blocks, normalisation, functional activations ----------------

class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + x)  # functional, after the residual sum: a row of its own


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = ResidualBlock(8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.tanh(self.stem(x))  # functional tanh, paired with stem
        x = self.block(x)
        return self.head(self.norm(x.mean(dim=(2, 3))))


def test_small_cnn_with_residual_block_layer_by_layer():
    torch.manual_seed(0)
    model = SmallCNN()
    x = _batch(16, 3 * 8 * 8).reshape(16, 3, 8, 8)
    running = model.block.bn1.running_mean.clone()
    diag = diagnose(model, x)
    rows = [(s.name, s.kind, s.units, s.activation, s.weighted) for s in diag.layers]
    assert rows == [
        ("stem", "Conv2d", 8, "tanh", True),
        ("block.conv1", "Conv2d", 8, "relu", True),  # through bn1 to the in-place ReLU module
        ("block.conv2", "Conv2d", 8, None, True),
        ("block:relu()", "relu()", 8, "relu", False),
        ("head", "Linear", 10, None, True),
    ]
    # measured values match a plain recomputation
    with torch.no_grad():
        stem = model.stem(x)
        conv1 = model.block.conv1(torch.tanh(stem))
    assert diag.layer("stem").std == pytest.approx(float(torch.tanh(stem).std()), rel=1e-4)
    assert diag.layer("block.conv1").pre_std == pytest.approx(float(conv1.std()), rel=1e-4)  # not overwritten in place
    assert all(s.output_grad_norm > 0 for s in diag.layers)
    assert torch.equal(model.block.bn1.running_mean, running)  # buffers restored
    assert all(p.grad is None for p in model.parameters())  # .grad untouched
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())  # hooks removed
    assert diag.input_shape == (16, 3, 8, 8)


def test_conv1d_and_conv3d_units_are_channels():
    for conv, shape in ((nn.Conv1d(4, 6, 3), (8, 4, 20)), (nn.Conv3d(2, 6, 3), (4, 2, 6, 6, 6))):
        model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.LazyLinear(3))
        diag = diagnose(model, torch.randn(*shape, generator=torch.Generator().manual_seed(0)))
        first = diag.layers[0]
        assert (first.kind, first.units, first.activation) == (type(conv).__name__, 6, "relu")


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 1)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = self.fc2(x).sigmoid()
        return self.fc3(torch.tanh(x))  # a tanh of a sigmoid output: an activation on its own


def test_functional_activations_are_reached():
    model = Functional()
    diag = diagnose(model, _batch(32, 8))
    assert [(s.name, s.activation) for s in diag.layers] == [
        ("fc1", "relu"), ("fc2", "sigmoid"), ("tanh()", "tanh"), ("fc3", None)]
    with torch.no_grad():
        expected = torch.relu(model.fc1(_batch(32, 8)))
    assert diag.layer("fc1").std == pytest.approx(float(expected.std()), rel=1e-4)


def test_saturation_of_a_functional_sigmoid_is_measured():
    model = Functional()
    with torch.no_grad():
        model.fc2.weight.mul_(100.0)
    diag = diagnose(model, _batch(64, 8))
    assert "saturation" in diag.codes
    assert diag.layer("fc2").saturated_fraction > thresholds.SATURATED_FRACTION


def test_loss_with_targets_and_custom_loss_fn():
    model = _mlp([4, 8, 3], "relu", "he_normal")
    x, y = _batch(20, 4), torch.arange(20) % 3
    ce = diagnose(model, x, y)
    with torch.no_grad():
        out = model(x)
    assert ce.loss == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-6)
    custom = diagnose(model, x, y, loss_fn=lambda logits, t: logits.pow(2).mean())
    assert custom.loss == pytest.approx(float(out.pow(2).mean()), rel=1e-6)


def test_to_dict_is_strict_json_and_keeps_the_contract_names():
    diag = diagnose(_mlp([4, 8, 8, 1], "tanh", "glorot_normal"), _batch(16, 4))
    data = json.loads(json.dumps(diag.to_dict(), allow_nan=False))
    layer = data["layers"][0]
    for key in ("name", "units", "distinct_units", "dead_fraction", "saturated_fraction", "std", "grad_norm"):
        assert key in layer
    assert data["verdicts"][0]["code"] in ("healthy", "symmetry", "dead_units", "vanishing_gradients",
                                           "exploding_gradients", "saturation")
    assert isinstance(diag, Diagnosis) and diag.layer("hidden2").name == "hidden2"
    with pytest.raises(KeyError):
        diag.layer("nope")


def test_rich_table_has_a_row_per_layer():
    diag = diagnose(_mlp([4, 8, 8, 1], "relu", "he_normal"), _batch(16, 4))
    table = diag.table()
    assert table.row_count == 3
    both = diag.table(diag)
    assert both.row_count == 3 and "→" in both.columns[2]._cells[0]


def test_a_model_without_weighted_layers_is_rejected():
    from initlab import ValidationError

    with pytest.raises(ValidationError, match="no weighted layer to diagnose"):
        diagnose(nn.Sequential(nn.ReLU()), _batch(4, 3))


def test_zero_output_tanh_units_are_symmetric_not_dead():
    """tanh(0) = 0 but tanh'(0) = 1: a zero-init tanh layer is one repeated unit, not dead."""
    model = apply_init(MLP([2, 10, 1], "tanh"), "zeros")
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    diag = diagnose(model, x, (x[:, :1] > 0).float())
    hidden = diag.layer("hidden1")
    assert hidden.std == 0.0 and hidden.dead_fraction == 0.0 and hidden.distinct_units == 1
    assert diag.codes == ["symmetry"]


# -- coverage: every parameterized computation is seen, or listed with why ------------------------

class _Functional(nn.Module):
    """Weights used through functional calls, a parameter added directly, one never used."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(16, 8, generator=g) / 8 ** 0.5)
        self.b1 = nn.Parameter(torch.zeros(16))
        self.w2 = nn.Parameter(torch.randn(16, 4, generator=g) / 4)  # (in, out), used as x @ w2
        self.offset = nn.Parameter(torch.zeros(4))
        self.unused = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.linear(x, self.w1, self.b1)) @ self.w2 + self.offset


def test_functional_weights_are_rows_and_the_rest_is_listed_with_why():
    model = _Functional()
    x = _batch(32, 8)
    diag = diagnose(model, x)
    assert [(s.name, s.kind, s.units, s.activation) for s in diag.layers] == [
        ("w1", "linear()", 16, "relu"), ("w2", "matmul()", 4, None)]
    h = F.relu(F.linear(x, model.w1, model.b1)).detach()
    assert diag.layer("w1").std == pytest.approx(float(h.std()), rel=1e-6)
    assert diag.layer("w2").healthy_weight_std == pytest.approx(1 / 4)  # fan_in 16 of the (in, out) weight
    cov = diag.coverage
    assert (cov.tensors, cov.measured_tensors) == (5, 3)
    assert cov.parameters == 16 * 8 + 16 + 16 * 4 + 4 + 3 and cov.measured_parameters == 16 * 8 + 16 + 16 * 4
    reasons = {u["name"]: u["reason"] for u in cov.unattributed}
    assert reasons == {"offset": "used directly by Tensor.add, not by a layer initlab measures",
                       "unused": "not used in this forward pass (no gradient reaches it)"}
    assert "measured 3 of 5 parameter tensors" in diag.table().caption
    assert diag.to_dict()["coverage"]["unattributed"][0]["name"] == "offset"


def test_an_mlp_is_fully_covered_and_says_so():
    diag = diagnose(_mlp([8, 16, 16, 1], "relu", "he_normal"), _batch(32, 8))
    assert diag.coverage.complete and diag.coverage.tensors == 6
    assert diag.verdicts[0].message.endswith("measured 6 of 6 parameter tensors (433 of 433 parameters, 100%)")


@pytest.mark.parametrize("act, name, gain", [
    (nn.Hardswish, "hardswish", math.sqrt(2)), (nn.Hardsigmoid, "hardsigmoid", 1.0), (nn.Mish, "mish", math.sqrt(2)),
    (nn.SiLU, "silu", math.sqrt(2)),
])
def test_activation_modules_are_named_and_gain_follows(act, name, gain):
    model = nn.Sequential(nn.Linear(8, 16), act(), nn.Linear(16, 1))
    diag = diagnose(model, _batch(32, 8))
    assert diag.layer("0").activation == name and diag.layer("0").gain == pytest.approx(gain)


def test_a_fan_out_he_conv_counts_as_variance_preserving():
    from initlab.diagnostics.verdicts import scale_ratio

    torch.manual_seed(0)
    conv = nn.Conv2d(16, 64, 3)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")  # std sqrt(2 / (64 * 9))
    model = nn.Sequential(conv, nn.ReLU())
    diag = diagnose(model, torch.randn(4, 16, 8, 8, generator=torch.Generator().manual_seed(0)))
    row = diag.layer("0")
    assert row.healthy_weight_std == pytest.approx(math.sqrt(2 / (16 * 9)))
    assert row.healthy_weight_std_fan_out == pytest.approx(math.sqrt(2 / (64 * 9)))
    assert scale_ratio([row]) == pytest.approx(1.0, abs=0.05)  # judged against fan_out, the mode it was drawn in


class _Attend(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.head = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.attn(x, x, x)[0])  # need_weights=True: the softmax path, not SDPA


def test_multihead_attention_projections_and_entropy_are_measured():
    torch.manual_seed(0)
    model = _Attend()
    x = torch.randn(3, 10, 32, generator=torch.Generator().manual_seed(0))
    diag = diagnose(model, x)
    assert [s.name for s in diag.layers] == ["attn.in_proj", "attn.out_proj", "head"]
    assert diag.coverage.complete
    q, k, _ = F.linear(x, model.attn.in_proj_weight, model.attn.in_proj_bias).detach().chunk(3, dim=-1)
    q, k = (t.reshape(3, 10, 4, 8).transpose(1, 2) for t in (q, k))
    p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1)
    entropy = float((-(p * p.log()).sum(-1) / math.log(10)).mean())
    assert diag.attention[0]["entropy"] == pytest.approx(entropy, abs=1e-5)
    assert diag.attention[0]["heads"] == 4 and diag.attention[0]["keys"] == 10


def _new_gelu(x: torch.Tensor) -> torch.Tensor:
    """GELU's tanh form written inline, as nanoGPT does."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class _InlineGelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.proj = nn.Linear(64, 256), nn.Linear(256, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(_new_gelu(self.fc(x)))


def test_a_tanh_inside_an_inline_gelu_is_not_judged_as_a_saturated_layer():
    torch.manual_seed(0)
    model = apply_init(_InlineGelu(), {"name": "normal", "std": 0.5}, generator=0)
    x = _batch(32, 64)
    diag = diagnose(model, x)
    inner = diag.layer("tanh()")
    assert inner.composite and not diag.layer("fc").composite
    # measured here: most of the inner tanh's outputs are beyond |0.98| (the saturation rule's tanh bound) ...
    z = model.fc(x).detach()
    t = torch.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3))
    assert float((t.abs() > 0.98).float().mean()) >= 0.5
    assert inner.saturated_fraction >= 0.5
    # ... yet GELU passes gradient there (slope ~1 for large x): no saturation verdict
    assert diag.codes == ["healthy"] and "inside expressions not judged (tanh()" in diag.verdicts[0].message


def test_attention_over_one_key_is_neither_collapsed_nor_uniform():
    torch.manual_seed(0)
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2, enable_nested_tensor=False)
    diag = diagnose(model, torch.randn(2, 1, 16, generator=torch.Generator().manual_seed(0)))  # sequences of 1
    assert [a["keys"] for a in diag.attention] == [1, 1]
    assert all(math.isnan(a["collapsed_fraction"]) and math.isnan(a["entropy"]) for a in diag.attention)
    assert diag.codes == ["healthy"] and "entropy not measured" in diag.verdicts[0].message
    assert json.loads(json.dumps(diag.to_dict(), allow_nan=False))["attention"][0]["entropy"] is None


def test_a_non_finite_diagnosis_is_strict_json():
    """A diverging model's loss is NaN/inf: report.json must still be strict JSON (null, not NaN)."""
    import json

    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(40) for m in (nn.Linear(16, 16), nn.ReLU())], nn.Linear(16, 1))
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, std=50.0)
    diagnosis = diagnose(model, torch.randn(32, 16), torch.randint(0, 2, (32, 1)).float())
    assert "non_finite" in diagnosis.codes and not math.isfinite(diagnosis.loss)
    data = diagnosis.to_dict()
    assert data["loss"] is None
    json.dumps(data, allow_nan=False)


def test_the_terminal_table_keeps_layer_names_readable_at_80_columns():
    """Long module names fold onto more lines; they are never squeezed to nothing on a narrow terminal."""
    from rich.console import Console

    class ScaledExponentialGaussianActivation(nn.Module):  # a long class name in the act column
        def forward(self, x):
            return torch.tanh(x)

    layers = []
    for i in range(3):
        layers += [(f"encoder_block_{i}_projection", nn.Linear(32, 32)), (f"act{i}", ScaledExponentialGaussianActivation())]
    model = nn.Sequential(OrderedDict(layers + [("classifier_head_output", nn.Linear(32, 2))]))
    console = Console(width=80, record=True)
    console.print(diagnose(model, torch.randn(64, 32)).table())
    first_column = "".join(line.split("│")[1].strip() for line in console.export_text().splitlines()
                           if line.startswith("│"))  # folded names read back without their line breaks
    for i in range(3):
        assert f"encoder_block_{i}_projection" in first_column
