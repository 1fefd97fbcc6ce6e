"""From an initializer to mean-field theory, and theory against measurement.

``effective_sigma_w2`` reads the sigma_w2 of the mean-field setting off a catalog scheme:
a weight of variance v on a layer with ``fan_in`` inputs has ``sigma_w2 = v * fan_in``
(he_normal: 2; glorot on a square layer: 1; lecun: 1). ``effective_sigma_b2`` reads sigma_b2,
the bias variance, off the bias scheme a run used (zeros: 0; normal std s: s^2; critical: its
sigma_b2), so that theory places each run where it was. ``check_variance`` then compares,
layer by layer, the predicted pre-activation variance q^l of the length map with the one
measured on real ``initlab.models.MLP`` networks initialized with that scheme.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from .. import initializers
from .._rng import make_generator
from .._validation import ValidationError, check_float, check_int
from ..initializers._critical_point import variance_arg
from ..initializers._fans import fan_for_mode
from ..initializers.registry import Initializer
from .meanfield import Activation, MeanField, resolve_activation

if TYPE_CHECKING:
    from ..initializers._gauss import Kernel

__all__ = ["effective_sigma_w2", "effective_sigma_b2", "as_init_spec", "predicted_preactivation_variance",
           "measure_preactivation_variance",
           "check_variance", "VarianceCheck"]

_TRUNC_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]
_VS_SCALE = {  # variance_scaling(scale, mode) behind each named scheme
    "glorot_normal": (1.0, "fan_avg"), "glorot_uniform": (1.0, "fan_avg"),
    "lecun_normal": (1.0, "fan_in"), "lecun_uniform": (1.0, "fan_in"),
}


def effective_sigma_w2(init: str | Mapping[str, Any] | Initializer, fan_in: int, fan_out: int | None = None) -> float:
    """sigma_w2 = Var(W_ij) * fan_in of a catalog scheme on a layer of ``fan_in`` -> ``fan_out``.

    ``fan_out`` defaults to ``fan_in`` (a square layer). Examples: he_normal -> 2,
    glorot_* on a square layer -> 1 (2 fan_in / (fan_in + fan_out) in general), lecun_* -> 1,
    orthogonal(gain) -> gain^2 fan_in / max(fan_in, fan_out), zeros -> 0,
    critical -> critical_sigma_w2(activation, sigma_b2). Mean-field theory assumes i.i.d.
    zero-mean weights (Poole et al. 2016), so constant, identity, non-zero-mean and
    data-dependent (lsuv) schemes raise a ValidationError.
    """
    init = initializers.get(init)
    fan_in = check_int("fan_in", fan_in, 1)
    fan_out = fan_in if fan_out is None else check_int("fan_out", fan_out, 1)
    p = {**init.scheme.defaults, **init.params}
    name = init.name
    if name in _VS_SCALE:
        scale, mode = _VS_SCALE[name]
        return scale * fan_in / max(1.0, fan_for_mode((fan_in, fan_out), mode))
    if name in ("he_normal", "he_uniform"):
        scale = 2.0 / (1.0 + float(p["negative_slope"]) ** 2)
        return scale * fan_in / max(1.0, fan_for_mode((fan_in, fan_out), p["mode"]))
    if name == "variance_scaling":
        return float(p["scale"]) * fan_in / max(1.0, fan_for_mode((fan_in, fan_out), p["mode"]))
    if name == "critical":
        from .meanfield import critical_sigma_w2

        return critical_sigma_w2(p["activation"], p["sigma_b2"])
    if name == "zeros" or (name == "constant" and float(p["value"]) == 0.0):
        return 0.0
    if name in ("normal", "truncated_normal"):
        _zero_mean(name, float(p["mean"]))
        std = float(p["std"]) * (_TRUNC_STD if name == "truncated_normal" else 1.0)
        return std**2 * fan_in
    if name == "uniform":
        low, high = float(p["low"]), float(p["high"])
        _zero_mean(name, (low + high) / 2)
        return (high - low) ** 2 / 12.0 * fan_in
    if name == "orthogonal":
        return float(p["gain"]) ** 2 * fan_in / max(fan_in, fan_out)
    if name == "sparse":
        kept = 1.0 - math.ceil(float(p["sparsity"]) * fan_out) / fan_out  # zeros per column, out of fan_out rows
        return kept * float(p["std"]) ** 2 * fan_in
    raise ValidationError(
        f"initializer {name!r} has no mean-field sigma_w2: the theory needs i.i.d. zero-mean random weights "
        "(use a variance-scaling, normal, uniform, orthogonal, sparse or critical scheme)"
    )


# Bias schemes with no mean-field bias variance: they shape matrices, not vectors.
_NOT_BIAS_SCHEMES = ("orthogonal", "identity", "sparse", "lsuv")


def as_init_spec(value: Any) -> str | Mapping[str, Any] | Initializer:
    """An initializer as stored: a name, a spec dict, an Initializer, or a spec written as JSON
    (``'{"name": "normal", "std": 0.1}'``, ``'"zeros"'``) or as a Python dict literal (the sweep
    store's ``bias_init`` column). Returns something ``initializers.get`` accepts."""
    if isinstance(value, str) and value.strip().startswith(("{", '"')):
        text = value.strip()
        try:
            return cast("str | Mapping[str, Any] | Initializer", json.loads(text))  # a spec, checked by get()
        except json.JSONDecodeError:
            try:
                return cast("str | Mapping[str, Any] | Initializer", ast.literal_eval(text))
            except (ValueError, SyntaxError):
                raise ValidationError(f"initializer {value!r} is neither a name nor a JSON or dict spec") from None
    return cast("str | Mapping[str, Any] | Initializer", value)


def effective_sigma_b2(bias_init: Any, fan_in: int, fan_out: int | None = None) -> float:
    """sigma_b2 = Var(b_i) of a bias scheme on a layer of ``fan_in`` -> ``fan_out`` (default square).

    The bias variance of mean-field theory, for the bias init a run used (``apply_init``'s
    ``bias``; the sweep store's ``bias_init`` column, as a name, spec, JSON or dict literal):
    zeros -> 0; normal(std) -> std^2; truncated_normal(std) -> (0.8796 std)^2; uniform(low,
    high) -> (high - low)^2 / 12; critical -> its ``sigma_b2`` (the biases of its critical
    point); a variance-scaling scheme (he, glorot, lecun, ...) draws biases with the layer's
    weight fans, so -> its weight variance, effective_sigma_w2 / fan_in; ``None`` (PyTorch's
    own nn.Linear bias, U(+-1/sqrt(fan_in))) -> 1 / (3 fan_in). Mean-field theory assumes
    zero-mean i.i.d. biases: constant non-zero, ones and off-centre schemes raise a
    ValidationError, as do the matrix schemes (orthogonal, identity, sparse, lsuv).
    """
    fan_in = check_int("fan_in", fan_in, 1)
    if bias_init is None:
        return 1.0 / (3.0 * fan_in)
    init = initializers.get(as_init_spec(bias_init))
    params = {**init.scheme.defaults, **init.params}
    if init.name == "critical":
        return variance_arg("sigma_b2", params["sigma_b2"])
    zero = init.name == "zeros" or (init.name == "constant" and float(params["value"]) == 0.0)
    if init.name in _NOT_BIAS_SCHEMES or (init.scheme.kind == "constant" and not zero):
        why = "a matrix scheme" if init.name in _NOT_BIAS_SCHEMES else "constant and not zero"
        raise ValidationError(f"bias init {str(init)!r} has no mean-field sigma_b2 ({why}; the theory needs i.i.d. "
                              "zero-mean biases): use zeros, normal, uniform, truncated_normal, a variance-scaling "
                              "scheme or critical")
    try:
        return effective_sigma_w2(init, fan_in, fan_out) / fan_in
    except ValidationError as err:
        raise ValidationError(f"bias init {str(init)!r}: {err}".replace("weights", "biases")) from None


def _zero_mean(name: str, mean: float) -> None:
    if mean != 0.0:
        raise ValidationError(f"initializer {name!r} has mean {mean:g}; mean-field theory needs zero-mean weights (mean=0)")


def _layer_fans(input_dim: int, width: int, depth: int) -> list[tuple[int, int]]:
    return [(input_dim, width)] + [(width, width)] * (depth - 1)


def predicted_preactivation_variance(
    activation: Activation | Kernel, sigma_w2: float | Sequence[float], sigma_b2: float, q0: float,
    depth: int | None = None,
) -> np.ndarray:
    """Predicted q^1..q^L: the variance of the pre-activations h^l = W^l phi(h^{l-1}) + b^l.

    The first layer sees the input itself, so q^1 = sigma_w2^1 q^0 + sigma_b2 with q^0 the
    mean squared input coordinate; then q^l = sigma_w2^l E[phi(sqrt(q^{l-1}) z)^2] + sigma_b2
    (Poole et al. 2016, eq. 3). ``sigma_w2`` is one value or one per layer.
    """
    if np.ndim(sigma_w2) == 0:
        depth = check_int("depth", depth, 1)
        sigma_w2 = [float(cast(float, sigma_w2))] * depth
    per_layer = cast("Sequence[float]", sigma_w2)
    kernel = resolve_activation(activation)
    qs = [per_layer[0] * float(q0) + variance_arg("sigma_b2", sigma_b2)]
    for sw2 in per_layer[1:]:
        qs.append(MeanField(kernel, sw2, sigma_b2).length_map(qs[-1]))
    return np.asarray(qs)


class _Elementwise(torch.nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _network(input_dim: int, width: int, depth: int, activation: Activation) -> tuple[torch.nn.Module, list[torch.nn.Linear]]:
    """``depth`` Linear layers (input_dim -> width -> ... -> width) with phi between them."""
    from ..models import MLP

    with torch.random.fork_rng(devices=[]):  # nn.Linear's own default init must not touch the global RNG
        if isinstance(activation, str):
            model = MLP([input_dim] + [width] * depth, activation, output="linear")
            return model, model.linears
        layers: list[torch.nn.Module] = []
        for i, (n_in, n_out) in enumerate(_layer_fans(input_dim, width, depth)):
            layers += ([_Elementwise(activation)] if i else []) + [torch.nn.Linear(n_in, n_out)]
        stack = torch.nn.Sequential(*layers)
        return stack, [m for m in layers if isinstance(m, torch.nn.Linear)]


@torch.no_grad()
def measure_preactivation_variance(
    init: str | Mapping[str, Any] | Initializer,
    activation: Activation,
    depth: int,
    width: int,
    sigma_b2: float = 0.0,
    *,
    inputs: torch.Tensor,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
) -> np.ndarray:
    """Measured q^l = mean of (h^l)^2 over units and inputs, per seed: an array (seeds, depth).

    A real network (``initlab.models.MLP`` for a named activation) with weights from ``init``
    and biases N(0, sigma_b2), one draw per seed; ``inputs`` is ``(N, input_dim)``.
    """
    resolve_activation(activation)
    init = initializers.get(init)
    sigma_b2 = variance_arg("sigma_b2", sigma_b2)
    bias = {"name": "normal", "std": math.sqrt(sigma_b2)} if sigma_b2 > 0 else "zeros"
    model, linears = _network(inputs.shape[1], width, depth, activation)
    captured: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: captured.append((out.double() ** 2).mean())) for m in linears]
    rows = []
    try:
        for seed in seeds:
            initializers.apply_init(model, init, bias=bias, generator=make_generator(int(seed)))
            captured.clear()
            model(inputs)
            rows.append([float(v) for v in captured])
    finally:
        for h in hooks:
            h.remove()
    return np.asarray(rows)


@dataclass
class VarianceCheck:
    """Predicted vs measured pre-activation variance q^l, layer by layer (l = 1..depth)."""

    init: str
    activation: str
    depth: int
    width: int
    sigma_b2: float
    seeds: int
    q0: float
    sigma_w2: list[float]          # per layer (the first layer sees the input)
    predicted: np.ndarray          # (depth,)
    measured: np.ndarray           # (depth,) mean over seeds
    measured_std: np.ndarray       # (depth,) std over seeds

    @property
    def relative_error(self) -> np.ndarray:
        """(predicted - measured) / measured per layer."""
        return cast(np.ndarray, (self.predicted - self.measured) / self.measured)

    @property
    def max_relative_error(self) -> float:
        return float(np.max(np.abs(self.relative_error)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "init": self.init, "activation": self.activation, "depth": self.depth, "width": self.width,
            "sigma_b2": self.sigma_b2, "seeds": self.seeds, "q0": self.q0, "sigma_w2": self.sigma_w2,
            "quantity": "pre-activation variance q^l = mean of (h^l)^2, h^l = W^l phi(h^(l-1)) + b^l",
            "layers": [
                {"layer": i + 1, "predicted": float(p), "measured": float(m), "measured_std": float(s),
                 "relative_error": float(e)}
                for i, (p, m, s, e) in enumerate(zip(self.predicted, self.measured, self.measured_std, self.relative_error, strict=False))
            ],
            "max_relative_error": self.max_relative_error,
        }


MEASURED_SIGMA_B2_MAX = 1e4  # bias variance of the networks check_variance measures (float32)


def check_variance(
    init: str | Mapping[str, Any] | Initializer,
    activation: Activation,
    depth: int,
    width: int,
    sigma_b2: float = 0.0,
    *,
    seeds: int = 5,
    batch: int = 500,
    input_dim: int | None = None,
    seed: int = 0,
) -> VarianceCheck:
    """Predict q^l with the length map and measure it on ``seeds`` real networks; compare.

    Inputs: ``batch`` draws of N(0, I) in ``input_dim`` (default ``width``) dimensions, shared
    by all networks; q^0 is their mean square. The inputs and the ``seeds`` networks draw from
    independent streams spawned from ``seed`` (numpy SeedSequence). Measured values are
    averaged over the networks.
    """
    depth = check_int("depth", depth, 1)
    depth = check_int("depth", depth, 1, 10_000)
    width = check_int("width", width, 1)
    seeds = check_int("seeds", seeds, 1)
    seed = check_int("seed", seed, 0)
    batch = check_int("batch", batch, 1)
    input_dim = width if input_dim is None else check_int("input_dim", input_dim, 1)
    # the measured networks are float32: biases of variance 1e308 are inf there (NaN in the comparison, numpy
    # warnings); the bound keeps the biases finite (how q^l grows with depth is what the check compares)
    sigma_b2 = check_float("sigma_b2", variance_arg("sigma_b2", sigma_b2), 0.0, MEASURED_SIGMA_B2_MAX)
    init = initializers.get(init)
    kernel = resolve_activation(activation)
    sw2 = [effective_sigma_w2(init, fi, fo) for fi, fo in _layer_fans(input_dim, width, depth)]
    # Independent streams for the inputs and each network: a weight row drawn from the same
    # stream as the inputs would equal an input and inflate q^1.
    streams = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(int(seed)).spawn(seeds + 1)]
    x = torch.randn(batch, input_dim, generator=make_generator(streams[0]))  # (N, input_dim)
    q0 = float((x.double() ** 2).mean())
    predicted = predicted_preactivation_variance(kernel, sw2, sigma_b2, q0)
    runs = measure_preactivation_variance(init, activation, depth, width, sigma_b2, inputs=x,
                                          seeds=streams[1:])  # (seeds, depth)
    return VarianceCheck(
        init=str(init), activation=kernel.name, depth=depth, width=width, sigma_b2=sigma_b2, seeds=seeds,
        q0=q0, sigma_w2=sw2, predicted=predicted, measured=runs.mean(axis=0), measured_std=runs.std(axis=0),
    )
