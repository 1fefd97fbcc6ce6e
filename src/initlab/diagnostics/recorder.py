"""Forward hooks that find every weighted layer and every activation a forward pass reaches.

One recorder serves ``diagnose`` (one pass) and ``Monitor`` (armed on recording steps only),
so both measure the same things the same way.

What is covered:

- every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` (any ``_ConvNd``) module, each call;
- every activation module of :data:`ACTIVATION_MODULES`;
- functional activations called inside ``forward`` (``F.relu(x)``, ``torch.tanh(x)``,
  ``x.sigmoid()``, ``F.gelu(x)``, ... the table :data:`FUNCTIONAL`), seen through a
  ``torch.overrides.TorchFunctionMode`` that is active only while the model's own
  ``forward`` runs.

An activation whose input is a weighted layer's output (directly, or through a normalisation
or dropout module) is paired with that layer: one row, pre-activation and activation
statistics together. Any other activation (after a residual addition, say) gets its own row.
In-place activation modules (``nn.ReLU(inplace=True)``) are fed a copy of their input while
recording, so the layer's own output stays the pre-activation. Each row keeps the activation
as a callable (``Record.act_fn``), so its slope can be measured rather than looked up by name.

Each weighted row also records the weighted layers that read its output (``Record.readers``):
a layer whose input is that output directly, after its paired activation, through dropout or
normalisation, or through ``nn.Flatten`` (then each unit owns a block of the reader's input
features). These are the row's outgoing weights, which symmetry needs. Other uses of the output
(a residual sum, pooling, a functional reshape) are not followed: then no reader is found.

Not seen: weights used through functional calls (``F.linear(x, w)``, the projections inside
``nn.MultiheadAttention``), recurrent layers, and activations outside the table above.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["ACTIVATION_MODULES", "FUNCTIONAL", "PASS_THROUGH", "WEIGHTED", "Record", "Recorder", "record_forward"]

WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)
# module class -> activation name (what verdicts and saturation checks key on).
ACTIVATION_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.SELU: "selu",
    nn.GELU: "gelu", nn.SiLU: "silu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Identity: "linear",
    nn.Softplus: "softplus", nn.Mish: "mish", nn.Hardtanh: "hardtanh", nn.CELU: "celu",
}
# functional activation -> activation name; torch.*, torch.nn.functional.* and Tensor methods.
FUNCTIONAL: dict[object, str] = {
    torch.relu: "relu", F.relu: "relu", torch.Tensor.relu: "relu", F.relu6: "relu6",
    torch.tanh: "tanh", F.tanh: "tanh", torch.Tensor.tanh: "tanh",
    torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", torch.Tensor.sigmoid: "sigmoid",
    F.leaky_relu: "leaky_relu", F.elu: "elu", F.selu: "selu", torch.selu: "selu", F.celu: "celu",
    F.gelu: "gelu", F.silu: "silu", F.mish: "mish", F.softplus: "softplus", F.hardtanh: "hardtanh",
}
# Modules that keep a layer's units (so the activation after them still belongs to that layer).
PASS_THROUGH = (
    nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.Dropout,
    nn.modules.instancenorm._InstanceNorm,
)


@dataclass
class Record:
    """One row: a weighted layer (``module`` set) and the activation that consumed its output,
    or an activation on its own (``module`` None)."""

    name: str
    module: nn.Module | None
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
    # weighted layers reading this row's output, each with the number of input features per unit
    # (1 when it reads the units directly, the spatial size when it reads them through nn.Flatten)
    readers: list[tuple[nn.Module, int]] = field(default_factory=list)

    @property
    def weighted(self) -> bool:
        return self.module is not None


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

    def __post_init__(self) -> None:
        self._handles: list = []
        self._owner: dict[int, Record] = {}
        self._feeds: dict[int, tuple[Record, bool]] = {}  # tensor id -> (row whose units it holds, flattened)
        self._pristine: dict[int, torch.Tensor] = {}  # in-place activation's input copy -> its values before
        self._keep: list[torch.Tensor] = []  # keeps tensors alive so their ids stay unique
        self._stack: list[tuple[str, nn.Module]] = []
        self._names: dict[int, str] = {}
        self._mode: _FunctionalMode | None = None
        self.done = False

    # -- life cycle -------------------------------------------------------------------------
    def attach(self) -> Recorder:
        """Register the hooks (idempotent); clears previous records."""
        if self._handles:
            return self
        self.records, self.grads, self.done = [], {}, False
        self._owner, self._feeds, self._pristine, self._keep, self._stack = {}, {}, {}, [], []
        root = self.model
        for name, module in root.named_modules():
            self._names[id(module)] = name
            if isinstance(module, WEIGHTED):
                self._handles.append(module.register_forward_hook(self._on_weighted))
            elif isinstance(module, PASS_THROUGH + (nn.Flatten,)):
                self._handles.append(module.register_forward_hook(self._on_pass_through))
            elif type(module) in ACTIVATION_MODULES:
                if getattr(module, "inplace", False):
                    self._handles.append(module.register_forward_pre_hook(self._copy_input))
                self._handles.append(module.register_forward_hook(self._on_activation))
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

    # -- modules ----------------------------------------------------------------------------
    def _push(self, module, inputs):
        self._stack.append((self._names.get(id(module), ""), module))

    def _pop(self, module, inputs, output):
        if self._stack:
            self._stack.pop()

    def _unique(self, name: str) -> str:
        taken = sum(1 for r in self.records if r.name == name or r.name.startswith(name + "#"))
        return name if taken == 0 else f"{name}#{taken + 1}"

    def _add(self, rec: Record) -> None:
        self.records.append(rec)
        if self.keep_grads and rec.output.requires_grad:
            index = len(self.records) - 1
            rec.output.register_hook(lambda g, i=index: self.grads.__setitem__(i, g))

    def _on_weighted(self, module, inputs, output):
        if not self._recording() or not isinstance(output, torch.Tensor):
            return
        unit_dim = -1 if isinstance(module, nn.Linear) else 1
        out = output.detach()
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        rms = float(x.detach().double().pow(2).mean().sqrt()) if x is not None and x.numel() else 0.0
        rec = Record(self._unique(self._names.get(id(module), type(module).__name__)), module, output, unit_dim,
                     pre_std=float(out.std()) if out.numel() > 1 else 0.0, kind=type(module).__name__,
                     input_rms=rms)
        if x is not None and id(x) in self._feeds:
            self._add_reader(*self._feeds[id(x)], module, x)
        self._add(rec)
        self._owner[id(output)] = rec
        self._feeds[id(output)] = (rec, False)
        self._keep.append(output)

    def _add_reader(self, source: Record, flattened: bool, module: nn.Module, x: torch.Tensor) -> None:
        """Note ``module`` (reading ``x``) as a reader of ``source``'s units, if its weight columns map onto them."""
        units = source.output.shape[source.unit_dim]
        weight = getattr(module, "weight", None)
        if weight is None or getattr(module, "groups", 1) != 1 or weight.ndim < 2:
            return
        per_unit = weight.shape[1] // units if units else 0
        if per_unit * units != weight.shape[1] or (per_unit != 1 and not flattened):
            return
        if not flattened and x.shape[1 if isinstance(module, nn.modules.conv._ConvNd) else -1] != units:
            return
        source.readers.append((module, per_unit))

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
            self._activation(ACTIVATION_MODULES[type(module)], inputs[0] if inputs else None, output,
                             name, type(module).__name__, fn, key)

    def _functional(self, kind: str, func, args, kwargs, output) -> None:
        # Activation modules report themselves; their internal F.relu/torch.tanh call does not.
        if self._stack and type(self._stack[-1][1]) in ACTIVATION_MODULES:
            return
        func_name = getattr(func, "__name__", kind)
        where = self._stack[-1][0] if self._stack else ""
        rest, kw = tuple(args[1:]), {k: v for k, v in kwargs.items() if k != "inplace"}
        fn = _functional_fn(func, rest, kw)
        key = (func, _hashable_or_repr(rest), _hashable_or_repr(tuple(sorted(kw.items()))))
        self._activation(kind, args[0], output, f"{where}:{func_name}()" if where else f"{func_name}()",
                         f"{func_name}()", fn, key)

    def _activation(self, kind: str, x, output, name: str, label: str, fn=None, key=None) -> None:
        if not isinstance(output, torch.Tensor) or not isinstance(x, torch.Tensor):
            return
        rec = self._owner.get(id(x))
        if rec is not None and rec.act_output is None and rec.weighted:
            rec.activation, rec.act_output, rec.act_fn, rec.act_key = kind, output, fn, key
            rec.act_input = self._pristine.get(id(x), x)
            if id(x) in self._feeds:
                self._feeds[id(output)] = self._feeds[id(x)]
                self._keep.append(output)
            return
        if kind == "linear":  # an Identity on its own measures nothing new
            return
        last = next((r for r in reversed(self.records) if r.weighted), None)
        unit_dim = last.unit_dim if last is not None and output.ndim == last.output.ndim else (1 if output.ndim > 2 else -1)
        lone = Record(self._unique(name), None, output, unit_dim, activation=kind, act_output=output,
                      pre_std=float(x.detach().std()) if x.numel() > 1 else 0.0, kind=label, act_fn=fn, act_key=key)
        lone.act_input = self._pristine.get(id(x), x)
        self._add(lone)


def _may_call_functional(module: nn.Module) -> bool:
    """Modules whose ``forward`` is user code (containers and custom blocks), tracked for naming."""
    return not isinstance(module, WEIGHTED + PASS_THROUGH) or type(module) in ACTIVATION_MODULES


class _FunctionalMode(TorchFunctionMode):
    """Sees every torch call during the model's forward; reports the activation ones."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        kind = FUNCTIONAL.get(func) if _hashable(func) else None
        if kind is not None and args:
            self.recorder._functional(kind, func, args, kwargs or {}, out)
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
