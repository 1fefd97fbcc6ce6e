"""Initialize every Linear/Conv layer of any ``nn.Module`` from the catalog."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .._adapters import adapter
from .._rng import make_generator
from ._fans import compute_fans
from .lsuv import lsuv_rescale
from .registry import Initializer, get

__all__ = ["apply_init", "init_layers"]

_LAYER_TYPES = (nn.Linear, nn.modules.conv._ConvNd)


def init_layers(model: nn.Module) -> list[nn.Module]:
    """The Linear and Conv layers of ``model`` in registration (usually forward) order."""
    return [m for m in model.modules() if isinstance(m, _LAYER_TYPES)]


def apply_init(
    model: nn.Module,
    weight: str | Mapping[str, Any] | Initializer,
    bias: str | Mapping[str, Any] | Initializer | None = "zeros",
    generator: torch.Generator | int | None = None,
    data: torch.Tensor | None = None,
) -> nn.Module:
    """Initialize every Linear/Conv layer of ``model`` in place and return it.

    ``weight`` and ``bias`` are names, aliases or specs from the catalog (``bias=None`` leaves
    biases alone). Weights are in PyTorch's layout ``(out, in, *kernel)``. A bias drawn with a
    fan-dependent scheme (``he_normal``, ...) uses its layer's weight fans, ``fan_in = in *
    prod(kernel)``, as PyTorch's own layer reset does (``nn.Linear``: bias ~ U(+-1/sqrt(fan_in)));
    Keras uses fan_in = fan_out = units (the bias length) instead, which is what calling the
    initializer on the bare bias vector gives. ``generator`` (or an int seed) makes the draw
    reproducible; without it, a ``seed`` in the weight spec (Keras' ``HeNormal(seed=1)``) seeds
    the one generator the whole model draws from, in order (so layers differ). ``data`` is a
    batch of inputs, needed by ``"lsuv"`` only.
    """
    foreign = adapter(model, "apply_init")  # a Keras 3 model (torch backend): initlab.integrations.keras
    if foreign is not None:
        return foreign(model, weight, bias, generator, data)
    weight_init = get(weight)
    bias_init = get(bias) if bias is not None else None
    gen = make_generator(generator if generator is not None else weight_init.params.get("seed"))
    layers = init_layers(model)
    for layer in layers:
        fans = compute_fans(layer.weight.shape)
        weight_init(layer.weight, gen)
        if bias_init is not None and layer.bias is not None:
            bias_init(layer.bias, gen, fans=fans)
    if weight_init.name == "lsuv":
        params = weight_init.scheme.defaults | dict(weight_init.params)
        lsuv_rescale(model, layers, data, tol=params["tol"], max_iter=params["max_iter"])
    return model
