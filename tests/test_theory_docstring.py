"""Issue 19 item 12: initlab.theory's docstring examples are true (run as doctests); the phase of
tanh at sigma_w2 = 1.5, sigma_b2 = 0.05 is checked against an independent Monte Carlo chi_1."""

from __future__ import annotations

import doctest

import torch

import initlab.theory


def test_docstring_examples_run():
    result = doctest.testmod(initlab.theory, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0


def test_tanh_1_5_is_ordered_by_monte_carlo():
    # q* by iterating the length map q <- sigma_w2 E[tanh(sqrt(q) z)^2] + sigma_b2, then
    # chi_1 = sigma_w2 E[tanh'(sqrt(q*) z)^2] (Poole et al. 2016; Schoenholz et al. 2017), by sampling
    z = torch.randn(500_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sw2, sb2, q = 1.5, 0.05, 1.0
    for _ in range(50):
        q = sw2 * float(torch.tanh(q**0.5 * z).pow(2).mean()) + sb2
    chi = sw2 * float((1 - torch.tanh(q**0.5 * z) ** 2).pow(2).mean())
    assert abs(chi - 0.939) < 0.005 and chi < 1
    mf = initlab.theory.MeanField("tanh", sw2, sb2)
    assert mf.phase == "ordered" and abs(mf.chi_1 - chi) < 0.005
