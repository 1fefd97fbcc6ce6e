"""Fans and gains, computed once (as in ``torch.nn.init``).

A weight of shape ``(out, in, *kernel)`` has ``fan_in = in * prod(kernel)`` and
``fan_out = out * prod(kernel)``. Stacked weights ``(M, out, in)`` hold M models; pass
``batch_dims=1`` so the fans come from the trailing ``(out, in)``.
"""

from __future__ import annotations

import math

import torch

from .._validation import ValidationError

__all__ = ["compute_fans", "calculate_gain", "fan_for_mode"]


def compute_fans(shape: tuple[int, ...] | torch.Size, batch_dims: int = 0) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight of ``shape``, skipping ``batch_dims`` leading dims.

    A 1-D tensor (a bias) has fan_in = fan_out = its length, as Keras does.
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


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain for a nonlinearity (the values of ``torch.nn.init.calculate_gain``).

    ============  =========================================
    nonlinearity  gain
    ============  =========================================
    linear        1
    sigmoid       1
    tanh          5/3
    relu          sqrt(2)
    leaky_relu    sqrt(2 / (1 + negative_slope^2))
    selu          3/4
    ============  =========================================
    Other activations (elu, gelu, silu) get the ReLU gain, a common practical choice.
    """
    if nonlinearity in ("linear", "sigmoid", "identity", "conv1d", "conv2d", "conv3d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 0.75
    return math.sqrt(2.0)
