"""The signal between a model's repeated blocks (its residual stream), measured for the report.

Every layer on target does not make a flat model: a residual stream adds each block's output to
what it carries, so with blocks at a fixed output scale b its variance after k blocks is about
e^2 + k b^2 (e: the std it enters with). A stream that enters small next to b (GPT-2's embedding
when its weight, tied to the output layer, is scaled for the logits: std about 1/sqrt(width)) is
made by the blocks and grows as sqrt(k). The per-layer check cannot see that (each layer is on its
own target); the std of the stream after each repeated block can, and it is read on autoinit's
own measuring pass (:func:`initlab.autoinit.measure`), not on a pass of its own.

Repeated blocks are found by :func:`initlab.trace.repeated_blocks`, as diagnose finds them: children of an
``nn.ModuleList``/``nn.Sequential`` with numeric names that repeat with the same class and
parameter shapes (GPT-2's ``transformer.h.*``, ``nn.TransformerEncoder``'s ``layers.*``, a
residual MLP's blocks). A block whose output is what the next block receives carries the stream
itself: the stream is read after each block. A block whose output is added to the stream by its
parent (``x = x + block(x)``) is a branch: the stream is then read where it enters each block
after the first.
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from ..trace import block_groups

__all__ = ["repeated_block_groups", "stream_rows"]


def repeated_block_groups(model: nn.Module) -> list[tuple[str, list[str]]]:
    """``[(label, [block names, in order])]``: the model's repeated blocks, one group per container
    and block signature (class and parameter shapes), e.g. ``("transformer.h.*", ["transformer.h.0", ...])``."""
    groups = block_groups(model)
    stars = [star for star, _ in groups]
    return [(star if stars.count(star) == 1 else f"{star} ({type(model.get_submodule(names[0])).__name__})", names)
            for (star, _), names in groups.items()]


def _normalizes(block: nn.Module) -> bool:
    """A normalization layer inside the block (LayerNorm, RMSNorm, BatchNorm, GroupNorm, ...): what
    the block adds is then computed from a normalized copy of the stream, not from its raw scale."""
    return any(isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase))
               or "norm" in type(m).__name__.lower() for m in block.modules())


def stream_rows(groups: list[tuple[str, list[str]]], outputs: dict[str, float],
                inputs: dict[str, float], model: nn.Module | None = None) -> list[dict[str, Any]]:
    """One row per group of repeated blocks the example reached (measured stds in, out of each block).

    Row: ``blocks`` (the group's label), ``names`` (the blocks the stream is read at), ``where``
    (``"after"``: each block's output is the stream; ``"before"``: the blocks are branches, the
    stream is read where it enters blocks 2..n), ``std`` (the stream's std there, in order),
    ``entry`` and ``entry_std`` (the first block, the std entering it), ``max_over_min``, ``normalized``
    (every block holds a normalization layer; None without ``model``). Groups with fewer than two
    readings are left out.
    """
    rows: list[dict[str, Any]] = []
    for label, names in groups:
        seen = [n for n in names if n in outputs and n in inputs]
        if len(seen) < 2:
            continue
        # a chain of blocks hands each output on as the next input: the same tensor, the same std
        chained = all(math.isclose(inputs[b], outputs[a], rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(seen, seen[1:], strict=False))
        at, where = (seen, "after") if chained else (seen[1:], "before")
        std = [outputs[n] for n in at] if chained else [inputs[n] for n in at]
        if len(std) < 2:
            continue
        lo, hi = min(std), max(std)
        ratio = hi / lo if lo > 0 and math.isfinite(hi) else math.inf
        rows.append({"blocks": label, "names": at, "where": where, "std": std, "entry": seen[0], "entry_std": inputs[seen[0]],
                     "max_over_min": ratio,
                     "normalized": None if model is None else all(_normalizes(model.get_submodule(n)) for n in seen)})
    return rows
