"""The ``critical`` initializer: weights and biases on the order-chaos boundary (chi_1 = 1)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validation import ValidationError
from ._critical_point import critical_sigma_w2, variance_arg
from .registry import Initializer
from .schemes import fill_normal_, variance_scaling

__all__ = ["critical", "bind_critical", "model_activations"]


def critical(tensor: torch.Tensor, activation: str = "tanh", sigma_b2: float = 0.0, *,
             generator: torch.Generator | None = None, fans: tuple[int, int] | None = None,
             batch_dims: int = 0) -> torch.Tensor:
    """Critical (edge of chaos): weights N(0, s*/fan_in), biases N(0, sigma_b2); chi_1(s*, sigma_b2) = 1.

    s* is the sigma_w2 where chi_1 = 1 for the activation and the bias variance sigma_b2:
    1 for tanh with sigma_b2 = 0, about 1.76 for tanh with sigma_b2 = 0.05, 2 for ReLU (He).
    The point is critical only with those biases, so the scheme draws them too: a tensor with
    one dimension (after ``batch_dims``) is a bias and gets N(0, sigma_b2) (zeros when
    sigma_b2 = 0). ``apply_init(model, {"name": "critical", "activation": "tanh", "sigma_b2": 0.05})``
    draws its default zero biases N(0, sigma_b2) too, and refuses another bias initializer: with
    zero biases s* = 1.76 would be chaotic (chi_1 = 1.07).
    Reference: Schoenholz et al., 2017, "Deep Information Propagation"; Poole et al., 2016.
    """
    sigma_b2 = variance_arg("sigma_b2", sigma_b2)
    scale = critical_sigma_w2(activation, sigma_b2)
    if tensor.dim() - batch_dims == 1:  # a bias
        if sigma_b2 == 0.0:  # as "zeros": no draw, so the weights that follow are the same numbers
            with torch.no_grad():
                return tensor.zero_()
        return fill_normal_(tensor, 0.0, math.sqrt(sigma_b2), generator)
    return variance_scaling(tensor, scale, "fan_in", "normal", generator=generator, fans=fans, batch_dims=batch_dims)


# Activation modules -> the activation names ``critical`` knows (initlab.activations).
_MODULE_ACTIVATIONS = {
    nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.SELU: "selu", nn.GELU: "gelu",
    nn.SiLU: "silu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid",
}


def model_activations(model: nn.Module) -> dict[str, list[str]]:
    """Activation name -> the qualified names of the modules of ``model`` that apply it.

    Only activation *modules* are seen; a forward that calls ``torch.relu`` directly has none.
    """
    found: dict[str, list[str]] = {}
    for name, m in model.named_modules():
        act = _MODULE_ACTIVATIONS.get(type(m))
        if act is not None:
            found.setdefault(act, []).append(name)
    return found


def bind_critical(model: nn.Module, weight_init: Initializer,
                  bias_init: Initializer | None) -> tuple[Initializer, Initializer | None]:
    """Give a ``critical`` spec the model's activation, or refuse in one line.

    Without an ``activation`` in the spec, the model's one activation is used (``critical`` on a
    ReLU net is ReLU's critical point, He's sigma_w2 = 2, never tanh's). A model with no
    activation module, or with several kinds, needs the spec to say which; a spec naming an
    activation the model does not use is refused. Other initializers pass through unchanged.
    """
    if weight_init.name != "critical" and (bias_init is None or bias_init.name != "critical"):
        return weight_init, bias_init
    found = model_activations(model)
    shown = ", ".join(f"{a} ({', '.join(mods[:2])}{', ...' if len(mods) > 2 else ''})" for a, mods in found.items())

    def bind(init: Initializer | None) -> Initializer | None:
        if init is None or init.name != "critical":
            return init
        given = init.params.get("activation")
        if given is not None:
            if found and resolve_name(given) not in found:
                raise ValidationError(
                    f"critical: activation {given!r} given, but the model applies {shown}; "
                    f"give one of {sorted(found)} or leave 'activation' out to take the model's")
            return init
        if len(found) == 1:
            return Initializer(init.name, {**init.params, "activation": next(iter(found))})
        if not found:
            raise ValidationError(
                "critical: no activation module in the model to take the activation from "
                "(its forward may call torch functions); give it: {'name': 'critical', 'activation': 'relu'}")
        raise ValidationError(
            f"critical: the model applies several activations, {shown}; "
            "give the one to be critical for: {'name': 'critical', 'activation': ...}")
    bound = bind(weight_init)
    assert bound is not None  # bind gives an init back for an init
    weight_init, bias_init = bound, bind(bias_init)
    return weight_init, _critical_biases(weight_init, bias_init)


def _critical_biases(weight_init: Initializer, bias_init: Initializer | None) -> Initializer | None:
    """Critical weights with ``sigma_b2 > 0`` are critical only with N(0, sigma_b2) biases: zero biases get them,
    other bias inits are refused in one line (they would put the net off the boundary)."""
    sigma_b2 = float(weight_init.params.get("sigma_b2", 0.0)) if weight_init.name == "critical" else 0.0
    if sigma_b2 == 0.0 or bias_init is None or bias_init.name == "critical":
        return bias_init
    if bias_init.name == "zeros":
        return weight_init  # draws every bias N(0, sigma_b2) (see critical)
    raise ValidationError(
        f"critical with sigma_b2={sigma_b2:g} is critical only with biases N(0, {sigma_b2:g}); bias init "
        f"{bias_init.name!r} would move the net off the boundary: leave bias at 'zeros' (drawn as N(0, sigma_b2)) "
        "or pass the same critical spec")


def resolve_name(activation: str) -> str:
    """Canonical activation name ('swish' -> 'silu'); a callable passes through as its repr."""
    from ..activations import canonical_activation

    return canonical_activation(activation) if isinstance(activation, str) else repr(activation)
