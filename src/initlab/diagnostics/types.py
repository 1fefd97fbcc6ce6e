"""The diagnosis types every front shares: :class:`LayerStats` (one measured row), :class:`Verdict`,
:class:`Coverage` (what a pass measured: parameter tensors and computations) and :class:`Diagnosis`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._json import json_safe

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["LayerStats", "Verdict", "Coverage", "Diagnosis"]


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
    # the activation is bounded on both sides (measured: slopes.profile), so saturation is checked
    saturable: bool = False
    weight_norm: float = 0.0  # Frobenius norm of the weight (exactly 0 for an all-zero layer)
    bias_norm: float = 0.0  # norm of the bias (0 without one)
    bias_grad_norm: float = 0.0  # norm of dLoss/dBias
    input_rms: float = 0.0  # sqrt(mean(x^2)) of the layer's input: a variance-preserving init assumes about 1
    outgoing_compared: bool = False  # distinct_units also compared the weights of the layers reading this one
    role: str = ""  # the name with repeated-block indices replaced by "*": depth trends compare one role across blocks
    fan_in: int = 0  # inputs per unit (0 for an embedding lookup: no fan-in rule applies)
    # the variance-preserving gain of the following activation (HEALTHY_GAIN, or measured; 0: none exists)
    gain: float = 1.0
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
        # what dataclasses.asdict gives (the list copied), without its recursion: a sweep writes thousands
        return {"code": self.code, "message": self.message, "layers": list(self.layers), "fix": self.fix}


@dataclass
class Coverage:
    """Which of the model's parameter tensors and computations a diagnose pass measured, and why the
    others were not. A computation is a weighted op, an activation, a normalisation or an attention
    softmax; a softmax over a >= 3-d tensor that was not measured as attention is listed in
    ``unmeasured_computations`` (then the coverage is not complete, whatever the parameters)."""

    tensors: int  # parameter tensors in the model (shared ones once)
    measured_tensors: int
    parameters: int  # scalars in them
    measured_parameters: int
    # {"name", "shape", "numel", "reason", "grad_norm"} per parameter tensor no row measured
    unattributed: list[dict[str, Any]] = field(default_factory=list)
    # measured computations by kind: {"weighted": n, "activation": n, "norm": n, "attention": n}
    computations: dict[str, int] = field(default_factory=dict)
    # {"op", "name", "shape", "reason"} per computation seen but not measured (a softmax that is not attention)
    unmeasured_computations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.measured_tensors == self.tensors and not self.unmeasured_computations

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
        if self.unmeasured_computations:
            text += ("; not measured: " if not self.unattributed else "; ") + "; ".join(
                f"{c['op']} over {tuple(c['shape'])} in {c['name']} ({c['reason']})"
                for c in self.unmeasured_computations[:4])
            if len(self.unmeasured_computations) > 4:
                text += f"; and {len(self.unmeasured_computations) - 4} more computations"
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
    # per normalisation call: name, kind, input/output std, gain
    norms: list[dict[str, Any]] = field(default_factory=list)
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

    def table(self, after: Diagnosis | None = None, title: str | None = None) -> Table:
        """A ``rich.table.Table`` of the layers; with ``after``, each cell reads ``before -> after``."""
        from .table import diagnosis_table

        return diagnosis_table(self, after, title)

    def __repr__(self) -> str:
        return f"Diagnosis(layers={len(self.layers)}, verdicts={self.codes}, loss={self.loss:.3g})"

    def _repr_html_(self) -> str:
        """Notebook display: verdict badges, loss and rates, the per-layer table."""
        from .html import diagnosis_html

        return diagnosis_html(self)
