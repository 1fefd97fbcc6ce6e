"""Keras and PyTorch spellings behave as in the library they come from, or fail as it does, or
differ in a documented way: table-driven against ``torch.nn.init`` (run here) and Keras'
documented formulas (Keras is not a dependency, so its formulas are written out)."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from scipy import stats
from torch import nn

from initlab import apply_init
from initlab._validation import ValidationError
from initlab.initializers import calculate_gain, get

P_MIN = 1e-4  # as PyTorch's own init tests
KERAS_TRUNC = 0.87962566103423978  # Keras: stddev = sqrt(scale / n) / .87962566103423978, cut at 2 stddev


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ item 12: calculate_gain

GAIN_CASES = [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None), ("conv_transpose1d", None),
    ("conv_transpose2d", None), ("conv_transpose3d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 1), ("leaky_relu", -0.5), ("selu", None),
    ("tanh", 0.3),  # param ignored except for leaky_relu, as torch
]


@pytest.mark.parametrize("nonlinearity,param", GAIN_CASES)
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert calculate_gain(nonlinearity, param) == pytest.approx(nn.init.calculate_gain(nonlinearity, param), rel=1e-15)


@pytest.mark.parametrize("nonlinearity,param", [
    ("gelu", None), ("identity", None), ("elu", None), ("ReLU", None), ("", None), (None, None),
    ("leaky_relu", True), ("leaky_relu", "0.1"),
])
def test_calculate_gain_raises_where_torch_raises(nonlinearity, param):
    with pytest.raises(ValueError):
        nn.init.calculate_gain(nonlinearity, param)
    with pytest.raises(ValidationError) as err:  # a ValueError too
        calculate_gain(nonlinearity, param)
    assert "\n" not in str(err.value)


def test_unknown_nonlinearity_message_lists_the_allowed_and_suggests():
    with pytest.raises(ValidationError) as err:
        calculate_gain("reul")
    msg = str(err.value)
    assert "unknown nonlinearity 'reul'; did you mean 'relu'?" in msg and "conv_transpose3d" in msg


# ------------------------------------------------------------- item 13: PyTorch keywords

SHAPES = [(64, 32), (16, 8, 3, 3)]

# (our spelling, our params, torch function, torch kwargs)
TORCH_CASES = [
    ("kaiming_normal_", {}, nn.init.kaiming_normal_, {}),
    ("kaiming_normal", {"nonlinearity": "relu"}, nn.init.kaiming_normal_, {"nonlinearity": "relu"}),
    ("kaiming_normal_", {"nonlinearity": "leaky_relu", "a": 0.2}, nn.init.kaiming_normal_, {"nonlinearity": "leaky_relu", "a": 0.2}),
    ("kaiming_normal_", {"a": 0.3}, nn.init.kaiming_normal_, {"a": 0.3}),
    ("kaiming_normal_", {"nonlinearity": "relu", "a": 0.5}, nn.init.kaiming_normal_, {"nonlinearity": "relu", "a": 0.5}),
    ("kaiming_normal_", {"nonlinearity": "tanh"}, nn.init.kaiming_normal_, {"nonlinearity": "tanh"}),
    ("kaiming_normal_", {"nonlinearity": "linear", "mode": "fan_out"}, nn.init.kaiming_normal_,
     {"nonlinearity": "linear", "mode": "fan_out"}),
    ("kaiming_normal_", {"nonlinearity": "selu"}, nn.init.kaiming_normal_, {"nonlinearity": "selu"}),
    ("kaiming_uniform_", {"nonlinearity": "relu", "mode": "fan_out"}, nn.init.kaiming_uniform_,
     {"nonlinearity": "relu", "mode": "fan_out"}),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, nn.init.kaiming_uniform_, {"a": math.sqrt(5)}),  # nn.Linear's own
    ("kaiming_uniform_", {"nonlinearity": "sigmoid"}, nn.init.kaiming_uniform_, {"nonlinearity": "sigmoid"}),
    ("xavier_normal_", {"gain": 2.0}, nn.init.xavier_normal_, {"gain": 2.0}),
    ("xavier_uniform_", {"gain": math.sqrt(2)}, nn.init.xavier_uniform_, {"gain": math.sqrt(2)}),
    ("xavier_uniform_", {"gain": 1.0}, nn.init.xavier_uniform_, {}),
    ("uniform_", {}, nn.init.uniform_, {}),
    ("uniform_", {"a": -1.0, "b": 3.0}, nn.init.uniform_, {"a": -1.0, "b": 3.0}),
    ("normal_", {}, nn.init.normal_, {}),
    ("normal_", {"mean": 1.0, "std": 2.0}, nn.init.normal_, {"mean": 1.0, "std": 2.0}),
    ("trunc_normal_", {}, nn.init.trunc_normal_, {}),
    ("trunc_normal_", {"std": 0.02}, nn.init.trunc_normal_, {"std": 0.02}),  # cut at +-2: 100 std
    ("trunc_normal_", {"mean": 0.5, "std": 1.0, "a": -0.5, "b": 1.0}, nn.init.trunc_normal_,
     {"mean": 0.5, "std": 1.0, "a": -0.5, "b": 1.0}),
    ("sparse_", {"sparsity": 0.3}, nn.init.sparse_, {"sparsity": 0.3}),
]


@pytest.mark.parametrize("spelling,params,torch_init,torch_kw", TORCH_CASES,
                         ids=[f"{c[0]}{json.dumps(c[1])}" for c in TORCH_CASES])
@pytest.mark.parametrize("shape", SHAPES)
def test_pytorch_spelling_draws_as_torch(spelling, params, torch_init, torch_kw, shape):
    if torch_init is nn.init.sparse_ and len(shape) != 2:
        pytest.skip("sparse_ is 2-D only (see the error table)")
    theirs = torch_init(torch.empty(shape), **torch_kw, generator=_gen(0)).flatten().numpy()
    ours = get(spelling, **params)(torch.empty(shape), _gen(1)).flatten().numpy()
    assert stats.ks_2samp(ours, theirs).pvalue > P_MIN
    assert ours.std() == pytest.approx(theirs.std(), rel=0.1)


@pytest.mark.parametrize("spelling,params,low,high", [
    ("uniform_", {}, 0.0, 1.0), ("uniform_", {"a": -1.0, "b": 3.0}, -1.0, 3.0), ("trunc_normal_", {}, -2.0, 2.0),
    ("trunc_normal_", {"mean": 0.5, "a": -0.5, "b": 1.0}, -0.5, 1.0),
    ("kaiming_uniform_", {"nonlinearity": "relu"}, -math.sqrt(6 / 300), math.sqrt(6 / 300)),
    ("xavier_uniform_", {"gain": 2.0}, -2 * math.sqrt(6 / 700), 2 * math.sqrt(6 / 700)),
])
def test_bounded_pytorch_spellings_fill_torch_support(spelling, params, low, high):
    w = get(spelling, **params)(torch.empty(400, 300), _gen(5))
    span = high - low
    assert low <= float(w.min()) < low + 0.01 * span and high - 0.01 * span < float(w.max()) <= high


def test_kaiming_std_is_torch_gain_over_sqrt_fan():
    """The std itself, against torch's formula std = gain / sqrt(fan), for every nonlinearity."""
    w = torch.empty(400, 300)
    for nonlinearity in ["relu", "leaky_relu", "tanh", "linear", "sigmoid", "selu", "conv2d"]:
        drawn = get("kaiming_normal_", nonlinearity=nonlinearity)(w, _gen(2))
        want = nn.init.calculate_gain(nonlinearity, 0) / math.sqrt(300)
        assert stats.kstest(drawn.flatten().numpy(), stats.norm(0, want).cdf).pvalue > P_MIN, nonlinearity


@pytest.mark.parametrize("spelling,params,torch_init,torch_kw", [
    ("constant_", {"val": 0.3}, nn.init.constant_, {"val": 0.3}),
    ("zeros_", {}, nn.init.zeros_, {}),
    ("ones_", {}, nn.init.ones_, {}),
    ("eye_", {}, nn.init.eye_, {}),
    ("dirac_", {}, nn.init.dirac_, {}),
    ("dirac_", {"groups": 2}, nn.init.dirac_, {"groups": 2}),
    ("dirac_", {"groups": 3}, nn.init.dirac_, {"groups": 3}),
])
@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 3), (6, 2, 3, 3), (6, 6, 3, 3, 3), (3, 8, 5, 5)])
def test_pytorch_constant_spellings_fill_exactly_as_torch(spelling, params, torch_init, torch_kw, shape):
    try:
        theirs = torch_init(torch.empty(shape), **torch_kw)
    except ValueError:
        pytest.skip("torch rejects this rank or groups (see the error tables)")
    ours = get(spelling, **params)(torch.empty(shape))
    assert torch.equal(ours, theirs)


# (call on our side, call on torch's side): both raise ValueError (ours: a one-line ValidationError)
SAME_ERRORS = [
    (lambda: get("sparse_")(torch.empty(16, 8, 3, 3), _gen()), lambda: nn.init.sparse_(torch.empty(16, 8, 3, 3), 0.1)),
    (lambda: get("sparse_")(torch.empty(16), _gen()), lambda: nn.init.sparse_(torch.empty(16), 0.1)),
    (lambda: get("eye_")(torch.empty(5)), lambda: nn.init.eye_(torch.empty(5))),
    (lambda: get("dirac_")(torch.empty(5)), lambda: nn.init.dirac_(torch.empty(5))),
    (lambda: get("dirac_", groups=3)(torch.empty(4, 4, 3, 3)), lambda: nn.init.dirac_(torch.empty(4, 4, 3, 3), groups=3)),
    (lambda: get("orthogonal_")(torch.empty(5)), lambda: nn.init.orthogonal_(torch.empty(5))),
    (lambda: get("kaiming_normal_", nonlinearity="gelu"), lambda: nn.init.kaiming_normal_(torch.empty(4, 4), nonlinearity="gelu")),
    (lambda: get("kaiming_uniform_", nonlinearity="leaky_relu", a=True),
     lambda: nn.init.kaiming_uniform_(torch.empty(4, 4), a=True, nonlinearity="leaky_relu")),
    (lambda: get("kaiming_normal_", mode="fan_middle"), lambda: nn.init.kaiming_normal_(torch.empty(4, 4), mode="fan_middle")),
]


@pytest.mark.parametrize("ours,theirs", SAME_ERRORS)
def test_errors_where_torch_raises(ours, theirs):
    with pytest.raises(ValueError):
        theirs()
    with pytest.raises(ValidationError) as err:
        ours()
    assert "\n" not in str(err.value)


# Documented differences: torch raises, initlab fills (docstrings of variance_scaling and identity).
DOCUMENTED_DIFFERENCES = [
    # a bias vector: fans = its length, as Keras' compute_fans
    (lambda: get("xavier_uniform_")(torch.empty(10), _gen()), lambda: nn.init.xavier_uniform_(torch.empty(10))),
    (lambda: get("kaiming_normal_")(torch.empty(10), _gen()), lambda: nn.init.kaiming_normal_(torch.empty(10))),
    (lambda: get("kaiming_normal_")(torch.empty(()), _gen()), lambda: nn.init.kaiming_normal_(torch.empty(()))),
    # one identity scheme: eye_ also fills a conv weight, dirac_ a 2-D one
    (lambda: get("eye_")(torch.empty(4, 4, 3, 3)), lambda: nn.init.eye_(torch.empty(4, 4, 3, 3))),
    (lambda: get("dirac_")(torch.empty(4, 4)), lambda: nn.init.dirac_(torch.empty(4, 4))),
    # fan_avg is allowed for he_* (initlab's variance_scaling modes)
    (lambda: get("kaiming_normal_", mode="fan_avg")(torch.empty(4, 4), _gen()),
     lambda: nn.init.kaiming_normal_(torch.empty(4, 4), mode="fan_avg")),
]


@pytest.mark.parametrize("ours,theirs", DOCUMENTED_DIFFERENCES)
def test_documented_differences_from_torch(ours, theirs):
    with pytest.raises(ValueError):
        theirs()
    assert torch.isfinite(ours()).all()


def test_bias_vector_fans_are_its_length_and_apply_init_uses_the_weight_fans():
    """Direct call on a bias: Keras' fan = units; apply_init: the layer's weight fan_in, as torch's layer reset."""
    bias = get("he_uniform")(torch.empty(20000), _gen())
    assert float(bias.abs().max()) == pytest.approx(math.sqrt(6 / 20000), rel=1e-3)
    net = apply_init(nn.Sequential(nn.Linear(300, 20000)), "zeros", bias="he_uniform", generator=0)
    assert float(net[0].bias.detach().abs().max()) == pytest.approx(math.sqrt(6 / 300), rel=1e-3)


@pytest.mark.parametrize("spelling", ["kaiming_normal_", "kaiming_uniform_", "xavier_normal_", "xavier_uniform_",
                                      "HeNormal", "lecun_normal"])
def test_zero_element_tensor_warns_as_torch(spelling):
    with pytest.warns(UserWarning, match="zero-element"):
        nn.init.kaiming_normal_(torch.empty(0, 5))
    with pytest.warns(UserWarning, match="zero-element"):
        out = get(spelling)(torch.empty(0, 5), _gen())
    assert out.shape == (0, 5)


@pytest.mark.parametrize("spelling", ["orthogonal_", "sparse_", "eye_", "zeros_"])
def test_zero_element_tensor_is_a_silent_no_op_as_torch(spelling):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get(spelling)(torch.empty(0, 5), _gen()).shape == (0, 5)


DUPLICATES = [
    ("kaiming_normal_", {"a": 0.1, "negative_slope": 0.2}, "'negative_slope' given twice, as 'a' and 'negative_slope'"),
    ("uniform_", {"a": 0.0, "low": 0.0}, "'low' given twice"),
    ("RandomUniform", {"minval": 0.0, "low": 0.0}, "'low' given twice"),
    ("RandomNormal", {"stddev": 1.0, "std": 1.0}, "'std' given twice"),
    ("constant_", {"val": 1.0, "value": 1.0}, "'value' given twice"),
    ("trunc_normal_", {"b": 1.0, "high": 1.0}, "'high' given twice"),
]


@pytest.mark.parametrize("spelling,params,message", DUPLICATES)
def test_a_parameter_given_under_two_spellings_is_an_error(spelling, params, message):
    with pytest.raises(ValidationError) as err:
        get(spelling, **params)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_keyword_spellings_become_canonical_params():
    assert get("kaiming_normal", nonlinearity="relu").spec == {"name": "he_normal"}
    assert get("kaiming_normal_", nonlinearity="leaky_relu", a=0.2).spec == {"name": "he_normal", "negative_slope": 0.2}
    assert get("kaiming_uniform_", nonlinearity="tanh", mode="fan_out").spec == {
        "name": "variance_scaling", "scale": (5 / 3) ** 2, "mode": "fan_out", "distribution": "uniform"}
    assert get("xavier_normal_", gain=2).spec == {"name": "variance_scaling", "scale": 4.0, "mode": "fan_avg",
                                                  "distribution": "normal"}
    assert get("xavier_normal_", gain=1).spec == {"name": "glorot_normal"}
    assert get("uniform_", a=-1, b=1).spec == {"name": "uniform", "low": -1, "high": 1}
    assert get("trunc_normal_", std=0.02).spec == {"name": "truncated_normal", "std": 0.02, "low": -2.0, "high": 2.0}
    assert get("constant_", val=0.3).spec == {"name": "constant", "value": 0.3}
    assert get("dirac_", groups=2).spec == {"name": "identity", "groups": 2}


# ------------------------------------------------------------------------- item 14: Keras

def _keras_fans(keras_shape):
    """Keras' compute_fans on its own layout (*kernel, in, out), written out from its documentation."""
    if len(keras_shape) == 1:
        return keras_shape[0], keras_shape[0]
    receptive = math.prod(keras_shape[:-2])
    return keras_shape[-2] * receptive, keras_shape[-1] * receptive


def _torch_layout(keras_shape):
    """(*kernel, in, out) -> (out, in, *kernel): the same weight in PyTorch's layout."""
    *kernel, fan_in, fan_out = keras_shape
    return (fan_out, fan_in, *kernel)


def _vs(scale, mode, distribution):
    def dist(fi, fo):
        n = {"fan_in": fi, "fan_out": fo, "fan_avg": (fi + fo) / 2}[mode]
        if distribution == "uniform":
            limit = math.sqrt(3 * scale / n)
            return stats.uniform(-limit, 2 * limit)
        if distribution == "untruncated_normal":
            return stats.norm(0, math.sqrt(scale / n))
        return stats.truncnorm(-2, 2, scale=math.sqrt(scale / n) / KERAS_TRUNC)  # Keras' truncated_normal
    return dist


# (Keras spelling, params, Keras' documented distribution as a function of its fans)
KERAS_CASES = [
    ("VarianceScaling", {}, _vs(1.0, "fan_in", "truncated_normal")),
    ("VarianceScaling", {"scale": 2.0, "mode": "fan_out", "distribution": "normal"}, _vs(2.0, "fan_out", "truncated_normal")),
    ("VarianceScaling", {"scale": 0.5, "mode": "fan_avg", "distribution": "untruncated_normal"}, _vs(0.5, "fan_avg", "untruncated_normal")),
    ("VarianceScaling", {"scale": 3.0, "distribution": "uniform"}, _vs(3.0, "fan_in", "uniform")),
    ("HeNormal", {}, _vs(2.0, "fan_in", "truncated_normal")),
    ("HeUniform", {}, _vs(2.0, "fan_in", "uniform")),
    ("GlorotNormal", {}, _vs(1.0, "fan_avg", "truncated_normal")),
    ("GlorotUniform", {}, _vs(1.0, "fan_avg", "uniform")),
    ("LecunNormal", {}, _vs(1.0, "fan_in", "truncated_normal")),
    ("LecunUniform", {}, _vs(1.0, "fan_in", "uniform")),
    ("RandomNormal", {"mean": 1.0, "stddev": 0.3}, lambda fi, fo: stats.norm(1.0, 0.3)),
    ("RandomNormal", {}, lambda fi, fo: stats.norm(0.0, 0.05)),
    ("RandomUniform", {"minval": -1.0, "maxval": 2.0}, lambda fi, fo: stats.uniform(-1.0, 3.0)),
    ("TruncatedNormal", {"mean": 1.0, "stddev": 0.3}, lambda fi, fo: stats.truncnorm(-2, 2, loc=1.0, scale=0.3)),
]
KERAS_SHAPES = [(32, 64), (3, 3, 8, 16), (5, 20, 10), (256, 512)]  # Keras layout (*kernel, in, out)


@pytest.mark.parametrize("spelling,params,dist", KERAS_CASES, ids=[f"{c[0]}{json.dumps(c[1])}" for c in KERAS_CASES])
@pytest.mark.parametrize("keras_shape", KERAS_SHAPES)
def test_keras_spelling_draws_keras_documented_distribution(spelling, params, dist, keras_shape):
    w = get(spelling, **params)(torch.empty(_torch_layout(keras_shape)), _gen(3)).flatten().numpy()
    expected = dist(*_keras_fans(keras_shape))
    assert stats.kstest(w, expected.cdf).pvalue > P_MIN
    low, high = expected.support()  # the cut of a truncated normal, the bounds of a uniform
    assert low - 1e-6 <= w.min() and w.max() <= high + 1e-6


def test_keras_variance_scaling_normal_is_truncated_but_initlab_normal_is_not():
    keras = get("VarianceScaling", distribution="normal")(torch.empty(512, 256), _gen())
    ours = get("variance_scaling", distribution="normal")(torch.empty(512, 256), _gen())
    limit = 2 * math.sqrt(1 / 256) / KERAS_TRUNC
    assert float(keras.abs().max()) <= limit + 1e-6
    assert float((ours.abs() > limit).float().mean()) > 0.01  # plain N(0, 1/256) as in JAX


def test_keras_constant_spellings():
    w = get("OrthogonalInitializer", gain=2.0)(torch.empty(3, 5), _gen())
    assert torch.allclose(w @ w.T, 4 * torch.eye(3), atol=1e-5)
    assert torch.equal(get("IdentityInitializer", gain=2.0)(torch.empty(3, 5)), 2 * torch.eye(3, 5))
    assert bool((get("Constant", value=3.0)(torch.empty(2, 2)) == 3).all())


SEEDED = [("HeNormal", {"seed": 1}), ("he_normal", {"seed": 1}), ("RandomUniform", {"seed": 7, "minval": -1.0}),
          ("trunc_normal_", {"seed": 2, "std": 0.02}), ("Orthogonal", {"seed": 3}), ("sparse", {"seed": 4}),
          ("kaiming_normal_", {"seed": 5, "nonlinearity": "tanh"})]


@pytest.mark.parametrize("spelling,params", SEEDED)
def test_seed_in_the_spec_gives_the_same_tensor_each_call_and_round_trips(spelling, params):
    init = get(spelling, **params)
    a, b = init(torch.empty(30, 20)), init(torch.empty(30, 20))
    assert torch.equal(a, b)
    again = get(json.loads(json.dumps(init.spec)))
    assert again == init and torch.equal(again(torch.empty(30, 20)), a)
    other = get(spelling, **{**params, "seed": params["seed"] + 100})(torch.empty(30, 20))
    assert not torch.equal(other, a)


def test_a_generator_argument_wins_over_the_spec_seed():
    seeded = get("HeNormal", seed=1)
    with_gen = seeded(torch.empty(30, 20), _gen(9))
    unseeded = get("HeNormal")(torch.empty(30, 20), _gen(9))
    assert torch.equal(with_gen, unseeded)
    assert not torch.equal(with_gen, seeded(torch.empty(30, 20)))


def test_apply_init_with_a_seeded_spec_is_reproducible_and_layers_differ():
    net = lambda: nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))  # noqa: E731
    a = apply_init(net(), {"name": "HeNormal", "seed": 1})
    b = apply_init(net(), {"name": "HeNormal", "seed": 1})
    assert torch.equal(a[0].weight, b[0].weight) and torch.equal(a[1].weight, b[1].weight)
    assert not torch.equal(a[0].weight, a[1].weight)
    c = apply_init(net(), {"name": "HeNormal", "seed": 1}, generator=2)
    assert torch.equal(c[0].weight, apply_init(net(), "HeNormal", generator=2)[0].weight)


@pytest.mark.parametrize("seed,message", [(-1, "seed must be an integer in [0, inf]"), ("x", "seed must be an integer"),
                                          (1.5, "seed must be an integer")])
def test_bad_seed_is_a_one_line_error(seed, message):
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        get("HeNormal", seed=seed)


# Every translated spelling round-trips through JSON and draws the same numbers.
ROUND_TRIPS = [(s, p) for s, p, *_ in TORCH_CASES] + [(s, p) for s, p, _ in KERAS_CASES] + [
    ("dirac_", {"groups": 2}), ("constant_", {"val": 0.3}), ("IdentityInitializer", {"gain": 2.0})]


@pytest.mark.parametrize("spelling,params", ROUND_TRIPS)
def test_every_spelling_round_trips_through_json(spelling, params):
    init = get(spelling, **params)
    again = get(json.loads(json.dumps(init.spec)))
    assert again == init
    assert torch.equal(init(torch.empty(8, 6), _gen(4)), again(torch.empty(8, 6), _gen(4)))


# ------------------------------------------------------------------- item 15: shapes, layout

@pytest.mark.parametrize("call,message", [
    (lambda: get("he_normal")(torch.empty(3, 3), fans=("a", 1)), "fans[0] (fan_in) must be an integer"),
    (lambda: get("he_normal")(torch.empty(3, 3), fans=(3,)), "fans must be a pair (fan_in, fan_out)"),
    (lambda: get("he_normal")(torch.empty(3, 3), batch_dims=3), "batch_dims must be an integer in [0, 2]"),
    (lambda: get("sparse")(torch.empty(4, 3, 2), batch_dims=0), "sparse needs a 2-D weight (out, in)"),
    (lambda: get("identity")(torch.empty(5)), "identity needs a weight (out, in, *kernel)"),
    (lambda: get("identity", groups=0), "groups must be an integer in [1, inf]"),
    (lambda: get("truncated_normal", low=1.0, high=0.0), "truncated_normal needs low < high"),
    (lambda: get("kaiming_normal_", nonlinearty="relu"), "did you mean 'nonlinearity'?"),
    (lambda: get("xavier_uniform_", gain=0), "gain must be > 0.0"),
    (lambda: get("kaiming_normal_", nonlinearity="reul"), "unknown nonlinearity 'reul'; did you mean 'relu'?"),
    (lambda: get("VarianceScaling", distribution="untruncated"), "did you mean 'untruncated_normal'?"),
])
def test_shape_and_keyword_errors_are_one_line(call, message):
    with pytest.raises(ValidationError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_stacked_sparse_keeps_working_with_batch_dims():
    w = get("sparse", sparsity=0.5)(torch.empty(3, 10, 4), _gen(), batch_dims=1)
    assert bool(((w == 0).sum(dim=1) == 5).all())
