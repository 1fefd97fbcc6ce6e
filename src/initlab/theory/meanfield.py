"""Mean-field signal propagation in deep random networks.

Setting (Poole et al., 2016, "Exponential expressivity in deep neural networks through
transient chaos"; Schoenholz et al., 2017, "Deep Information Propagation"): a layer computes
pre-activations ``h^l = W^l phi(h^{l-1}) + b^l`` with ``W_ij ~ N(0, sigma_w2 / fan_in)``,
``b_i ~ N(0, sigma_b2)``. At large width every ``h^l_i`` is Gaussian with variance ``q^l``
(the *length*), and two inputs' pre-activations have correlation ``c^l``, so that, with
``z ~ N(0, 1)``::

    q^{l+1} = sigma_w2 * E[phi(sqrt(q^l) z)^2] + sigma_b2                 (length map)
    c^{l+1} = (sigma_w2 * E[phi(u1) phi(u2)] + sigma_b2) / q*             (correlation map)
    chi_1   = sigma_w2 * E[phi'(sqrt(q*) z)^2]       (slope of the correlation map at c = 1)
    xi_q    = -1 / ln(sigma_w2 * d/dq E[phi(sqrt(q) z)^2] at q*)
            = -1 / ln(chi_1 + sigma_w2 E[phi''(u) phi(u)])    (Schoenholz et al., eq. 5)
    xi_c    = -1 / ln(sigma_w2 * E[phi'(u1) phi'(u2)] at (q*, c*))    (eq. 9)

``chi_1 < 1``: ordered (c* = 1, inputs collapse together); ``chi_1 > 1``: chaotic (c* < 1,
nearby inputs decorrelate); ``chi_1 = 1``: critical, where ``xi_c`` diverges and signals
(and gradients) travel arbitrarily deep. Schoenholz et al. find networks trainable up to
about ``6 xi_c`` layers.

Expectations: closed forms for ReLU, leaky ReLU (the arc-cosine kernel, Cho & Saul 2009) and
linear; Gauss-Hermite quadrature for smooth activations; a quadrature split at the kink for
ELU, SELU and user callables (see ``initlab.initializers._gauss``). The fixed point q*, chi_1
and the critical sigma_w2 live in ``initlab.initializers._critical_point`` (the ``critical``
initializer needs them, and initializers must not import theory); they are re-exported here.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from scipy import optimize

from .. import _html
from .._validation import check_float
from ..initializers._critical_point import (
    Q_MAX,
    Q_MIN,
    Activation,
    critical_sigma_w2,
    length_fixed_point,
    resolve_activation,
    variance_arg,
)
from ..initializers._critical_point import chi_1 as _chi_1

if TYPE_CHECKING:
    from ..initializers._gauss import Kernel

__all__ = ["MeanField", "critical_sigma_w2", "resolve_activation", "Activation"]

_CRITICAL_TOL = 1e-6         # |chi_1 - 1| below this is "critical"


def _xi(slope: float) -> float:
    """Depth scale -1/ln(slope): inf at slope >= 1 (no exponential decay), 0 at slope <= 0."""
    if slope <= 0.0:
        return 0.0
    if slope >= 1.0:
        return math.inf
    return -1.0 / math.log(slope)


class MeanField:
    """Mean-field quantities of a deep random network (Poole et al. 2016; Schoenholz et al. 2017).

    ``MeanField("tanh", sigma_w2=1.5, sigma_b2=0.05)``: weights ``N(0, sigma_w2/fan_in)``,
    biases ``N(0, sigma_b2)``, activation a registry name or any torch-differentiable
    elementwise callable. Properties (computed once): ``q_star``, ``chi_1``, ``c_star``,
    ``chi_c``, ``xi_q``, ``xi_c``, ``phase``; maps ``length_map(q)`` and
    ``correlation_map(c)``. ``q_star`` is ``inf`` when the length diverges (e.g. ReLU with
    sigma_w2 > 2) and ``0`` when it collapses (odd activation, sigma_b2 = 0, ordered).
    """

    def __init__(self, activation: Activation | Kernel, sigma_w2: float, sigma_b2: float = 0.0) -> None:
        self.sigma_w2 = variance_arg("sigma_w2", sigma_w2)
        self.sigma_b2 = variance_arg("sigma_b2", sigma_b2)
        self.kernel = resolve_activation(activation)
        self.activation = self.kernel.name

    def __repr__(self) -> str:
        return f"MeanField({self.activation!r}, sigma_w2={self.sigma_w2:g}, sigma_b2={self.sigma_b2:g})"

    def _repr_html_(self) -> str:
        """Notebook display: the phase as a badge, then q*, chi_1, c*, chi_c, xi_q, xi_c, trainable depth."""
        tone = "ok" if self.phase == "critical" else "warn"  # off the critical line, gradients vanish or explode
        rows = [
            ("q*", "length fixed point (pre-activation variance)", self.q_star),
            ("chi_1", "slope of the correlation map at c = 1 (1: critical)", self.chi_1),
            ("c*", "correlation fixed point (1: ordered)", self.c_star),
            ("chi_c", "slope of the correlation map at c*", self.chi_c),
            ("xi_q", "depth scale of the length, layers", self.xi_q),
            ("xi_c", "depth scale of the correlation, layers", self.xi_c),
            ("6 xi_c", "trainable depth (Schoenholz et al. 2017), layers", self.trainable_depth),
        ]
        table = _html.table(("quantity", "", "value"), [(k, words, _html.number(v, 4)) for k, words, v in rows],
                            right=(2,))
        title = f"MeanField {self.activation}, sigma_w2 = {self.sigma_w2:g}, sigma_b2 = {self.sigma_b2:g}"
        return _html.box(title, _html.badge(self.phase, tone), table, subtitle="Poole et al. 2016; Schoenholz et al. 2017")

    # ---- length --------------------------------------------------------------------------
    @overload
    def length_map(self, q: float) -> float: ...

    @overload
    def length_map(self, q: np.ndarray) -> np.ndarray: ...

    def length_map(self, q: float | np.ndarray) -> float | np.ndarray:
        """q -> sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2: the next layer's pre-activation variance."""
        out = self.sigma_w2 * self.kernel.e_phi2(np.asarray(q, dtype=float)) + self.sigma_b2
        return float(np.reshape(out, -1)[0]) if np.ndim(q) == 0 else np.reshape(out, np.shape(q))

    @cached_property
    def q_star(self) -> float:
        """Fixed point of the length map reached from a generic input length (0, finite or inf).

        ``inf`` where the length diverges, ``1`` for ReLU at sigma_w2 = 2, sigma_b2 = 0 (every
        length is kept); see :func:`~initlab.initializers._critical_point.length_fixed_point`.
        """
        return length_fixed_point(self.kernel, self.sigma_w2, self.sigma_b2)

    @property
    def _q(self) -> float:
        return min(max(self.q_star, Q_MIN), Q_MAX)

    @cached_property
    def chi_1(self) -> float:
        """sigma_w2 E[phi'(sqrt(q*) z)^2]: mean squared singular value of the layer Jacobian.

        chi_1 < 1 ordered (gradients vanish), > 1 chaotic (they explode), = 1 critical.
        Schoenholz et al. 2017, eq. 7; Poole et al. 2016.
        """
        return _chi_1(self.kernel, self.sigma_w2, self.q_star)

    @cached_property
    def xi_q(self) -> float:
        """Depth scale of the length: -1/ln(sigma_w2 dE[phi^2]/dq at q*) (Schoenholz et al. eq. 5).

        sigma_w2 dE[phi(sqrt(q) z)^2]/dq = chi_1 + sigma_w2 E[phi'' phi] (Price's theorem),
        computed as sigma_w2 E[phi phi' z]/sqrt(q) (Stein's lemma), which needs no phi''.
        inf where the length does not converge exponentially (q* = inf or slope >= 1).
        """
        if math.isinf(self.q_star):
            return math.inf
        if self.q_star == 0.0:  # phi(0) = 0 there, so the slope at q = 0 is sigma_w2 phi'(0)^2 = chi_1
            return _xi(self.chi_1)
        return _xi(self.sigma_w2 * self.kernel.dq_e_phi2(self._q))

    # ---- correlation ---------------------------------------------------------------------
    def correlation_map(self, c: float) -> float:
        """c -> (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q* with u1, u2 ~ N(0, q*) of correlation c.

        Divides by the length map at q (equal to q* at the fixed point), which stays defined
        when q* = 0. Poole et al. 2016, eq. 5.
        """
        c = check_float("c", c, -1.0, 1.0)
        q = self._q
        num = self.sigma_w2 * self.kernel.e_phiphi(q, c) + self.sigma_b2
        den = self.length_map(q)
        return c if den == 0.0 else float(num / den)

    @cached_property
    def c_star(self) -> float:
        """Stable fixed point of the correlation map: 1 in the ordered phase, < 1 in the chaotic one.

        Reported as 1 where q* = inf (the scale-free limit of the map keeps c = 1 marginal).
        """
        if self.chi_1 <= 1.0 + _CRITICAL_TOL or math.isinf(self.q_star):
            return 1.0
        def g(c: float) -> float:
            return self.correlation_map(c) - c

        # c = 1 is an unstable fixed point here (and c = -1 too for odd phi with sigma_b2 = 0):
        # step in from both ends until C(c) < c near 1 and C(c) > c near -1, then bracket.
        h = 1e-3
        while g(1.0 - h) >= 0.0 and h > 1e-12:
            h /= 10.0
        if g(1.0 - h) >= 0.0:
            return 1.0
        lo = -1.0
        if g(lo) <= 0.0:
            k = 1e-3
            while g(-1.0 + k) <= 0.0 and k > 1e-12:
                k /= 10.0
            if g(-1.0 + k) <= 0.0:
                return -1.0
            lo = -1.0 + k
        return float(optimize.brentq(g, lo, 1.0 - h, xtol=1e-14, rtol=1e-14, maxiter=200))

    @cached_property
    def chi_c(self) -> float:
        """sigma_w2 E[phi'(u1) phi'(u2)] at (q*, c*): slope of the correlation map at c*.

        Equals chi_1 in the ordered phase (c* = 1). Schoenholz et al. 2017, eq. 8.
        """
        if self.c_star == 1.0:
            return self.chi_1
        return float(self.sigma_w2 * self.kernel.e_dphidphi(self._q, self.c_star))

    @cached_property
    def xi_c(self) -> float:
        """Correlation depth scale -1/ln(chi_c) (Schoenholz et al. 2017, eq. 9), in layers.

        Infinite on the critical line (chi_1 = 1) and where q* = inf. Networks deeper than
        about 6 xi_c do not train (Schoenholz et al. 2017, section 5).
        """
        if math.isinf(self.q_star) or self.phase == "critical":
            return math.inf
        return _xi(self.chi_c)

    @cached_property
    def phase(self) -> str:
        """'ordered' (chi_1 < 1), 'chaotic' (chi_1 > 1) or 'critical' (|chi_1 - 1| <= 1e-6)."""
        if abs(self.chi_1 - 1.0) <= _CRITICAL_TOL:
            return "critical"
        return "ordered" if self.chi_1 < 1.0 else "chaotic"

    @property
    def trainable_depth(self) -> float:
        """6 xi_c: the depth up to which Schoenholz et al. 2017 find networks trainable."""
        return 6.0 * self.xi_c

    def predicted_lengths(self, q0: float, depth: int) -> np.ndarray:
        """q^1..q^depth from q^0 (the input's mean square), iterating the length map."""
        qs: list[float] = []
        q = float(q0)
        for _ in range(int(depth)):
            q = self.length_map(q)
            qs.append(q)
        return np.asarray(qs)

    def to_dict(self) -> dict[str, Any]:
        """Every quantity, JSON-friendly (inf as the string 'inf')."""
        def clean(v: Any) -> Any:
            return "inf" if isinstance(v, float) and math.isinf(v) else v
        return {
            "activation": self.activation, "sigma_w2": self.sigma_w2, "sigma_b2": self.sigma_b2,
            "q_star": clean(self.q_star), "chi_1": clean(self.chi_1), "c_star": clean(self.c_star),
            "chi_c": clean(self.chi_c), "xi_q": clean(self.xi_q), "xi_c": clean(self.xi_c),
            "trainable_depth": clean(self.trainable_depth), "phase": self.phase,
        }
