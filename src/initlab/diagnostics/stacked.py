"""``diagnose`` for M stacked MLPs at once, from their ``(M, out, in)`` tensors.

A sweep diagnoses thousands of small networks at init and at the end. Rebuilding each as a
module and diagnosing it alone cost more than training them; here one batched forward and one
autograd pass over the stack give every model's per-layer numbers, and each model's verdicts
come from the same :func:`~initlab.diagnostics.verdicts.verdicts` as ``diagnose``. The result
equals ``diagnose(stack.to_model(i), X, y)`` for every ``i`` up to float rounding (tested, residual
stacks too), except ``samples`` (histogram values), which stay empty.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..models.activations import make_activation
from ..models.stacked import StackedMLP
from . import thresholds as T
from .diagnose import diagnose
from .pipeline import diagnosis_from_rows
from .readout import measure_readouts
from .slopes import profile, slope
from .symmetry import SYMMETRY_TOL
from .types import Coverage, Diagnosis, LayerStats

__all__ = ["diagnose_stack", "distinct_units_stacked"]


def _close(rows: torch.Tensor, tol: float) -> torch.Tensor:
    """``(M, units, units)``: rows of each model within ``tol`` of the pair's larger max |entry|."""
    scale = rows.abs().amax(dim=2)  # (M, units)
    limit = tol * torch.maximum(scale[:, :, None], scale[:, None, :])
    return torch.cdist(rows, rows, p=float("inf")) <= limit


def distinct_units_stacked(incoming: torch.Tensor, outgoing: torch.Tensor | None = None,
                           tol: float = SYMMETRY_TOL) -> torch.Tensor:
    """``(M,)`` distinct units per model, the rule of :func:`~initlab.diagnostics.symmetry.distinct_units`.

    ``incoming`` is ``(M, units, fan_in + 1)`` (weights then bias), ``outgoing`` ``(M, units, values)``.
    """
    close = _close(incoming.double(), tol)
    if outgoing is not None:
        close &= _close(outgoing.double(), tol)
    m, units = close.shape[:2]
    unassigned = torch.ones(m, units, dtype=torch.bool, device=close.device)
    groups = torch.zeros(m, dtype=torch.long, device=close.device)
    for j in range(units):  # the first unassigned unit opens a group and takes every unit close to it
        opens = unassigned[:, j]  # (M,)
        groups += opens
        unassigned &= ~(close[:, j] & opens[:, None])
    return groups


def _norms(t: torch.Tensor) -> list[float]:
    """Per-model norm, accumulated in float64 (tiny squares would underflow in float32)."""
    norms: list[float] = torch.linalg.vector_norm(t.detach().reshape(t.shape[0], -1), dim=1, dtype=torch.float64).tolist()
    return norms


def _loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-model mean loss ``(M,)`` of ``diagnose``'s default: BCE from one logit, else cross-entropy."""
    m, b, k = logits.shape
    if k == 1:
        return F.binary_cross_entropy_with_logits(logits[..., 0], y.float().expand(m, b), reduction="none").mean(1)
    return F.cross_entropy(logits.transpose(1, 2), y.long().expand(m, b), reduction="none").mean(1)


_TEMPLATES: dict[tuple[tuple[int, ...], str, str, str, bool], tuple[list[LayerStats], Coverage]] = {}


def _template(net: StackedMLP, X: torch.Tensor, y: torch.Tensor) -> tuple[list[LayerStats], Coverage]:
    """The rows' names, kinds and labels and the coverage (which depend on the architecture
    only), from one ``diagnose`` of model 0, cached per architecture; every number is replaced
    per model."""
    key = (tuple(net.sizes), net.activation, net.output, str(net.device), net.residual)
    if key not in _TEMPLATES:
        diag = diagnose(net.to_model(0).to(net.device), X, y)
        assert len(diag.layers) == net.n_layers, "one diagnosis row per Linear layer of an MLP"
        assert diag.coverage is not None and diag.coverage.complete, "every weight and bias of an MLP is measured"
        _TEMPLATES[key] = (diag.layers, diag.coverage)
    return _TEMPLATES[key]


def diagnose_stack(net: StackedMLP, inputs: torch.Tensor, targets: torch.Tensor) -> list[Diagnosis]:
    """One :class:`Diagnosis` per model of ``net`` on ``(inputs (B, in), targets (B,))`` class indices."""
    X = torch.as_tensor(inputs, dtype=torch.float32, device=net.device)
    y = torch.as_tensor(targets, device=net.device).reshape(-1)
    template, coverage = _template(net, X, y)
    m, n_layers = net.m, net.n_layers
    act = make_activation(net.activation)
    weights = [w.detach().clone().requires_grad_(True) for w in net.weights]  # (M, out, in)
    biases = [b.detach().clone().requires_grad_(True) for b in net.biases]  # (M, out)
    with torch.enable_grad():
        a = X.expand(m, *X.shape)  # (M, B, in)
        ins, pre, post = [], [], []
        for layer, (w, b) in enumerate(zip(weights, biases, strict=False)):
            ins.append(a)
            z = torch.baddbmm(b.unsqueeze(1), a, w.transpose(1, 2))  # (M, B, out)
            pre.append(z)
            if layer < n_layers - 1:
                out = act(z.clone())  # a clone: an activation may work in place
                post.append(out)  # the activation's output (where dead and saturated units are defined)
                a = a + out if net.skips[layer] else out  # a residual layer passes h + act(W h + b) on
        losses = _loss(pre[-1], y)  # (M,)
        grads = torch.autograd.grad(losses.sum(), [*weights, *biases, *pre])
    w_grads, b_grads, z_grads = grads[:n_layers], grads[n_layers:2 * n_layers], grads[2 * n_layers:]
    shape = profile(act)

    columns: list[dict[str, list[Any]]] = []  # per layer: field -> (M,) values (LayerStats fields, passed by name)
    for layer in range(n_layers):
        hidden = layer < n_layers - 1
        values = (post[layer] if hidden else pre[layer]).detach()  # (M, B, units)
        flat = values.reshape(m, -1)
        z = pre[layer].detach()
        col: dict[str, list[Any]] = {
            "mean": flat.mean(1).tolist(), "std": flat.std(1).tolist() if flat.shape[1] > 1 else [0.0] * m,
            "pre_std": z.reshape(m, -1).std(1).tolist() if z[0].numel() > 1 else [0.0] * m,
            "grad_norm": _norms(w_grads[layer]), "output_grad_norm": _norms(z_grads[layer]),
            "bias_grad_norm": _norms(b_grads[layer]), "weight_norm": _norms(weights[layer]),
            "bias_norm": _norms(biases[layer]),
            "weight_std": weights[layer].detach().reshape(m, -1).std(1).tolist(),
            "input_rms": ins[layer].detach().double().pow(2).reshape(m, -1).mean(1).sqrt().tolist(),
        }
        if hidden:
            slopes = slope(act, z).abs()  # (M, B, units)
            col["dead_fraction"] = ((values == 0) & (slopes == 0)).all(dim=1).float().mean(1).tolist()
            saturated = (slopes < T.SATURATION_SLOPE * shape.max_slope).float().mean((1, 2)) \
                if shape.bounded and shape.max_slope > 0 else torch.zeros(m)
            col["saturated_fraction"] = saturated.tolist()
        incoming = torch.cat([weights[layer].detach(), biases[layer].detach().unsqueeze(2)], dim=2)  # (M, units, in + 1)
        outgoing = weights[layer + 1].detach().transpose(1, 2) if hidden else None  # (M, units, next out)
        col["distinct_units"] = distinct_units_stacked(incoming, outgoing).tolist()
        columns.append(col)

    readouts = measure_readouts(pre[-1].detach(), y)
    loss_values = losses.detach().tolist()
    input_shape = tuple(X.shape)
    # each row: the template's fields with this model's numbers (what dataclasses.replace gives,
    # without its per-call __init__: thousands of rows per batch)
    bases = [{**vars(row), "std_change": None, "grad_change": None} for row in template]
    names = [list(col) for col in columns]
    values = [list(zip(*col.values(), strict=True)) for col in columns]  # per layer: (M,) tuples of numbers
    out = []
    for i in range(m):
        layers: list[LayerStats] = []
        for base, keys, vals in zip(bases, names, values, strict=True):
            row = object.__new__(LayerStats)
            row.__dict__.update(base)
            row.__dict__.update(zip(keys, vals[i], strict=True))
            layers.append(row)
        out.append(diagnosis_from_rows(layers, loss_values[i], input_shape=input_shape, coverage=coverage,
                                       readout=readouts[i]))
    return out
