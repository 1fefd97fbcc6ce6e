"""ZerO: a deterministic initialization with only zeros, ones and a scaled Hadamard matrix.

Zhao et al. (2022), "ZerO Initialization: Initializing Neural Networks with only Zeros and
Ones" (TMLR), Algorithm 1. A weight ``W`` of shape ``(P_out, P_in)`` is

- ``I`` (the identity) when ``P_out == P_in``;
- ``I*`` (the partial identity, ``I*_ij = 1`` if ``i == j`` else 0) when ``P_out < P_in``;
- ``c I* H_m I* = c H_m[:P_out, :P_in]`` when ``P_out > P_in``, with ``H_m`` the ``2^m x 2^m``
  Sylvester-Hadamard matrix (``H_0 = 1``, ``H_m = [[H, H], [H, -H]]``, so ``H_m[i, j] =
  (-1)^popcount(i & j)``), ``m = ceil(log2 P_out)`` and ``c = 2^(-(m-1)/2)``.

The Hadamard block is what breaks the symmetry a plain partial identity would keep when a
layer widens (every extra unit would copy a zero); no random number is drawn, so two seeds give
the same network. Its catalog name is ``hadamard_identity`` (the paper's ``ZerO`` resolves to
it, exactly): a name starting with ``zero`` would read as the all-zeros scheme, which is the
opposite of what this one does.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch

from .._validation import ValidationError

__all__ = ["hadamard_identity", "sylvester_hadamard", "zero_matrix"]


def sylvester_hadamard(rows: int, cols: int, m: int) -> torch.Tensor:
    """The top-left ``(rows, cols)`` block of the ``2^m x 2^m`` Sylvester-Hadamard matrix (entries +-1)."""
    if rows > 2**m or cols > 2**m:
        raise ValidationError(f"a ({rows}, {cols}) block does not fit in the 2^{m} Hadamard matrix")
    i = torch.arange(rows).unsqueeze(1)  # (rows, 1)
    j = torch.arange(cols).unsqueeze(0)  # (1, cols)
    both = i & j  # (rows, cols)
    parity = torch.zeros_like(both)
    for bit in range(max(m, 1)):
        parity ^= (both >> bit) & 1
    return 1.0 - 2.0 * parity.to(torch.float64)  # (-1)^popcount(i & j)


def zero_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """ZerO's ``(n_out, n_in)`` matrix (Zhao et al. 2022, Algorithm 1), float64."""
    if n_out <= n_in:  # I (square) or the partial identity I* (narrowing)
        return torch.eye(n_out, n_in, dtype=torch.float64)
    m = math.ceil(math.log2(n_out))
    c = 2.0 ** (-(m - 1) / 2.0)
    return cast(torch.Tensor, c * sylvester_hadamard(n_out, n_in, m))  # float * Tensor is Any in torch's stubs


def hadamard_identity(tensor: torch.Tensor, *, generator: torch.Generator | None = None,
                      fans: tuple[int, int] | None = None, batch_dims: int = 0) -> torch.Tensor:
    """ZerO: W = I (out = in), I* (out < in), 2^(-(m-1)/2) H_m[:out, :in], m = ceil(log2 out) (out > in).

    Deterministic. I* is the partial identity (I*_ij = 1 if i == j else 0).

    H_m is the 2^m x 2^m Sylvester-Hadamard matrix (entries +-1). Nothing is drawn (the
    generator is ignored): two seeds give the same weights. A conv weight ``(out, in, *kernel)``
    gets the matrix at the kernel centre and zeros elsewhere (a Dirac kernel, as ``identity``);
    a 1-D tensor (a bias) is zero, as in the paper. ``batch_dims`` leading dimensions (stacked
    models) each get the same matrix. Not to be confused with ``zeros``: ZerO is zeros *and
    ones* (and a Hadamard block), so signals pass through from the first step.
    The construction is the paper's Algorithm 1.
    Reference: Zhao et al., 2022, "ZerO Initialization: Initializing Neural Networks with only Zeros and Ones".
    """
    shape = tensor.shape[batch_dims:]
    with torch.no_grad():
        if len(shape) <= 1:  # a bias (or a scalar): zero
            return tensor.zero_()
        n_out, n_in = shape[0], shape[1]
        if tensor.numel() == 0:
            return tensor
        matrix = zero_matrix(n_out, n_in).to(tensor.dtype)  # (out, in)
        tensor.zero_()
        centre = tuple(k // 2 for k in shape[2:])
        # the index is built first: mypy reads t[(a, *b)] as the 3.11-only t[a, *b]
        index: tuple[Any, ...] = (Ellipsis, slice(None), slice(None), *centre)
        tensor[index] = matrix.to(tensor.device)
    return tensor
