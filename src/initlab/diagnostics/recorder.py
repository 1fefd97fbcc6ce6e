"""Forward hooks that find every weighted layer and every activation a forward pass reaches.

One recorder serves ``diagnose`` (one pass) and ``Monitor`` (armed on recording steps only),
so both measure the same things the same way.

What is covered:

- every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` (any ``_ConvNd``) module, each call; Hugging Face's
  ``Conv1D`` (a Linear with its weight stored ``(in, out)``); ``nn.LSTM/GRU/RNN`` (one row per
  call: the output sequence, every ``weight_*``/``bias_*`` of the module attributed to it);
- every weight used through a functional call during the forward: ``F.linear``, ``F.conv1d/2d/3d``,
  ``F.embedding`` (so ``nn.Embedding``), ``torch.addmm`` / ``x @ W`` with a parameter ``W``, and the
  projections inside ``nn.MultiheadAttention``; each gets a row named after the parameter's owner;
- normalisation layers (``F.layer_norm``, ``F.group_norm``, ``F.batch_norm``, ``F.instance_norm``,
  ``F.rms_norm`` with the model's parameters), and leaf modules named ``...Norm`` with only 1-d
  parameters (Hugging Face's ``LlamaRMSNorm``): :class:`NormRecord` (input and output std, gain);
- attention: every softmax over a 4-d ``(batch, heads, queries, keys)`` tensor and every
  ``F.scaled_dot_product_attention`` (whose logits ``q k^T * scale`` are recomputed):
  :class:`AttentionRecord` (logit std, softmax entropy, largest weight);
- blocks: the children of an ``nn.ModuleList``/``nn.Sequential`` that repeat with the same
  parameter shapes (transformer layers, residual blocks): :class:`BlockRecord` (the residual
  stream's std into and after each block); a row's ``role`` is its name with those block
  indices replaced by ``*`` (``h.*.attn.c_attn``), so depth trends compare like with like;
- every activation module of :data:`ACTIVATION_MODULES`, and any parameter-free leaf module
  that acts elementwise (probed on a small grid), named by its own class (``NewGELUActivation``);
- functional activations called inside ``forward`` (``F.relu(x)``, ``torch.tanh(x)``,
  ``x.sigmoid()``, ``F.gelu(x)``, ... the table :data:`FUNCTIONAL`), outside activation modules.

All of it is seen through a ``torch.overrides.TorchFunctionMode`` active only while the model's
own ``forward`` runs, plus module hooks. Every call that touches a parameter is noted in
:attr:`Recorder.uses`, so a parameter no row measured can be listed with the operation that used it.

An activation whose input is a weighted layer's output (directly, through a normalisation
or dropout module, or a reshape that keeps the last axis) is paired with that layer: one row,
pre-activation and activation statistics together. Any other activation (after a residual
addition, say) gets its own row. In-place activation modules (``nn.ReLU(inplace=True)``) are fed
a copy of their input while recording, so the layer's own output stays the pre-activation. Each
row keeps the activation as a callable (``Record.act_fn``), so its slope can be measured rather
than looked up by name.

Each weighted row also records the weighted layers that read its output (``Record.readers``):
a layer whose input is that output directly, after its paired activation, through dropout or
normalisation, or through ``nn.Flatten`` (then each unit owns a block of the reader's input
features). These are the row's outgoing weights, which symmetry needs. Other uses of the output
(a residual sum, pooling, a functional reshape) are not followed: then no reader is found.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from .thresholds import COLLAPSED_WEIGHT

__all__ = ["ACTIVATION_MODULES", "FUNCTIONAL", "PASS_THROUGH", "WEIGHTED", "Record", "NormRecord",
           "AttentionRecord", "BlockRecord", "Recorder", "record_forward"]

WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)
RECURRENT = (nn.RNNBase,)  # LSTM, GRU, RNN
# module class -> activation name (what verdicts and saturation checks key on).
ACTIVATION_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.SELU: "selu",
    nn.GELU: "gelu", nn.SiLU: "silu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Identity: "linear",
    nn.Softplus: "softplus", nn.Mish: "mish", nn.Hardtanh: "hardtanh", nn.CELU: "celu",
    nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.PReLU: "prelu", nn.RReLU: "rrelu",
    nn.Softsign: "softsign", nn.LogSigmoid: "logsigmoid", nn.Tanhshrink: "tanhshrink",
    nn.Hardshrink: "hardshrink", nn.Softshrink: "softshrink",
}
# functional activation -> activation name; torch.*, torch.nn.functional.* and Tensor methods.
FUNCTIONAL: dict[object, str] = {
    torch.relu: "relu", F.relu: "relu", torch.Tensor.relu: "relu", F.relu6: "relu6",
    torch.tanh: "tanh", F.tanh: "tanh", torch.Tensor.tanh: "tanh",
    torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", torch.Tensor.sigmoid: "sigmoid",
    F.leaky_relu: "leaky_relu", F.elu: "elu", F.selu: "selu", torch.selu: "selu", F.celu: "celu",
    F.gelu: "gelu", F.silu: "silu", F.mish: "mish", F.softplus: "softplus", F.hardtanh: "hardtanh",
    F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid",
}
# Modules that keep a layer's units (so the activation after them still belongs to that layer).
PASS_THROUGH = (
    nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.Dropout, nn.RMSNorm,
    nn.modules.instancenorm._InstanceNorm,
)
_CONV = {torch.conv1d: 1, torch.conv2d: 2, torch.conv3d: 3}
_MATMUL = {torch.matmul, torch.mm, torch.Tensor.matmul, torch.Tensor.mm, torch.Tensor.__matmul__}
_ADDMM = {torch.addmm, torch.Tensor.addmm}
# function -> (position of the weight, of the bias) among its arguments
_NORMS = {F.layer_norm: (2, 3), F.group_norm: (2, 3), F.batch_norm: (3, 4), F.instance_norm: (3, 4),
          F.rms_norm: (2, None)}
_SOFTMAX = {F.softmax, torch.softmax, torch.Tensor.softmax}
_VIEWS = {torch.Tensor.view, torch.Tensor.reshape, torch.reshape}
_PRODUCT = {torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.div, torch.Tensor.div,
            torch.Tensor.__truediv__, torch.Tensor.__rtruediv__}
_ARITHMETIC = _PRODUCT | {torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__, torch.sub,
                          torch.Tensor.sub, torch.Tensor.__sub__, torch.Tensor.__rsub__}


@dataclass
class Record:
    """One row: a weighted layer (``weight`` set) and the activation that consumed its output,
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
    act_key: object = None  # hashable identity of ``act_fn`` (its class or function, and its settings)
    input_rms: float = 0.0  # sqrt(mean(x^2)) of a weighted layer's input (the scale a variance-preserving init assumes is 1)
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
class AttentionRecord:
    """One attention softmax: ``logits`` (batch, heads, queries, keys), masked entries -inf."""

    name: str
    logit_std: float  # std of the unmasked logits (q k^T * scale, plus an additive mask)
    # over the (batch, head, query) rows with at least 2 keys to attend to (nan when there are none):
    entropy: float  # mean of H(p) / log(keys it may attend to); 1 = uniform
    max_weight: float  # mean of the largest attention weight
    collapsed_fraction: float  # share of rows whose largest weight is >= COLLAPSED_WEIGHT
    heads: int
    keys: int




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


@dataclass
class Recorder:
    """Hooks on ``model`` that fill :attr:`records` during the next forward pass.

    ``attach()`` registers the hooks, ``detach()`` removes them (always call it; or use
    :func:`record_forward`). Only the first forward with autograd on is recorded, so an
    evaluation pass under ``torch.no_grad()`` between two training steps does not count.
    ``keep_grads`` registers tensor hooks that store each row's output gradient in
    :attr:`grads` during ``backward`` (the Monitor's way; ``diagnose`` asks autograd directly).
    """

    model: nn.Module
    functional: bool = True
    keep_grads: bool = False
    records: list[Record] = field(default_factory=list)
    grads: dict[int, torch.Tensor] = field(default_factory=dict)  # row index -> d loss / d output
    norms: list[NormRecord] = field(default_factory=list)
    attention: list[AttentionRecord] = field(default_factory=list)
    blocks: list[BlockRecord] = field(default_factory=list)
    uses: dict[str, set[str]] = field(default_factory=dict)  # parameter name -> operations that used it

    def __post_init__(self) -> None:
        self._handles: list = []
        self._owner: dict[int, Record] = {}
        self._feeds: dict[int, tuple[Record, bool]] = {}  # tensor id -> (row whose units it holds, flattened)
        self._pristine: dict[int, torch.Tensor] = {}  # in-place activation's input copy -> its values before
        self._keep: list[torch.Tensor] = []  # keeps tensors alive so their ids stay unique
        self._stack: list[tuple[str, nn.Module]] = []
        self._names: dict[int, str] = {}
        self._param_names: dict[int, str] = {}
        self._param_owner: dict[int, tuple[str, str]] = {}  # id(param) -> (module name, attribute)
        self._inside: dict[int, int] = defaultdict(int)  # id(param) of modules measured by their own hook, running now
        self._block_index: dict[str, str] = {}  # "h.3" -> "h.*" for repeated blocks
        self._block_inputs: dict[int, float] = {}
        self._custom: dict[object, bool] = {}  # (class, repr) -> acts elementwise
        self._lone_out: dict[int, Record] = {}  # a lone activation's output (or it shifted/scaled by a number) -> its row
        self._probing = False
        self._mode: _FunctionalMode | None = None
        self.done = False

    # -- life cycle -------------------------------------------------------------------------
    def attach(self) -> Recorder:
        """Register the hooks (idempotent); clears previous records."""
        if self._handles:
            return self
        self.records, self.grads, self.done = [], {}, False
        self.norms, self.attention, self.blocks, self.uses = [], [], [], {}
        self._owner, self._feeds, self._pristine, self._keep, self._stack = {}, {}, {}, [], []
        root = self.model
        self._param_names = {id(p): n for n, p in root.named_parameters()}
        for name, module in root.named_modules():
            for attr, p in module._parameters.items():
                if p is not None and id(p) not in self._param_owner:
                    self._param_owner[id(p)] = (name, attr)
        self._block_index = _repeated_blocks(root)
        for name, module in root.named_modules():
            self._names[id(module)] = name
            if isinstance(module, WEIGHTED + RECURRENT) or _is_hf_conv1d(module):
                self._handles.append(module.register_forward_pre_hook(self._enter))
                self._handles.append(module.register_forward_hook(self._on_weighted))
            elif isinstance(module, PASS_THROUGH + (nn.Flatten,)):
                self._handles.append(module.register_forward_hook(self._on_pass_through))
            elif type(module) in ACTIVATION_MODULES:
                if getattr(module, "inplace", False):
                    self._handles.append(module.register_forward_pre_hook(self._copy_input))
                self._handles.append(module.register_forward_hook(self._on_activation))
            elif _is_custom_norm(module):
                self._handles.append(module.register_forward_pre_hook(self._norm_in))
                self._handles.append(module.register_forward_hook(self._on_custom_norm))
            elif _may_be_activation(module):
                self._handles.append(module.register_forward_hook(self._on_custom))
            if name in self._block_index:
                self._handles.append(module.register_forward_pre_hook(self._block_in, with_kwargs=True))
                self._handles.append(module.register_forward_hook(self._block_out))
            if self.functional and name and _may_call_functional(module):
                self._handles.append(module.register_forward_pre_hook(self._push))
                self._handles.append(module.register_forward_hook(self._pop))
        self._handles.append(root.register_forward_pre_hook(self._begin))
        self._handles.append(root.register_forward_hook(self._end))
        return self

    def detach(self) -> None:
        """Remove every hook (and leave the functional mode if a forward raised inside it)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        self._owner, self._feeds, self._pristine, self._keep, self._stack = {}, {}, {}, [], []
        self._inside = defaultdict(int)

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    # -- root -------------------------------------------------------------------------------
    def _recording(self) -> bool:
        return not self.done and torch.is_grad_enabled()

    def _begin(self, module, inputs):
        if self._recording() and self.functional and self._mode is None:
            self._mode = _FunctionalMode(self)
            self._mode.__enter__()

    def _end(self, module, inputs, output):
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        if self._recording() and self.records:
            self.done = True
            self._owner, self._feeds, self._pristine, self._keep = {}, {}, {}, []

    # -- naming -----------------------------------------------------------------------------
    def role(self, name: str) -> str:
        """``name`` with every repeated-block index replaced by ``*`` (``h.3.attn`` -> ``h.*.attn``)."""
        parts = name.split(".")
        out = list(parts)
        for k in range(len(parts)):
            if ".".join(parts[:k + 1]) in self._block_index:
                out[k] = "*"
        return ".".join(out)

    def param_name(self, p: torch.Tensor) -> str:
        return self._param_names.get(id(p), "")

    def _row_name(self, weight: torch.Tensor) -> str:
        """A functional row's name: the weight's owner module, plus the attribute unless it is ``weight``."""
        owner, attr = self._param_owner.get(id(weight), ("", "weight"))
        if attr != "weight":
            attr = attr[: -len("_weight")] if attr.endswith("_weight") else attr
            owner = f"{owner}.{attr}" if owner else attr
        return owner or "weight"

    # -- modules ----------------------------------------------------------------------------
    def _push(self, module, inputs):
        self._stack.append((self._names.get(id(module), ""), module))

    def _pop(self, module, inputs, output):
        if self._stack:
            self._stack.pop()

    def _enter(self, module, inputs):
        for p in module.parameters(recurse=False):
            self._inside[id(p)] += 1

    def _leave(self, module) -> None:
        for p in module.parameters(recurse=False):
            if self._inside.get(id(p), 0) > 0:
                self._inside[id(p)] -= 1

    def _unique(self, name: str) -> str:
        taken = sum(1 for r in self.records if r.name == name or r.name.startswith(name + "#"))
        return name if taken == 0 else f"{name}#{taken + 1}"

    def _add(self, rec: Record) -> None:
        self.records.append(rec)
        if self.keep_grads and rec.output.requires_grad:
            index = len(self.records) - 1
            rec.output.register_hook(lambda g, i=index: self.grads.__setitem__(i, g))

    def _on_weighted(self, module, inputs, output):
        self._leave(module)
        if not self._recording():
            return
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        name = self._names.get(id(module), type(module).__name__)
        kind = type(module).__name__
        if isinstance(module, RECURRENT):
            out = output[0] if isinstance(output, tuple) else output
            out = getattr(out, "data", out) if not isinstance(out, torch.Tensor) else out  # PackedSequence
            if not isinstance(out, torch.Tensor):
                return
            weights = [p for n, p in module.named_parameters(recurse=False) if n.startswith("weight")]
            biases = [p for n, p in module.named_parameters(recurse=False) if n.startswith("bias")]
            rows = _recurrent_rows(module)
            self._weighted_row(name, module, module.weight_hh_l0, weights, biases, rows, x, out, -1,
                               fan_in=module.hidden_size, fan_out=module.hidden_size, kind=kind)
            return
        if not isinstance(output, torch.Tensor):
            return
        bias = getattr(module, "bias", None)
        biases = [bias] if isinstance(bias, torch.Tensor) else []
        weight = module.weight
        if _is_hf_conv1d(module):  # weight (in, out)
            rows, unit_dim, fan_in, fan_out = weight.t(), -1, weight.shape[0], weight.shape[1]
        elif isinstance(module, nn.modules.conv._ConvTransposeNd):  # weight (in, out / groups, *kernel)
            rows, unit_dim = weight.transpose(0, 1), 1
            receptive = math.prod(weight.shape[2:])
            fan_in, fan_out = weight.shape[0] * receptive, weight.shape[1] * receptive
        else:
            rows = weight
            unit_dim = -1 if isinstance(module, nn.Linear) else 1
            receptive = math.prod(weight.shape[2:]) if weight.ndim > 2 else 1
            fan_in, fan_out = math.prod(weight.shape[1:]), weight.shape[0] * receptive
        groups = getattr(module, "groups", 1) if not isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
        self._weighted_row(name, module, weight, [weight], biases, rows, x, output, unit_dim, fan_in, fan_out, kind,
                           groups=groups)  # groups 0: never a reader (its columns are not the source's units)

    def _weighted_row(self, name: str, module: nn.Module | None, main: torch.Tensor, weights: list[torch.Tensor],
                      biases: list[torch.Tensor], rows: torch.Tensor, x: torch.Tensor | None, output: torch.Tensor,
                      unit_dim: int, fan_in: int, fan_out: int, kind: str, groups: int = 1) -> Record:
        out = output.detach()
        rms = float(x.detach().double().pow(2).mean().sqrt()) if x is not None and x.numel() and x.is_floating_point() else 0.0
        params = [self.param_name(p) for p in [*weights, *biases] if self.param_name(p)]
        rec = Record(self._unique(name), module, output, unit_dim,
                     pre_std=float(out.float().std()) if out.numel() > 1 else 0.0, kind=kind, input_rms=rms,
                     weight=rows, weights=weights, biases=biases, fan_in=int(fan_in), fan_out=int(fan_out),
                     role=self.role(name), params=params)
        if x is not None and id(x) in self._feeds:
            self._add_reader(*self._feeds[id(x)], rows, groups, unit_dim, x)
        self._add(rec)
        self._owner[id(output)] = rec
        self._feeds[id(output)] = (rec, False)
        self._keep.append(output)
        return rec

    def _add_reader(self, source: Record, flattened: bool, reader: torch.Tensor, groups: int, unit_dim: int,
                    x: torch.Tensor) -> None:
        """Note ``reader`` (``(out, in, *kernel)``, reading ``x``) as a reader of ``source``'s units,
        if its weight columns map onto them."""
        units = source.output.shape[source.unit_dim]
        if groups != 1 or reader.ndim < 2:
            return
        per_unit = reader.shape[1] // units if units else 0
        if per_unit * units != reader.shape[1] or (per_unit != 1 and not flattened):
            return
        if not flattened and x.shape[unit_dim] != units:
            return
        source.readers.append((reader, per_unit))

    def _on_pass_through(self, module, inputs, output):
        if not (self._recording() and inputs and isinstance(output, torch.Tensor)):
            return
        key = id(inputs[0])
        if key in self._owner and not isinstance(module, nn.Flatten):
            self._owner[id(output)] = self._owner[key]
            self._keep.append(output)
        if key in self._feeds:
            source, flattened = self._feeds[key]
            if isinstance(module, nn.Flatten):
                # only a channel-first flatten of (N, C, ...) into (N, C * ...) keeps each unit's block contiguous
                if module.start_dim != 1 or module.end_dim != -1 or source.unit_dim != 1 or flattened:
                    return
                flattened = True
            self._feeds[id(output)] = (source, flattened)
            self._keep.append(output)

    def _copy_input(self, module, inputs):
        # An in-place activation would overwrite the layer's recorded output: feed it a copy.
        if self._recording() and inputs and id(inputs[0]) in self._owner:
            copy = inputs[0].clone()
            self._owner[id(copy)] = self._owner[id(inputs[0])]
            if id(inputs[0]) in self._feeds:
                self._feeds[id(copy)] = self._feeds[id(inputs[0])]
            self._pristine[id(copy)] = inputs[0].detach().clone()  # the copy is overwritten in place
            self._keep.append(copy)
            return (copy, *inputs[1:])
        return None

    def _on_activation(self, module, inputs, output):
        if self._recording():
            name = self._names.get(id(module), type(module).__name__)
            fn = _module_fn(module)
            key = (type(module), repr(module).replace("inplace=True", "inplace=False"))
            params = list(module.parameters(recurse=False))  # PReLU's slope
            self._activation(ACTIVATION_MODULES[type(module)], inputs[0] if inputs else None, output,
                             name, type(module).__name__, fn, key, params)

    def _on_custom(self, module, inputs, output):
        """A parameter-free leaf module of the user's (or a library's) that acts elementwise: an activation."""
        if not (self._recording() and inputs and isinstance(inputs[0], torch.Tensor)
                and isinstance(output, torch.Tensor) and output.shape == inputs[0].shape):
            return
        if not self._is_custom_activation(module, inputs[0].device):
            return
        name = self._names.get(id(module), type(module).__name__)
        key = (type(module), repr(module))
        self._activation(type(module).__name__, inputs[0], output, name, type(module).__name__, _module_fn(module), key)

    def _is_custom_activation(self, module: nn.Module, device: torch.device | None = None) -> bool:
        key = (type(module), repr(module))
        if key not in self._custom:
            self._probing = True
            try:
                self._custom[key] = _acts_elementwise(_module_fn(module), device)
            finally:
                self._probing = False
        return self._custom[key]

    def _in_activation_module(self, device: torch.device | None = None) -> bool:
        if not self._stack:
            return False
        module = self._stack[-1][1]
        return type(module) in ACTIVATION_MODULES or (_may_be_activation(module)
                                                      and self._is_custom_activation(module, device))

    def _functional(self, kind: str, func, args, kwargs, output) -> None:
        # Activation modules report themselves; their internal F.relu/torch.tanh call does not.
        if self._in_activation_module(args[0].device if isinstance(args[0], torch.Tensor) else None):
            return
        func_name = getattr(func, "__name__", kind)
        where = self._stack[-1][0] if self._stack else ""
        rest, kw = tuple(args[1:]), {k: v for k, v in kwargs.items() if k != "inplace"}
        fn = _functional_fn(func, rest, kw)
        key = (func, _hashable_or_repr(rest), _hashable_or_repr(tuple(sorted(kw.items()))))
        self._activation(kind, args[0], output, f"{where}:{func_name}()" if where else f"{func_name}()",
                         f"{func_name}()", fn, key)

    def _activation(self, kind: str, x, output, name: str, label: str, fn=None, key=None, params=()) -> None:
        if not isinstance(output, torch.Tensor) or not isinstance(x, torch.Tensor):
            return
        names = [self.param_name(p) for p in params if self.param_name(p)]
        rec = self._owner.get(id(x))
        if rec is not None and rec.act_output is None and rec.weighted:
            rec.activation, rec.act_output, rec.act_fn, rec.act_key = kind, output, fn, key
            rec.act_input = self._pristine.get(id(x), x)
            rec.params.extend(names)
            if id(x) in self._feeds:
                self._feeds[id(output)] = self._feeds[id(x)]
                self._keep.append(output)
            return
        if kind == "linear":  # an Identity on its own measures nothing new
            return
        last = next((r for r in reversed(self.records) if r.weighted), None)
        unit_dim = last.unit_dim if last is not None and output.ndim == last.output.ndim else (1 if output.ndim > 2 else -1)
        lone = Record(self._unique(name), None, output, unit_dim, activation=kind, act_output=output,
                      pre_std=float(x.detach().float().std()) if x.numel() > 1 else 0.0, kind=label, act_fn=fn,
                      act_key=key, params=names)
        lone.act_input = self._pristine.get(id(x), x)
        self._add(lone)
        self._lone_out[id(output)] = lone
        self._keep.append(output)

    def _norm_in(self, module, inputs):
        if self._recording() and inputs and isinstance(inputs[0], torch.Tensor) and inputs[0].numel() > 1:
            self._block_inputs[id(module)] = float(inputs[0].detach().float().std())

    def _on_custom_norm(self, module, inputs, output):
        """A normalisation module of the user's or a library's (Llama's RMSNorm): its gain is measured here."""
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if not self._recording() or not isinstance(output, torch.Tensor) or x is None or output.shape != x.shape:
            return
        weight = getattr(module, "weight", None)
        params = [self.param_name(p) for p in module.parameters(recurse=False) if self.param_name(p)]
        with torch.no_grad():
            self.norms.append(NormRecord(
                self._names.get(id(module), type(module).__name__), type(module).__name__,
                self._block_inputs.pop(id(module), float("nan")),
                float(output.detach().float().std()) if output.numel() > 1 else 0.0,
                float(weight.detach().float().mean()) if isinstance(weight, torch.Tensor) else 1.0, params))
        if id(x) in self._owner:  # a norm keeps the layer's units
            self._owner[id(output)] = self._owner[id(x)]
            self._keep.append(output)

    # -- blocks -----------------------------------------------------------------------------
    def _block_in(self, module, inputs, kwargs):
        if self._recording():
            x = _first_tensor(inputs) if inputs else _first_tensor(kwargs.get("hidden_states", kwargs.get("src")))
            if x is not None and x.is_floating_point() and x.numel() > 1:
                self._block_inputs[id(module)] = float(x.detach().float().std())

    def _block_out(self, module, inputs, output):
        out = _first_tensor(output)
        if not self._recording() or out is None or not out.is_floating_point():
            return
        name = self._names.get(id(module), "")
        group, _, index = name.rpartition(".")
        self.blocks.append(BlockRecord(name, group, int(index), self._block_inputs.pop(id(module), float("nan")), out))

    # -- functional calls that touch parameters ----------------------------------------------
    def _params_in(self, args, kwargs) -> list[torch.Tensor]:
        found = []
        for a in [*args, *kwargs.values()]:
            if isinstance(a, (list, tuple)):
                found.extend(t for t in a if isinstance(t, torch.Tensor) and id(t) in self._param_names)
            elif isinstance(a, torch.Tensor) and id(a) in self._param_names:
                found.append(a)
        return found

    def _seen(self, func, args, kwargs, out) -> None:
        """Every torch call while recording: parameters used, weighted functional calls, norms,
        attention, activations, reshapes of a row's output."""
        params = self._params_in(args, kwargs)
        if params:
            op = _op_name(func)
            for p in params:
                self.uses.setdefault(self.param_name(p), set()).add(op)
            if any(self._inside.get(id(p), 0) for p in params):
                return  # a Linear/Conv/LSTM module measures its own weights
            if self._functional_weighted(func, args, kwargs, out) or self._norm(func, args, kwargs, out):
                return
        if func in _ARITHMETIC and self._lone_out:
            self._arithmetic(func, args, out)
        if func in _SOFTMAX:
            self._softmax(args, kwargs, out)
        elif func is F.scaled_dot_product_attention:
            self._sdpa(args, kwargs)
        elif func in _VIEWS:
            self._view(args, out)
        else:
            kind = FUNCTIONAL.get(func) if _hashable(func) else None
            if kind is not None and args:
                self._functional(kind, func, args, kwargs, out)

    def _arithmetic(self, func, args, out) -> None:
        """Follow a lone activation's output through ``+ - * /`` with numbers; a product with
        another tensor makes it part of an expression (``Record.composite``)."""
        if not isinstance(out, torch.Tensor) or len(args) < 2:
            return
        for mine, other in ((args[0], args[1]), (args[1], args[0])):
            rec = self._lone_out.get(id(mine)) if isinstance(mine, torch.Tensor) else None
            if rec is None:
                continue
            if not isinstance(other, torch.Tensor) or other.numel() == 1:
                self._lone_out[id(out)] = rec
                self._keep.append(out)
            elif func in _PRODUCT:
                rec.composite = True

    def _arg(self, args, kwargs, i: int, name: str):
        return args[i] if len(args) > i else kwargs.get(name)

    def _is_param(self, t) -> bool:
        return isinstance(t, torch.Tensor) and id(t) in self._param_names

    def _functional_weighted(self, func, args, kwargs, out) -> bool:
        if not isinstance(out, torch.Tensor):
            return False
        if func is F.linear or func is torch._C._nn.linear:
            x, w, b = self._arg(args, kwargs, 0, "input"), self._arg(args, kwargs, 1, "weight"), self._arg(args, kwargs, 2, "bias")
            if not self._is_param(w) or w.ndim != 2:
                return False
            self._weighted_row(self._row_name(w), self._owner_module(w), w, [w], [b] if self._is_param(b) else [],
                               w, x, out, -1, w.shape[1], w.shape[0], "linear()")
            return True
        if func in _CONV:
            x, w, b = self._arg(args, kwargs, 0, "input"), self._arg(args, kwargs, 1, "weight"), self._arg(args, kwargs, 2, "bias")
            if not self._is_param(w):
                return False
            groups = self._arg(args, kwargs, 6, "groups") or 1
            receptive = math.prod(w.shape[2:])
            self._weighted_row(self._row_name(w), self._owner_module(w), w, [w], [b] if self._is_param(b) else [],
                               w, x, out, 1, math.prod(w.shape[1:]), w.shape[0] * receptive, f"conv{_CONV[func]}d()",
                               groups=int(groups))
            return True
        if func is F.embedding:
            w = self._arg(args, kwargs, 1, "weight")
            if not self._is_param(w) or w.ndim != 2:
                return False
            self._weighted_row(self._row_name(w), self._owner_module(w), w, [w], [], w.t(), None, out, -1, 0, 0,
                               "Embedding")
            return True
        if func in _ADDMM or func in _MATMUL:
            first = 1 if func in _ADDMM else 0  # addmm(bias, x, W); matmul(x, W)
            if len(args) < first + 2:
                return False
            a, w = args[first], args[first + 1]
            if not self._is_param(w) or w.ndim != 2 or self._is_param(a):
                return False
            b = args[0] if func in _ADDMM and self._is_param(args[0]) else None
            self._weighted_row(self._row_name(w), self._owner_module(w), w, [w], [b] if b is not None else [],
                               w.t(), a, out, -1, w.shape[0], w.shape[1], "addmm()" if func in _ADDMM else "matmul()")
            return True
        return False

    def _owner_module(self, p: torch.Tensor) -> nn.Module | None:
        owner = self._param_owner.get(id(p))
        return self.model.get_submodule(owner[0]) if owner is not None else None

    def _norm(self, func, args, kwargs, out) -> bool:
        where = _NORMS.get(func) if _hashable(func) else None
        if where is None or not isinstance(out, torch.Tensor):
            return False
        x = args[0] if args else kwargs.get("input")
        w = self._arg(args, kwargs, where[0], "weight")
        b = self._arg(args, kwargs, where[1], "bias") if where[1] is not None else None
        params = [self.param_name(p) for p in (w, b) if self._is_param(p)]
        if not params:
            return False
        name = self._row_name(w) if self._is_param(w) else self._row_name(b)
        with torch.no_grad():
            self.norms.append(NormRecord(
                name, func.__name__,
                float(x.detach().float().std()) if isinstance(x, torch.Tensor) and x.numel() > 1 else 0.0,
                float(out.detach().float().std()) if out.numel() > 1 else 0.0,
                float(w.detach().float().mean()) if isinstance(w, torch.Tensor) else 1.0, params))
        if isinstance(x, torch.Tensor) and id(x) in self._owner:  # a norm keeps the layer's units
            self._owner[id(out)] = self._owner[id(x)]
            self._keep.append(out)
        return True

    def _view(self, args, out) -> None:
        """A reshape that keeps the last axis keeps a Linear-like row's units."""
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor) or out.ndim == 0 or x.ndim == 0:
            return
        rec = self._owner.get(id(x))
        if rec is None or rec.unit_dim != -1 or out.shape[-1] != x.shape[-1]:
            return
        self._owner[id(out)] = rec
        if id(x) in self._feeds:
            self._feeds[id(out)] = self._feeds[id(x)]
        self._keep.append(out)

    def _where(self) -> str:
        return self._stack[-1][0] if self._stack else "attention"

    def _softmax(self, args, kwargs, out) -> None:
        x = args[0] if args else kwargs.get("input")
        dim = self._arg(args, kwargs, 1, "dim")
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or dim not in (-1, x.ndim - 1):
            return
        module = self._stack[-1][1] if self._stack else None
        if x.ndim == 3 and isinstance(module, nn.MultiheadAttention) and x.shape[0] % module.num_heads == 0:
            x = x.reshape(-1, module.num_heads, *x.shape[1:])  # (batch * heads, T, S) with need_weights=True
        if x.ndim == 4:
            self._attention(x.detach().float())

    def _sdpa(self, args, kwargs) -> None:
        q, k = self._arg(args, kwargs, 0, "query"), self._arg(args, kwargs, 1, "key")
        if not (isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor)) or q.ndim != 4 or k.ndim != 4:
            return
        mask = self._arg(args, kwargs, 3, "attn_mask")
        causal = bool(self._arg(args, kwargs, 5, "is_causal"))
        scale = self._arg(args, kwargs, 6, "scale")
        with torch.no_grad():
            q, k = q.detach().float(), k.detach().float()
            if k.shape[1] != q.shape[1] and q.shape[1] % k.shape[1] == 0:  # grouped-query attention
                k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
            logits = (q @ k.transpose(-2, -1)) * scale  # (B, H, T, S)
            if causal:
                t, s = logits.shape[-2:]
                keep = torch.ones(t, s, dtype=torch.bool, device=logits.device).tril(s - t)
                logits = logits.masked_fill(~keep, float("-inf"))
            if isinstance(mask, torch.Tensor):
                logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask.float()
        self._attention(logits)

    def _attention(self, logits: torch.Tensor) -> None:
        """Logit scale and softmax entropy of one attention, ``logits`` (B, H, T, S)."""
        with torch.no_grad():
            allowed = torch.isfinite(logits) & (logits > torch.finfo(logits.dtype).min / 2)
            n = allowed.sum(-1)  # (B, H, T) keys each query may attend to
            if not bool((n > 0).any()):
                return
            p = torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1).nan_to_num(0.0)
            h = -(p * p.clamp_min(1e-30).log()).sum(-1)  # (B, H, T)
            several = n >= 2  # a query with one key to attend to has no choice: neither uniform nor collapsed
            nan = float("nan")
            if bool(several.any()):
                entropy = float((h[several] / n[several].float().log()).mean())
                top = p.amax(-1)[several]
                largest, collapsed = float(top.mean()), float((top >= COLLAPSED_WEIGHT).float().mean())
            else:
                entropy = largest = collapsed = nan
            values = logits[allowed]
            self.attention.append(AttentionRecord(
                self._where(), float(values.std()) if values.numel() > 1 else 0.0, entropy, largest, collapsed,
                int(logits.shape[1]), int(logits.shape[-1])))

    def run_composite(self, func, args, kwargs, mode: TorchFunctionMode):
        """Run a composite torch function (``F.multi_head_attention_forward``) with the mode active
        inside it, so the projections it applies with ``F.linear`` are seen. Its entry check is
        bypassed for this call only: re-entering it would hand the call back to the mode."""
        saved = F.has_torch_function
        F.has_torch_function = lambda *a, **k: False
        try:
            with mode:
                return func(*args, **kwargs)
        finally:
            F.has_torch_function = saved


def _op_name(func) -> str:
    name = getattr(func, "__name__", str(func))
    owner = getattr(func, "__qualname__", name)
    if "." in owner and owner.startswith(("Tensor", "_TensorBase", "TensorBase")):
        return "Tensor." + owner.rpartition(".")[2]
    return f"torch.{name}"


def _first_tensor(obj) -> torch.Tensor | None:
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)) and obj:
        return _first_tensor(obj[0])
    if isinstance(obj, dict) and obj:
        return _first_tensor(next(iter(obj.values())))
    value = getattr(obj, "last_hidden_state", None)
    return value if isinstance(value, torch.Tensor) else None


def _signature(module: nn.Module) -> tuple:
    return (type(module), tuple((n, tuple(p.shape)) for n, p in module.named_parameters()))


def _repeated_blocks(root: nn.Module) -> dict[str, str]:
    """``{"h.3": "h.*", ...}``: children of a ModuleList/Sequential that are not leaves and repeat
    with the same class and parameter shapes (at least two of them): the model's blocks."""
    found: dict[str, str] = {}
    for name, module in root.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.Sequential)):
            continue
        if any(name.startswith(block + ".") for block in found):  # the layers inside a block are its roles
            continue
        children = [(n, c) for n, c in module.named_children() if n.isdigit() and any(True for _ in c.children())]
        counts: dict[tuple, int] = defaultdict(int)
        for _, c in children:
            counts[_signature(c)] += 1
        prefix = f"{name}." if name else ""
        for n, c in children:
            if counts[_signature(c)] >= 2:
                found[prefix + n] = prefix + "*"
    return found


def _is_hf_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): a Linear whose weight is stored ``(in, out)``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and isinstance(getattr(module, "weight", None), torch.Tensor)


def _recurrent_rows(module: nn.RNNBase) -> torch.Tensor:
    """``(units, gates * (input + hidden))`` of the first layer: each hidden unit's incoming weights
    over all its gates (LSTM: 4, GRU: 3, RNN: 1), input then recurrent; a bidirectional layer's
    reverse units follow its forward units, as in its output."""
    h = module.hidden_size
    directions = ["", "_reverse"] if module.bidirectional else [""]
    rows = []
    for suffix in directions:
        parts = []
        for w in (getattr(module, f"weight_ih_l0{suffix}"), getattr(module, f"weight_hh_l0{suffix}")):
            gates = w.shape[0] // h
            parts.append(w.reshape(gates, h, -1).transpose(0, 1).reshape(h, -1))
        rows.append(torch.cat(parts, dim=1))
    return torch.cat(rows, dim=0)


def _is_custom_norm(module: nn.Module) -> bool:
    """A leaf module, not one of torch's, named ``...Norm`` whose parameters are all 1-d gains or
    biases (Hugging Face's ``LlamaRMSNorm``, ``T5LayerNorm``): its own hooks measure it."""
    if isinstance(module, PASS_THROUGH) or module._modules or not module._parameters:
        return False
    return ("norm" in type(module).__name__.lower()
            and all(p is None or p.ndim == 1 for p in module._parameters.values()))


def _may_call_functional(module: nn.Module) -> bool:
    """Modules whose ``forward`` is user code (containers and custom blocks), tracked for naming."""
    return not isinstance(module, WEIGHTED + PASS_THROUGH + RECURRENT) or type(module) in ACTIVATION_MODULES


def _may_be_activation(module: nn.Module) -> bool:
    """A leaf module without parameters whose class initlab does not know: maybe an activation."""
    if type(module) in ACTIVATION_MODULES or isinstance(module, WEIGHTED + PASS_THROUGH + RECURRENT + (nn.Flatten,)):
        return False
    return not module._modules and not module._parameters and type(module).forward is not nn.Module.forward


_PROBE = torch.linspace(-4.0, 4.0, 9)


def _acts_elementwise(fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device | None = None) -> bool:
    """``fn`` gives each value the same output whatever its neighbours: as a row, a column, reversed."""
    probe = _PROBE.to(device) if device is not None else _PROBE
    try:
        with torch.no_grad():
            a = fn(probe.clone())
            b = fn(probe.reshape(-1, 1).clone())
            c = fn(probe.reshape(1, -1).clone())
            d = fn(probe.flip(0).clone())
    except Exception:  # not callable on one tensor: not an activation
        return False
    if not all(isinstance(t, torch.Tensor) and t.numel() == _PROBE.numel() for t in (a, b, c, d)):
        return False
    a = a.reshape(-1).float().cpu()
    return bool(torch.allclose(a, b.reshape(-1).float().cpu(), equal_nan=True)
                and torch.allclose(a, c.reshape(-1).float().cpu(), equal_nan=True)
                and torch.allclose(a, d.reshape(-1).float().cpu().flip(0), equal_nan=True)
                and not torch.allclose(a, _PROBE))  # an identity measures nothing new


class _FunctionalMode(TorchFunctionMode):
    """Sees every torch call during the model's forward; hands each to the recorder."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rec = self.recorder
        if func is F.multi_head_attention_forward and rec._recording() and not rec._probing:
            out = rec.run_composite(func, args, kwargs, self)
        else:
            out = func(*args, **kwargs)
        if rec._recording() and not rec._probing:
            rec._seen(func, args, kwargs, out)
        return out


def _module_fn(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module``'s function without its hooks (so measuring it records nothing)."""
    forward = type(module).forward
    return lambda t: forward(module, t)


def _functional_fn(func, rest: tuple, kwargs: dict) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: func(t, *rest, **kwargs)


def _hashable_or_repr(obj: object) -> object:
    return obj if _hashable(obj) else repr(obj)


def _hashable(obj: object) -> bool:
    try:
        hash(obj)
    except TypeError:
        return False
    return True


@contextlib.contextmanager
def record_forward(model: nn.Module, functional: bool = True) -> Iterator[list[Record]]:
    """Record the next forward pass of ``model``; yields the list of rows, filled during the
    forward pass. The hooks are always removed on exit."""
    recorder = Recorder(model, functional=functional).attach()
    try:
        yield recorder.records
    finally:
        recorder.detach()


@contextlib.contextmanager
def recording(model: nn.Module) -> Iterator[Recorder]:
    """Like :func:`record_forward`, yielding the whole :class:`Recorder` (norms, attention, blocks, uses)."""
    recorder = Recorder(model, functional=True).attach()
    try:
        yield recorder
    finally:
        recorder.detach()
