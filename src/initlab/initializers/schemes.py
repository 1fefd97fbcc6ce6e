"""The initialization schemes, each a small function that fills a tensor in place.

Every scheme has the signature ``scheme(tensor, *params, generator=None, fans=None,
batch_dims=0) -> tensor``. ``fans`` overrides the ``(fan_in, fan_out)`` read off the shape;
``batch_dims`` leading dimensions index independent models (stacked weights ``(M, out, in)``).
The first docstring line is the distribution and formula that ``initlab inits`` prints; the
``Reference:`` line is the paper.

Layout: a weight is in PyTorch's layout ``(out, in, *kernel)`` (``nn.Linear``: ``(out_features,
in_features)``; ``nn.Conv2d``: ``(out_channels, in_channels, kh, kw)``), so ``fan_in = in *
prod(kernel)``. Keras kernels are ``(*kernel, in, out)``: transpose one to ``(out, in, *kernel)``
before filling it here, or pass ``fans=(fan_in, fan_out)`` explicitly.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, cast

import torch

from .._validation import ValidationError, check_float, check_int, did_you_mean
from ._fans import compute_fans, fan_for_mode

__all__ = [
    "zeros", "ones", "constant", "normal", "uniform", "truncated_normal", "variance_scaling",
    "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal",
    "lecun_uniform", "orthogonal", "identity", "sparse",
]

# std of a standard normal truncated to [-2, 2]; dividing by it keeps the variance
# of a variance-scaling truncated normal at scale / fan (as Keras and JAX do).
_TRUNC_STD = 0.87962566103423978
_DISTRIBUTIONS = ("normal", "truncated_normal", "uniform", "untruncated_normal")


def _fans(tensor: torch.Tensor, fans: tuple[int, int] | None, batch_dims: int) -> tuple[int, int]:
    return cast("tuple[int, int]", tuple(fans)) if fans is not None else compute_fans(tensor.shape, batch_dims)


def fill_normal_(tensor: torch.Tensor, mean: float, std: float, generator: torch.Generator | None) -> torch.Tensor:
    """Fill ``tensor`` in place with N(mean, std^2) from ``generator`` (no argument checks: callers check)."""
    with torch.no_grad():
        return tensor.normal_(mean, std, generator=generator)


def _uniform_(tensor: torch.Tensor, low: float, high: float, generator: torch.Generator | None) -> torch.Tensor:
    with torch.no_grad():
        return tensor.uniform_(low, high, generator=generator)


def _phi(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _trunc_normal_between_(tensor: torch.Tensor, mean: float, std: float, low: float, high: float,
                           generator: torch.Generator | None) -> torch.Tensor:
    """N(mean, std^2) truncated to the absolute bounds [low, high], by inverse-CDF sampling in float64.

    float64 keeps a far bound (torch's ``trunc_normal_(std=0.02)`` cuts at +-2, i.e. 100 std)
    from sampling the CDF's end point, which would put values on the bound itself.
    """
    if std == 0.0:
        with torch.no_grad():
            return tensor.fill_(min(max(mean, low), high))
    if mean < low - 2 * std or mean > high + 2 * std:
        warnings.warn("mean is more than 2 std outside [low, high]: the draws come from a far tail and may be inaccurate"
                      " (torch warns the same)", stacklevel=4)
    a, b = _phi((low - mean) / std), _phi((high - mean) / std)
    with torch.no_grad():
        u = torch.empty(tensor.shape, dtype=torch.float64, device=tensor.device)
        u.uniform_(2 * a - 1, 2 * b - 1, generator=generator)
        x = u.erfinv_().mul_(std * math.sqrt(2.0)).add_(mean).clamp_(low, high)
        return tensor.copy_(x)


def _trunc_normal_(tensor: torch.Tensor, mean: float, std: float, generator: torch.Generator | None,
                   bound: float = 2.0) -> torch.Tensor:
    """N(mean, std^2) truncated to mean +- bound*std, by inverse-CDF sampling."""
    lo = 0.5 * (1 + math.erf(-bound / math.sqrt(2)))
    hi = 1.0 - lo
    with torch.no_grad():
        tensor.uniform_(2 * lo - 1, 2 * hi - 1, generator=generator)
        tensor.erfinv_().mul_(std * math.sqrt(2.0)).add_(mean)
        return tensor.clamp_(mean - bound * std, mean + bound * std)


def zeros(tensor: torch.Tensor, *, generator: torch.Generator | None = None, fans: tuple[int, int] | None = None,
          batch_dims: int = 0) -> torch.Tensor:
    """All zeros: W = 0 (every unit identical; in exact arithmetic they stay identical).

    Measured: a zero-init 2-10-1 sigmoid net trained by Adam (lr 0.03, 200 epochs, 160 rows) ends with
    2 distinct hidden units of 10 in the single-model trainer and 1 in the batched one, and widths 8
    and 16 stay at 1: float rounding in the kernels can split units that started identical, and Adam
    amplifies the split (it scales each update by the gradient's own size). The init never breaks
    the symmetry; rounding sometimes does, a little.

    Reference: the classic counter-example; see Goodfellow et al., "Deep Learning", 2016, §8.4.
    """
    with torch.no_grad():
        return tensor.zero_()


def ones(tensor: torch.Tensor, *, generator: torch.Generator | None = None, fans: tuple[int, int] | None = None,
         batch_dims: int = 0) -> torch.Tensor:
    """All ones: W = 1.

    Reference: Keras ``Ones``, PyTorch ``nn.init.ones_``.
    """
    with torch.no_grad():
        return tensor.fill_(1.0)


def constant(tensor: torch.Tensor, value: float = 0.0, *, generator: torch.Generator | None = None,
             fans: tuple[int, int] | None = None, batch_dims: int = 0) -> torch.Tensor:
    """Constant: W = value.

    Reference: Keras ``Constant``, PyTorch ``nn.init.constant_``.
    """
    with torch.no_grad():
        return tensor.fill_(check_float("value", value))


def normal(tensor: torch.Tensor, mean: float = 0.0, std: float = 0.05, *, generator: torch.Generator | None = None,
           fans: tuple[int, int] | None = None,
           batch_dims: int = 0) -> torch.Tensor:
    """Normal: N(mean, std^2), default std 0.05 as Keras (PyTorch's ``normal_`` defaults to 1).

    Reference: Keras ``RandomNormal``, PyTorch ``nn.init.normal_``.
    """
    std = check_float("std", std, 0.0)
    return fill_normal_(tensor, check_float("mean", mean), std, generator)


def uniform(tensor: torch.Tensor, low: float = -0.05, high: float = 0.05, *, generator: torch.Generator | None = None,
            fans: tuple[int, int] | None = None,
            batch_dims: int = 0) -> torch.Tensor:
    """Uniform: U(low, high), default U(-0.05, 0.05) as Keras (PyTorch's ``uniform_``: U(0, 1)).

    Reference: Keras ``RandomUniform``, PyTorch ``nn.init.uniform_``.
    """
    low, high = check_float("low", low), check_float("high", high)
    if high < low:
        raise ValidationError(f"uniform needs low <= high, got low={low}, high={high}")
    return _uniform_(tensor, low, high, generator)


def truncated_normal(
    tensor: torch.Tensor, mean: float = 0.0, std: float = 0.05, *, low: float | None = None,
    high: float | None = None, generator: torch.Generator | None = None, fans: tuple[int, int] | None = None,
    batch_dims: int = 0,
) -> torch.Tensor:
    """Truncated normal: N(mean, std^2) cut at mean +- 2 std, default std 0.05 (Keras).

    ``std`` is the std before the cut (as Keras and torch), so the drawn std is 0.88 std.
    ``low``/``high`` set absolute bounds instead, as torch's ``trunc_normal_(a=, b=)``; the PyTorch
    spelling ``trunc_normal_`` takes torch's defaults std=1, a=-2, b=2, so ``trunc_normal_`` with
    std=0.02 is cut at +-2 (100 std: in effect a plain normal), as in torch.
    Reference: Keras ``TruncatedNormal``; PyTorch ``trunc_normal_``.
    """
    std, mean = check_float("std", std, 0.0), check_float("mean", mean)
    if low is None and high is None:
        return _trunc_normal_(tensor, mean, std, generator)
    low = mean - 2 * std if low is None else check_float("low", low)
    high = mean + 2 * std if high is None else check_float("high", high)
    if high <= low:
        raise ValidationError(f"truncated_normal needs low < high (torch's a < b), got low={low}, high={high}")
    return _trunc_normal_between_(tensor, mean, std, low, high, generator)


def variance_scaling(
    tensor: torch.Tensor, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
    *, generator: torch.Generator | None = None, fans: tuple[int, int] | None = None, batch_dims: int = 0,
) -> torch.Tensor:
    """Variance scaling: Var(W) = scale / n, n = fan_in, fan_out or (fan_in + fan_out) / 2.

    normal (also spelled untruncated_normal): N(0, scale/n); truncated_normal: std
    sqrt(scale/n)/0.8796 cut at 2 std (same variance); uniform: U(-sqrt(3 scale/n), +sqrt(3 scale/n)).
    ``distribution="normal"`` is a plain normal here, as in JAX; under the Keras class spelling
    ``get("VarianceScaling", distribution="normal")`` it becomes truncated_normal, as in Keras.
    Fans come from the PyTorch layout ``(out, in, *kernel)``; a 1-D tensor (a bias) uses its
    length as both fans (Keras; torch raises); a zero-element tensor is left as is with a warning
    (as torch's ``kaiming_*_``).

    Reference: Keras/JAX ``VarianceScaling``; the general form of LeCun et al. 1998,
    Glorot & Bengio 2010 and He et al. 2015.
    """
    scale = check_float("scale", scale, 0.0, strict_minimum=True)
    n = max(1.0, fan_for_mode(_fans(tensor, fans, batch_dims), mode))
    variance = scale / n
    if distribution not in _DISTRIBUTIONS:
        raise ValidationError(
            f"unknown distribution {distribution!r}{did_you_mean(distribution, _DISTRIBUTIONS)}"
            f" (allowed: {', '.join(_DISTRIBUTIONS)})"
        )
    if tensor.numel() == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=4)
        return tensor
    if distribution in ("normal", "untruncated_normal"):
        return fill_normal_(tensor, 0.0, math.sqrt(variance), generator)
    if distribution == "truncated_normal":
        return _trunc_normal_(tensor, 0.0, math.sqrt(variance) / _TRUNC_STD, generator)
    bound = math.sqrt(3.0 * variance)
    return _uniform_(tensor, -bound, bound, generator)


def glorot_normal(tensor: torch.Tensor, **kw: Any) -> torch.Tensor:
    """Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out)).

    PyTorch's ``xavier_normal_`` is plain normal, as here; ``get("xavier_normal_", gain=g)`` gives
    the same draw as ``variance_scaling(scale=g^2, mode="fan_avg", distribution="normal")``.
    Keras' ``GlorotNormal`` is truncated (same variance): ``get("GlorotNormal")`` resolves to that
    truncated ``variance_scaling`` spec.
    Reference: Glorot & Bengio, 2010, "Understanding the difficulty of training deep feedforward neural networks".
    """
    return variance_scaling(tensor, 1.0, "fan_avg", "normal", **kw)


def glorot_uniform(tensor: torch.Tensor, **kw: Any) -> torch.Tensor:
    """Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)).

    As PyTorch's ``xavier_uniform_`` and Keras' ``GlorotUniform`` (fans from the PyTorch layout
    ``(out, in, *kernel)``); ``get("xavier_uniform_", gain=g)`` gives ``a = g sqrt(6 / (fan_in +
    fan_out))``, the spec ``variance_scaling(scale=g^2, mode="fan_avg", distribution="uniform")``.
    Reference: Glorot & Bengio, 2010, "Understanding the difficulty of training deep feedforward neural networks".
    """
    return variance_scaling(tensor, 1.0, "fan_avg", "uniform", **kw)


def _he_scale(negative_slope: float) -> float:
    return 2.0 / (1.0 + check_float("negative_slope", negative_slope) ** 2)


def he_normal(tensor: torch.Tensor, negative_slope: float = 0.0, mode: str = "fan_in", **kw: Any) -> torch.Tensor:
    """He/Kaiming normal: N(0, 2 / ((1 + a^2) n)), a = leaky-ReLU slope, n = fan_in (or fan_out).

    PyTorch's ``kaiming_normal_`` is plain normal, as here; ``get`` takes its ``a=`` (the slope) and
    ``nonlinearity=``: relu and leaky_relu stay he_normal, any other nonlinearity of
    ``calculate_gain`` gives ``variance_scaling(scale=gain^2, mode, "normal")``, the same draw as
    torch. Keras' ``HeNormal`` is truncated (same variance): ``get("HeNormal")`` resolves to
    ``variance_scaling(scale=2, mode="fan_in", distribution="truncated_normal")``, Keras' definition.
    Reference: He et al., 2015, "Delving Deep into Rectifiers".
    """
    return variance_scaling(tensor, _he_scale(negative_slope), mode, "normal", **kw)


def he_uniform(tensor: torch.Tensor, negative_slope: float = 0.0, mode: str = "fan_in", **kw: Any) -> torch.Tensor:
    """He/Kaiming uniform: U(-b, b), b = sqrt(6 / ((1 + a^2) n)), n = fan_in (or fan_out).

    As PyTorch's ``kaiming_uniform_`` (whose ``a=`` and ``nonlinearity=`` ``get`` takes, as for
    he_normal) and Keras' ``HeUniform``.
    Reference: He et al., 2015, "Delving Deep into Rectifiers".
    """
    return variance_scaling(tensor, _he_scale(negative_slope), mode, "uniform", **kw)


def lecun_normal(tensor: torch.Tensor, **kw: Any) -> torch.Tensor:
    """LeCun normal: truncated N(0, 1 / fan_in) (std corrected for the cut, as Keras).

    Reference: LeCun et al., 1998, "Efficient BackProp"; Klambauer et al., 2017 (SELU).
    """
    return variance_scaling(tensor, 1.0, "fan_in", "truncated_normal", **kw)


def lecun_uniform(tensor: torch.Tensor, **kw: Any) -> torch.Tensor:
    """LeCun uniform: U(-a, a), a = sqrt(3 / fan_in).

    Reference: LeCun et al., 1998, "Efficient BackProp".
    """
    return variance_scaling(tensor, 1.0, "fan_in", "uniform", **kw)


def _matrices(tensor: torch.Tensor, batch_dims: int) -> torch.Tensor:
    """View ``tensor`` as a batch of matrices ``(B, out, in * prod(kernel))``."""
    shape = tensor.shape
    if len(shape) - batch_dims < 2:
        raise ValidationError(
            f"this initializer needs a weight of at least 2 dimensions, got shape {tuple(shape)}"
        )
    rows, cols = shape[batch_dims], math.prod(shape[batch_dims + 1:])
    return tensor.reshape(math.prod(shape[:batch_dims]), rows, cols)


def orthogonal(tensor: torch.Tensor, gain: float = 1.0, *, generator: torch.Generator | None = None,
               fans: tuple[int, int] | None = None, batch_dims: int = 0) -> torch.Tensor:
    """Orthogonal: W = gain * Q, Q from the QR of a Gaussian matrix (W Wᵀ = gain² I when out <= in).

    A weight ``(out, in, *kernel)`` is treated as the matrix ``(out, in * prod(kernel))``, as torch's
    ``orthogonal_``; Keras flattens its ``(*kernel, in, out)`` kernel to ``(prod(kernel) * in, out)``,
    the transpose of the same structure. Fewer than 2 dimensions raise (as torch).

    Reference: Saxe et al., 2014, "Exact solutions to the nonlinear dynamics of learning in deep linear neural networks".
    """
    gain = check_float("gain", gain)
    with torch.no_grad():
        mats = _matrices(tensor, batch_dims)  # (B, rows, cols)
        if tensor.numel() == 0:  # a no-op, as torch
            return tensor
        b, rows, cols = mats.shape
        tall = rows < cols
        draw = torch.empty(b, max(rows, cols), min(rows, cols), dtype=torch.float64, device=tensor.device)
        draw.normal_(0.0, 1.0, generator=generator)
        q, r = torch.linalg.qr(draw)  # (B, big, small)
        q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)  # unique Q
        if tall:
            q = q.transpose(-2, -1)
        tensor.copy_((gain * q).reshape(tensor.shape).to(tensor.dtype))
    return tensor


def identity(tensor: torch.Tensor, gain: float = 1.0, groups: int = 1, *, generator: torch.Generator | None = None,
             fans: tuple[int, int] | None = None,
             batch_dims: int = 0) -> torch.Tensor:
    """Identity: W = gain * I (rectangular identity; a Dirac kernel for convolutions).

    2-D ``(out, in)``: torch's ``eye_`` (times gain, Keras ``Identity(gain)``); ``(out, in, *kernel)``:
    torch's ``dirac_(groups)``, a 1 at the kernel centre for channel i -> i, in each of ``groups``
    blocks of out/groups output channels. One scheme serves both spellings, so unlike torch
    ``eye_`` also fills a conv weight and ``dirac_`` a 2-D one (and kernels of any rank); Keras'
    ``Identity`` takes 2-D only. Fewer than 2 dimensions raise.
    Reference: Le et al., 2015 (IRNN); PyTorch ``eye_`` and ``dirac_``; Keras ``Identity``.
    """
    gain = check_float("gain", gain)
    groups = check_int("groups", groups, 1)
    shape = tensor.shape[batch_dims:]
    if len(shape) < 2:
        raise ValidationError(
            f"identity needs a weight (out, in, *kernel) of at least 2 dimensions, got shape {tuple(tensor.shape)}"
        )
    out, inp = shape[0], shape[1]
    if out % groups:
        raise ValidationError(f"identity: groups={groups} must divide the {out} output channels (dim 0), as torch's dirac_")
    with torch.no_grad():
        tensor.zero_()
        per_group = out // groups
        idx = torch.arange(min(per_group, inp), device=tensor.device)
        centre = tuple(k // 2 for k in shape[2:])
        for g in range(groups):
            # the index is built first: mypy reads t[(a, *b)] as the 3.11-only t[a, *b]
            index: tuple[Any, ...] = (Ellipsis, g * per_group + idx, idx, *centre)
            tensor[index] = gain
    return tensor


def sparse(tensor: torch.Tensor, sparsity: float = 0.1, std: float = 0.01, *,
           generator: torch.Generator | None = None, fans: tuple[int, int] | None = None,
           batch_dims: int = 0) -> torch.Tensor:
    """Sparse: in each column a fraction `sparsity` of entries is 0, the rest N(0, std^2).

    The weight is 2-D ``(out, in)`` after ``batch_dims``, as torch's ``sparse_`` (a column is one
    input's weights); other ranks raise, as torch.

    Reference: Martens, 2010, "Deep learning via Hessian-free optimization"; PyTorch ``sparse_``.
    """
    sparsity = check_float("sparsity", sparsity, 0.0, 1.0)
    std = check_float("std", std, 0.0)
    if tensor.dim() - batch_dims != 2:
        raise ValidationError(
            f"sparse needs a 2-D weight (out, in) as torch's sparse_, got shape {tuple(tensor.shape)}"
            + (f" with batch_dims={batch_dims}" if batch_dims else "")
        )
    with torch.no_grad():
        mats = _matrices(tensor, batch_dims)  # (B, rows, cols)
        b, rows, cols = mats.shape
        values = torch.empty_like(mats).normal_(0.0, std, generator=generator)
        n_zero = int(math.ceil(sparsity * rows))
        order = torch.rand(b, rows, cols, generator=generator, device=tensor.device).argsort(dim=1)
        values.scatter_(1, order[:, :n_zero, :], 0.0)
        tensor.copy_(values.reshape(tensor.shape))
    return tensor
