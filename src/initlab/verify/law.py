"""The declared law of a parameter's values: normal, truncated normal, uniform, or a constant.

A :class:`Law` is what a recipe says the values were drawn from. It gives the reference
distribution of the Kolmogorov-Smirnov test (a ``scipy.stats`` frozen distribution) and the
central moments from which the sampling error of the std and of the kurtosis follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

__all__ = ["Law"]

FAMILIES = ("normal", "truncated_normal", "uniform", "constant")
_FAR = 40.0  # a truncation bound beyond 40 std cuts nothing a float64 can tell


@dataclass(frozen=True)
class Law:
    """One declared distribution.

    ``normal``: N(mean, std^2). ``truncated_normal``: N(mean, std^2) cut to the absolute bounds
    ``[low, high]`` (``std`` is the std *before* the cut, as torch's ``trunc_normal_`` and Keras'
    ``TruncatedNormal``). ``uniform``: U(low, high). ``constant``: every value equals ``value``.
    """

    family: str
    mean: float = 0.0
    std: float = 0.0
    low: float = -math.inf
    high: float = math.inf
    value: float = 0.0

    @staticmethod
    def normal(mean: float, std: float) -> Law:
        return Law("normal", mean=float(mean), std=float(std))

    @staticmethod
    def uniform(low: float, high: float) -> Law:
        low, high = sorted((float(low), float(high)))
        return Law("uniform", low=low, high=high)

    @staticmethod
    def truncated(mean: float, std: float, low: float, high: float) -> Law:
        low, high = sorted((float(low), float(high)))
        return Law("truncated_normal", mean=float(mean), std=float(std), low=low, high=high)

    @staticmethod
    def constant(value: float) -> Law:
        return Law("constant", value=float(value))

    @property
    def random(self) -> bool:
        """Whether values are drawn (a statistical test applies), not set."""
        return self.family != "constant" and self.sd > 0.0

    def describe(self) -> str:
        """Short text: ``N(0, 0.02^2)``, ``U(-0.036, 0.036)``, ``TN(0, 0.02^2, [-0.04, 0.04])``, ``= 1``."""
        g = _g
        if self.family == "normal":
            return f"N({g(self.mean)}, {g(self.std)}^2)"
        if self.family == "uniform":
            return f"U({g(self.low)}, {g(self.high)})"
        if self.family == "truncated_normal":
            return f"TN({g(self.mean)}, {g(self.std)}^2, [{g(self.low)}, {g(self.high)}])"
        return f"= {g(self.value)}"

    def to_dict(self) -> dict[str, Any]:
        """The family and its parameters (those that apply)."""
        keys = {"normal": ("mean", "std"), "uniform": ("low", "high"),
                "truncated_normal": ("mean", "std", "low", "high"), "constant": ("value",)}[self.family]
        return {"family": self.family, **{k: getattr(self, k) for k in keys}, "text": self.describe()}

    # -- moments ----------------------------------------------------------------------------------
    @cached_property
    def _standard(self) -> tuple[float, float, float, list[float]]:
        """(location, scale, mean, central moments mu_0..mu_8) of the law."""
        if self.family == "constant":
            return self.value, 0.0, self.value, [1.0] + [0.0] * 8
        if self.family == "uniform":
            half, centre = (self.high - self.low) / 2.0, (self.high + self.low) / 2.0
            central = [half**k / (k + 1) if k % 2 == 0 else 0.0 for k in range(9)]
            return centre, 1.0, centre, central
        alpha, beta = _standardized_bounds(self)
        raw = _truncated_normal_raw_moments(alpha, beta)  # of Z ~ N(0,1) cut to [alpha, beta]
        m1 = raw[1]
        central = [sum(math.comb(k, j) * raw[j] * (-m1) ** (k - j) for j in range(k + 1)) for k in range(9)]
        scale = self.std
        return self.mean, scale, self.mean + scale * m1, [c * scale**k for k, c in enumerate(central)]

    @property
    def mu(self) -> float:
        """The mean of the law."""
        return self._standard[2]

    @property
    def sd(self) -> float:
        """The standard deviation of the law (after truncation)."""
        return math.sqrt(max(self._standard[3][2], 0.0))

    def central_moment(self, k: int) -> float:
        """E[(X - mean)^k], k <= 8."""
        return self._standard[3][k]

    @property
    def kurtosis(self) -> float:
        """Pearson's kurtosis mu_4 / mu_2^2 (3 for a normal, 1.8 for a uniform)."""
        m2 = self.central_moment(2)
        return self.central_moment(4) / m2**2 if m2 > 0 else math.nan

    def frozen(self) -> Any:  # a scipy.stats frozen distribution (scipy is untyped)
        """The ``scipy.stats`` frozen distribution (the KS test's reference)."""
        from scipy import stats

        if self.family == "normal":
            return stats.norm(self.mean, self.std)
        if self.family == "uniform":
            return stats.uniform(self.low, self.high - self.low)
        alpha, beta = _standardized_bounds(self)
        return stats.truncnorm(alpha, beta, loc=self.mean, scale=self.std)


def _standardized_bounds(law: Law) -> tuple[float, float]:
    if law.family == "normal" or law.std <= 0:
        return -math.inf, math.inf
    alpha, beta = (law.low - law.mean) / law.std, (law.high - law.mean) / law.std
    return (alpha if alpha > -_FAR else -math.inf), (beta if beta < _FAR else math.inf)


def _truncated_normal_raw_moments(alpha: float, beta: float) -> list[float]:
    """E[Z^k], k = 0..8, of a standard normal cut to [alpha, beta].

    The recursion m_k = (k-1) m_{k-2} - (beta^{k-1} phi(beta) - alpha^{k-1} phi(alpha)) / Z, Z =
    Phi(beta) - Phi(alpha) (integration by parts; Johnson, Kotz & Balakrishnan, "Continuous
    Univariate Distributions", vol. 1, ch. 13.10).
    """
    def phi(x: float) -> float:
        return 0.0 if math.isinf(x) else math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    def cdf(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    z = cdf(beta) - cdf(alpha)

    def edge(x: float, k: int) -> float:
        return 0.0 if math.isinf(x) else x ** (k - 1) * phi(x)

    m = [1.0, -(phi(beta) - phi(alpha)) / z]
    for k in range(2, 9):
        m.append((k - 1) * m[k - 2] - (edge(beta, k) - edge(alpha, k)) / z)
    return m


def _g(x: float) -> str:
    return f"{x:.4g}"
