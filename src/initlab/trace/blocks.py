"""Repeated blocks (transformer layers, residual blocks) and the role of a layer within them."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from torch import nn

__all__ = ["block_signature", "repeated_blocks", "block_groups", "role"]


def block_signature(module: nn.Module) -> tuple[Any, ...]:
    """A block's class and parameter shapes: two blocks with one signature are repeats."""
    return (type(module), tuple((n, tuple(p.shape)) for n, p in module.named_parameters()))


def repeated_blocks(root: nn.Module) -> dict[str, str]:
    """``{"h.3": "h.*", ...}``: children of a ModuleList/Sequential that are not leaves and repeat
    with the same class and parameter shapes (at least two of them): the model's blocks."""
    found: dict[str, str] = {}
    for name, module in root.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)):
            continue
        if any(name.startswith(block + ".") for block in found):  # the layers inside a block are its roles
            continue
        children = [(n, c) for n, c in module.named_children() if n.isdigit() and any(True for _ in c.children())]
        counts: dict[tuple[Any, ...], int] = defaultdict(int)
        for _, c in children:
            counts[block_signature(c)] += 1
        prefix = f"{name}." if name else ""
        for n, c in children:
            if counts[block_signature(c)] >= 2:
                found[prefix + n] = prefix + "*"
    return found


def block_groups(root: nn.Module) -> dict[tuple[str, tuple[Any, ...]], list[str]]:
    """``{(label, signature): [block names, in order]}``: the repeated blocks grouped by container and signature."""
    groups: dict[tuple[str, tuple[Any, ...]], list[str]] = {}
    for name, star in repeated_blocks(root).items():
        groups.setdefault((star, block_signature(root.get_submodule(name))), []).append(name)
    return groups


def role(name: str, blocks: dict[str, str]) -> str:
    """``name`` with every repeated-block index replaced by ``*`` (``h.3.attn`` -> ``h.*.attn``);
    ``blocks`` as :func:`repeated_blocks` returns it."""
    parts = name.split(".")
    out = list(parts)
    for k in range(len(parts)):
        if ".".join(parts[:k + 1]) in blocks:
            out[k] = "*"
    return ".".join(out)
