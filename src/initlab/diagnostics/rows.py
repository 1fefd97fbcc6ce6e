"""From a traced row to its measurements: :func:`layer_stats` (one :class:`LayerStats`), the
gradients of every row from one autograd call (:func:`row_gradients`), sampled values for figures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..trace import Record
from . import thresholds as T
from .behaviour import activation_gain, growth_degree
from .slopes import profile, slope
from .symmetry import distinct_units, outgoing_rows
from .types import LayerStats

__all__ = ["SAMPLE_SIZE", "Grads", "row_gradients", "tensor_norm", "norm_all", "per_unit", "layer_stats",
           "row_samples", "strided"]

SAMPLE_SIZE = 4096  # values kept per layer (evenly strided) for the histogram figures


@dataclass
class Grads:
    weights: list[list[torch.Tensor | None]]  # per row: d loss / d each of its weight tensors
    biases: list[list[torch.Tensor | None]]
    outputs: list[torch.Tensor | None]  # per row: d loss / d its output
    blocks: list[torch.Tensor | None]  # per block: d loss / d its output
    params: dict[str, torch.Tensor | None]  # parameter name -> d loss / d it


def row_gradients(loss: torch.Tensor, records: list[Record], extra: dict[str, dict[Any, Any]]
                  ) -> tuple[list[list[torch.Tensor | None]], list[list[torch.Tensor | None]],
                             list[torch.Tensor | None], dict[str, dict[Any, torch.Tensor | None]]]:
    """``(weight grads, bias grads, output grads, extra grads)`` per row from one
    ``torch.autograd.grad`` call, each tensor differentiated once however often it appears (None
    where a tensor takes no part in the loss). ``extra``: more named groups of tensors ({key: tensor}),
    returned as {group: {key: grad}} (the model's parameters, the blocks' outputs)."""
    tensors: list[torch.Tensor] = []
    index: dict[int, int] = {}

    def slot(t: object) -> int | None:
        if not isinstance(t, torch.Tensor) or not t.requires_grad:
            return None
        if id(t) not in index:
            index[id(t)] = len(tensors)
            tensors.append(t)
        return index[id(t)]

    w_slots = [[slot(w) for w in r.weights] for r in records]
    b_slots = [[slot(b) for b in r.biases] for r in records]
    o_slots = [slot(r.output) for r in records]
    e_slots = {group: {key: slot(t) for key, t in items.items()} for group, items in extra.items()}
    full: list[torch.Tensor | None] = [None] * len(tensors)
    if tensors and loss.requires_grad:
        full = list(torch.autograd.grad(loss, tensors, allow_unused=True))

    def get(i: int | None) -> torch.Tensor | None:
        return None if i is None else full[i]

    return ([[get(i) for i in row] for row in w_slots], [[get(i) for i in row] for row in b_slots],
            [get(i) for i in o_slots], {g: {k: get(i) for k, i in items.items()} for g, items in e_slots.items()})


def tensor_norm(t: torch.Tensor | None) -> float:
    """The Frobenius norm of ``t`` (0 for None)."""
    # accumulated in float64: squares of float32 values near 1e-20 would underflow
    if t is None:
        return 0.0
    flat = t.detach().reshape(-1)
    if flat.dtype != torch.float32 or flat.numel() < 1 << 16:
        return float(torch.linalg.vector_norm(flat, dtype=torch.float64))
    # big float32 tensors: float32 norms of 1024-value blocks, combined in float64 (relative error ~1e-9,
    # 40x faster than converting a 4096 x 25088 weight); a tiny or non-finite result is redone in float64
    whole = flat.numel() // 1024 * 1024
    blocks = torch.linalg.vector_norm(flat[:whole].reshape(-1, 1024), dim=1).double()
    total = float(torch.sqrt(blocks.square().sum() + flat[whole:].double().square().sum()))
    if math.isfinite(total) and total > 1e-15:
        return total
    return float(torch.linalg.vector_norm(flat, dtype=torch.float64))


def per_unit(t: torch.Tensor, unit_dim: int) -> torch.Tensor:
    """``t`` as ``(units, values)``: every value each unit produced over the batch (and space)."""
    t = t.detach()
    if t.ndim == 1:
        t = t.unsqueeze(0)
    return t.movedim(unit_dim, 0).reshape(t.shape[unit_dim], -1)


def _dead_and_saturated(rec: Record, values: torch.Tensor) -> tuple[float, float, bool]:
    """``(dead fraction of units, saturated fraction of outputs, saturable)`` from the activation's
    measured slope at the values it was applied to (see thresholds.py)."""
    if rec.act_output is None or rec.act_fn is None or rec.act_input is None:
        return 0.0, 0.0, False
    slopes = per_unit(slope(rec.act_fn, rec.act_input), rec.unit_dim).abs()  # (units, N * spatial)
    if slopes.shape != values.shape:
        return 0.0, 0.0, False
    dead = float(((values == 0) & (slopes == 0)).all(dim=1).float().mean())
    shape = profile(rec.act_fn)
    saturated = 0.0
    if shape.bounded and shape.max_slope > 0:
        saturated = float((slopes < T.SATURATION_SLOPE * shape.max_slope).float().mean())
    return dead, saturated, shape.bounded


def _outgoing(rec: Record) -> list[torch.Tensor]:
    return [outgoing_rows(reader, k) for reader, k in rec.readers]


def norm_all(ts: torch.Tensor | Sequence[torch.Tensor | None] | None) -> float:
    """Norm of one tensor, or of several taken together (None entries count 0)."""
    if ts is None or isinstance(ts, torch.Tensor):
        return tensor_norm(ts)
    return math.sqrt(sum(tensor_norm(t) ** 2 for t in ts))


def _finite(*ts: torch.Tensor | None) -> bool:
    return all(t is None or bool(torch.isfinite(t.detach()).all()) for t in ts)


def layer_stats(rec: Record, weight_grad: torch.Tensor | Sequence[torch.Tensor | None] | None,
                out_grad: torch.Tensor | None, symmetry: bool = True,
                bias_grad: torch.Tensor | Sequence[torch.Tensor | None] | None = None) -> LayerStats:
    """The measurements of one recorded row (``symmetry=False`` skips ``distinct_units``,
    which compares every pair of units, and reports ``units`` instead). ``weight_grad`` and
    ``bias_grad``: a tensor, or a list of tensors for a row that owns several (an LSTM)."""
    out = rec.act_output if rec.act_output is not None else rec.output
    values = per_unit(out, rec.unit_dim)  # (units, N * spatial)
    units = int(values.shape[0])
    std = float(values.float().std()) if values.numel() > 1 else 0.0
    mean = float(values.float().mean())
    # the statistics are finite when the values are (the common case, no extra pass); else look
    out_grad_norm = tensor_norm(out_grad)
    finite = (all(math.isfinite(v) for v in (std, mean, rec.pre_std, out_grad_norm))
              or _finite(rec.output, out, out_grad))
    dead, saturated, saturable = _dead_and_saturated(rec, values) if finite else (0.0, 0.0, False)
    if not rec.weighted:
        return LayerStats(
            name=rec.name, kind=rec.kind, units=units, activation=rec.activation, mean=mean,
            std=std, pre_std=rec.pre_std, dead_fraction=dead, saturated_fraction=saturated, grad_norm=0.0,
            output_grad_norm=out_grad_norm, weight_std=0.0, healthy_weight_std=0.0, distinct_units=units,
            weighted=False, saturable=saturable, finite=finite, params=list(rec.params), composite=rec.composite,
        )
    weight = rec.weight  # (units, fan_in...)
    assert weight is not None  # rec.weighted
    bias = rec.bias
    gain = activation_gain(rec)
    outgoing = _outgoing(rec) if symmetry and finite else []
    all_weights = torch.cat([w.detach().reshape(-1) for w in rec.weights]) if len(rec.weights) > 1 else weight.detach()
    grad_norm = norm_all(weight_grad)
    return LayerStats(
        name=rec.name,
        kind=rec.kind or type(rec.module).__name__,
        units=int(weight.shape[0]),
        activation=rec.activation,
        mean=mean,
        std=std,
        pre_std=rec.pre_std,
        dead_fraction=dead,
        saturated_fraction=saturated,
        grad_norm=grad_norm,
        output_grad_norm=out_grad_norm,
        weight_std=float(all_weights.float().std()) if all_weights.numel() > 1 else 0.0,
        healthy_weight_std=gain / math.sqrt(rec.fan_in) if rec.fan_in > 0 else 0.0,
        distinct_units=distinct_units(weight, bias, outgoing) if symmetry and finite else int(weight.shape[0]),
        saturable=saturable,
        weight_norm=norm_all(rec.weights),
        bias_norm=norm_all(rec.biases),
        bias_grad_norm=norm_all(bias_grad),
        input_rms=rec.input_rms,
        outgoing_compared=bool(outgoing),
        role=rec.role,
        fan_in=rec.fan_in,
        gain=gain,
        healthy_weight_std_fan_out=gain / math.sqrt(rec.fan_out) if rec.fan_out > 0 and rec.fan_in > 0 else 0.0,
        activation_degree=growth_degree(rec.act_fn) if gain == 0 and rec.act_fn is not None else None,
        finite=finite and math.isfinite(grad_norm),
        params=list(rec.params),
    )


def strided(t: torch.Tensor | None, size: int) -> np.ndarray:
    """At most ``size`` values of ``t``, evenly strided over all of it."""
    if t is None:
        return np.zeros(0, dtype=np.float32)
    flat = t.detach().reshape(-1)
    step = -(-flat.numel() // size)  # ceil: the strided slice then holds <= size values
    return flat[::step].float().cpu().numpy()


def row_samples(rec: Record, out_grad: torch.Tensor | None, size: int = SAMPLE_SIZE) -> dict[str, np.ndarray]:
    """Activation values and back-propagated gradients (d loss / d pre-activation) of one row."""
    out = rec.act_output if rec.act_output is not None else rec.output
    return {"activation": strided(out, size), "gradient": strided(out_grad, size)}
