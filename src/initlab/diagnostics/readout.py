"""The model's output at init, measured against the targets: is the readout over-confident?

A classifier whose logits are large at init puts almost all of each row's probability on one class:
most rows are confidently wrong, the cross-entropy is far above chance (ln K for K classes, what a
uniform prediction scores) and the first steps are spent shrinking the logits. The measurement is
made here; the verdict (``verdicts.output_verdicts``) compares it with ``thresholds.py``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from .thresholds import CONFIDENT_PROB

__all__ = ["measure_readout", "measure_readouts"]


def measure_readout(outputs: Any, targets: Any) -> dict[str, Any] | None:
    """``{"kind", "classes", "rows", "loss", "chance", "confident_fraction", "logit_std"}`` for class
    targets, else None.

    Class targets: integer indices with outputs of one more dimension (``(N, K)`` logits and ``(N,)``
    labels, or ``(B, T, K)`` and ``(B, T)``), scored by softmax cross-entropy against chance ln K; or
    0/1 targets with one output per row, scored by binary cross-entropy from logits against ln 2.
    ``confident_fraction``: the share of rows whose largest class probability is at least
    ``thresholds.CONFIDENT_PROB``. Computed in float64, without gradients. None when the output is not
    finite (the non-finite verdict speaks then) or the targets are not class targets.
    """
    if not isinstance(outputs, torch.Tensor) or targets is None or not outputs.is_floating_point():
        return None
    y = torch.as_tensor(targets).detach()
    z = outputs.detach().double()
    if z.numel() == 0 or not bool(torch.isfinite(z).all()):
        return None
    with torch.no_grad():
        if not y.is_floating_point() and z.ndim == y.ndim + 1 and z.shape[:-1] == y.shape and z.shape[-1] > 1:
            k = int(z.shape[-1])
            z, y = z.reshape(-1, k), y.reshape(-1).long()
            if bool(((y < 0) | (y >= k)).any()):
                return None
            loss = float(F.cross_entropy(z, y))
            top = F.softmax(z, dim=-1).max(dim=-1).values
            kind, chance = "classes", math.log(k)
        elif z.shape[-1:] == (1,) and y.numel() == z.numel() and bool(((y == 0) | (y == 1)).all()):
            k = 2
            z, y = z.reshape(-1), y.reshape(-1).double()
            loss = float(F.binary_cross_entropy_with_logits(z, y))
            p = torch.sigmoid(z)
            top = torch.maximum(p, 1 - p)
            kind, chance = "binary", math.log(2)
        else:
            return None
    return {"kind": kind, "classes": k, "rows": int(top.numel()), "loss": loss, "chance": chance,
            "confident_fraction": float((top >= CONFIDENT_PROB).double().mean()),
            "logit_std": float(z.std()) if z.numel() > 1 else 0.0}


def measure_readouts(outputs: torch.Tensor, targets: torch.Tensor) -> list[dict[str, Any] | None]:
    """:func:`measure_readout` of each of M models at once: ``outputs (M, N, K)``, ``targets (N,)``.

    One logit per row and 0/1 targets (a sweep's binary classifiers) are measured for all M
    models in a few tensor ops, to the same bits as M calls of :func:`measure_readout`: the same
    float64 elementwise values and row means, and the std as ``torch.std`` of one model computes
    it (two passes: the mean, then a sequential sum of squared deviations, divided and rooted in
    double precision; tested bit for bit). Other outputs, targets and devices take M calls.
    """
    y = torch.as_tensor(targets).detach()
    m = outputs.shape[0]
    # CPU only: the bit-equality rests on the CPU kernels (a GPU sums in another order)
    binary = (outputs.device.type == "cpu" and outputs.is_floating_point() and outputs.ndim == 3
              and outputs.shape[2] == 1 and outputs.shape[1] > 0 and y.numel() == outputs.shape[1]
              and bool(((y == 0) | (y == 1)).all()))
    if not binary:
        return [measure_readout(outputs[i], targets) for i in range(m)]
    with torch.no_grad():
        z = outputs.detach().double()[..., 0]  # (M, N)
        n = z.shape[1]
        finite = torch.isfinite(z).all(dim=1).tolist()
        yy = y.reshape(-1).double().expand(m, n)
        loss = F.binary_cross_entropy_with_logits(z, yy, reduction="none").mean(1).tolist()
        p = torch.sigmoid(z)
        top = torch.maximum(p, 1 - p)
        confident = (top >= CONFIDENT_PROB).double().mean(1).tolist()
        # torch.std of one (N,) tensor: mean, then (x - mean)^2 summed in order (cumsum is that sum)
        squares = (z - z.mean(1, keepdim=True)).pow(2).cumsum(1)[:, -1].tolist() if n > 1 else [0.0] * m
    chance = math.log(2)
    return [{"kind": "binary", "classes": 2, "rows": n, "loss": loss[i], "chance": chance,
             "confident_fraction": confident[i], "logit_std": math.sqrt(squares[i] / (n - 1)) if n > 1 else 0.0}
            if finite[i] else None for i in range(m)]
