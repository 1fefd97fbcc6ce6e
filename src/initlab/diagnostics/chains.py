"""Depth chains: the sequences of rows over which depth trends are measured, like with like, and
the per-layer and across-model rates along them."""

from __future__ import annotations

import math

from .types import LayerStats

__all__ = ["output_layer", "hidden_weighted", "depth_chains", "fill_changes", "geometric_rate", "rates"]


def output_layer(layers: list[LayerStats]) -> LayerStats | None:
    """The model's output layer: the last weighted row, unless it is one of a repeated role
    (a model that ends in its last block has no separate output layer)."""
    weighted = [s for s in layers if s.weighted]
    if len(weighted) < 2:
        return None
    last = weighted[-1]
    return None if "*" in last.role else last


def hidden_weighted(layers: list[LayerStats]) -> list[LayerStats]:
    """The weighted rows before the output layer (the last weighted row)."""
    weighted = [s for s in layers if s.weighted]
    return weighted[:-1] if len(weighted) > 1 else weighted


def depth_chains(layers: list[LayerStats]) -> list[list[LayerStats]]:
    """The sequences over which depth trends are measured, like with like.

    A model with repeated blocks (rows whose ``role`` holds a ``*``): one chain per role, kind
    and activation (``h.*.attn.c_attn`` across the blocks), at least two rows each; rows outside
    the blocks (embeddings, the head) are in none. A plain stack (an MLP, a VGG-style CNN): one
    chain, the weighted rows before the output layer.
    """
    weighted = [s for s in layers if s.weighted]
    if not any("*" in s.role for s in weighted):
        chain = hidden_weighted(layers)
        return [chain] if chain else []
    out = output_layer(layers)
    groups: dict[tuple[str, str, str | None], list[LayerStats]] = {}
    for s in weighted:
        if s is not out and "*" in s.role:
            groups.setdefault((s.role, s.kind, s.activation), []).append(s)
    return [g for g in groups.values() if len(g) >= 2]


def fill_changes(layers: list[LayerStats]) -> None:
    """Fill each chained layer's ``std_change`` and ``grad_change`` (per-layer rates within its chain)."""
    for chain in depth_chains(layers):
        for prev, cur in zip(chain, chain[1:], strict=False):
            cur.std_change = cur.std / prev.std if prev.std > 0 else None
            prev.grad_change = prev.output_grad_norm / cur.output_grad_norm if cur.output_grad_norm > 0 else None


def geometric_rate(values: list[float]) -> float:
    """Geometric mean of consecutive ratios ``values[l+1]/values[l]`` (nan if undefined)."""
    if len(values) < 2 or min(values) <= 0 or not all(math.isfinite(v) for v in values):
        return float("nan")
    return float((values[-1] / values[0]) ** (1.0 / (len(values) - 1)))  # float ** float is Any in the stubs


def rates(layers: list[LayerStats]) -> tuple[float, float]:
    """Over the longest depth chain (the first of equal length)."""
    chains = depth_chains(layers)
    chain = max(chains, key=len) if chains else []
    std_rate = geometric_rate([s.std for s in chain])
    grad_rate = geometric_rate([s.output_grad_norm for s in reversed(chain)])
    return std_rate, grad_rate
