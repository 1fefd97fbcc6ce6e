"""The ``critical`` initializer: weights and biases on the order-chaos boundary (chi_1 = 1)."""

from __future__ import annotations

import math

import torch

from ._critical_point import _variance, critical_sigma_w2
from .schemes import _normal_, variance_scaling

__all__ = ["critical"]


def critical(tensor, activation: str = "tanh", sigma_b2: float = 0.0, *, generator=None, fans=None, batch_dims=0):
    """Critical (edge of chaos): weights N(0, s*/fan_in), biases N(0, sigma_b2); chi_1(s*, sigma_b2) = 1.

    s* is the sigma_w2 where chi_1 = 1 for the activation and the bias variance sigma_b2:
    1 for tanh with sigma_b2 = 0, about 1.76 for tanh with sigma_b2 = 0.05, 2 for ReLU (He).
    The point is critical only with those biases, so the scheme draws them too: a tensor with
    one dimension (after ``batch_dims``) is a bias and gets N(0, sigma_b2) (zeros when
    sigma_b2 = 0). Give the same spec for both:
    ``spec = {"name": "critical", "activation": "tanh", "sigma_b2": 0.05}; apply_init(model, spec, bias=spec)``.
    With other biases (``apply_init``'s default is zeros) the network sits elsewhere:
    s* = 1.76 with zero biases is chaotic (chi_1 = 1.07).
    Reference: Schoenholz et al., 2017, "Deep Information Propagation"; Poole et al., 2016.
    """
    sigma_b2 = _variance("sigma_b2", sigma_b2)
    scale = critical_sigma_w2(activation, sigma_b2)
    if tensor.dim() - batch_dims == 1:  # a bias
        if sigma_b2 == 0.0:  # as "zeros": no draw, so the weights that follow are the same numbers
            with torch.no_grad():
                return tensor.zero_()
        return _normal_(tensor, 0.0, math.sqrt(sigma_b2), generator)
    return variance_scaling(tensor, scale, "fan_in", "normal", generator=generator, fans=fans, batch_dims=batch_dims)
