"""Softmax attention, measured where it is computed: the logits' scale and the softmax's shape.

A softmax is attention when it is taken over the keys axis (the last) of a 4-d ``(B, H, T, S)``
tensor, or of a ``q @ k^T`` product of two activations in any layout (heads folded into the batch,
``(B*H, T, S)``, or a single head, ``(B, T, S)``); ``F.scaled_dot_product_attention``'s logits
``q k^T * scale`` (plus its mask) are recomputed. No threshold lives here: the per-query largest
weights are kept (:attr:`Attention.top`) so the judge decides what "collapsed" means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .ops import arg

__all__ = ["Attention", "measure_attention", "sdpa_logits"]


@dataclass
class Attention:
    """One attention softmax: ``logits`` ``(batch, heads, queries, keys)``, masked entries -inf."""

    name: str
    logit_std: float  # std of the unmasked logits (q k^T * scale, plus an additive mask)
    # over the (batch, head, query) rows with at least 2 keys to attend to (nan when there are none):
    entropy: float  # mean of H(p) / log(keys it may attend to); 1 = uniform
    max_weight: float  # mean of the largest attention weight
    top: torch.Tensor  # (rows,) the largest weight of each such row
    heads: int  # 0 when the heads are folded into the batch (their number is not known)
    keys: int
    layout: str = "heads"  # "heads": (B, H, T, S); "folded": (B*H or B, T, S) from a q @ k^T product

    def collapsed_fraction(self, weight: float) -> float:
        """Share of the rows whose largest weight is >= ``weight`` (nan when no row has 2 keys)."""
        return float((self.top >= weight).float().mean()) if self.top.numel() else float("nan")


def measure_attention(name: str, logits: torch.Tensor, layout: str = "heads") -> Attention | None:
    """Logit scale and softmax entropy of one attention, ``logits`` ``(B, H, T, S)`` (None when no
    query may attend to any key)."""
    with torch.no_grad():
        allowed = torch.isfinite(logits) & (logits > torch.finfo(logits.dtype).min / 2)
        n = allowed.sum(-1)  # (B, H, T) keys each query may attend to
        if not bool((n > 0).any()):
            return None
        p = torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
        h = -(p * p.clamp_min(1e-30).log()).sum(-1)  # (B, H, T)
        several = n >= 2  # a query with one key to attend to has no choice: neither uniform nor collapsed
        nan = float("nan")
        top = p.amax(-1)[several]
        if bool(several.any()):
            entropy = float((h[several] / n[several].float().log()).mean())
            largest = float(top.mean())
        else:
            entropy = largest = nan
        values = logits[allowed]
        heads = int(logits.shape[1]) if layout == "heads" else 0
        return Attention(name, float(values.std()) if values.numel() > 1 else 0.0, entropy, largest, top,
                         heads, int(logits.shape[-1]), layout)


def sdpa_logits(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The logits ``(..., T, S)`` of one ``F.scaled_dot_product_attention`` call: ``(B, H, T, S)`` for
    4-d inputs, ``(N, T, S)`` for 3-d ones (heads folded into the batch). None: fewer than 2 axes."""
    q, k = arg(args, kwargs, 0, "query"), arg(args, kwargs, 1, "key")
    if not (isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor)) or q.ndim < 2 or k.ndim != q.ndim:
        return None
    mask = arg(args, kwargs, 3, "attn_mask")
    causal = bool(arg(args, kwargs, 5, "is_causal"))
    scale = arg(args, kwargs, 6, "scale")
    with torch.no_grad():
        q, k = q.detach().float(), k.detach().float()
        if q.ndim == 4 and k.shape[1] != q.shape[1] and q.shape[1] % k.shape[1] == 0:  # grouped-query attention
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        logits = (q @ k.transpose(-2, -1)) * scale  # (..., T, S)
        if causal:
            t, s = logits.shape[-2:]
            keep = torch.ones(t, s, dtype=torch.bool, device=logits.device).tril(s - t)
            logits = logits.masked_fill(~keep, float("-inf"))
        if isinstance(mask, torch.Tensor):
            logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask.float()
    return logits
