"""Issue 19 item 11: critical init with sigma_b2 > 0 draws the biases too, so the net is critical (chi_1 = 1)."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from initlab import ValidationError, apply_init


def _chi_1(sigma_w2: float, sigma_b2: float) -> float:
    """tanh's chi_1 by Gauss-Hermite quadrature (Poole et al. 2016), computed here, not by initlab."""
    x, w = np.polynomial.hermite_e.hermegauss(101)
    w = w / w.sum()  # E over N(0, 1)
    q = 1.0
    for _ in range(500):  # the length map's fixed point q*
        q = sigma_w2 * float(w @ np.tanh(np.sqrt(q) * x) ** 2) + sigma_b2
    return sigma_w2 * float(w @ (1 - np.tanh(np.sqrt(q) * x) ** 2) ** 2)


def _net(width: int = 1024, depth: int = 4) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers)


def test_critical_with_bias_variance_draws_the_biases():
    model = apply_init(_net(), {"name": "critical", "activation": "tanh", "sigma_b2": 0.05}, generator=0)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    sigma_w2 = float(np.mean([m.weight.detach().double().var() * m.in_features for m in linears]))
    sigma_b2 = float(np.mean([m.bias.detach().double().var() for m in linears]))
    assert sigma_b2 == pytest.approx(0.05, rel=0.1)  # 4096 draws: the variance is within ~5%
    assert _chi_1(sigma_w2, sigma_b2) == pytest.approx(1.0, abs=0.01)
    assert _chi_1(sigma_w2, 0.0) > 1.06  # what zero biases gave: chaotic


def test_critical_refuses_other_biases_in_one_line():
    with pytest.raises(ValidationError, match=r"^critical with sigma_b2=0.05 is critical only with biases"):
        apply_init(_net(8, 1), {"name": "critical", "activation": "tanh", "sigma_b2": 0.05}, "ones")


def test_critical_without_bias_variance_keeps_zero_biases():
    model = apply_init(_net(8, 1), {"name": "critical", "activation": "tanh"}, generator=0)
    assert float(model[0].bias.detach().abs().max()) == 0.0
