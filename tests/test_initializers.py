"""The catalog: every random scheme against its formula (Kolmogorov-Smirnov), PyTorch parity,
registry spellings, specs, apply_init and LSUV."""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy import stats
from torch import nn

from initlab import apply_init, initializers
from initlab._validation import ValidationError
from initlab.initializers import compute_fans, get, names
from initlab.theory import critical_sigma_w2

SHAPES = [((64, 32), 0), ((16, 8, 3, 3), 0), ((5, 40, 30), 1)]
P_MIN = 1e-4  # as PyTorch's own init tests


def _fans(shape, batch_dims):
    fan_in, fan_out = compute_fans(shape, batch_dims)
    return fan_in, fan_out


def _trunc(std):
    return stats.truncnorm(-2, 2, loc=0.0, scale=std)


# (spec, function of (fan_in, fan_out) -> the scipy distribution the formula documents)
RANDOM_CASES = [
    ({"name": "normal"}, lambda fi, fo: stats.norm(0, 0.05)),
    ({"name": "normal", "mean": 1.0, "std": 0.3}, lambda fi, fo: stats.norm(1.0, 0.3)),
    ({"name": "uniform"}, lambda fi, fo: stats.uniform(-0.05, 0.1)),
    ({"name": "uniform", "low": 0.0, "high": 2.0}, lambda fi, fo: stats.uniform(0.0, 2.0)),
    ({"name": "truncated_normal", "std": 0.2}, lambda fi, fo: _trunc(0.2)),
    ({"name": "glorot_normal"}, lambda fi, fo: stats.norm(0, math.sqrt(2 / (fi + fo)))),
    ({"name": "glorot_uniform"}, lambda fi, fo: stats.uniform(-math.sqrt(6 / (fi + fo)), 2 * math.sqrt(6 / (fi + fo)))),
    ({"name": "he_normal"}, lambda fi, fo: stats.norm(0, math.sqrt(2 / fi))),
    ({"name": "he_normal", "mode": "fan_out"}, lambda fi, fo: stats.norm(0, math.sqrt(2 / fo))),
    ({"name": "he_normal", "negative_slope": 0.2}, lambda fi, fo: stats.norm(0, math.sqrt(2 / (1.04 * fi)))),
    ({"name": "he_uniform"}, lambda fi, fo: stats.uniform(-math.sqrt(6 / fi), 2 * math.sqrt(6 / fi))),
    ({"name": "lecun_normal"}, lambda fi, fo: _trunc(math.sqrt(1 / fi) / 0.87962566103423978)),
    ({"name": "lecun_uniform"}, lambda fi, fo: stats.uniform(-math.sqrt(3 / fi), 2 * math.sqrt(3 / fi))),
    ({"name": "variance_scaling", "scale": 2.0, "mode": "fan_avg", "distribution": "normal"},
     lambda fi, fo: stats.norm(0, math.sqrt(2.0 / ((fi + fo) / 2)))),
    ({"name": "variance_scaling", "scale": 0.5, "mode": "fan_out", "distribution": "uniform"},
     lambda fi, fo: stats.uniform(-math.sqrt(1.5 / fo), 2 * math.sqrt(1.5 / fo))),
    ({"name": "variance_scaling"}, lambda fi, fo: _trunc(math.sqrt(1 / fi) / 0.87962566103423978)),
    ({"name": "critical", "activation": "tanh", "sigma_b2": 0.05},
     lambda fi, fo: stats.norm(0, math.sqrt(critical_sigma_w2("tanh", 0.05) / fi))),
    ({"name": "critical", "activation": "relu"}, lambda fi, fo: stats.norm(0, math.sqrt(2 / fi))),
]


@pytest.mark.parametrize("spec,dist", RANDOM_CASES, ids=lambda c: json.dumps(c) if isinstance(c, dict) else "")
@pytest.mark.parametrize("shape,batch_dims", SHAPES)
def test_random_scheme_matches_its_formula(spec, dist, shape, batch_dims):
    init = get(spec)
    tensor = init(torch.empty(shape), torch.Generator().manual_seed(0), batch_dims=batch_dims)
    assert tensor.shape == torch.Size(shape)
    expected = dist(*_fans(shape, batch_dims))
    assert stats.kstest(tensor.flatten().numpy(), expected.cdf).pvalue > P_MIN


def test_every_random_scheme_is_covered_by_a_distribution_test():
    covered = {c[0]["name"] for c in RANDOM_CASES} | {"orthogonal", "sparse", "lsuv"}
    random = {s.name for s in initializers.catalog() if s.kind != "constant"}
    assert random <= covered


def test_ks_test_rejects_a_wrong_variance():
    """The threshold is tight enough to catch a scheme drawn with the wrong fan."""
    w = get("he_normal")(torch.empty(64, 32), torch.Generator().manual_seed(0))
    assert stats.kstest(w.flatten().numpy(), stats.norm(0, math.sqrt(2 / 64)).cdf).pvalue < P_MIN


TORCH_EQUIVALENT = [
    ("glorot_normal", lambda t: nn.init.xavier_normal_(t)),
    ("glorot_uniform", lambda t: nn.init.xavier_uniform_(t)),
    ("he_normal", lambda t: nn.init.kaiming_normal_(t, nonlinearity="relu")),
    ("he_uniform", lambda t: nn.init.kaiming_uniform_(t, nonlinearity="relu")),
]


@pytest.mark.parametrize("name,torch_init", TORCH_EQUIVALENT)
@pytest.mark.parametrize("shape", [(64, 32), (16, 8, 3, 3)])
def test_same_distribution_as_pytorch(name, torch_init, shape):
    torch.manual_seed(0)
    theirs = torch_init(torch.empty(shape)).flatten().numpy()
    ours = get(name)(torch.empty(shape), torch.Generator().manual_seed(1)).flatten().numpy()
    assert stats.ks_2samp(ours, theirs).pvalue > P_MIN
    assert ours.std() == pytest.approx(theirs.std(), rel=0.15)


@pytest.mark.parametrize("gain", [1.0, 2.5])
@pytest.mark.parametrize("shape,batch_dims", [((20, 50), 0), ((50, 20), 0), ((8, 4, 3, 3), 0), ((3, 10, 30), 1)])
def test_orthogonal_rows_or_columns_are_orthonormal_times_gain(gain, shape, batch_dims):
    w = get("orthogonal", gain=gain)(torch.empty(shape), torch.Generator().manual_seed(0), batch_dims=batch_dims)
    mats = w.reshape(-1, shape[batch_dims], math.prod(shape[batch_dims + 1:])).double()
    rows, cols = mats.shape[1:]
    gram = mats @ mats.transpose(1, 2) if rows <= cols else mats.transpose(1, 2) @ mats
    eye = torch.eye(min(rows, cols), dtype=torch.float64).expand_as(gram)
    assert torch.allclose(gram, gain**2 * eye, atol=1e-5)


def test_sparse_zero_fraction_per_column_and_normal_rest():
    w = get("sparse", sparsity=0.25, std=0.1)(torch.empty(200, 300), torch.Generator().manual_seed(0))
    zeros_per_column = (w == 0).sum(dim=0)
    assert bool((zeros_per_column == 50).all())
    rest = w[w != 0].numpy()
    assert stats.kstest(rest, stats.norm(0, 0.1).cdf).pvalue > P_MIN


def test_constant_schemes():
    t = torch.empty(3, 4)
    assert bool((get("zeros")(t) == 0).all())
    assert bool((get("ones")(t) == 1).all())
    assert bool((get("constant", value=0.7)(t) == 0.7).all())
    eye = get("identity", gain=2.0)(torch.empty(3, 5))
    assert torch.equal(eye, 2.0 * torch.eye(3, 5))
    dirac = get("dirac")(torch.empty(4, 4, 3, 3))
    x = torch.randn(1, 4, 8, 8)
    assert torch.allclose(nn.functional.conv2d(x, dirac, padding=1), x)


@pytest.mark.parametrize("alias,canonical", [
    ("xavier_uniform", "glorot_uniform"), ("xavier_uniform_", "glorot_uniform"), ("GlorotUniform", "glorot_uniform"),
    ("kaiming_normal_", "he_normal"), ("HeNormal", "variance_scaling"), ("RandomNormal", "normal"), ("normal_", "normal"),
    ("TruncatedNormal", "truncated_normal"), ("trunc_normal_", "truncated_normal"), ("LecunNormal", "lecun_normal"),
    ("VarianceScaling", "variance_scaling"), ("orthogonal_", "orthogonal"), ("eye_", "identity"), ("Zeros", "zeros"),
    ("LSUV", "lsuv"), ("OrthogonalInitializer", "orthogonal"), ("IdentityInitializer", "identity"),
    ("GlorotNormal", "variance_scaling"), ("HeUniform", "he_uniform"), ("LecunUniform", "lecun_uniform"),
    ("Ones", "ones"), ("Constant", "constant"), ("RandomUniform", "uniform"), ("dirac_", "identity"),
])
def test_keras_and_pytorch_spellings_resolve(alias, canonical):
    assert get(alias).name == canonical


def test_parameter_spellings_of_keras_and_pytorch():
    assert get("RandomNormal", stddev=0.3).params == {"std": 0.3}
    assert get("RandomUniform", minval=-1, maxval=1).params == {"low": -1, "high": 1}
    assert get("kaiming_normal_", a=0.1).params == {"negative_slope": 0.1}


def test_spec_round_trips_through_json_and_draws_the_same_numbers():
    init = get("he_uniform", mode="fan_out", negative_slope=0.1)
    again = get(json.loads(json.dumps(init.spec)))
    assert again == init
    a = init(torch.empty(10, 7), torch.Generator().manual_seed(3))
    b = again(torch.empty(10, 7), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_names_are_the_canonical_catalog():
    assert {"zeros", "ones", "constant", "normal", "uniform", "truncated_normal", "variance_scaling",
            "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform",
            "orthogonal", "identity", "sparse", "lsuv"} <= set(names())
    for scheme in initializers.catalog():
        assert scheme.formula and scheme.reference, scheme.name


@pytest.mark.parametrize("call,message", [
    (lambda: get("he_norml"), "unknown initializer 'he_norml'; did you mean 'he_normal'?"),
    (lambda: get("glorot_uniform", mode="fan_in"), "initializer 'glorot_uniform' has no parameter 'mode'"),
    (lambda: get("he_normal", gain=2), "initializer 'he_normal' has no parameter 'gain'"),
    (lambda: get("zeros", seed=1), "initializer 'zeros' has no parameter 'seed'"),
    (lambda: get("he_normal", mode="fan_middle"), "unknown mode 'fan_middle'"),
    (lambda: get("variance_scaling", distribution="cauchy"), "unknown distribution 'cauchy'"),
    (lambda: get("normal", std=-1), "std must be a number in [0.0, inf]"),
    (lambda: get("uniform", low=1, high=0), "uniform needs low <= high"),
    (lambda: get({"mode": "fan_in"}), "needs a 'name' key"),
])
def test_bad_initializer_input_raises_one_line_error(call, message):
    with pytest.raises(ValidationError) as err:
        call()
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def _net():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 16), nn.Tanh(), nn.Linear(16, 2))


def test_apply_init_covers_every_linear_and_conv_layer_and_is_deterministic():
    a = apply_init(_net(), "he_normal", bias={"name": "constant", "value": 0.1}, generator=7)
    b = apply_init(_net(), "kaiming_normal", bias={"name": "constant", "value": 0.1}, generator=7)
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=False):
        assert torch.equal(pa, pb), na
    conv, lin = a[0], a[3]
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / 27), rel=0.2)
    assert float(lin.weight.detach().std()) == pytest.approx(math.sqrt(2 / 288), rel=0.1)
    assert bool((conv.bias == 0.1).all()) and bool((lin.bias == 0.1).all())
    c = apply_init(_net(), "he_normal", generator=8)
    assert not torch.equal(c[3].weight, a[3].weight)


def test_apply_init_bias_none_leaves_biases():
    net = _net()
    before = net[3].bias.detach().clone()
    apply_init(net, "zeros", bias=None)
    assert torch.equal(net[3].bias, before)
    assert bool((net[3].weight == 0).all())


def test_lsuv_gives_unit_output_variance_per_layer():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    data = torch.randn(256, 20, generator=torch.Generator().manual_seed(1)) * 5.0
    apply_init(net, {"name": "lsuv", "tol": 0.01}, generator=0, data=data)
    with torch.no_grad():
        h1 = net[0](data)
        h2 = net[2](net[1](h1))
        out = net[4](net[3](h2))
    for h in (h1, h2, out):
        assert float(h.var()) == pytest.approx(1.0, abs=0.011)


def test_lsuv_without_data_is_a_clear_error():
    with pytest.raises(ValidationError, match="data-dependent: pass data="):
        apply_init(nn.Sequential(nn.Linear(3, 3)), "lsuv")
