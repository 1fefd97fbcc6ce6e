"""What an activation can do, measured on the activation itself rather than looked up by name.

``slope(fn, x)`` is the elementwise derivative of ``fn`` at ``x`` (autograd, through the same
function the model used). ``profile(fn)`` probes ``fn`` on a grid: its largest slope, and
whether it is bounded on both sides (constant far out on both sides), which is what
saturation needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["ActivationProfile", "profile", "slope"]

_GRID = torch.linspace(-20.0, 20.0, 8001)  # the largest slope of common activations lies in [-20, 20]
_FAR, _FARTHER = 1e3, 1e6  # "far out": bounded on a side when the output no longer changes between these


@dataclass(frozen=True)
class ActivationProfile:
    max_slope: float  # largest |slope| on the grid
    low: float | None  # the limit at -inf when the output is constant far out there, else None
    high: float | None  # the limit at +inf, likewise

    @property
    def bounded(self) -> bool:
        """Bounded on both sides: the outputs can saturate at either limit."""
        return self.low is not None and self.high is not None


def slope(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """d fn(x) / dx elementwise, same shape as ``x`` (``fn`` must act elementwise)."""
    with torch.enable_grad():
        leaf = x.detach().clone().requires_grad_(True)
        y = fn(leaf.clone())  # a clone: fn may work in place
        if not y.requires_grad:
            return torch.zeros_like(x)
        (grad,) = torch.autograd.grad(y.sum(), leaf, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad.detach()


def profile(fn: Callable[[torch.Tensor], torch.Tensor]) -> ActivationProfile:
    """Probe ``fn`` on fixed points: measured each call, never cached (two functions can share a
    class, a repr or any other key, and then one's profile would decide the other's verdicts)."""
    with torch.no_grad():
        far = fn(torch.tensor([-_FARTHER, -_FAR, _FAR, _FARTHER]))
    limits: list[float | None] = []
    for ta, tb in ((far[0], far[1]), (far[3], far[2])):
        a, b = float(ta), float(tb)
        flat = abs(a - b) <= 1e-6 * (1.0 + abs(a)) and abs(a) < float("inf")
        limits.append(a if flat else None)
    return ActivationProfile(float(slope(fn, _GRID).abs().max()), limits[0], limits[1])
