"""Fans and gains, computed once (as in ``torch.nn.init``).

Weights are in PyTorch's layout, ``(out, in, *kernel)``: ``nn.Linear.weight`` is
``(out_features, in_features)``, ``nn.Conv2d.weight`` is ``(out_channels, in_channels // groups,
kh, kw)``. Such a weight has ``fan_in = in * prod(kernel)`` and ``fan_out = out * prod(kernel)``.
Keras stores kernels the other way round, ``(*kernel, in, out)`` (a ``Dense`` kernel is
``(in, out)``); a Keras-shaped array must be transposed to ``(out, in, *kernel)`` first, or its
fans come out swapped. Stacked weights ``(M, out, in)`` hold M models; pass ``batch_dims=1``
so the fans come from the trailing ``(out, in)``.
"""

from __future__ import annotations

import math

import torch

from .._validation import ValidationError, did_you_mean

__all__ = ["compute_fans", "calculate_gain", "fan_for_mode", "NONLINEARITIES"]


def compute_fans(shape: tuple[int, ...] | torch.Size, batch_dims: int = 0) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight of ``shape``, skipping ``batch_dims`` leading dims.

    ``shape`` is in PyTorch's layout ``(out, in, *kernel)``. A 1-D tensor (a bias vector) has
    fan_in = fan_out = its length and a 0-D tensor has 1, 1, as Keras' ``compute_fans``;
    torch's ``_calculate_fan_in_and_fan_out`` raises for fewer than 2 dimensions.
    """
    shape = tuple(shape)[batch_dims:]
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def fan_for_mode(fans: tuple[int, int], mode: str) -> float:
    """The fan a variance-scaling ``mode`` divides by: fan_in, fan_out or their average."""
    fan_in, fan_out = fans
    if mode == "fan_in":
        return float(fan_in)
    if mode == "fan_out":
        return float(fan_out)
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2.0
    raise ValidationError(f"unknown mode {mode!r} (allowed: fan_in, fan_out, fan_avg)")


_LINEAR_FNS = (
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
)
NONLINEARITIES = (*_LINEAR_FNS, "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain for a nonlinearity: the values, names and errors of ``torch.nn.init.calculate_gain``.

    =====================================================  =================================
    nonlinearity                                           gain
    =====================================================  =================================
    linear, conv1d/2d/3d, conv_transpose1d/2d/3d, sigmoid  1
    tanh                                                   5/3
    relu                                                   sqrt(2)
    leaky_relu                                             sqrt(2 / (1 + param^2)), param 0.01 by default
    selu                                                   3/4
    =====================================================  =================================
    ``param`` is read for leaky_relu only (its negative slope; an int or float, not a bool).
    Any other name (``"identity"``, ``"gelu"``, ...) raises a ValidationError, a ValueError as
    torch raises.
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValidationError(f"negative_slope (calculate_gain's param) must be an int or float, got {param!r}")
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 0.75
    raise ValidationError(
        f"unknown nonlinearity {nonlinearity!r}{did_you_mean(nonlinearity, NONLINEARITIES)}"
        f" (allowed: {', '.join(NONLINEARITIES)})"
    )
