"""The statistics of one parameter against its declared law, each with a p-value under that law.

For a drawn parameter (``n`` values, excluding rows declared constant):

- **KS**: the one-sample Kolmogorov-Smirnov test against the declared law's CDF (normal,
  truncated normal with its bounds, uniform), on at most ``ks_max`` values taken at a fixed
  stride (i.i.d. values stay i.i.d. under any fixed subset; the same tensor gives the same p).
  Massey, 1951, "The Kolmogorov-Smirnov test for goodness of fit".
- **std ratio**: measured std / declared std, a two-sided z-test with the large-sample standard
  error of the sample std, SE(s/sigma) = 1/2 sqrt((kappa - 1)/n) (kappa the declared law's
  kurtosis; delta method on Var(s^2) = sigma^4 (kappa - 1)/n; Cramér, 1946, §27.4), so the
  tolerance shrinks as 1/sqrt(n).
- **kurtosis**: Pearson's b2 = m4/m2^2 against the law's kurtosis, two-sided z-test with the
  delta-method standard error from the law's central moments up to the 8th; tested only from
  ``KURTOSIS_MIN_N`` values, where the skewed sampling distribution of b2 is close enough to a
  normal (below, b2 is reported, not tested).
- **max |z|**: the largest |x - mean| / std, with the exact p-value of the maximum of n i.i.d.
  draws, 1 - (1 - q)^n, q = P(|X - mean| >= t) under the law (0 beyond a bounded law's support).

KS and max |z| have exact null distributions at any n; they run from ``MIN_VALUES`` values (fewer:
the parameter is "untested"). A parameter declared constant is compared exactly, at any size: any
value that differs fails ("exact").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .law import Law

__all__ = ["Measured", "measure", "MIN_VALUES", "STD_MIN_N", "KURTOSIS_MIN_N", "KS_MAX"]

MIN_VALUES = 20         # fewer drawn values: "untested"
STD_MIN_N = 100         # the std ratio's z-test (a large-sample normal approximation) from this many values
KURTOSIS_MIN_N = 100_000  # b2's sampling skewness ~ sqrt(216/n) (normal): below, its z-test would cry wolf
KS_MAX = 100_000        # values the KS test reads (a fixed stride through the tensor)
_EDGE = 1e-5            # relative slack at a bounded law's edge (at least 2 eps of the dtype): rounding


@dataclass
class Measured:
    """What was measured on one parameter; ``p`` holds one p-value per statistic tested."""

    n: int
    std: float | None = None
    std_declared: float | None = None
    std_ratio: float | None = None
    std_se: float | None = None        # standard error of std_ratio under the law
    ks: float | None = None
    kurtosis: float | None = None
    kurtosis_declared: float | None = None
    max_z: float | None = None
    mismatches: int = 0                 # values differing from a declared constant (exact check)
    p: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _two_sided(z: float) -> float:
    return min(1.0, 2.0 * _normal_sf(abs(z)))


def _kurtosis_se(law: Law, n: int) -> float:
    """SE of b2 = m4/m2^2 under a symmetric law: the delta method on (m2, m4)."""
    m2, m4, m6, m8 = (law.central_moment(k) for k in (2, 4, 6, 8))
    var = ((m8 - m4**2) / m2**4 - 4 * m4 * (m6 - m2 * m4) / m2**5 + 4 * m4**2 * (m4 - m2**2) / m2**6) / n
    return math.sqrt(max(var, 0.0))


def _max_z_p(law: Law, t: float, n: int, edge: float = _EDGE) -> float:
    """P(max of n i.i.d. |X - mean| >= t sd) under ``law``; ``t`` is first pulled in by ``edge`` (relative)."""
    dist = law.frozen()
    t = t * (1.0 - edge)
    q = float(dist.cdf(law.mu - t * law.sd) + dist.sf(law.mu + t * law.sd))
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    return -math.expm1(n * math.log1p(-q))


def measure(values: torch.Tensor, law: Law, rows: dict[int, float] | None = None, *,
            min_values: int = MIN_VALUES, ks_max: int = KS_MAX) -> Measured:
    """Measure ``values`` (one parameter) against ``law``; rows of dim 0 in ``rows`` must equal their value."""
    x = values.detach()
    mismatches = 0
    if rows:
        keep = torch.ones(x.shape[0], dtype=torch.bool)
        for row, value in rows.items():
            if -x.shape[0] <= row < x.shape[0]:
                mismatches += int((x[row] != value).sum())
                keep[row] = False
        x = x[keep]
    x = x.reshape(-1)
    if not law.random:  # a constant (or a zero-width law): exact equality
        target = law.value if law.family == "constant" else law.mu
        mismatches += int((x != target).sum())
        return Measured(n=x.numel(), mismatches=mismatches, std=float(x.double().std()) if x.numel() > 1 else None,
                        std_declared=0.0)
    n = x.numel()
    x = x.float()
    # moments: float32 elementwise, float64 sums (a relative error ~1e-7, far below the std's tolerance)
    out = Measured(n=n, mismatches=mismatches, std_declared=law.sd, kurtosis_declared=law.kurtosis)
    if n == 0:
        return out
    mean = float(x.sum(dtype=torch.float64)) / n
    c2 = (x - mean).square_()
    m2 = float(c2.sum(dtype=torch.float64)) / n
    m4 = float(c2.square_().sum(dtype=torch.float64)) / n
    del c2
    std, kurtosis = math.sqrt(m2), (m4 / m2**2 if m2 > 0 else math.inf)
    max_z = max(float(x.max()) - law.mu, law.mu - float(x.min())) / law.sd
    out.std, out.std_ratio, out.kurtosis, out.max_z = std, std / law.sd, kurtosis, max_z
    if n < min_values:
        return out  # untested: too few values
    if n >= STD_MIN_N:
        out.std_se = se_std = 0.5 * math.sqrt((law.kurtosis - 1.0) / n)
        out.p["std"] = _two_sided((std / law.sd - 1.0) / se_std)
    sample = x[:: max(1, math.ceil(n / ks_max))].double()
    out.ks, out.p["ks"] = _ks(sample, law)
    if n >= KURTOSIS_MIN_N:
        se = _kurtosis_se(law, n)
        out.p["kurtosis"] = _two_sided((kurtosis - law.kurtosis) / se) if se > 0 else 1.0
    edge = max(_EDGE, 2 * torch.finfo(values.dtype).eps) if values.dtype.is_floating_point else _EDGE
    out.p["max_z"] = _max_z_p(law, max_z, n, edge)
    return out


def _ks(sample: torch.Tensor, law: Law) -> tuple[float, float]:
    from scipy import stats

    # the exact p-value's cost grows with n; from 10,000 values the asymptotic one is as good (Massey, 1951)
    result = stats.kstest(sample.numpy(), law.frozen().cdf, method="exact" if sample.numel() <= 10_000 else "asymp")
    return float(result.statistic), float(result.pvalue)
