"""``diagnose``: one forward and one backward pass through any ``nn.Module``, measured per layer."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .._validation import ValidationError
from ..models.activations import SATURATING
from . import thresholds as T
from .symmetry import distinct_units

__all__ = ["diagnose", "Diagnosis", "LayerStats", "Verdict", "record_forward"]

WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)
# module class -> activation name (what verdicts and saturation checks key on).
ACTIVATION_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.ReLU6: "relu", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.SELU: "selu",
    nn.GELU: "gelu", nn.SiLU: "silu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Identity: "linear",
    nn.Softplus: "softplus", nn.Mish: "mish", nn.Hardtanh: "hardtanh", nn.CELU: "celu",
}
# Modules that pass a layer's units through unchanged in number (so the activation after them
# still belongs to that layer): normalisation and dropout.
PASS_THROUGH = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.Dropout, nn.modules.instancenorm._InstanceNorm)
# The weight std a healthy (variance-preserving) init gives before each activation: gain / sqrt(fan_in).
HEALTHY_GAIN = {"relu": math.sqrt(2), "leaky_relu": math.sqrt(2), "elu": math.sqrt(2), "gelu": math.sqrt(2),
                "silu": math.sqrt(2), "mish": math.sqrt(2), "celu": math.sqrt(2), "softplus": math.sqrt(2)}


@dataclass
class LayerStats:
    """Measurements of one weighted layer and the activation that follows it (if any)."""

    name: str
    kind: str  # "Linear", "Conv2d", ...
    units: int  # output features or channels
    activation: str | None  # the activation applied to this layer's output, if one was found
    mean: float  # of the activation output (or of the layer output when no activation follows)
    std: float
    pre_std: float  # std of the layer's own output (the pre-activation)
    dead_fraction: float  # units whose activation output is exactly 0 for every input
    saturated_fraction: float  # activation outputs within SATURATION_EPS of a tanh/sigmoid limit
    grad_norm: float  # Frobenius norm of dLoss/dWeight
    output_grad_norm: float  # norm of dLoss/d(layer output), summed over the batch
    weight_std: float
    healthy_weight_std: float  # gain / sqrt(fan_in) for the following activation
    distinct_units: int  # see symmetry.distinct_units

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
            "activation_std_rate": self.activation_std_rate,
            "gradient_rate": self.gradient_rate,
            "layers": [s.to_dict() for s in self.layers],
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


@dataclass
class _Record:
    name: str
    module: nn.Module
    output: torch.Tensor
    activation: str | None = None
    act_output: torch.Tensor | None = None


@contextlib.contextmanager
def record_forward(model: nn.Module) -> Iterator[list[_Record]]:
    """Hook every weighted layer and pair it with the activation module that consumes its output.

    Yields the list of records, filled during the forward pass; hooks are always removed.
    """
    records: list[_Record] = []
    owner: dict[int, _Record] = {}
    keep: list[torch.Tensor] = []  # keeps tensors alive so their ids stay unique

    def on_weighted(name):
        def hook(module, inputs, output):
            rec = _Record(name, module, output)
            records.append(rec)
            owner[id(output)] = rec
            keep.append(output)
        return hook

    def on_pass_through(module, inputs, output):
        if inputs and id(inputs[0]) in owner and isinstance(output, torch.Tensor):
            owner[id(output)] = owner[id(inputs[0])]
            keep.append(output)

    def on_activation(kind):
        def hook(module, inputs, output):
            rec = owner.get(id(inputs[0])) if inputs else None
            if rec is not None and rec.act_output is None:
                rec.activation, rec.act_output = kind, output
        return hook

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, WEIGHTED):
            handles.append(module.register_forward_hook(on_weighted(name)))
        elif isinstance(module, PASS_THROUGH):
            handles.append(module.register_forward_hook(on_pass_through))
        elif type(module) in ACTIVATION_MODULES:
            handles.append(module.register_forward_hook(on_activation(ACTIVATION_MODULES[type(module)])))
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


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
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Diagnosis:
    """Measure ``model``'s initialization on a batch: one forward and one backward pass.

    With ``targets`` the loss is ``loss_fn`` (default: cross-entropy for class indices with
    several outputs, binary cross-entropy from logits for 0/1 targets on one output, else MSE);
    without, the surrogate ``mean(outputs . r)`` with a fixed Gaussian ``r``. Parameter
    ``.grad`` fields are left untouched (gradients come from ``torch.autograd.grad``).
    """
    if not isinstance(inputs, torch.Tensor):
        inputs = torch.as_tensor(inputs, dtype=torch.float32)
    with record_forward(model) as records:
        outputs = model(inputs)
    if not isinstance(outputs, torch.Tensor):
        raise ValidationError(f"the model must return a tensor, got {type(outputs).__name__}")
    if not records:
        raise ValidationError("the model has no Linear or Conv layer to diagnose")
    if targets is not None:
        targets = torch.as_tensor(targets)
        loss = (loss_fn or _default_loss)(outputs, targets)
    else:
        loss = _surrogate_loss(outputs)
    weights = [r.module.weight for r in records]
    outs = [r.output for r in records]
    needs = [t.requires_grad for t in weights + outs]
    grads = torch.autograd.grad(
        loss, [t for t, n in zip(weights + outs, needs) if n], allow_unused=True
    ) if loss.requires_grad else []
    grads = iter(grads)
    full = [next(grads) if n else None for n in needs]
    weight_grads, out_grads = full[: len(weights)], full[len(weights):]
    layers = [_layer_stats(r, wg, og) for r, wg, og in zip(records, weight_grads, out_grads)]
    std_rate, grad_rate = _rates(layers)
    return Diagnosis(layers, _verdicts(layers), float(loss.detach()), std_rate, grad_rate)


def _norm(t: torch.Tensor | None) -> float:
    return 0.0 if t is None else float(t.detach().double().norm())


def _per_unit(t: torch.Tensor) -> torch.Tensor:
    """(N, units, *spatial) -> (units, N * prod(spatial)): every value a unit produced."""
    t = t.detach()
    if t.ndim == 1:
        t = t.unsqueeze(0)
    return t.transpose(0, 1).reshape(t.shape[1], -1)


def _layer_stats(rec: _Record, weight_grad: torch.Tensor | None, out_grad: torch.Tensor | None) -> LayerStats:
    module = rec.module
    out = rec.act_output if rec.act_output is not None else rec.output
    values = _per_unit(out).double()
    dead = float((values == 0).all(dim=1).double().mean()) if rec.act_output is not None else 0.0
    saturated = 0.0
    if rec.activation in SATURATING:
        low, high = SATURATING[rec.activation]
        saturated = float(((values < low + T.SATURATION_EPS) | (values > high - T.SATURATION_EPS)).double().mean())
    fan_in = module.weight[0].numel()
    gain = HEALTHY_GAIN.get(rec.activation or "linear", 1.0)
    bias = getattr(module, "bias", None)
    return LayerStats(
        name=rec.name,
        kind=type(module).__name__,
        units=int(module.weight.shape[0]),
        activation=rec.activation,
        mean=float(values.mean()),
        std=float(values.std()) if values.numel() > 1 else 0.0,
        pre_std=float(rec.output.detach().double().std()) if rec.output.numel() > 1 else 0.0,
        dead_fraction=dead,
        saturated_fraction=saturated,
        grad_norm=_norm(weight_grad),
        output_grad_norm=_norm(out_grad),
        weight_std=float(module.weight.detach().double().std()),
        healthy_weight_std=gain / math.sqrt(fan_in),
        distinct_units=distinct_units(module.weight, bias),
    )


def _geometric_rate(values: list[float]) -> float:
    """Geometric mean of consecutive ratios values[l+1]/values[l] (nan if undefined)."""
    if len(values) < 2 or min(values) <= 0:
        return float("nan")
    return (values[-1] / values[0]) ** (1.0 / (len(values) - 1))


def _rates(layers: list[LayerStats]) -> tuple[float, float]:
    hidden = layers[:-1] if len(layers) > 1 else layers
    std_rate = _geometric_rate([s.std for s in hidden])
    grad_rate = _geometric_rate([s.output_grad_norm for s in reversed(hidden)])
    return std_rate, grad_rate


def _names(layers: list[LayerStats]) -> list[str]:
    return [s.name for s in layers]


def _verdicts(layers: list[LayerStats]) -> list[Verdict]:
    hidden = layers[:-1] if len(layers) > 1 else layers
    found: list[Verdict] = []
    dead = [s for s in hidden if s.dead_fraction >= T.DEAD_FRACTION]
    if dead:
        worst = max(dead, key=lambda s: s.dead_fraction)
        found.append(Verdict(
            "dead_units",
            f"{len(dead)} layer(s) with dead units: in {worst.name}, {round(worst.dead_fraction * worst.units)} of "
            f"{worst.units} {worst.activation} units output 0 on every input, so no gradient flows through them "
            f"(gradient norm reaching {worst.name}: {worst.grad_norm:.3g})",
            _names(dead),
            "use a random variance-preserving init (he_normal for ReLU layers); leaky_relu or a small positive bias also keeps units alive",
        ))
    symmetric = [s for s in hidden if s.units > 1 and s.distinct_units < s.units and s.dead_fraction < 1.0]
    if symmetric:
        worst = min(symmetric, key=lambda s: s.distinct_units / s.units)
        found.append(Verdict(
            "symmetry",
            f"symmetry not broken: {worst.name} has only {worst.distinct_units} distinct unit(s) of {worst.units}; "
            "identical units get identical gradients and stay identical, so the layer works like "
            f"{worst.distinct_units} unit(s)",
            _names(symmetric),
            "draw the weights at random (glorot_uniform for tanh/sigmoid, he_normal for ReLU)",
        ))
    saturated = [s for s in hidden if s.saturated_fraction >= T.SATURATED_FRACTION]
    if saturated:
        worst = max(saturated, key=lambda s: s.saturated_fraction)
        found.append(Verdict(
            "saturation",
            f"{len(saturated)} layer(s) saturated: {worst.saturated_fraction:.0%} of {worst.name}'s {worst.activation} "
            "outputs sit at the function's limits, where its derivative is nearly 0",
            _names(saturated),
            f"shrink the weights: glorot_normal or lecun_normal (std about {worst.healthy_weight_std:.3g} here; now {worst.weight_std:.3g})",
        ))
    if len(layers) >= T.MIN_LAYERS_FOR_DEPTH_VERDICTS and len(hidden) >= 2:
        first, last = hidden[0], hidden[-1]
        std_ratio = last.std / first.std if first.std > 0 else float("nan")
        grad_ratio = first.output_grad_norm / last.output_grad_norm if last.output_grad_norm > 0 else float("nan")
        measured = f"activation std {first.std:.3g} -> {last.std:.3g}, back-propagated gradient {last.output_grad_norm:.3g} -> {first.output_grad_norm:.3g} from {last.name} down to {first.name}"
        if min(std_ratio, grad_ratio) < T.VANISH_RATIO:
            found.append(Verdict(
                "vanishing_gradients",
                f"the signal vanishes with depth ({measured})",
                _names(hidden),
                "use a variance-preserving init for the activation: he_normal for ReLU, glorot/lecun for tanh",
            ))
        elif max(std_ratio, grad_ratio) > T.EXPLODE_RATIO:
            found.append(Verdict(
                "exploding_gradients",
                f"the signal explodes with depth ({measured})",
                _names(hidden),
                "use smaller weights: a variance-preserving init (he_normal for ReLU, glorot/lecun for tanh)",
            ))
    if not found:
        found.append(Verdict("healthy", "no dead units, no symmetry, no saturation, signal preserved across layers", []))
    return found
