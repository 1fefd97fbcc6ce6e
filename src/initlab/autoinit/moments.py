"""Moment maps of elementwise functions: E[phi(u)] and Var[phi(u)] for u ~ N(m, v), any callable.

Gauss-Legendre quadrature on z in [-12, 12] (u = m + sqrt(v) z), split at z0 = -m/sqrt(v)
where u = 0, the kink of relu-like activations, so each half is smooth and the rule converges
fast where plain Gauss-Hermite across a kink would not (the split rule of
``initlab.initializers._gauss.SplitKernel``). Every map is checked against a Monte Carlo
estimate (seeded); where the two disagree by more than 6 standard errors the Monte Carlo value
is used and the disagreement is reported. Heavy tails (a second moment dominated by the
Gaussian mass beyond 8 standard deviations, e.g. exp(u^2)) raise: the moments diverge.
The stability numbers (chi_1, the slope of the length map) follow Poole et al. 2016 and
Schoenholz et al. 2017; see :mod:`initlab.theory.meanfield`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validation import ValidationError

__all__ = ["Stat", "Moments", "moments", "slopes", "MomentsDiverge"]

_NODES = 96          # Gauss-Legendre nodes per piece
_RADIUS = 12.0       # Gaussian mass beyond 12 sd is ~1e-32
_TAIL_RADIUS = 8.0   # a second moment that changes by > 50% between radius 8 and 12 diverges
_MC = 200_000        # Monte Carlo samples of the cross-check
_MC_SEED = 20240     # fixed: the check is deterministic and draws nothing from the user's generator


class MomentsDiverge(ValidationError):
    """An activation whose Gaussian moments do not exist (or overflow) at the given input scale."""


@dataclass(frozen=True)
class Stat:
    """Mean and variance of the entries of one tensor, per example sample (arrays of shape [B]) or pooled.

    Per-sample moments follow each input's own length through the layers (the mean-field length
    map acts on each input separately); a batch-level quantity averages them.
    """

    mean: Any
    var: Any

    @property
    def second(self) -> Any:
        """E[x^2] = mean^2 + var (per sample or pooled)."""
        return self.mean * self.mean + self.var

    @property
    def second_pooled(self) -> float:
        """E[x^2] over the whole batch."""
        return float(np.mean(self.second))

    @property
    def pooled(self) -> Stat:
        """Batch-level mean and variance (law of total variance)."""
        m = float(np.mean(self.mean))
        return Stat(m, max(float(np.mean(self.second)) - m * m, 0.0))

    @property
    def std(self) -> float:
        """Batch-level std."""
        return math.sqrt(self.pooled.var)

    def scaled(self, f: float) -> Stat:
        return Stat(self.mean * f, self.var * f * f)

    @staticmethod
    def of(t: torch.Tensor, batch: int = 0) -> Stat:
        """The measured moments of a tensor's entries (float64): per sample if dim 0 is the batch, else pooled."""
        x = t.detach().to(torch.float64)
        if x.numel() == 0:
            return Stat(0.0, 0.0)
        if batch > 1 and x.dim() >= 2 and x.shape[0] == batch and x[0].numel() > 1:
            flat = x.reshape(batch, -1)
            return Stat(flat.mean(1).numpy(), flat.var(1, unbiased=False).numpy())
        return Stat(float(x.mean()), float(x.var(unbiased=False)) if x.numel() > 1 else 0.0)


@dataclass(frozen=True)
class Moments:
    """The moment map of one function at one input Stat, and how it was obtained."""

    out: Stat
    method: str          # "quadrature" | "monte carlo"
    note: str = ""       # why Monte Carlo was used


_LEG = np.polynomial.legendre.leggauss(_NODES)


def _pieces(z0: Any) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (standard normal density included) on [-R, z0] and [z0, R], per split point.

    ``z0``: a float or an array of shape (B,); returns arrays (nodes,) or (B, nodes).
    """
    x, w = _LEG
    z0 = np.asarray(z0, dtype=float)
    z0 = np.where((z0 > -_RADIUS) & (z0 < _RADIUS), z0, 0.0)[..., None]  # always two pieces
    lo_z = (x + 1) * (z0 + _RADIUS) / 2 - _RADIUS
    hi_z = (x + 1) * (_RADIUS - z0) / 2 + z0
    lo_w = w * (z0 + _RADIUS) / 2
    hi_w = w * (_RADIUS - z0) / 2
    z = np.concatenate([lo_z, hi_z], axis=-1)
    wt = np.concatenate([lo_w, hi_w], axis=-1) * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return z, wt


def _call(fn: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor) -> torch.Tensor:
    """``fn(u)``; a user activation that fails on a float64 tensor becomes one ValidationError."""
    try:
        with torch.no_grad():
            return fn(u)
    except ValidationError:
        raise
    except Exception as err:  # the user's function can fail in any way
        name = getattr(fn, "__name__", type(fn).__name__)
        raise ValidationError(f"activation {name} failed on a float64 tensor of shape {tuple(u.shape)}: "
                              f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:160]}") from None


def _eval(fn: Callable[[torch.Tensor], torch.Tensor], u: np.ndarray) -> np.ndarray:
    y = _call(fn, torch.as_tensor(u, dtype=torch.float64))
    if not isinstance(y, torch.Tensor) or y.shape != u.shape:
        raise ValidationError("activation must be elementwise and return a torch.Tensor of its input's shape")
    return y.to(torch.float64).numpy()


def moments(fn: Callable[[torch.Tensor], torch.Tensor], stat: Stat, name: str = "activation") -> Moments:
    """Mean and variance of ``fn(u)`` for ``u ~ N(stat.mean, stat.var)`` (per sample); quadrature checked by Monte Carlo."""
    mean, var = np.atleast_1d(np.asarray(stat.mean, float)), np.atleast_1d(np.asarray(stat.var, float))
    mean, var = np.broadcast_arrays(mean, var)
    scalar = np.ndim(stat.mean) == 0 and np.ndim(stat.var) == 0
    s = np.sqrt(np.maximum(var, 0.0))
    z0 = np.where(s > 0, -mean / np.where(s > 0, s, 1.0), 0.0)
    z, w = _pieces(z0)  # (B, nodes)
    with np.errstate(all="ignore"):
        y = _eval(fn, mean[:, None] + s[:, None] * z)  # (B, nodes)
        e1, e2 = (w * y).sum(1), (w * y * y).sum(1)
        core = np.abs(z) <= _TAIL_RADIUS
        e2_core = (w * y * y * core).sum(1)
    i = int(np.argsort(e2)[len(e2) // 2]) if np.all(np.isfinite(e2)) else int(np.argmax(~np.isfinite(e2)))
    where = f"{name} at input mean {mean[i]:.3g}, std {s[i]:.3g}"
    if not (np.all(np.isfinite(e1)) and np.all(np.isfinite(e2))) or np.any((e2 > 0) & (np.abs(e2 - e2_core) > 0.5 * e2)):
        raise MomentsDiverge(f"the moments of {where} diverge (E[phi(u)^2] is dominated by the Gaussian tail); "
                             "use a bounded or slower-growing activation, or a normalization before it")

    def out(m1: np.ndarray, m2: np.ndarray) -> Stat:
        v = np.maximum(m2 - m1 * m1, 0.0)
        return Stat(float(m1[0]), float(v[0])) if scalar else Stat(m1, v)

    if s[i] == 0.0:
        return Moments(out(e1, e2), "quadrature")
    gen = torch.Generator().manual_seed(_MC_SEED)  # the check on the median sample
    u = float(mean[i]) + float(s[i]) * torch.randn(_MC, generator=gen, dtype=torch.float64)
    yy = _call(fn, u).to(torch.float64)
    mc1, mc2 = float(yy.mean()), float((yy * yy).mean())
    se1 = float(yy.std()) / math.sqrt(_MC)
    se2 = float((yy * yy).std()) / math.sqrt(_MC)
    ok = (abs(e1[i] - mc1) <= 6 * se1 + 1e-6 * (1 + abs(e1[i]))
          and abs(e2[i] - mc2) <= 6 * se2 + 1e-6 * (1 + e2[i]))
    if ok or not (math.isfinite(mc1) and math.isfinite(mc2)):
        return Moments(out(e1, e2), "quadrature")
    note = (f"{where}: quadrature E[phi] = {e1[i]:.4g}, E[phi^2] = {e2[i]:.4g} but Monte Carlo "
            f"{mc1:.4g}, {mc2:.4g} ({_MC} samples); Monte Carlo used")
    n = max(2048, _MC // len(mean))
    g = torch.randn(len(mean), n, generator=gen, dtype=torch.float64)
    yb = _call(fn, torch.as_tensor(mean)[:, None] + torch.as_tensor(s)[:, None] * g).to(torch.float64)
    return Moments(out(yb.mean(1).numpy(), (yb * yb).mean(1).numpy()), "monte carlo", note)


def slopes(fn: Callable[[torch.Tensor], torch.Tensor], q: float) -> tuple[float, float, float] | None:
    """(E[phi(u)^2], E[phi'(u)^2], d/dq E[phi(sqrt(q) z)^2]) at u ~ N(0, q); None if phi has no autograd slope.

    The q-derivative by Stein's lemma, E[phi phi' z] / sqrt(q) (as in ``initializers._gauss``).
    """
    sq = math.sqrt(q)
    z, w = _pieces(0.0)
    x = torch.as_tensor(sq * z, dtype=torch.float64).requires_grad_(True)
    try:
        with torch.enable_grad():
            y = fn(x)
            (g,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    except RuntimeError:
        return None
    if g is None:
        return None
    p, d = y.detach().numpy(), g.numpy()
    with np.errstate(all="ignore"):
        e_phi2, e_dphi2 = float(w @ (p * p)), float(w @ (d * d))
        dq = float(w @ (p * d * z)) / sq
    if not all(math.isfinite(v) for v in (e_phi2, e_dphi2, dq)):
        return None
    return e_phi2, e_dphi2, dq
