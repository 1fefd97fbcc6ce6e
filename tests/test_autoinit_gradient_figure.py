"""Issue 19 item 1: autoinit's gradient figure is the gradient *norm*'s change, chi_1^(n/2).

chi_1 multiplies the squared gradient norm per layer (Schoenholz et al. 2017), so over n layers
the norm changes by chi_1^(n/2), not chi_1^n. The expected value here is measured with plain
torch autograd in float64 on the initialized model, independently of autoinit's report.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from initlab.autoinit import autoinit
from initlab.diagnostics import thresholds
from modules import Act

WIDTH, DEPTH, BATCH = 256, 30, 256




def _mlp(fn) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(DEPTH):
        layers += [nn.Linear(WIDTH, WIDTH), Act(fn)]
    return nn.Sequential(*layers, nn.Linear(WIDTH, 10))


def _measured_change(model: nn.Sequential, x: torch.Tensor) -> float:
    """||dL/da_1|| / ||dL/da_n|| (a_l: the l-th activation's output) in float64, extrapolated from
    its n-1 layer-to-layer steps to n layers, for a unit Gaussian gradient arriving at a_n."""
    model = model.double()
    h = x.double()
    acts = []
    for m in list(model)[:-1]:
        h = m(h)
        if isinstance(m, Act):
            h.retain_grad()
            acts.append(h)
    r = torch.randn(h.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    (h * r).sum().backward()
    per_layer = (float(acts[0].grad.norm()) / float(acts[-1].grad.norm())) ** (1 / (len(acts) - 1))
    return per_layer ** len(acts)


@pytest.mark.slow
@pytest.mark.parametrize("name,fn,issue_value", [("tanh", torch.tanh, 11.0), ("sin", torch.sin, 51.6),
                                                 ("sigmoid", torch.sigmoid, 1.4e-12)])
def test_reported_gradient_change_is_the_measured_norm_change(name, fn, issue_value):
    torch.manual_seed(0)
    model = _mlp(fn)
    report = autoinit(model, torch.randn(BATCH, WIDTH, generator=torch.Generator().manual_seed(1)), generator=0)
    (row,) = report.stability
    measured = _measured_change(model, torch.randn(BATCH, WIDTH, generator=torch.Generator().manual_seed(2)))
    # the issue measured across the 29 steps between a_1 and a_30; that figure, extrapolated to 30, agrees too
    assert abs(math.log(measured)) == pytest.approx(abs(math.log(issue_value)) * DEPTH / (DEPTH - 1), rel=0.05)
    assert abs(math.log(row["gradient_gain"] / measured)) < math.log(1.3), (row["gradient_gain"], measured)
    assert row["layers"] == DEPTH
    assert row["gradient_gain"] == pytest.approx(row["chi_1"] ** (DEPTH / 2), rel=1e-9)
    assert f"gradient norm x{row['gradient_gain']:.3g} over {DEPTH} layers" in row["message"]


def test_stability_band_is_diagnoses_gradient_band():
    """Stable means the gradient norm's change over the model lies in diagnose's band (x1e-2..x1e2)."""
    from initlab.autoinit.moments import Stat
    from initlab.autoinit.stability import stability_rows

    # sin at unit pre-activation variance: chi_1 = sigma_w2 E[cos^2] with sigma_w2 = 1 / E[sin^2]
    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    chi = float((torch.cos(z) ** 2).mean() / (torch.sin(z) ** 2).mean())
    for n in (10, 30, 50):
        (row,) = stability_rows([("sin", torch.sin, Stat(0.0, 1.0))] * n, target=1.0)
        change = chi ** (n / 2)
        assert row["gradient_gain"] == pytest.approx(change, rel=0.02)
        assert row["stable"] is (thresholds.GRADIENT_BAND[0] <= change <= thresholds.GRADIENT_BAND[1])
    # 50 layers: x~900, beyond x1e2 (the old band on chi_1^n, 1e-6..1e6, called it stable)
    assert not row["stable"] and "gradients explode; a scalar fixes it" in row["message"]
