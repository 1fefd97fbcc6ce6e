"""Symmetry: how many units of a layer are really different from each other.

Two hidden units are interchangeable when their incoming weights and bias agree (so they compute
the same output on every input) *and* their outgoing weights agree (so the loss treats them
alike). Then they receive the same gradient, and an elementwise optimizer (SGD, Adam, RMSprop)
keeps them equal: the layer computes what a layer of ``distinct_units`` units would. Units with
equal incoming weights but different outgoing weights get different gradients and separate.

Speed: comparing every pair of units costs ``units^2 x fan_in`` (a 4096 x 25088 layer: 4e11).
:func:`distinct_units` gives exactly the all-pairs count (:func:`distinct_units_all_pairs`, kept
as the reference) from a few passes over the weights: it sorts the units by a random projection
of their incoming weights, and compares a unit only with those whose projection is within what
the tolerance allows; cheap necessary conditions (7 more projections, the rows' largest
|weight|, a sample of columns) discard most of those before the full comparison.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .thresholds import SYMMETRY_TOL

__all__ = ["distinct_units", "distinct_units_all_pairs", "unit_rows", "outgoing_rows", "gradient_rounding_scale",
           "UNIT_ROUNDOFF_32", "ROUNDING_SPLIT", "SYMMETRY_TOL"]

_CHUNK = 1 << 22  # values per chunk converted to float64 at once (32 MB)
_SAMPLE_COLUMNS = 32  # columns compared before the full rows
_PROJECTIONS = 8  # random projections: the first sorts the units, all of them filter candidates
_EPS = float(np.finfo(np.float64).eps)


def unit_rows(weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``(units, fan_in [+ 1])``: each unit's incoming weights, then its bias (float64)."""
    rows = weight.detach().reshape(weight.shape[0], -1).double()
    if bias is not None:
        rows = torch.cat([rows, bias.detach().reshape(-1, 1).double()], dim=1)
    return rows


def outgoing_rows(reader_weight: torch.Tensor, per_unit: int = 1) -> torch.Tensor:
    """``(units, values)``: each unit's outgoing weights in a layer that reads it (the reader's dtype).

    ``reader_weight`` is ``(out, units * per_unit, *kernel)`` (Linear: ``(out, in)``; Conv:
    ``(out, in, k...)``); ``per_unit`` > 1 when the units reach the reader through a channel-first
    ``nn.Flatten`` (each unit then owns ``per_unit`` consecutive input features).
    """
    w = reader_weight.detach()
    out = w.shape[0]
    w = w.reshape(out, -1, per_unit, *w.shape[2:])  # (out, units, per_unit, *kernel)
    return w.transpose(0, 1).reshape(w.shape[1], -1)


def _close(rows: torch.Tensor, tol: float) -> torch.Tensor:
    """``(units, units)``: True where two rows differ by at most ``tol`` times the larger row's max |entry|."""
    rows = rows.double()
    scale = rows.abs().amax(dim=1)  # (units,)
    limit = tol * torch.maximum(scale[:, None], scale[None, :])
    return torch.cdist(rows, rows, p=float("inf")) <= limit


def distinct_units_all_pairs(weight: torch.Tensor, bias: torch.Tensor | None = None,
                             outgoing: list[torch.Tensor] | None = None, tol: float = SYMMETRY_TOL) -> int:
    """:func:`distinct_units` by comparing every pair of units (``units^2`` memory and time):
    the reference the fast count is tested against."""
    rows = unit_rows(weight, bias)
    if rows.shape[0] == 0:
        return 0
    close = _close(rows, tol)
    for part in outgoing or ():
        close &= _close(part, tol)
    unassigned = torch.ones(rows.shape[0], dtype=torch.bool)
    groups = 0
    while bool(unassigned.any()):
        first = int(unassigned.nonzero()[0])
        unassigned &= ~close[first]
        groups += 1
    return groups


# A "part" is the list of 2-D blocks ``(units, values)`` whose columns, side by side, are the rows
# compared: the incoming part is [weight, bias]; each outgoing tensor is a part of its own.

def _row_chunks(block: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    step = max(1, _CHUNK // max(1, block.shape[1]))
    for start in range(0, block.shape[0], step):
        yield start, block[start:start + step]


def _scale(part: list[torch.Tensor]) -> torch.Tensor:
    """``(units,)`` float64: each row's largest |value| (exact: no arithmetic)."""
    scale = torch.zeros(part[0].shape[0], dtype=torch.float64, device=part[0].device)
    for block in part:
        for start, chunk in _row_chunks(block):
            if chunk.shape[1]:
                rows = slice(start, start + chunk.shape[0])
                scale[rows] = torch.maximum(scale[rows], chunk.abs().amax(dim=1).double())
    return scale


def _project(part: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """``(units, _PROJECTIONS)`` float64: ``rows @ P`` for random columns ``p`` of ``P`` with
    ``sum|p| = 1``, so that ``|key_i - key_j| <= max|row_i - row_j|`` in every column."""
    widths = [block.shape[1] for block in part]
    p = torch.randn(sum(widths), _PROJECTIONS, generator=generator, dtype=torch.float64)
    p = (p / p.abs().sum(dim=0)).to(part[0].device)
    keys = torch.zeros(part[0].shape[0], _PROJECTIONS, dtype=torch.float64, device=part[0].device)
    offset = 0
    for block, width in zip(part, widths, strict=False):
        for start, chunk in _row_chunks(block):
            keys[start:start + chunk.shape[0]] += chunk.double() @ p[offset:offset + width]
        offset += width
    return keys


def _columns(part: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """``(units, <= _SAMPLE_COLUMNS)`` float64: the same random columns of every row."""
    widths = [block.shape[1] for block in part]
    total = sum(widths)
    picked = torch.randperm(total, generator=generator)[:_SAMPLE_COLUMNS].sort().values.to(part[0].device)
    out, offset = [], 0
    for block, width in zip(part, widths, strict=False):
        mine = picked[(picked >= offset) & (picked < offset + width)] - offset
        if mine.numel():
            out.append(block[:, mine].double())
        offset += width
    return torch.cat(out, dim=1).cpu() if out else torch.zeros(part[0].shape[0], 0, dtype=torch.float64)


def _max_difference(part: list[torch.Tensor], unit: int, others: np.ndarray) -> np.ndarray:
    """``(len(others),)`` float64: ``max|row_unit - row_j|`` for each j of ``others``."""
    index = torch.as_tensor(others, dtype=torch.long, device=part[0].device)
    out = torch.zeros(len(others), dtype=torch.float64, device=part[0].device)
    for block in part:
        if not block.shape[1]:
            continue
        row = block[unit]
        step = max(1, _CHUNK // block.shape[1])
        for start in range(0, len(others), step):
            chunk = block.index_select(0, index[start:start + step])
            differ = ~(chunk == row).all(dim=1)  # equal rows (zeros, copies) differ by exactly 0: no float64 pass
            if bool(differ.any()):
                diff = torch.zeros(chunk.shape[0], dtype=torch.float64, device=chunk.device)
                diff[differ] = (chunk[differ].double() - row.double()).abs().amax(dim=1)
                out[start:start + step] = torch.maximum(out[start:start + step], diff)
    return out.cpu().numpy()


def distinct_units(weight: torch.Tensor, bias: torch.Tensor | None = None,
                   outgoing: list[torch.Tensor] | None = None, tol: float = SYMMETRY_TOL) -> int:
    """Number of distinct units (rows) of a layer.

    Two units count as one when their incoming weights and bias agree and, for every tensor in
    ``outgoing`` (each ``(units, values)``, from :func:`outgoing_rows`), their outgoing weights
    agree. "Agree" is relative to the pair's own scale: every entry differs by at most
    ``tol * max(max|row_i|, max|row_j|)``, compared separately for the incoming part and for each
    outgoing part, so the count does not change when a layer's weights are multiplied by any
    constant (exactly-zero rows are equal). ``outgoing`` None or empty compares incoming only.
    Units are grouped in order: the first unit not yet grouped takes every ungrouped unit that
    agrees with it.

    The result equals :func:`distinct_units_all_pairs`; only the pairs that can agree are compared.
    If units i and j agree, ``|s_i - s_j| <= tol * max(s_i, s_j)`` (``s`` = max|row|), so
    ``max(s_i, s_j) <= s_i / (1 - tol)``, and for each projection key (``sum|p| = 1``)
    ``|key_i - key_j| <= max|row_i - row_j| <= tol * s_i / (1 - tol)``: j lies in i's window of
    the keys sorted by the first projection, and within that reach in the others. The largest
    |value| and a column sample are exact lower bounds of the row difference too. These only
    discard pairs that cannot agree; the rest are compared in full.
    """
    units = int(weight.shape[0])
    if units == 0:
        return 0
    if not 0 <= tol < 1:
        return distinct_units_all_pairs(weight, bias, outgoing, tol)
    incoming = [weight.detach().reshape(units, -1)]
    if bias is not None:
        incoming.append(bias.detach().reshape(units, 1))
    parts = [incoming] + [[part.detach().reshape(units, -1)] for part in outgoing or ()]
    generator = torch.Generator().manual_seed(0)  # the count does not depend on it, only the speed
    scales = [_scale(part) for part in parts]
    keys = _project(incoming, generator)  # (units, _PROJECTIONS)
    key = keys[:, 0].contiguous()
    width = sum(block.shape[1] for block in incoming)
    # the window, plus the rounding of the float64 dot products (<= (width + 2) eps s each)
    reach = scales[0] * (tol + 4 * (width + 8) * _EPS) / (1 - tol)
    order = torch.argsort(key)
    ordered = key[order]
    low = torch.searchsorted(ordered, key - reach, side="left").cpu().numpy()
    high = torch.searchsorted(ordered, key + reach, side="right").cpu().numpy()
    order_np = order.cpu().numpy()
    columns = [_columns(part, generator).numpy() for part in parts]
    keys_np, reach_np = keys.cpu().numpy(), reach.cpu().numpy()
    scales_np = [s.cpu().numpy() for s in scales]
    grouped = np.zeros(units, dtype=bool)
    groups = 0
    for i in range(units):
        if grouped[i]:
            continue
        groups += 1
        grouped[i] = True
        if high[i] - low[i] <= 1:
            continue
        others = order_np[low[i]:high[i]]
        others = others[~grouped[others]]
        others = others[(np.abs(keys_np[others] - keys_np[i]) <= reach_np[i]).all(axis=1)]
        for scale, sample in zip(scales_np, columns, strict=False):  # necessary conditions, on a few numbers per row
            if not others.size:
                break
            limit = tol * np.maximum(scale[i], scale[others])
            keep = np.abs(scale[others] - scale[i]) <= limit
            if sample.shape[1]:
                keep &= np.abs(sample[others] - sample[i]).max(axis=1) <= limit
            others = others[keep]
        for part, scale in zip(parts, scales_np, strict=False):  # the full comparison
            if not others.size:
                break
            limit = tol * np.maximum(scale[i], scale[others])
            others = others[_max_difference(part, i, others) <= limit]
        grouped[others] = True
    return groups


# why units that started identical can end distinct (said in the reports and the initializer texts)
ROUNDING_SPLIT = ("identical units get identical gradients in exact arithmetic, so the split comes from float "
                  "rounding in the kernels (the same sums taken in a different order for different units), amplified "
                  "by Adam, which divides each update by the gradient's own size so that a 1e-9 difference moves "
                  "as far as a real one")

UNIT_ROUNDOFF_32 = 2.0 ** -24  # float32's unit roundoff u


def gradient_rounding_scale(layer: Any, n_rows: int) -> tuple[float, float]:
    """How large a float32 weight and bias gradient of ``layer`` can be from rounding alone ``(weight, bias)``.

    A weight gradient sums ``n_rows`` terms ``g_n x_n`` (``g``: the gradient at the layer's output,
    ``x``: its input); a float32 sum of ``n`` terms errs by at most ``n u sum|terms|`` (Higham 2002,
    "Accuracy and Stability of Numerical Algorithms", eq. 4.4, gamma_n ~ n u). By Cauchy-Schwarz
    ``sum|terms|`` is at most ``||G||_F ||X||_F``, with ``||G||_F`` the layer's ``output_grad_norm`` and
    ``||X||_F = input_rms sqrt(n_rows fan_in)``; the bias sums ``g_n`` alone: ``||G||_F sqrt(n_rows)``.
    A gradient at or below this scale cannot be told from 0 (e.g. a zero-init sigmoid net's output
    layer on balanced classes: exactly 0 in exact arithmetic, ~1e-9 in float32). ``layer`` is a
    LayerStats or its dict.
    """
    get = layer.get if isinstance(layer, dict) else lambda k, d=None: getattr(layer, k, d)
    g = float(get("output_grad_norm") or 0.0)
    x = float(get("input_rms") or 0.0) * (n_rows * float(get("fan_in") or 1)) ** 0.5
    base = n_rows * UNIT_ROUNDOFF_32 * g
    return base * x, base * n_rows ** 0.5
