"""Symmetry: how many units of a layer are really different from each other.

Two hidden units are interchangeable when their incoming weights and bias agree (so they compute
the same output on every input) *and* their outgoing weights agree (so the loss treats them
alike). Then they receive the same gradient, and an elementwise optimizer (SGD, Adam, RMSprop)
keeps them equal: the layer computes what a layer of ``distinct_units`` units would. Units with
equal incoming weights but different outgoing weights get different gradients and separate.
"""

from __future__ import annotations

import torch

from .thresholds import SYMMETRY_TOL

__all__ = ["distinct_units", "unit_rows", "outgoing_rows", "SYMMETRY_TOL"]


def unit_rows(weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``(units, fan_in [+ 1])``: each unit's incoming weights, then its bias (float64)."""
    rows = weight.detach().reshape(weight.shape[0], -1).double()
    if bias is not None:
        rows = torch.cat([rows, bias.detach().reshape(-1, 1).double()], dim=1)
    return rows


def outgoing_rows(reader_weight: torch.Tensor, per_unit: int = 1) -> torch.Tensor:
    """``(units, values)``: each unit's outgoing weights in a layer that reads it.

    ``reader_weight`` is ``(out, units * per_unit, *kernel)`` (Linear: ``(out, in)``; Conv:
    ``(out, in, k...)``); ``per_unit`` > 1 when the units reach the reader through a channel-first
    ``nn.Flatten`` (each unit then owns ``per_unit`` consecutive input features).
    """
    w = reader_weight.detach().double()
    out = w.shape[0]
    w = w.reshape(out, -1, per_unit, *w.shape[2:])  # (out, units, per_unit, *kernel)
    return w.transpose(0, 1).reshape(w.shape[1], -1)


def _close(rows: torch.Tensor, tol: float) -> torch.Tensor:
    """``(units, units)``: True where two rows differ by at most ``tol`` times the larger row's max |entry|."""
    scale = rows.abs().amax(dim=1)  # (units,)
    limit = tol * torch.maximum(scale[:, None], scale[None, :])
    return torch.cdist(rows, rows, p=float("inf")) <= limit


def distinct_units(weight: torch.Tensor, bias: torch.Tensor | None = None,
                   outgoing: list[torch.Tensor] | None = None, tol: float = SYMMETRY_TOL) -> int:
    """Number of distinct units (rows) of a layer.

    Two units count as one when their incoming weights and bias agree and, for every tensor in
    ``outgoing`` (each ``(units, values)``, from :func:`outgoing_rows`), their outgoing weights
    agree. "Agree" is relative to the pair's own scale: every entry differs by at most
    ``tol * max(max|row_i|, max|row_j|)``, compared separately for the incoming part and for each
    outgoing part, so the count does not change when a layer's weights are multiplied by any
    constant (exactly-zero rows are equal). ``outgoing`` None or empty compares incoming only.
    """
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
