"""Tensor lineage during one traced forward pass: which row a tensor belongs to.

Keyed by ``id(tensor)``; every tensor noted is also kept alive until :meth:`Lineage.clear`, so
no id is reused by another tensor while the pass runs.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["Lineage"]


class Lineage:
    """Maps from a tensor to the row it belongs to, by relation."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._owner: dict[int, Any] = {}  # tensor -> row whose pre-activation (units) it holds
        self._feeds: dict[int, tuple[Any, bool]] = {}  # tensor -> (row whose units it holds, flattened)
        self._pristine: dict[int, torch.Tensor] = {}  # in-place activation's input copy -> its values before
        self._lone: dict[int, Any] = {}  # a lone activation's output (or it shifted/scaled by a number) -> its row
        self._scores: set[int] = set()  # q @ k^T products of two activations, and those scaled, masked, reshaped
        self._weight_views: set[int] = set()  # a parameter transposed, reshaped or cast (``x @ W.t()`` is no q @ k^T)
        self._alive: list[torch.Tensor] = []

    def _keep(self, t: torch.Tensor) -> None:
        self._alive.append(t)

    # -- the row a tensor holds the units of (pre-activation, through norms and reshapes) --------
    def owner(self, t: Any) -> Any:
        return self._owner.get(id(t)) if isinstance(t, torch.Tensor) else None

    def own(self, t: torch.Tensor, row: Any) -> None:
        self._owner[id(t)] = row
        self._keep(t)

    # -- the row whose units a tensor carries to the next weighted layer --------------------------
    def feed(self, t: Any) -> tuple[Any, bool] | None:
        return self._feeds.get(id(t)) if isinstance(t, torch.Tensor) else None

    def set_feed(self, t: torch.Tensor, source: tuple[Any, bool]) -> None:
        self._feeds[id(t)] = source
        self._keep(t)

    def pass_feed(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        """``dst`` carries what ``src`` carries (if anything)."""
        if id(src) in self._feeds:
            self.set_feed(dst, self._feeds[id(src)])

    # -- in-place activations -------------------------------------------------------------------
    def set_pristine(self, copy: torch.Tensor, before: torch.Tensor) -> None:
        self._pristine[id(copy)] = before

    def pristine(self, t: torch.Tensor) -> torch.Tensor:
        """``t``'s values before an in-place activation overwrote them (``t`` itself if none did)."""
        return self._pristine.get(id(t), t)

    # -- lone activations -----------------------------------------------------------------------
    @property
    def has_lone(self) -> bool:
        return bool(self._lone)

    def lone(self, t: Any) -> Any:
        return self._lone.get(id(t)) if isinstance(t, torch.Tensor) else None

    def set_lone(self, t: torch.Tensor, row: Any) -> None:
        self._lone[id(t)] = row
        self._keep(t)

    # -- attention scores -----------------------------------------------------------------------
    def is_score(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and id(t) in self._scores

    def mark_score(self, t: torch.Tensor) -> None:
        self._scores.add(id(t))
        self._keep(t)

    # -- views of parameters --------------------------------------------------------------------
    def is_weight_view(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and id(t) in self._weight_views

    def mark_weight_view(self, t: torch.Tensor) -> None:
        self._weight_views.add(id(t))
        self._keep(t)
