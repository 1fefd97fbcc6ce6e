"""Symmetry: how many units of a layer are really different from each other."""

from __future__ import annotations

import torch

from .thresholds import SYMMETRY_TOL

__all__ = ["distinct_units", "SYMMETRY_TOL"]


def distinct_units(weight: torch.Tensor, bias: torch.Tensor | None = None, tol: float = SYMMETRY_TOL) -> int:
    """Number of distinct units (rows) of a layer.

    A unit is its incoming weights and its bias: ``weight`` ``(units, ...)`` flattened per unit.
    Two units count as one when every entry differs by at most ``tol * (1 + max|w|)``. Units
    that start identical get identical gradients, so they stay identical forever: the layer
    then computes what a layer of ``distinct_units`` units would.
    """
    rows = weight.detach().reshape(weight.shape[0], -1).double()
    if bias is not None:
        rows = torch.cat([rows, bias.detach().reshape(-1, 1).double()], dim=1)
    if rows.shape[0] == 0:
        return 0
    atol = tol * (1.0 + float(rows.abs().max()))
    close = torch.cdist(rows, rows, p=float("inf")) <= atol  # (units, units)
    unassigned = torch.ones(rows.shape[0], dtype=torch.bool)
    groups = 0
    while bool(unassigned.any()):
        first = int(unassigned.nonzero()[0])
        unassigned &= ~close[first]
        groups += 1
    return groups
