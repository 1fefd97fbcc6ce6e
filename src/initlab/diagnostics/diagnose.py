"""``diagnose``: one forward and one backward pass through any ``nn.Module``, measured per layer."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._adapters import adapter
from .._json import json_safe
from .._validation import ValidationError
from . import thresholds as T
from .io import Inputs, as_inputs, batch_shape, call_model, pick_output
from .recorder import ACTIVATION_MODULES, PASS_THROUGH, WEIGHTED, Record, Recorder, record_forward, recording
from .slopes import profile, slope
from .symmetry import distinct_units, outgoing_rows

__all__ = [
    "diagnose", "Diagnosis", "LayerStats", "Verdict", "Coverage", "record_forward", "layer_stats", "depth_chains",
    "ACTIVATION_MODULES", "PASS_THROUGH", "WEIGHTED", "HEALTHY_GAIN", "SAMPLE_SIZE",
]

# The weight std a healthy (variance-preserving) init gives before each activation is
# gain / sqrt(fan_in): gain sqrt(2) for the ReLU family (He et al., 2015), 1 otherwise
# (LeCun et al., 1998; equal to Glorot & Bengio, 2010 when fan_in == fan_out).
HEALTHY_GAIN = {"relu": math.sqrt(2), "relu6": math.sqrt(2), "leaky_relu": math.sqrt(2), "elu": math.sqrt(2),
                "gelu": math.sqrt(2), "silu": math.sqrt(2), "mish": math.sqrt(2), "celu": math.sqrt(2),
                "softplus": math.sqrt(2), "hardswish": math.sqrt(2), "prelu": math.sqrt(2), "rrelu": math.sqrt(2)}
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
    role: str = ""  # the name with repeated-block indices replaced by "*": depth trends compare one role across blocks
    fan_in: int = 0  # inputs per unit (0 for an embedding lookup: no fan-in rule applies)
    gain: float = 1.0  # the variance-preserving gain of the following activation (HEALTHY_GAIN, or measured; 0: none exists)
    activation_degree: float | None = None  # k where the activation grows like x**k (measured; None when not measured)
    healthy_weight_std_fan_out: float = 0.0  # gain / sqrt(fan_out): the backward-preserving std (He et al., 2015)
    finite: bool = True  # every output, activation and gradient value of this row is finite
    params: list[str] = field(default_factory=list)  # the model's parameters this row measured
    composite: bool = False  # a lone activation that is one part of an expression (see Record.composite): not judged

    def to_dict(self) -> dict[str, Any]:
        return {k: json_safe(v) if isinstance(v, float) else v for k, v in asdict(self).items()}


@dataclass
class Verdict:
    """A finding: a code from the fixed set, the layers involved, plain words, a fix."""

    code: str  # non_finite, symmetry, dead_units, saturation, attention_collapse, vanishing_gradients,
    # exploding_gradients, healthy
    message: str
    layers: list[str] = field(default_factory=list)
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Coverage:
    """Which of the model's parameter tensors a diagnose pass measured, and why the others were not."""

    tensors: int  # parameter tensors in the model (shared ones once)
    measured_tensors: int
    parameters: int  # scalars in them
    measured_parameters: int
    # {"name", "shape", "numel", "reason", "grad_norm"} per parameter tensor no row measured
    unattributed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.measured_tensors == self.tensors

    def sentence(self) -> str:
        """``measured 26 of 26 parameter tensors (12,345 of 12,345 parameters, 100%)``."""
        share = self.measured_parameters / self.parameters if self.parameters else 1.0
        pct = f"{share:.0%}"
        for digits in range(1, 8):  # a partial share never reads 100% or 0%
            if not (0 < share < 1) or pct not in (f"{1:.{digits - 1}%}", f"{0:.{digits - 1}%}"):
                break
            pct = f"{share:.{digits}%}"
        text = (f"measured {self.measured_tensors} of {self.tensors} parameter tensors "
                f"({self.measured_parameters:,} of {self.parameters:,} parameters, {pct})")
        if self.unattributed:
            text += "; not measured: " + "; ".join(f"{u['name']} ({u['reason']})" for u in self.unattributed[:8])
            if len(self.unattributed) > 8:
                text += f"; and {len(self.unattributed) - 8} more"
        return text

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
    coverage: Coverage | None = None  # None only for diagnose_stack (every weight of an MLP is measured)
    norms: list[dict[str, Any]] = field(default_factory=list)  # per normalisation call: name, kind, input/output std, gain
    attention: list[dict[str, Any]] = field(default_factory=list)  # per attention: logit std, entropy, largest weight
    blocks: list[dict[str, Any]] = field(default_factory=list)  # per repeated block: the residual stream in and out

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
            "loss": json_safe(self.loss),
            "activation_std_rate": json_safe(self.activation_std_rate),
            "gradient_rate": json_safe(self.gradient_rate),
            "input_shape": list(self.input_shape),
            "layers": [s.to_dict() for s in self.layers],
            "verdicts": [v.to_dict() for v in self.verdicts],
            "coverage": self.coverage.to_dict() if self.coverage is not None else None,
            "norms": json_safe(self.norms),
            "attention": json_safe(self.attention),
            "blocks": json_safe(self.blocks),
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

    What the pass reaches is listed in ``recorder.py`` (modules, functional calls on the model's
    parameters, norms, attention, repeated blocks). ``Diagnosis.coverage`` counts the parameter
    tensors measured and lists every other one with why; verdicts are about measured rows only.
    """
    foreign = adapter(model, "diagnose")  # a Keras 3 model (torch backend): initlab.integrations.keras
    if foreign is not None:
        return foreign(model, inputs, targets, loss_fn)
    inputs = as_inputs(inputs)
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        with torch.enable_grad(), recording(model) as recorder:
            outputs = pick_output(call_model(model, inputs), output)
        records = recorder.records
        if not any(r.weighted for r in records):
            raise ValidationError("the model has no weighted layer to diagnose (no Linear, Conv, Embedding, "
                                  "recurrent layer or functional call on one of its parameters was reached)")
        with torch.enable_grad():
            if targets is not None:
                targets = torch.as_tensor(targets)
                loss = (loss_fn or _default_loss)(outputs, targets)
            else:
                loss = _surrogate_loss(outputs)
            grads = _gradients(loss, recorder, model)
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
    layers = []
    for r, wg, bg, og in zip(records, grads.weights, grads.biases, grads.outputs):
        layers.append(layer_stats(r, wg, og, bias_grad=bg))
        if progress is not None:
            progress(len(layers), len(records))
    _changes(layers)
    samples = {r.name: _samples(r, og) for r, og in zip(records, grads.outputs)}
    std_rate, grad_rate = _rates(layers)
    coverage = measure_coverage(model, recorder, grads.params)
    blocks = [{"name": b.name, "group": b.group, "index": b.index, "input_std": b.input_std,
               "output_std": b.output_std, "output_grad_norm": _norm(g)} for b, g in zip(recorder.blocks, grads.blocks)]
    from .readout import measure_readout
    from .verdicts import verdicts

    loss_value = float(loss.detach())
    attention = [asdict(a) for a in recorder.attention]
    readout = measure_readout(outputs, targets)  # the output at init against class targets (None otherwise)
    return Diagnosis(layers, verdicts(layers, coverage=coverage, loss=loss_value, blocks=blocks, attention=attention,
                                      readout=readout),
                     loss_value, std_rate, grad_rate, batch_shape(inputs), samples, coverage,
                     [asdict(n) for n in recorder.norms], attention, blocks)


@dataclass
class _Grads:
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

    def slot(t) -> int | None:
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

    def get(i):
        return None if i is None else full[i]

    return ([[get(i) for i in row] for row in w_slots], [[get(i) for i in row] for row in b_slots],
            [get(i) for i in o_slots], {g: {k: get(i) for k, i in items.items()} for g, items in e_slots.items()})


def _gradients(loss: torch.Tensor, recorder: Recorder, model: nn.Module) -> _Grads:
    """Every gradient diagnose reports, from one ``torch.autograd.grad`` call."""
    blocks = dict(enumerate(b.output for b in recorder.blocks))
    weights, biases, outputs, extra = row_gradients(loss, recorder.records,
                                                    {"blocks": blocks, "params": dict(model.named_parameters())})
    return _Grads(weights, biases, outputs, [extra["blocks"][i] for i in range(len(blocks))], extra["params"])


def measure_coverage(model: nn.Module, recorder: Recorder, grads: dict[str, torch.Tensor | None]) -> Coverage:
    """Which parameters a row (or a normalisation record) measured; why each other one was not."""
    measured = {n for r in recorder.records for n in r.params} | {n for norm in recorder.norms for n in norm.params}
    named = dict(model.named_parameters())
    unattributed = []
    for name, p in named.items():
        if name in measured:
            continue
        ops = sorted(recorder.uses.get(name, ()))
        grad = grads.get(name)
        if ops:
            reason = f"used directly by {', '.join(ops)}, not by a layer initlab measures"
        elif not p.requires_grad:
            reason = "frozen (requires_grad=False) and not used by a layer initlab measures"
        elif grad is not None:
            reason = "reaches the loss through an operation initlab does not see"
        else:
            reason = "not used in this forward pass (no gradient reaches it)"
        unattributed.append({"name": name, "shape": list(p.shape), "numel": p.numel(), "reason": reason,
                             "grad_norm": _norm(grad) if grad is not None else None})
    total = sum(p.numel() for p in named.values())
    missing = sum(u["numel"] for u in unattributed)
    return Coverage(len(named), len(named) - len(unattributed), total, total - missing, unattributed)


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
    return [outgoing_rows(reader, per_unit) for reader, per_unit in rec.readers]


def _norm_all(ts) -> float:
    """Norm of one tensor, or of several taken together (None entries count 0)."""
    if ts is None or isinstance(ts, torch.Tensor):
        return _norm(ts)
    return math.sqrt(sum(_norm(t) ** 2 for t in ts))


def _finite(*ts) -> bool:
    return all(t is None or bool(torch.isfinite(t.detach()).all()) for t in ts)


# Known activations a custom module is compared with: one that matches one of them on a grid is
# given its gain (a class named NewGELUActivation computing gelu's tanh form gets gelu's).
_REFERENCE = {
    "relu": torch.relu, "gelu": nn.functional.gelu, "silu": nn.functional.silu, "tanh": torch.tanh,
    "sigmoid": torch.sigmoid, "hardswish": nn.functional.hardswish, "mish": nn.functional.mish,
    "elu": nn.functional.elu, "softplus": nn.functional.softplus, "hardsigmoid": nn.functional.hardsigmoid,
}
_GRID = torch.linspace(-6.0, 6.0, 241)
_RESEMBLES: dict[object, str | None] = {}


def resembles(fn: Callable[[torch.Tensor], torch.Tensor], key: object = None) -> str | None:
    """The known activation that ``fn`` matches within 0.01 everywhere on [-6, 6] (None: none)."""
    if key is not None and key in _RESEMBLES:
        return _RESEMBLES[key]
    found = None
    try:
        with torch.no_grad():
            y = fn(_GRID.clone()).float()
        for name, ref in _REFERENCE.items():
            if y.shape == _GRID.shape and float((y - ref(_GRID)).abs().max()) < 1e-2:
                found = name
                break
    except Exception:  # measuring is best effort; no match then
        found = None
    if key is not None:
        _RESEMBLES[key] = found
    return found


def growth_degree(fn: Callable[[torch.Tensor], torch.Tensor], key: object = None) -> float:
    """``k`` where ``fn(x)`` grows like ``x**k`` for large positive ``x`` (measured at 4, 8, 16;
    nan when ``fn`` is not positive there). ReLU, GELU, SiLU: 1; relu(x)**2: 2."""
    cache_key = ("degree", key)
    if key is not None and cache_key in _RESEMBLES:
        return _RESEMBLES[cache_key]
    try:
        with torch.no_grad():
            y = fn(torch.tensor([4.0, 8.0, 16.0])).double()
        k = float(torch.log2(y[2] / y[1])) if bool((y > 0).all()) else float("nan")
    except Exception:  # measuring is best effort
        k = float("nan")
    if key is not None:
        _RESEMBLES[cache_key] = k
    return k


def activation_gain(rec: Record) -> float:
    """The variance-preserving gain for the activation after ``rec``: :data:`HEALTHY_GAIN` by
    name; for an activation initlab does not know by name, that of the known activation it
    matches on a grid; else, for one bounded below only (ReLU-like), sqrt(2) when it grows
    linearly (as He et al., 2015 derive for ReLU) and 0 when it grows like x**k with k != 1
    (relu(x)**2: no weight scale keeps the signal's scale through it); 1 otherwise (LeCun et al., 1998)."""
    name = rec.activation or "linear"
    if name in HEALTHY_GAIN or name in ("tanh", "sigmoid", "linear", "selu", "hardtanh", "hardsigmoid", "softsign"):
        return HEALTHY_GAIN.get(name, 1.0)
    if rec.act_fn is None:
        return 1.0
    like = resembles(rec.act_fn, rec.act_key)
    if like is not None:
        return HEALTHY_GAIN.get(like, 1.0)
    shape = profile(rec.act_fn, rec.act_key)
    if shape.low is not None and shape.high is None:
        k = growth_degree(rec.act_fn, rec.act_key)
        return math.sqrt(2) if abs(k - 1) < 0.1 else 0.0
    return 1.0


def layer_stats(rec: Record, weight_grad, out_grad: torch.Tensor | None,
                symmetry: bool = True, bias_grad=None) -> LayerStats:
    """The measurements of one recorded row (``symmetry=False`` skips ``distinct_units``,
    which compares every pair of units, and reports ``units`` instead). ``weight_grad`` and
    ``bias_grad``: a tensor, or a list of tensors for a row that owns several (an LSTM)."""
    out = rec.act_output if rec.act_output is not None else rec.output
    values = _per_unit(out, rec.unit_dim)  # (units, N * spatial)
    units = int(values.shape[0])
    std = float(values.float().std()) if values.numel() > 1 else 0.0
    mean = float(values.float().mean())
    # the statistics are finite when the values are (the common case, no extra pass); else look
    out_grad_norm = _norm(out_grad)
    finite = all(math.isfinite(v) for v in (std, mean, rec.pre_std, out_grad_norm)) or _finite(rec.output, out, out_grad)
    dead, saturated, saturable = _dead_and_saturated(rec, values) if finite else (0.0, 0.0, False)
    if not rec.weighted:
        return LayerStats(
            name=rec.name, kind=rec.kind, units=units, activation=rec.activation, mean=mean,
            std=std, pre_std=rec.pre_std, dead_fraction=dead, saturated_fraction=saturated, grad_norm=0.0,
            output_grad_norm=out_grad_norm, weight_std=0.0, healthy_weight_std=0.0, distinct_units=units,
            weighted=False, saturable=saturable, finite=finite, params=list(rec.params), composite=rec.composite,
        )
    weight = rec.weight  # (units, fan_in...)
    bias = rec.bias
    gain = activation_gain(rec)
    outgoing = _outgoing(rec) if symmetry and finite else []
    all_weights = torch.cat([w.detach().reshape(-1) for w in rec.weights]) if len(rec.weights) > 1 else weight.detach()
    grad_norm = _norm_all(weight_grad)
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
        weight_norm=_norm_all(rec.weights),
        bias_norm=_norm_all(rec.biases),
        bias_grad_norm=_norm_all(bias_grad),
        input_rms=rec.input_rms,
        outgoing_compared=bool(outgoing),
        role=rec.role,
        fan_in=rec.fan_in,
        gain=gain,
        healthy_weight_std_fan_out=gain / math.sqrt(rec.fan_out) if rec.fan_out > 0 and rec.fan_in > 0 else 0.0,
        activation_degree=growth_degree(rec.act_fn, rec.act_key) if gain == 0 and rec.act_fn is not None else None,
        finite=finite and math.isfinite(grad_norm),
        params=list(rec.params),
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
    groups: dict[tuple, list[LayerStats]] = {}
    for s in weighted:
        if s is not out and "*" in s.role:
            groups.setdefault((s.role, s.kind, s.activation), []).append(s)
    return [g for g in groups.values() if len(g) >= 2]


def _changes(layers: list[LayerStats]) -> None:
    """Fill each chained layer's ``std_change`` and ``grad_change`` (per-layer rates within its chain)."""
    for chain in depth_chains(layers):
        for prev, cur in zip(chain, chain[1:]):
            cur.std_change = cur.std / prev.std if prev.std > 0 else None
            prev.grad_change = prev.output_grad_norm / cur.output_grad_norm if cur.output_grad_norm > 0 else None


def geometric_rate(values: list[float]) -> float:
    """Geometric mean of consecutive ratios ``values[l+1]/values[l]`` (nan if undefined)."""
    if len(values) < 2 or min(values) <= 0 or not all(math.isfinite(v) for v in values):
        return float("nan")
    return (values[-1] / values[0]) ** (1.0 / (len(values) - 1))


def _rates(layers: list[LayerStats]) -> tuple[float, float]:
    """Over the longest depth chain (the first of equal length)."""
    chains = depth_chains(layers)
    chain = max(chains, key=len) if chains else []
    std_rate = geometric_rate([s.std for s in chain])
    grad_rate = geometric_rate([s.output_grad_norm for s in reversed(chain)])
    return std_rate, grad_rate
