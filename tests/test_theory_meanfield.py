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
