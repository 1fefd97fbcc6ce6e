"""Gaussian expectations of an activation: closed forms, Gauss-Hermite, or split quadrature.

Every kernel gives, for pre-activations u ~ N(0, q) (and a pair u1, u2 of variance q and
correlation c), the five expectations mean-field theory needs:

==================  ==========================================================
``e_phi2(q)``       E[phi(u)^2]                (vectorised over an array of q)
``e_dphi2(q)``      E[phi'(u)^2]
``dq_e_phi2(q)``    d/dq E[phi(u)^2] = E[phi(u) phi'(u) z] / sqrt(q)  (Stein's lemma; needs
                    only phi', so kinks and deltas in phi'' are handled for free)
``e_phiphi(q, c)``  E[phi(u1) phi(u2)]
``e_dphidphi(q,c)`` E[phi'(u1) phi'(u2)]
==================  ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt
import torch

from .._validation import ValidationError

__all__ = ["Kernel", "ClosedFormLeakyReLU", "ClosedFormLinear", "HermiteKernel", "SplitKernel", "check_differentiable"]

_HERMITE_1D = 201   # tanh: |error| ~ 1e-13 at q ~ 1 (101 nodes: 1e-8)
_HERMITE_2D = 121   # per axis: 121^2 = 14641 points
_LEGENDRE = 160     # per half line (split rule)
_POLAR_R, _POLAR_T = 96, 40  # radial nodes; angular nodes per arc between two kinks
_RADIUS = 12.0      # Gaussian mass beyond 12 standard deviations is ~1e-32


class Kernel:
    """Gaussian expectations of one activation (see the module docstring)."""

    name: str = "activation"
    kinked: bool = False

    def e_phi2(self, q: npt.ArrayLike) -> npt.NDArray[np.float64]:  # pragma: no cover - interface
        raise NotImplementedError

    def e_dphi2(self, q: float) -> float:  # pragma: no cover
        raise NotImplementedError

    def dq_e_phi2(self, q: float) -> float:  # pragma: no cover
        raise NotImplementedError

    def e_phiphi(self, q: float, c: float) -> float:  # pragma: no cover
        raise NotImplementedError

    def e_dphidphi(self, q: float, c: float) -> float:  # pragma: no cover
        raise NotImplementedError


class ClosedFormLeakyReLU(Kernel):
    """phi(x) = max(x, a x): the arc-cosine kernel of degree 1 and 0 (Cho & Saul, 2009).

    With theta = arccos(c): E[relu(u1) relu(u2)] = q (sin theta + (pi - theta) c) / (2 pi) and
    E[relu'(u1) relu'(u2)] = (pi - theta) / (2 pi). Leaky ReLU is (1 - a) relu(x) + a x, and
    E[relu(u1) u2] = q c / 2 by symmetry. ReLU is a = 0: E[phi^2] = q/2, E[phi'^2] = 1/2.
    Quadrature is inaccurate at the kink, hence closed forms.
    """

    def __init__(self, slope: float = 0.0, name: str = "relu") -> None:
        self.a, self.name = float(slope), name

    def e_phi2(self, q: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.asarray(q, dtype=float) * (1 + self.a**2) / 2

    def e_dphi2(self, q: float) -> float:
        return (1 + self.a**2) / 2

    def dq_e_phi2(self, q: float) -> float:
        return (1 + self.a**2) / 2

    def e_phiphi(self, q: float, c: float) -> float:
        c = min(1.0, max(-1.0, c))
        theta = math.acos(c)
        relu = q * (math.sin(theta) + (math.pi - theta) * c) / (2 * math.pi)
        a = self.a
        return (1 - a) ** 2 * relu + a * (1 - a) * q * c + a**2 * q * c

    def e_dphidphi(self, q: float, c: float) -> float:
        theta = math.acos(min(1.0, max(-1.0, c)))
        return (1 + self.a**2) * (math.pi - theta) / (2 * math.pi) + self.a * theta / math.pi


class ClosedFormLinear(Kernel):
    """phi(x) = x: E[phi^2] = q, E[phi'^2] = 1, E[phi(u1) phi(u2)] = q c."""

    name = "linear"

    def e_phi2(self, q: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.asarray(q, dtype=float)

    def e_dphi2(self, q: float) -> float:
        return 1.0

    def dq_e_phi2(self, q: float) -> float:
        return 1.0

    def e_phiphi(self, q: float, c: float) -> float:
        return q * c

    def e_dphidphi(self, q: float, c: float) -> float:
        return 1.0


@contextmanager
def _one_thread() -> Iterator[None]:
    """Quadrature arrays are small: torch's intra-op threads only add overhead (50x on a busy machine)."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class _AutogradKernel(Kernel):
    """phi and phi' from a torch-differentiable callable, evaluated in float64 by autograd."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str) -> None:
        self.fn, self.name = fn, name

    def phi_dphi(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.as_tensor(np.ascontiguousarray(u), dtype=torch.float64).requires_grad_(True)
        with torch.enable_grad(), _one_thread():
            y = self.fn(x)
            (g,) = torch.autograd.grad(y.sum(), x)
        return y.detach().numpy(), g.numpy()

    def phi(self, u: np.ndarray) -> np.ndarray:
        with torch.no_grad(), _one_thread():
            return self.fn(torch.as_tensor(np.ascontiguousarray(u), dtype=torch.float64)).numpy()


class HermiteKernel(_AutogradKernel):
    """Gauss-Hermite quadrature (probabilists' weight e^{-z^2/2}) for smooth activations."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str) -> None:
        super().__init__(fn, name)
        z, w = np.polynomial.hermite_e.hermegauss(_HERMITE_1D)
        self.z, self.w = z, w / math.sqrt(2 * math.pi)
        z2, w2 = np.polynomial.hermite_e.hermegauss(_HERMITE_2D)
        self.z2, self.w2 = z2, w2 / math.sqrt(2 * math.pi)

    def e_phi2(self, q: npt.ArrayLike) -> npt.NDArray[np.float64]:
        q = np.atleast_1d(np.asarray(q, dtype=float))
        p = self.phi(np.sqrt(q)[:, None] * self.z[None, :])  # (nq, nodes)
        return (p**2) @ self.w

    def e_dphi2(self, q: float) -> float:
        _, d = self.phi_dphi(math.sqrt(q) * self.z)
        return float(d**2 @ self.w)

    def dq_e_phi2(self, q: float) -> float:
        p, d = self.phi_dphi(math.sqrt(q) * self.z)
        return float((p * d * self.z) @ self.w / math.sqrt(q))

    def _pair(self, q: float, c: float, derivative: bool) -> float:
        s = math.sqrt(max(0.0, 1 - c * c))
        u1 = math.sqrt(q) * self.z2  # (n,)
        u2 = math.sqrt(q) * (c * self.z2[:, None] + s * self.z2[None, :])  # (n, n)
        if derivative:
            f1, f2 = self.phi_dphi(u1)[1], self.phi_dphi(u2)[1]
        else:
            f1, f2 = self.phi(u1), self.phi(u2)
        return float(self.w2 @ (f1[:, None] * f2) @ self.w2)

    def e_phiphi(self, q: float, c: float) -> float:
        return self._pair(q, c, False)

    def e_dphidphi(self, q: float, c: float) -> float:
        return self._pair(q, c, True)


class SplitKernel(_AutogradKernel):
    """Quadrature that respects a kink at 0 (ELU, SELU, user callables).

    1-D: Gauss-Legendre on [-12, 0] and [0, 12] separately. 2-D: polar coordinates
    z = r (cos t, sin t), so u1 = sqrt(q) r cos t and u2 = sqrt(q) r cos(t - t0) with
    t0 = arccos(c); the angle is split at the four kink directions (u1 = 0 or u2 = 0) and each
    arc, and the radius on [0, 12], use Gauss-Legendre. Each piece is smooth, so the rule
    converges fast where Gauss-Hermite across a kink would not.
    """

    kinked = True

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], name: str) -> None:
        super().__init__(fn, name)
        x, w = np.polynomial.legendre.leggauss(_LEGENDRE)
        half = (x + 1) * _RADIUS / 2  # nodes on [0, R]
        hw = w * _RADIUS / 2 * np.exp(-half**2 / 2) / math.sqrt(2 * math.pi)
        self.z = np.concatenate([-half[::-1], half])
        self.w = np.concatenate([hw[::-1], hw])
        xr, wr = np.polynomial.legendre.leggauss(_POLAR_R)
        r = (xr + 1) * _RADIUS / 2
        self.r = r
        self.wr = wr * _RADIUS / 2 * r * np.exp(-r**2 / 2) / (2 * math.pi)
        self.xt, self.wt = np.polynomial.legendre.leggauss(_POLAR_T)

    e_phi2 = HermiteKernel.e_phi2
    e_dphi2 = HermiteKernel.e_dphi2
    dq_e_phi2 = HermiteKernel.dq_e_phi2

    def _pair_sum(self, q: float, c: float, use_derivative: bool) -> float:
        t0 = math.acos(min(1.0, max(-1.0, c)))
        cuts = sorted({(k * math.pi / 2 + s) % (2 * math.pi) for k in (1, 3) for s in (0.0, t0)})
        cuts = cuts + [cuts[0] + 2 * math.pi]
        angles, weights = [], []
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=False):
            if hi - lo < 1e-15:
                continue
            angles.append((self.xt + 1) * (hi - lo) / 2 + lo)
            weights.append(self.wt * (hi - lo) / 2)
        t, wt = np.concatenate(angles), np.concatenate(weights)
        rq = math.sqrt(q) * self.r[:, None]  # (nr, 1)
        u1, u2 = rq * np.cos(t)[None, :], rq * np.cos(t - t0)[None, :]  # (nr, nt)
        f = self.phi_dphi(u1)[1] * self.phi_dphi(u2)[1] if use_derivative else self.phi(u1) * self.phi(u2)
        return float(self.wr @ f @ wt)

    def e_phiphi(self, q: float, c: float) -> float:
        return self._pair_sum(q, c, False)

    def e_dphidphi(self, q: float, c: float) -> float:
        return self._pair_sum(q, c, True)


def check_differentiable(fn: Callable[[torch.Tensor], torch.Tensor], name: str) -> None:
    """Raise a ValidationError unless ``fn`` is elementwise, finite and differentiable by autograd."""
    x = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64, requires_grad=True)
    try:
        with torch.enable_grad():
            y = fn(x)
    except Exception as err:  # a user callable can fail in any way; report it in one line
        raise ValidationError(f"activation {name} failed on a float64 tensor: {type(err).__name__}: {err}") from None
    if not isinstance(y, torch.Tensor):
        raise ValidationError(
            f"activation {name} must return a torch.Tensor, got {type(y).__name__} (use torch operations, not numpy)"
        )
    if y.shape != x.shape:
        raise ValidationError(f"activation {name} must be elementwise: input shape (61,) gave {tuple(y.shape)}")
    if not y.requires_grad:
        raise ValidationError(
            f"activation {name} is not differentiable: its output carries no gradient "
            "(a .detach(), .item(), numpy round-trip or integer op?); mean-field theory needs phi'"
        )
    (g,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    if g is None or not torch.isfinite(g).all() or not torch.isfinite(y).all():
        raise ValidationError(f"activation {name} has a non-finite value or derivative on [-3, 3]")
    if bool((g == 0).all()):
        raise ValidationError(
            f"activation {name} is not differentiable: its autograd derivative is 0 everywhere on [-3, 3] "
            "(torch.sign, round, floor or a step function?); mean-field theory needs phi'"
        )
