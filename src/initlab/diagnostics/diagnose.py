"""``diagnose``: one forward and one backward pass through any ``nn.Module``, measured per layer."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import ValidationError
from . import thresholds as T
from .io import Inputs, as_inputs, batch_shape, call_model, pick_output
from .recorder import ACTIVATION_MODULES, PASS_THROUGH, WEIGHTED, Record, record_forward
from .slopes import profile, slope
from .symmetry import distinct_units, outgoing_rows

__all__ = [
    "diagnose", "Diagnosis", "LayerStats", "Verdict", "record_forward", "layer_stats",
    "ACTIVATION_MODULES", "PASS_THROUGH", "WEIGHTED", "HEALTHY_GAIN", "SAMPLE_SIZE",
]

# The weight std a healthy (variance-preserving) init gives before each activation is
# gain / sqrt(fan_in): gain sqrt(2) for the ReLU family (He et al., 2015), 1 otherwise
# (LeCun et al., 1998; equal to Glorot & Bengio, 2010 when fan_in == fan_out).
HEALTHY_GAIN = {"relu": math.sqrt(2), "relu6": math.sqrt(2), "leaky_relu": math.sqrt(2), "elu": math.sqrt(2),
                "gelu": math.sqrt(2), "silu": math.sqrt(2), "mish": math.sqrt(2), "celu": math.sqrt(2),
                "softplus": math.sqrt(2)}
SAMPLE_SIZE = 4096  # values kept per layer (evenly strided) for the histogram figures


@dataclass
class LayerStats:
    """Measurements of one row: a weighted layer and the activation that follows it (if any),
    or an activation reached on its own (``weighted`` False: the weight columns are 0)."""

    name: str
    kind: str  # "Linear", "Conv2d", ...; "ReLU" or "relu()" for an activation on its own
    units: int  # output features or channels
    activation: str | None  # the activation applied to this layer's output, if one was found
    mean: float  # of the activation output (or of the layer output when no activation follows)
    std: float
    pre_std: float  # std of the layer's own output (the pre-activation)
    dead_fraction: float  # units whose activation output is exactly 0 and slope exactly 0 for every input
    saturated_fraction: float  # outputs where the slope < SATURATION_SLOPE x its largest (bounded activations)
    grad_norm: float  # Frobenius norm of dLoss/dWeight
    output_grad_norm: float  # norm of dLoss/d(layer output), summed over the batch
    weight_std: float
    healthy_weight_std: float  # gain / sqrt(fan_in) for the following activation
    distinct_units: int  # see symmetry.distinct_units
    weighted: bool = True  # False for an activation reached on its own (after a residual sum, say)
    std_change: float | None = None  # std / std of the previous weighted hidden layer (None for the first)
    grad_change: float | None = None  # output_grad_norm / that of the next weighted hidden layer (backward growth)
    saturable: bool = False  # the activation is bounded on both sides (measured: slopes.profile), so saturation is checked
    weight_norm: float = 0.0  # Frobenius norm of the weight (exactly 0 for an all-zero layer)
    bias_norm: float = 0.0  # norm of the bias (0 without one)
    bias_grad_norm: float = 0.0  # norm of dLoss/dBias
    input_rms: float = 0.0  # sqrt(mean(x^2)) of the layer's input: a variance-preserving init assumes about 1
    outgoing_compared: bool = False  # distinct_units also compared the weights of the layers reading this one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Verdict:
    """A finding: a code from the fixed set, the layers involved, plain words, a fix."""

    code: str  # symmetry, dead_units, vanishing_gradients, exploding_gradients, saturation, healthy
    message: str
    layers: list[str] = field(default_factory=list)
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Diagnosis:
    """Per-layer measurements, across-layer rates and verdicts of one diagnose pass."""

    layers: list[LayerStats]
    verdicts: list[Verdict]
    loss: float
    activation_std_rate: float  # geometric mean of std[l+1]/std[l] over hidden layers (1 = preserved)
    gradient_rate: float  # geometric mean of output_grad_norm[l]/output_grad_norm[l+1] (backwards)
    input_shape: tuple[int, ...] = ()
    # layer name -> {"activation": values, "gradient": values}, at most SAMPLE_SIZE each; for figures
    samples: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def codes(self) -> list[str]:
        return [v.code for v in self.verdicts]

    def layer(self, name: str) -> LayerStats:
        for stats in self.layers:
            if stats.name == name:
                return stats
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "activation_std_rate": _finite_or_none(self.activation_std_rate),
            "gradient_rate": _finite_or_none(self.gradient_rate),
            "input_shape": list(self.input_shape),
            "layers": [s.to_dict() for s in self.layers],
            "verdicts": [v.to_dict() for v in self.verdicts],
        }

    def table(self, after: Diagnosis | None = None, title: str | None = None):
        """A ``rich.table.Table`` of the layers; with ``after``, each cell reads ``before -> after``."""
        from .table import diagnosis_table

        return diagnosis_table(self, after, title)

    def __repr__(self) -> str:
        return f"Diagnosis(layers={len(self.layers)}, verdicts={self.codes}, loss={self.loss:.3g})"

    def _repr_html_(self) -> str:
        """Notebook display: verdict badges, loss and rates, the per-layer table."""
        from .html import diagnosis_html

        return diagnosis_html(self)


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _default_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if targets.dtype in (torch.int64, torch.int32) and outputs.ndim == 2 and outputs.shape[1] > 1:
        return nn.functional.cross_entropy(outputs, targets)
    targets = targets.reshape(outputs.shape).to(outputs.dtype)
    if outputs.shape[-1] == 1 and bool(((targets == 0) | (targets == 1)).all()):
        return nn.functional.binary_cross_entropy_with_logits(outputs, targets)
    return nn.functional.mse_loss(outputs, targets)


def _surrogate_loss(outputs: torch.Tensor) -> torch.Tensor:
    """Without targets: project the outputs on a fixed random direction, so every output unit
    receives a unit-variance gradient whatever the outputs' scale (a signal-propagation probe)."""
    direction = torch.randn(outputs.shape, generator=torch.Generator().manual_seed(0)).to(outputs)
    return (outputs * direction).sum() / outputs.shape[0]


def diagnose(
    model: nn.Module,
    inputs: Inputs | np.ndarray,
    targets: torch.Tensor | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    output: str | int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Diagnosis:
    """Measure ``model``'s initialization on a batch: one forward and one backward pass.

    With ``targets`` the loss is ``loss_fn`` (default: cross-entropy for class indices with
    several outputs, binary cross-entropy from logits for 0/1 targets on one output, else MSE);
    without, the surrogate ``sum(outputs * r) / N`` with a fixed Gaussian ``r`` (seed 0), so
    every output receives a unit-scale gradient. The model is left as it was: parameter
    ``.grad`` fields are untouched (gradients come from ``torch.autograd.grad``) and buffers
    (BatchNorm running statistics) are restored; the train/eval mode is used as it is.

    ``inputs``: a tensor (``model(x)``), a tuple (``model(*x)``) or a dict of keyword inputs
    (``model(**x)``); integer arrays stay integer (token ids). The measured output is picked by
    :func:`initlab.diagnostics.io.pick_output`: a tensor, else ``logits`` / the first tensor of a
    dict, dataclass (``ModelOutput``) or tuple, or the field / index ``output``. ``progress(done,
    total)`` is called after each layer's measurements.
    """
    inputs = as_inputs(inputs)
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        with torch.enable_grad(), record_forward(model) as records:
            outputs = pick_output(call_model(model, inputs), output)
        if not any(r.weighted for r in records):
            raise ValidationError("the model has no Linear or Conv layer to diagnose")
        with torch.enable_grad():
            if targets is not None:
                targets = torch.as_tensor(targets)
                loss = (loss_fn or _default_loss)(outputs, targets)
            else:
                loss = _surrogate_loss(outputs)
            weight_grads, bias_grads, out_grads = _gradients(loss, records)
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
    layers = []
    for r, wg, bg, og in zip(records, weight_grads, bias_grads, out_grads):
        layers.append(layer_stats(r, wg, og, bias_grad=bg))
        if progress is not None:
            progress(len(layers), len(records))
    _changes(layers)
    samples = {r.name: _samples(r, og) for r, og in zip(records, out_grads)}
    std_rate, grad_rate = _rates(layers)
    from .verdicts import verdicts

    return Diagnosis(layers, verdicts(layers), float(loss.detach()), std_rate, grad_rate,
                     batch_shape(inputs), samples)


def _gradients(loss: torch.Tensor, records: list[Record]):
    """``(weight grads, bias grads, output grads)`` per row; None where a tensor takes no part in the loss."""
    n = len(records)
    tensors = ([r.module.weight if r.weighted else None for r in records]
               + [getattr(r.module, "bias", None) if r.weighted else None for r in records]
               + [r.output for r in records])
    wanted = [i for i, t in enumerate(tensors) if isinstance(t, torch.Tensor) and t.requires_grad]
    full: list[torch.Tensor | None] = [None] * len(tensors)
    if wanted and loss.requires_grad:
        grads = torch.autograd.grad(loss, [tensors[i] for i in wanted], allow_unused=True)
        for i, g in zip(wanted, grads):
            full[i] = g
    return full[:n], full[n:2 * n], full[2 * n:]


def _norm(t: torch.Tensor | None) -> float:
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


def _per_unit(t: torch.Tensor, unit_dim: int) -> torch.Tensor:
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
    slopes = _per_unit(slope(rec.act_fn, rec.act_input), rec.unit_dim).abs()  # (units, N * spatial)
    if slopes.shape != values.shape:
        return 0.0, 0.0, False
    dead = float(((values == 0) & (slopes == 0)).all(dim=1).float().mean())
    shape = profile(rec.act_fn, rec.act_key)
    saturated = 0.0
    if shape.bounded and shape.max_slope > 0:
        saturated = float((slopes < T.SATURATION_SLOPE * shape.max_slope).float().mean())
    return dead, saturated, shape.bounded


def _outgoing(rec: Record) -> list[torch.Tensor]:
    return [outgoing_rows(reader.weight, per_unit) for reader, per_unit in rec.readers]


def layer_stats(rec: Record, weight_grad: torch.Tensor | None, out_grad: torch.Tensor | None,
                symmetry: bool = True, bias_grad: torch.Tensor | None = None) -> LayerStats:
    """The measurements of one recorded row (``symmetry=False`` skips ``distinct_units``,
    which compares every pair of units, and reports ``units`` instead)."""
    module = rec.module
    out = rec.act_output if rec.act_output is not None else rec.output
    values = _per_unit(out, rec.unit_dim)  # (units, N * spatial)
    units = int(values.shape[0])
    dead, saturated, saturable = _dead_and_saturated(rec, values)
    std = float(values.std()) if values.numel() > 1 else 0.0
    if module is None:
        return LayerStats(
            name=rec.name, kind=rec.kind, units=units, activation=rec.activation, mean=float(values.mean()),
            std=std, pre_std=rec.pre_std, dead_fraction=dead, saturated_fraction=saturated, grad_norm=0.0,
            output_grad_norm=_norm(out_grad), weight_std=0.0, healthy_weight_std=0.0, distinct_units=units,
            weighted=False, saturable=saturable,
        )
    weight = module.weight
    bias = getattr(module, "bias", None)
    gain = HEALTHY_GAIN.get(rec.activation or "linear", 1.0)
    outgoing = _outgoing(rec) if symmetry else []
    return LayerStats(
        name=rec.name,
        kind=rec.kind or type(module).__name__,
        units=int(weight.shape[0]),
        activation=rec.activation,
        mean=float(values.mean()),
        std=std,
        pre_std=rec.pre_std,
        dead_fraction=dead,
        saturated_fraction=saturated,
        grad_norm=_norm(weight_grad),
        output_grad_norm=_norm(out_grad),
        weight_std=float(weight.detach().std()) if weight.numel() > 1 else 0.0,
        healthy_weight_std=gain / math.sqrt(weight[0].numel()),
        distinct_units=distinct_units(weight, bias, outgoing) if symmetry else int(weight.shape[0]),
        saturable=saturable,
        weight_norm=_norm(weight),
        bias_norm=_norm(bias) if isinstance(bias, torch.Tensor) else 0.0,
        bias_grad_norm=_norm(bias_grad),
        input_rms=rec.input_rms,
        outgoing_compared=bool(outgoing),
    )


def _strided(t: torch.Tensor | None, size: int) -> np.ndarray:
    """At most ``size`` values of ``t``, evenly strided over all of it."""
    if t is None:
        return np.zeros(0, dtype=np.float32)
    flat = t.detach().reshape(-1)
    step = -(-flat.numel() // size)  # ceil: the strided slice then holds <= size values
    return flat[::step].float().cpu().numpy()


def _samples(rec: Record, out_grad: torch.Tensor | None, size: int = SAMPLE_SIZE) -> dict[str, np.ndarray]:
    """Activation values and back-propagated gradients (d loss / d pre-activation) of one row."""
    out = rec.act_output if rec.act_output is not None else rec.output
    return {"activation": _strided(out, size), "gradient": _strided(out_grad, size)}


def hidden_weighted(layers: list[LayerStats]) -> list[LayerStats]:
    """The weighted rows before the output layer (the last weighted row)."""
    weighted = [s for s in layers if s.weighted]
    return weighted[:-1] if len(weighted) > 1 else weighted


def _changes(layers: list[LayerStats]) -> None:
    """Fill each hidden weighted layer's ``std_change`` and ``grad_change`` (per-layer rates)."""
    chain = hidden_weighted(layers)
    for prev, cur in zip(chain, chain[1:]):
        cur.std_change = cur.std / prev.std if prev.std > 0 else None
        prev.grad_change = prev.output_grad_norm / cur.output_grad_norm if cur.output_grad_norm > 0 else None


def geometric_rate(values: list[float]) -> float:
    """Geometric mean of consecutive ratios ``values[l+1]/values[l]`` (nan if undefined)."""
    if len(values) < 2 or min(values) <= 0:
        return float("nan")
    return (values[-1] / values[0]) ** (1.0 / (len(values) - 1))


def _rates(layers: list[LayerStats]) -> tuple[float, float]:
    chain = hidden_weighted(layers)
    std_rate = geometric_rate([s.std for s in chain])
    grad_rate = geometric_rate([s.output_grad_norm for s in reversed(chain)])
    return std_rate, grad_rate
