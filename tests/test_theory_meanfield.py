"""Mean-field quantities against an independent recomputation with scipy.integrate.

The reference below uses only numpy/scipy (adaptive quadrature on the Gaussian density,
Brent's method), never initlab's quadrature, so a wrong node count, a wrong formula or a
wrong fixed point in ``initlab.theory`` makes these tests fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats

from initlab._validation import ValidationError
from initlab.theory import MeanField, critical_sigma_w2

SQ2PI = math.sqrt(2 * math.pi)
_pdf = stats.norm.pdf


def _phi(u):
    return np.tanh(u)


def _dphi(u):
    return 1.0 - np.tanh(u) ** 2


def _e1(f, q):
    """E[f(sqrt(q) z)] by adaptive quadrature on (-inf, inf)."""
    val, _ = integrate.quad(lambda z: f(math.sqrt(q) * z) * _pdf(z), -np.inf, np.inf, epsabs=1e-14, epsrel=1e-13, limit=200)
    return val


def _e2(f, g, q, c):
    """E[f(u1) g(u2)], u1 = sqrt(q) z1, u2 = sqrt(q) (c z1 + sqrt(1-c^2) z2).

    Outer integral adaptive (quad); inner one vectorised Gauss-Legendre on [-10, 10] with 200
    nodes (scipy's fixed_quad), accurate to ~1e-14 for these smooth integrands.
    """
    s = math.sqrt(1 - c * c)

    def inner(z1):
        val, _ = integrate.fixed_quad(lambda z2: g(math.sqrt(q) * (c * z1 + s * z2)) * _pdf(z2), -10, 10, n=200)
        return f(math.sqrt(q) * z1) * val * _pdf(z1)

    val, _ = integrate.quad(inner, -10, 10, epsabs=1e-13, epsrel=1e-12, limit=200)
    return val


def _reference(sw2, sb2):
    """q*, chi_1, c*, xi_c of a tanh network, computed with scipy only."""
    q_star = optimize.brentq(lambda q: sw2 * _e1(lambda u: _phi(u) ** 2, q) + sb2 - q, 1e-6, 100.0, xtol=1e-15)
    chi_1 = sw2 * _e1(lambda u: _dphi(u) ** 2, q_star)
    if chi_1 < 1:
        return q_star, chi_1, 1.0, -1.0 / math.log(chi_1)
    cmap = lambda c: (sw2 * _e2(_phi, _phi, q_star, c) + sb2) / q_star - c  # noqa: E731
    c_star = optimize.brentq(cmap, 0.0, 0.99, xtol=1e-12)
    chi_c = sw2 * _e2(_dphi, _dphi, q_star, c_star)
    return q_star, chi_1, c_star, -1.0 / math.log(chi_c)


@pytest.mark.parametrize("sw2", [1.0, 1.5, 2.0, 3.0])
def test_tanh_against_scipy(sw2):
    q_star, chi_1, c_star, xi_c = _reference(sw2, 0.05)
    mf = MeanField("tanh", sw2, 0.05)
    assert mf.q_star == pytest.approx(q_star, rel=1e-5, abs=1e-5)
    assert mf.chi_1 == pytest.approx(chi_1, rel=1e-5, abs=1e-5)
    assert mf.c_star == pytest.approx(c_star, abs=1e-5)
    assert mf.xi_c == pytest.approx(xi_c, rel=1e-5, abs=1e-5)
    assert mf.phase == ("ordered" if chi_1 < 1 else "chaotic")


def test_tanh_critical_at_one_without_bias():
    assert critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, abs=1e-6)
    assert MeanField("tanh", 1.0, 0.0).phase == "critical"
    assert MeanField("tanh", 1.0, 0.0).xi_c == math.inf
    assert MeanField("tanh", 0.9, 0.0).phase == "ordered"
    assert MeanField("tanh", 1.1, 0.0).phase == "chaotic"
    # chaotic odd activation without bias: c* = 0 (not the unstable c = +-1)
    assert MeanField("tanh", 1.5, 0.0).c_star == pytest.approx(0.0, abs=1e-9)


def test_tanh_critical_line_with_bias_has_chi1_one():
    w = critical_sigma_w2("tanh", 0.05)
    assert 1.5 < w < 2.0
    ref_q = optimize.brentq(lambda q: w * _e1(lambda u: _phi(u) ** 2, q) + 0.05 - q, 1e-6, 100.0, xtol=1e-15)
    assert w * _e1(lambda u: _dphi(u) ** 2, ref_q) == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("sw2", [0.5, 1.0, 2.0, 3.0])
def test_relu_closed_forms(sw2):
    mf = MeanField("relu", sw2, 0.1)
    assert mf.chi_1 == pytest.approx(sw2 / 2, abs=1e-12)
    assert mf.length_map(0.7) == pytest.approx(sw2 * 0.7 / 2 + 0.1, abs=1e-12)
    if sw2 < 2:
        assert mf.q_star == pytest.approx(0.1 / (1 - sw2 / 2))
        assert mf.phase == "ordered"
    assert critical_sigma_w2("relu", 0.1) == 2.0
    assert MeanField("relu", 2.0, 0.0).phase == "critical"


def _e2_kinked(f, g, q, c):
    """E[f(u1) g(u2)] for f, g with a kink or jump at 0: adaptive quad, split at both kinks."""
    s = math.sqrt(1 - c * c)

    def inner(z1):
        kink = -c * z1 / s
        val, _ = integrate.quad(lambda z2: g(math.sqrt(q) * (c * z1 + s * z2)) * _pdf(z2), -10, 10,
                                points=[kink], epsabs=1e-12, limit=200)
        return f(math.sqrt(q) * z1) * val * _pdf(z1)

    return integrate.quad(inner, -10, 0, epsabs=1e-11)[0] + integrate.quad(inner, 0, 10, epsabs=1e-11)[0]


@pytest.mark.parametrize("c", [-0.6, 0.0, 0.3, 0.9])
def test_relu_arccos_kernel_against_scipy(c):
    relu = lambda u: max(u, 0.0)  # noqa: E731
    step = lambda u: float(u > 0)  # noqa: E731
    kernel = MeanField("relu", 1.0, 0.0).kernel
    q = 1.3
    assert kernel.e_phiphi(q, c) == pytest.approx(_e2_kinked(relu, relu, q, c), abs=1e-8)
    assert kernel.e_dphidphi(q, c) == pytest.approx(_e2_kinked(step, step, q, c), abs=1e-8)


def test_callable_matches_named_and_kinked_quadrature():
    named = MeanField("tanh", 2.0, 0.05)
    lam = MeanField(lambda x: torch.tanh(x), 2.0, 0.05)
    assert lam.chi_1 == pytest.approx(named.chi_1, rel=1e-8)
    assert lam.xi_c == pytest.approx(named.xi_c, rel=1e-6)
    # a relu written by hand goes through the split quadrature and must match the closed form
    hand = MeanField(lambda x: torch.clamp(x, min=0.0), 1.5, 0.1)
    exact = MeanField("relu", 1.5, 0.1)
    assert hand.q_star == pytest.approx(exact.q_star, rel=1e-8)
    assert hand.chi_1 == pytest.approx(exact.chi_1, rel=1e-8)
    assert hand.kernel.e_phiphi(1.0, 0.4) == pytest.approx(exact.kernel.e_phiphi(1.0, 0.4), abs=1e-9)


def test_selu_against_scipy():
    lam, alpha = 1.0507009873554805, 1.6732632423543772
    selu = lambda u: lam * (u if u > 0 else alpha * math.expm1(u))  # noqa: E731
    dselu = lambda u: lam * (1.0 if u > 0 else alpha * math.exp(u))  # noqa: E731

    def e(f, q):
        g = lambda z: f(math.sqrt(q) * z) * _pdf(z)  # noqa: E731
        return integrate.quad(g, -np.inf, 0, epsabs=1e-13)[0] + integrate.quad(g, 0, np.inf, epsabs=1e-13)[0]

    mf = MeanField("selu", 1.0, 0.0)
    assert mf.q_star == pytest.approx(1.0, abs=1e-6)  # SELU's self-normalising fixed point
    assert e(lambda u: selu(u) ** 2, 1.0) == pytest.approx(1.0, abs=1e-6)  # ... as scipy finds it: E[selu(u)^2] = q
    assert mf.chi_1 == pytest.approx(e(lambda u: dselu(u) ** 2, 1.0), rel=1e-7)


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"activation": "tanhh", "sigma_w2": 1.0}, "did you mean 'tanh'"),
        ({"activation": "tanh", "sigma_w2": -1.0}, "sigma_w2 is a variance and must be >= 0"),
        ({"activation": "tanh", "sigma_w2": 1.0, "sigma_b2": -0.1}, "sigma_b2 is a variance"),
        ({"activation": torch.sign, "sigma_w2": 1.0}, "not differentiable: its autograd derivative is 0"),
        ({"activation": lambda x: torch.tanh(x).detach(), "sigma_w2": 1.0}, "not differentiable: its output carries no gradient"),
        ({"activation": lambda x: np.tanh(x.detach().numpy()), "sigma_w2": 1.0}, "must return a torch.Tensor"),
        ({"activation": 3, "sigma_w2": 1.0}, "activation must be a name"),
    ],
)
def test_errors(kwargs, text):
    with pytest.raises(ValidationError, match=text):
        MeanField(**kwargs)
