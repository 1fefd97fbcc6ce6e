"""One gain table (issue 18.5/18.4): diagnose reads the activation registry's, and its gelu entry is
the ReLU-limit gain, measured here by quadrature independently of initlab."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from initlab.activations import HEALTHY_GAIN
from initlab.diagnostics.diagnose import HEALTHY_GAIN as DIAGNOSE_GAIN
from initlab.initializers import calculate_gain


def _second_moment(fn, q: float) -> float:
    """E[fn(sqrt(q) z)^2] for z ~ N(0, 1), by 200-point Gauss-Hermite quadrature (float64)."""
    x, w = np.polynomial.hermite_e.hermegauss(200)
    z = torch.tensor(x * math.sqrt(q), dtype=torch.float64)
    return float((fn(z) ** 2 * torch.tensor(w / w.sum())).sum())


def test_diagnose_reads_the_registry_table():
    assert DIAGNOSE_GAIN is HEALTHY_GAIN


@pytest.mark.parametrize("name, fn", [("relu", torch.relu), ("gelu", F.gelu), ("silu", F.silu)])
def test_relu_family_gain_is_the_large_scale_variance_preserving_gain(name, fn):
    # gain^2 E[phi(sqrt(q) z)^2] / q -> 1 as q grows: the He gain of the activation's ReLU limit
    q = 1e6
    assert HEALTHY_GAIN[name] == pytest.approx(math.sqrt(q / _second_moment(fn, q)), rel=2e-3)


def test_gelu_unit_scale_gain_differs_and_is_documented():
    # at unit pre-activation variance the variance-preserving gain is 1/sqrt(E[gelu(z)^2]) = 1.534,
    # not sqrt(2): the table keeps the ReLU-limit value (see initlab.activations.HEALTHY_GAIN)
    unit = 1 / math.sqrt(_second_moment(F.gelu, 1.0))
    assert unit == pytest.approx(1.5335, abs=1e-3)
    assert HEALTHY_GAIN["gelu"] == math.sqrt(2)


def test_torch_compatible_table_is_torchs():
    # calculate_gain mirrors torch.nn.init.calculate_gain (a different quantity: torch's recommendations)
    for name in ("linear", "sigmoid", "tanh", "relu", "selu"):
        assert calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
