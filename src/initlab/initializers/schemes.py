"""The initialization schemes, each a small function that fills a tensor in place.

Every scheme has the signature ``scheme(tensor, *params, generator=None, fans=None,
batch_dims=0) -> tensor``. ``fans`` overrides the ``(fan_in, fan_out)`` read off the shape;
``batch_dims`` leading dimensions index independent models (stacked weights ``(M, out, in)``).
The first docstring line is the distribution and formula that ``initlab inits`` prints; the
``Reference:`` line is the paper.
"""

from __future__ import annotations

import math

import torch

from .._validation import ValidationError, check_float
from ._fans import compute_fans, fan_for_mode

__all__ = [
    "zeros", "ones", "constant", "normal", "uniform", "truncated_normal", "variance_scaling",
    "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal",
    "lecun_uniform", "orthogonal", "identity", "sparse",
]

# std of a standard normal truncated to [-2, 2]; dividing by it keeps the variance
# of a variance-scaling truncated normal at scale / fan (as Keras and JAX do).
_TRUNC_STD = 0.87962566103423978


def _fans(tensor: torch.Tensor, fans, batch_dims: int) -> tuple[int, int]:
    return tuple(fans) if fans is not None else compute_fans(tensor.shape, batch_dims)


def _normal_(tensor, mean, std, generator):
    with torch.no_grad():
        return tensor.normal_(mean, std, generator=generator)


def _uniform_(tensor, low, high, generator):
    with torch.no_grad():
        return tensor.uniform_(low, high, generator=generator)


def _trunc_normal_(tensor, mean, std, generator, bound=2.0):
    """N(mean, std^2) truncated to mean +- bound*std, by inverse-CDF sampling."""
    lo = 0.5 * (1 + math.erf(-bound / math.sqrt(2)))
    hi = 1.0 - lo
    with torch.no_grad():
        tensor.uniform_(2 * lo - 1, 2 * hi - 1, generator=generator)
        tensor.erfinv_().mul_(std * math.sqrt(2.0)).add_(mean)
        return tensor.clamp_(mean - bound * std, mean + bound * std)


def zeros(tensor, *, generator=None, fans=None, batch_dims=0):
    """All zeros: W = 0 (every unit identical: the symmetry is never broken).

    Reference: the classic counter-example; see Goodfellow et al., "Deep Learning", 2016, §8.4.
    """
    with torch.no_grad():
        return tensor.zero_()


def ones(tensor, *, generator=None, fans=None, batch_dims=0):
    """All ones: W = 1.

    Reference: Keras ``Ones``, PyTorch ``nn.init.ones_``.
    """
    with torch.no_grad():
        return tensor.fill_(1.0)


def constant(tensor, value: float = 0.0, *, generator=None, fans=None, batch_dims=0):
    """Constant: W = value.

    Reference: Keras ``Constant``, PyTorch ``nn.init.constant_``.
    """
    with torch.no_grad():
        return tensor.fill_(check_float("value", value))


def normal(tensor, mean: float = 0.0, std: float = 0.05, *, generator=None, fans=None, batch_dims=0):
    """Normal: N(mean, std^2), default std 0.05 as Keras (PyTorch's ``normal_`` defaults to 1).

    Reference: Keras ``RandomNormal``, PyTorch ``nn.init.normal_``.
    """
    std = check_float("std", std, 0.0)
    return _normal_(tensor, check_float("mean", mean), std, generator)


def uniform(tensor, low: float = -0.05, high: float = 0.05, *, generator=None, fans=None, batch_dims=0):
    """Uniform: U(low, high), default U(-0.05, 0.05) as Keras (PyTorch's ``uniform_``: U(0, 1)).

    Reference: Keras ``RandomUniform``, PyTorch ``nn.init.uniform_``.
    """
    low, high = check_float("low", low), check_float("high", high)
    if high < low:
        raise ValidationError(f"uniform needs low <= high, got low={low}, high={high}")
    return _uniform_(tensor, low, high, generator)


def truncated_normal(tensor, mean: float = 0.0, std: float = 0.05, *, generator=None, fans=None, batch_dims=0):
    """Truncated normal: N(mean, std^2) cut at mean +- 2 std, default std 0.05 (Keras).

    Reference: Keras ``TruncatedNormal``; PyTorch ``trunc_normal_`` with a=-2std, b=2std.
    """
    std = check_float("std", std, 0.0)
    return _trunc_normal_(tensor, check_float("mean", mean), std, generator)


def variance_scaling(
    tensor, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
    *, generator=None, fans=None, batch_dims=0,
):
    """Variance scaling: Var(W) = scale / n, n = fan_in, fan_out or (fan_in + fan_out) / 2.

    normal: N(0, scale/n); truncated_normal: std sqrt(scale/n)/0.8796 cut at 2 std (same
    variance); uniform: U(-sqrt(3 scale/n), +sqrt(3 scale/n)).

    Reference: Keras/JAX ``VarianceScaling``; the general form of LeCun et al. 1998,
    Glorot & Bengio 2010 and He et al. 2015.
    """
    scale = check_float("scale", scale, 0.0, strict_minimum=True)
    n = max(1.0, fan_for_mode(_fans(tensor, fans, batch_dims), mode))
    variance = scale / n
    if distribution == "normal":
        return _normal_(tensor, 0.0, math.sqrt(variance), generator)
    if distribution == "truncated_normal":
        return _trunc_normal_(tensor, 0.0, math.sqrt(variance) / _TRUNC_STD, generator)
    if distribution == "uniform":
        bound = math.sqrt(3.0 * variance)
        return _uniform_(tensor, -bound, bound, generator)
    raise ValidationError(
        f"unknown distribution {distribution!r} (allowed: normal, truncated_normal, uniform)"
    )


def glorot_normal(tensor, **kw):
    """Glorot/Xavier normal: N(0, 2 / (fan_in + fan_out)).

    Keras draws it truncated (same variance); PyTorch's ``xavier_normal_`` is plain normal, as here.
    Reference: Glorot & Bengio, 2010, "Understanding the difficulty of training deep feedforward neural networks".
    """
    return variance_scaling(tensor, 1.0, "fan_avg", "normal", **kw)


def glorot_uniform(tensor, **kw):
    """Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)).

    Reference: Glorot & Bengio, 2010, "Understanding the difficulty of training deep feedforward neural networks".
    """
    return variance_scaling(tensor, 1.0, "fan_avg", "uniform", **kw)


def _he_scale(negative_slope: float) -> float:
    return 2.0 / (1.0 + check_float("negative_slope", negative_slope) ** 2)


def he_normal(tensor, negative_slope: float = 0.0, mode: str = "fan_in", **kw):
    """He/Kaiming normal: N(0, 2 / ((1 + a^2) n)), a = leaky-ReLU slope, n = fan_in (or fan_out).

    Keras draws it truncated (same variance); PyTorch's ``kaiming_normal_`` is plain normal, as here.
    Reference: He et al., 2015, "Delving Deep into Rectifiers".
    """
    return variance_scaling(tensor, _he_scale(negative_slope), mode, "normal", **kw)


def he_uniform(tensor, negative_slope: float = 0.0, mode: str = "fan_in", **kw):
    """He/Kaiming uniform: U(-b, b), b = sqrt(6 / ((1 + a^2) n)), n = fan_in (or fan_out).

    Reference: He et al., 2015, "Delving Deep into Rectifiers".
    """
    return variance_scaling(tensor, _he_scale(negative_slope), mode, "uniform", **kw)


def lecun_normal(tensor, **kw):
    """LeCun normal: truncated N(0, 1 / fan_in) (std corrected for the cut, as Keras).

    Reference: LeCun et al., 1998, "Efficient BackProp"; Klambauer et al., 2017 (SELU).
    """
    return variance_scaling(tensor, 1.0, "fan_in", "truncated_normal", **kw)


def lecun_uniform(tensor, **kw):
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
    rows = shape[batch_dims]
    return tensor.reshape(-1, rows, math.prod(shape[batch_dims + 1:]))


def orthogonal(tensor, gain: float = 1.0, *, generator=None, fans=None, batch_dims=0):
    """Orthogonal: W = gain * Q, Q from the QR of a Gaussian matrix (W Wᵀ = gain² I when out <= in).

    Reference: Saxe et al., 2014, "Exact solutions to the nonlinear dynamics of learning in deep linear neural networks".
    """
    gain = check_float("gain", gain)
    with torch.no_grad():
        mats = _matrices(tensor, batch_dims)  # (B, rows, cols)
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


def identity(tensor, gain: float = 1.0, *, generator=None, fans=None, batch_dims=0):
    """Identity: W = gain * I (rectangular identity; a Dirac kernel for convolutions).

    Reference: Le et al., 2015 (IRNN); PyTorch ``eye_`` and ``dirac_``; Keras ``Identity``.
    """
    gain = check_float("gain", gain)
    shape = tensor.shape[batch_dims:]
    if len(shape) < 2:
        raise ValidationError(f"identity needs a weight of at least 2 dimensions, got shape {tuple(tensor.shape)}")
    with torch.no_grad():
        tensor.zero_()
        out, inp = shape[0], shape[1]
        centre = tuple(k // 2 for k in shape[2:])
        idx = torch.arange(min(out, inp), device=tensor.device)
        tensor[(Ellipsis, idx, idx, *centre)] = gain
    return tensor


def sparse(tensor, sparsity: float = 0.1, std: float = 0.01, *, generator=None, fans=None, batch_dims=0):
    """Sparse: in each column a fraction `sparsity` of entries is 0, the rest N(0, std^2).

    Reference: Martens, 2010, "Deep learning via Hessian-free optimization"; PyTorch ``sparse_``.
    """
    sparsity = check_float("sparsity", sparsity, 0.0, 1.0)
    std = check_float("std", std, 0.0)
    with torch.no_grad():
        mats = _matrices(tensor, batch_dims)  # (B, rows, cols)
        b, rows, cols = mats.shape
        values = torch.empty_like(mats).normal_(0.0, std, generator=generator)
        n_zero = int(math.ceil(sparsity * rows))
        order = torch.rand(b, rows, cols, generator=generator, device=tensor.device).argsort(dim=1)
        values.scatter_(1, order[:, :n_zero, :], 0.0)
        tensor.copy_(values.reshape(tensor.shape))
    return tensor
