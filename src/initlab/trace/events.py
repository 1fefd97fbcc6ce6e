"""What a traced forward pass emits: rows (a weighted op and its activation, or a lone activation),
normalisation calls and repeated blocks. Attention is :class:`initlab.trace.attention.Attention`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["Record", "NormRecord", "BlockRecord"]


@dataclass
class Record:
    """One row: a weighted op (``weight`` set) and the activation that consumed its output,
    or an activation on its own (``weight`` None)."""

    name: str
    module: nn.Module | None  # the module that owns the weight (None for a lone activation)
    output: torch.Tensor  # the layer's output (pre-activation); the activation's output for a lone activation
    unit_dim: int  # the axis that indexes units: -1 for Linear, 1 for Conv (N, C, *spatial)
    activation: str | None = None
    act_output: torch.Tensor | None = None
    act_input: torch.Tensor | None = None  # what the activation was applied to (its slope is measured there)
    pre_std: float = 0.0  # std of ``output`` measured when it was produced (before any in-place op)
    kind: str = ""
    act_fn: Callable[[torch.Tensor], torch.Tensor] | None = None  # the activation, elementwise, hooks bypassed
    # sqrt(mean(x^2)) of a weighted layer's input (the scale a variance-preserving init assumes is 1)
    input_rms: float = 0.0
    # weighted layers reading this row's output: each reader's weight as (out, in, *kernel) and the
    # number of input features per unit (1 when it reads the units directly, the spatial size
    # when it reads them through nn.Flatten)
    readers: list[tuple[torch.Tensor, int]] = field(default_factory=list)
    weight: torch.Tensor | None = None  # (units, fan_in...) view of the main weight: one row per unit
    weights: list[torch.Tensor] = field(default_factory=list)  # the parameters whose gradient is grad_norm
    biases: list[torch.Tensor] = field(default_factory=list)
    fan_in: int = 0  # inputs per unit (0: not a fan-in layer, an embedding lookup)
    fan_out: int = 0  # outputs each input feeds (torch's convention: out x receptive field)
    role: str = ""  # the name with repeated-block indices replaced by "*"
    params: list[str] = field(default_factory=list)  # qualified names of the parameters measured by this row
    # a lone activation whose output (shifted or scaled by numbers) was multiplied by another tensor:
    # one part of an expression (tanh inside an inline GELU, sigmoid in x * sigmoid(x)), not a layer's activation
    composite: bool = False

    @property
    def weighted(self) -> bool:
        return self.weight is not None

    @property
    def bias(self) -> torch.Tensor | None:
        return self.biases[0] if len(self.biases) == 1 else None


@dataclass
class NormRecord:
    """One call of a normalisation layer with the model's parameters."""

    name: str
    kind: str  # layer_norm, batch_norm, group_norm, instance_norm, rms_norm
    input_std: float
    output_std: float
    gain_mean: float  # mean of the weight (gain); 1 at the usual init
    params: list[str] = field(default_factory=list)


@dataclass
class BlockRecord:
    """One repeated block (transformer layer, residual block): the stream into and out of it."""

    name: str
    group: str  # the container's name (``h``, ``encoder.layer``)
    index: int
    input_std: float
    output: torch.Tensor  # the block's output (its first tensor); kept for the gradient norm

    @property
    def output_std(self) -> float:
        out = self.output.detach()
        return float(out.float().std()) if out.numel() > 1 else 0.0
