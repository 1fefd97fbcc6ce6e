"""Keras 3 models on the torch backend: ``diagnose``, ``Monitor`` and initlab's initializers.

With ``KERAS_BACKEND=torch`` a Keras layer is a ``torch.nn.Module`` and calling it goes through
``nn.Module.__call__``, so torch forward hooks registered on a Keras layer fire, in eager calls
and during ``model.fit`` (whose torch trainer runs ``loss.backward()``, leaving each kernel's
gradient in ``layer.kernel.value.grad`` until the next step's ``zero_grad``). What does not work
is finding the layers through torch: ``model.named_modules()`` does not reach them (Keras keeps
its layers in its own lists), and a ``Dense`` applies its activation inside its own ``call``,
so the pre-activation never leaves the layer. :class:`KerasRecorder` therefore walks Keras'
own layer list and, while recording, takes the activation out of each ``Dense``/``Conv`` layer
and applies it in the layer's forward hook instead: the model computes exactly what it computed
before, and the hook sees both the pre-activation and the activation output.

Measured: ``Dense`` and ``Conv1D/2D/3D`` layers (their kernel, seen in torch's layout
``(out, in, *kernel)`` so fans and symmetry are read as for ``nn.Linear``/``nn.Conv``), the
activation inside them or in a following ``Activation``/``ReLU``/``LeakyReLU``/``ELU``/``Softmax``
layer (through ``Dropout`` and normalisation layers), and the outgoing weights of a layer read
directly by the next one; ``BatchNormalization``/``LayerNormalization``/``GroupNormalization`` calls
(input and output std, mean gain: ``Diagnosis.norms``, as the torch path records ``F.batch_norm``).
``Diagnosis.coverage`` counts the model's parameter tensors (every layer's trainable-kind variables,
named by their Keras paths, ``sequential/dense/kernel``) a row measured, and lists each other one
with why. Any other layer with weights (``Embedding``, ``LSTM``, ``EinsumDense``,
``DepthwiseConv2D``, ``Conv2DTranspose``, a LoRA-enabled or quantized ``Dense``, custom layers...)
is listed in :attr:`KerasDiagnosis.not_measured` with the reason, never measured wrongly.

Importing this module imports Keras; without Keras, or with Keras on another backend, it raises
one line saying what to install or set (:class:`KerasUnavailable`).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.hooks import RemovableHandle

from .._rng import make_generator
from .._validation import InitlabError, ValidationError, check_int

__all__ = [
    "KerasUnavailable", "require_keras", "KerasRecorder", "KerasDiagnosis",
    "diagnose_keras", "apply_init_keras", "Initializer", "initializer", "Monitor",
]


class KerasUnavailable(InitlabError, ImportError):
    """Keras 3 is missing or runs on a backend other than torch."""


def require_keras() -> Any:
    """Import Keras and check it is Keras 3 on the torch backend; else raise one line saying what to do."""
    try:
        keras = importlib.import_module("keras")
    except ModuleNotFoundError as err:
        if err.name == "keras":
            raise KerasUnavailable("initlab.keras needs Keras 3: pip install 'initlab[keras]', "
                                   "and set KERAS_BACKEND=torch before keras is imported") from None
        raise KerasUnavailable(f"importing keras failed ({type(err).__name__}: {err}); Keras 3 picks its backend "
                               "at import: set KERAS_BACKEND=torch before keras is imported") from None
    version = str(getattr(keras, "__version__", "0"))
    if int(version.split(".")[0] or 0) < 3:
        raise KerasUnavailable(f"initlab.keras needs Keras 3, found keras {version}: pip install 'initlab[keras]'")
    backend = keras.backend.backend()
    if backend != "torch":
        raise KerasUnavailable(f"initlab.keras needs Keras on the torch backend, but keras runs on {backend!r}: "
                               "set KERAS_BACKEND=torch before keras is imported")
    return keras


keras = require_keras()
from keras import layers as _kl  # noqa: E402  (after the check above, on purpose)

from ..diagnostics.monitor import Monitor as TorchMonitor  # noqa: E402
from ..diagnostics.pipeline import default_loss, diagnosis_from_rows, surrogate_loss  # noqa: E402
from ..diagnostics.readout import measure_readout  # noqa: E402
from ..diagnostics.rows import SAMPLE_SIZE, layer_stats, row_gradients, row_samples, tensor_norm  # noqa: E402
from ..diagnostics.types import Coverage, Diagnosis  # noqa: E402
from ..trace import Lineage, NormRecord, Record  # noqa: E402

WEIGHTED = (_kl.Dense, _kl.Conv1D, _kl.Conv2D, _kl.Conv3D)
ACTIVATION_LAYERS = (_kl.Activation, _kl.ReLU, _kl.LeakyReLU, _kl.ELU, _kl.Softmax)
# normalisation layers: passed through (they keep the units) and measured as initlab's torch path
# measures F.batch_norm/F.layer_norm/F.group_norm (input and output std, mean gain): a NormRecord
NORMS = {_kl.BatchNormalization: "batch_norm", _kl.LayerNormalization: "layer_norm", _kl.GroupNormalization: "group_norm"}
PASS_THROUGH = (_kl.Dropout, *NORMS, _kl.GaussianNoise, _kl.GaussianDropout, _kl.AlphaDropout, _kl.SpatialDropout1D,
                _kl.SpatialDropout2D, _kl.SpatialDropout3D, _kl.ActivityRegularization, _kl.Identity)
# Keras activation functions that act elementwise (their slope is then measured, as initlab does
# for torch activations); any other (softmax, custom callables) keeps its statistics but no slope.
ELEMENTWISE = {"relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "mish", "tanh", "sigmoid",
               "hard_sigmoid", "hard_silu", "softplus", "softsign", "celu", "exponential",
               "hard_tanh", "log_sigmoid", "tanh_shrink", "squareplus", "sparse_plus", "soft_shrink",
               "hard_shrink", "threshold"}
_NAMES = {"swish": "silu", "hard_swish": "hard_silu"}  # Keras aliases -> the name initlab's tables use


# -- layouts -------------------------------------------------------------------------------------
def to_torch_layout(kernel: torch.Tensor) -> torch.Tensor:
    """A Keras kernel ``(*kernel, in, out)`` (Dense: ``(in, out)``) as torch's ``(out, in, *kernel)``."""
    if kernel.ndim < 2:
        return kernel
    n = kernel.ndim
    return kernel.permute(n - 1, n - 2, *range(n - 2))


def to_keras_layout(weight: torch.Tensor) -> torch.Tensor:
    """torch's ``(out, in, *kernel)`` as a Keras kernel ``(*kernel, in, out)``; inverse of :func:`to_torch_layout`."""
    if weight.ndim < 2:
        return weight
    return weight.permute(*range(2, weight.ndim), 1, 0)


def torch_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The torch shape ``(out, in, *kernel)`` of a Keras kernel shape ``(*kernel, in, out)``."""
    shape = tuple(int(s) for s in shape)
    return shape if len(shape) < 2 else (shape[-1], shape[-2], *shape[:-2])


class KerasWeights:
    """A Keras ``Dense``/``Conv`` layer seen as initlab's diagnostics see ``nn.Linear``/``nn.Conv``:
    ``weight`` in torch's layout ``(out, in, *kernel)`` (a view of the kernel), ``bias``, ``groups``."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.groups = int(getattr(layer, "groups", 1) or 1)

    @property
    def kernel(self) -> torch.Tensor:
        """The kernel's torch parameter, in Keras' layout (what gradients are taken against)."""
        return cast(torch.Tensor, self.layer.kernel.value)

    @property
    def weight(self) -> torch.Tensor:
        return to_torch_layout(self.kernel)

    @property
    def bias(self) -> torch.Tensor | None:
        bias = getattr(self.layer, "bias", None)
        return None if bias is None else bias.value

    @property
    def weight_grad(self) -> torch.Tensor | None:
        """The kernel's ``.grad`` (left there by Keras' torch trainer) in torch's layout."""
        grad = self.kernel.grad
        return None if grad is None else to_torch_layout(grad)

    @property
    def fans(self) -> tuple[int, int]:
        """``(fan_in, fan_out)`` as torch counts them for ``nn.Linear``/``nn.Conv``: in x receptive
        field (per group) and out x receptive field."""
        shape = self.weight.shape  # (out, in / groups, *kernel)
        receptive = math.prod(shape[2:])
        return int(shape[1] * receptive), int(shape[0] * receptive)

    @property
    def params(self) -> list[str]:
        """The Keras paths of the kernel and the bias (``sequential/dense/kernel``): the row's parameter names."""
        variables = [self.layer.kernel, getattr(self.layer, "bias", None)]
        return [v.path for v in variables if v is not None]

    def __repr__(self) -> str:
        return f"KerasWeights({self.layer.name!r})"


def _unit_dim(layer: Any) -> int:
    return 1 if getattr(layer, "data_format", "channels_last") == "channels_first" else -1


def _act_name(fn: Callable[..., Any] | None) -> str:
    name = getattr(fn, "__name__", type(fn).__name__) if fn is not None else "linear"
    return _NAMES.get(name, name)


def _activation_layer(layer: Any) -> tuple[str, Callable[[torch.Tensor], torch.Tensor] | None]:
    """``(activation name, the layer's function without hooks or None if not elementwise)``."""
    call = type(layer).call
    fn = lambda t: call(layer, t)  # noqa: E731
    if isinstance(layer, _kl.Softmax):
        return "softmax", None
    if isinstance(layer, _kl.Activation):
        name = _act_name(layer.activation)
        return name, fn if name in ELEMENTWISE else None
    if isinstance(layer, _kl.ReLU):
        return ("leaky_relu" if layer.negative_slope else "relu6" if layer.max_value == 6 else "relu"), fn
    return ("leaky_relu" if isinstance(layer, _kl.LeakyReLU) else "elu"), fn


def _own_weights(layer: Any) -> int:
    return len(getattr(layer, "_trainable_variables", [])) + len(getattr(layer, "_non_trainable_variables", []))


def _layers(model: Any) -> list[Any]:
    """``model`` and every layer inside it (nested models included), in Keras' order."""
    return list(model._flatten_layers(include_self=True, recursive=True))


# -- recording -----------------------------------------------------------------------------------
@dataclass
class KerasRecorder:
    """Hooks on a Keras model's layers that fill :attr:`records` (initlab's ``Record`` rows) during
    the next forward pass with autograd on; ``attach()`` / ``detach()`` as for initlab's Recorder.

    While attached, each ``Dense``/``Conv`` layer's activation is replaced by ``linear`` and applied
    by the layer's forward hook (so the hook sees the pre-activation): every forward computes what
    the model computed before. ``detach()`` puts the activations back.
    """

    model: Any
    keep_grads: bool = False
    records: list[Record] = field(default_factory=list)
    grads: dict[int, torch.Tensor] = field(default_factory=dict)  # row index -> d loss / d pre-activation
    not_measured: list[dict[str, str]] = field(default_factory=list)  # {"name", "kind", "reason"}
    norms: list[NormRecord] = field(default_factory=list)  # one per call of a normalisation layer with weights

    def __post_init__(self) -> None:
        self._handles: list[RemovableHandle] = []
        self._acts: dict[int, Callable[..., Any]] = {}  # id(layer) -> its own activation, while swapped out
        self._weights: dict[int, KerasWeights] = {}
        self.lineage = Lineage()  # tensor -> row whose pre-activation (owner) or units (feed) it holds
        self.done = False

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    @property
    def weighted_layers(self) -> list[Any]:
        return [w.layer for w in self._weights.values()]

    def weights(self, layer: Any) -> KerasWeights:
        return self._weights[id(layer)]

    def attach(self) -> KerasRecorder:
        """Register the hooks (idempotent); clears previous records."""
        if self._handles:
            return self
        self.records, self.grads, self.not_measured, self.norms, self.done = [], {}, [], [], False
        self.lineage.clear()
        for layer in _layers(self.model):
            kind = type(layer).__name__
            if isinstance(layer, WEIGHTED) and (getattr(layer, "lora_enabled", False)
                                                or getattr(layer, "quantization_mode", None)):
                self.not_measured.append({"name": layer.name, "kind": kind, "reason": (
                    f"{kind} is LoRA-enabled or quantized: its kernel is not one weight tensor")})
            elif isinstance(layer, WEIGHTED):
                self._weights.setdefault(id(layer), KerasWeights(layer))
                self._acts[id(layer)] = layer.activation
                layer.activation = keras.activations.linear
                self._handles.append(layer.register_forward_hook(self._on_weighted))
            elif isinstance(layer, ACTIVATION_LAYERS):
                self._handles.append(layer.register_forward_hook(self._on_activation))
            elif isinstance(layer, PASS_THROUGH):
                self._handles.append(layer.register_forward_hook(self._on_pass_through))
            elif _own_weights(layer):
                self.not_measured.append({"name": layer.name, "kind": kind, "reason": (
                    f"{kind} has weights initlab cannot map to units (it measures Dense and Conv1D/2D/3D kernels)")})
        self._handles.append(self.model.register_forward_hook(self._end))
        return self

    def detach(self) -> None:
        """Remove every hook and give each layer its activation back."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for layer in self.weighted_layers:
            if id(layer) in self._acts:
                layer.activation = self._acts.pop(id(layer))
        self.lineage.clear()

    def _recording(self) -> bool:
        return not self.done and torch.is_grad_enabled()

    def _end(self, module: Any, inputs: tuple[Any, ...], output: Any) -> None:
        if self._recording() and self.records:
            self.done = True
            self.lineage.clear()

    def _unique(self, name: str) -> str:
        taken = sum(1 for r in self.records if r.name == name or r.name.startswith(name + "#"))
        return name if taken == 0 else f"{name}#{taken + 1}"

    def _add(self, rec: Record) -> None:
        self.records.append(rec)
        if self.keep_grads and rec.output.requires_grad:
            index = len(self.records) - 1
            # torch's Tensor.register_hook is unannotated
            rec.output.register_hook(lambda g, i=index: self.grads.__setitem__(i, g))  # type: ignore[no-untyped-call]

    def _on_weighted(self, layer: Any, inputs: tuple[Any, ...], output: Any) -> Any:
        act = self._acts.get(id(layer))
        linear = act is None or act is keras.activations.linear
        if not isinstance(output, torch.Tensor):  # a symbolic (shape-only) call
            return None
        y = output if linear or act is None else act(output)
        if not self._recording():
            return None if linear else y
        weights = self._weights[id(layer)]
        x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        rms = float(x.detach().double().pow(2).mean().sqrt()) if x is not None and x.numel() else 0.0
        out = output.detach()
        bias = weights.bias
        fan_in, fan_out = weights.fans
        # the rows are the kernel in torch's layout (out, in, *kernel), one per unit; the gradients are
        # taken against the kernel parameter itself (Keras' layout: the same values, so the same norms)
        # the row's owner is the layer's KerasWeights (duck-typed where torch rows hold an nn.Module)
        rec = Record(self._unique(layer.name), cast(Any, weights), output, _unit_dim(layer),
                     pre_std=float(out.std()) if out.numel() > 1 else 0.0, kind=type(layer).__name__, input_rms=rms,
                     weight=weights.weight, weights=[weights.kernel], biases=[] if bias is None else [bias],
                     fan_in=fan_in, fan_out=fan_out, role=layer.name, params=weights.params)
        if not linear:
            name = _act_name(act)
            rec.activation, rec.act_output, rec.act_input = name, y, output
            rec.act_fn = act if name in ELEMENTWISE else None
        feed = self.lineage.feed(x)
        if feed is not None and x is not None:  # a feed is only found for a tensor
            self._add_reader(feed[0], weights, x, layer)
        self._add(rec)
        if linear:
            self.lineage.own(output, rec)
        self.lineage.set_feed(output, (rec, False))
        self.lineage.set_feed(y, (rec, False))
        return None if linear else y

    def _add_reader(self, source: Record, weights: KerasWeights, x: torch.Tensor, layer: Any) -> None:
        """Note ``layer`` (reading ``x``) as a reader of ``source``'s units when its weight columns are those units."""
        units = source.output.shape[source.unit_dim]
        reader = weights.weight  # (out, in, *kernel): column j reads unit j
        if weights.groups != 1 or reader.shape[1] != units or x.shape[_unit_dim(layer)] != units:
            return
        source.readers.append((reader, 1))

    def _on_pass_through(self, layer: Any, inputs: tuple[Any, ...], output: Any) -> None:
        if not (self._recording() and inputs and isinstance(output, torch.Tensor)):
            return
        owner = self.lineage.owner(inputs[0])
        if owner is not None:
            self.lineage.own(output, owner)
        self.lineage.pass_feed(inputs[0], output)
        if isinstance(layer, tuple(NORMS)) and isinstance(inputs[0], torch.Tensor):
            self._norm(layer, inputs[0], output)

    def _norm(self, layer: Any, x: torch.Tensor, output: torch.Tensor) -> None:
        """A normalisation layer's call: input and output std and its mean gain, as the torch path
        records ``F.batch_norm``/``F.layer_norm``/``F.group_norm``; its gamma and beta are its parameters."""
        gamma, beta = getattr(layer, "gamma", None), getattr(layer, "beta", None)
        params = [v.path for v in (gamma, beta) if v is not None]
        if not params:
            return
        with torch.no_grad():
            self.norms.append(NormRecord(
                self._unique_norm(layer.name), next(kind for cls, kind in NORMS.items() if isinstance(layer, cls)),
                float(x.detach().float().std()) if x.numel() > 1 else 0.0,
                float(output.detach().float().std()) if output.numel() > 1 else 0.0,
                float(gamma.value.detach().float().mean()) if gamma is not None else 1.0, params))

    def _unique_norm(self, name: str) -> str:
        taken = sum(1 for n in self.norms if n.name == name or n.name.startswith(name + "#"))
        return name if taken == 0 else f"{name}#{taken + 1}"

    def _on_activation(self, layer: Any, inputs: tuple[Any, ...], output: Any) -> None:
        if not (self._recording() and inputs and isinstance(output, torch.Tensor)):
            return
        x = inputs[0]
        if not isinstance(x, torch.Tensor):
            return
        kind, fn = _activation_layer(layer)
        rec = self.lineage.owner(x)
        if rec is not None and rec.act_output is None:
            rec.activation, rec.act_output, rec.act_input, rec.act_fn = kind, output, x, fn
            self.lineage.pass_feed(x, output)
            return
        if kind == "linear":
            return
        last = next((r for r in reversed(self.records) if r.weighted), None)
        unit_dim = last.unit_dim if last is not None and output.ndim == last.output.ndim else -1
        lone = Record(self._unique(layer.name), None, output, unit_dim, activation=kind, act_output=output,
                      pre_std=float(x.detach().std()) if x.numel() > 1 else 0.0, kind=type(layer).__name__,
                      act_fn=fn)
        lone.act_input = x
        self._add(lone)


# -- diagnose ------------------------------------------------------------------------------------
@dataclass(repr=False)
class KerasDiagnosis(Diagnosis):
    """A :class:`~initlab.diagnostics.Diagnosis` of a Keras model, plus the layers it could not measure."""

    not_measured: list[dict[str, str]] = field(default_factory=list)  # {"name", "kind", "reason"}

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "not_measured": [dict(d) for d in self.not_measured]}

    def __repr__(self) -> str:
        head = super().__repr__()[:-1]
        return f"{head}, not_measured={[d['name'] for d in self.not_measured]})"

    def _repr_html_(self) -> str:
        html = str(super()._repr_html_())
        if not self.not_measured:
            return html
        from .._html import escape

        items = "".join(f"<li><b>{escape(d['name'])}</b> ({escape(d['kind'])}): {escape(d['reason'])}</li>"
                        for d in self.not_measured)
        return f"{html}<p>Not measured:</p><ul>{items}</ul>"


def _to_tensor(inputs: Any, model: Any) -> Any:
    """``inputs`` (an array, or a list/dict of arrays for a multi-input model) as torch tensors on the
    model's device; integer arrays keep their dtype (token ids), others become float32."""
    params = list(model.parameters())
    device = params[0].device if params else None

    def convert(x: Any) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            array = np.asarray(x)
            x = torch.as_tensor(array if np.issubdtype(array.dtype, np.integer) else array.astype(np.float32))
        return cast(torch.Tensor, x.to(device) if device is not None else x)

    return keras.tree.map_structure(convert, inputs)


def _first_shape(inputs: Any) -> tuple[int, ...]:
    return tuple(keras.tree.flatten(inputs)[0].shape)


def diagnose_keras(model: Any, inputs: Any, targets: Any = None,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> KerasDiagnosis:
    """``initlab.diagnose`` for a Keras 3 model on the torch backend (``initlab.diagnose`` calls it).

    One forward pass in inference mode (``training=False``) and one backward pass, measured per
    ``Dense``/``Conv`` layer, rows named by the Keras layer names (``dense``, ``dense_1``). The loss:
    ``loss_fn(outputs, targets)`` when given; else initlab's default (see ``initlab.diagnose``)
    applied to the logits when the model ends in a sigmoid or softmax (the same loss as Keras'
    ``binary_crossentropy``/``sparse_categorical_crossentropy`` on the probabilities, and what
    initlab's own models, which return logits, are measured with); without targets, the surrogate
    loss on those logits. Parameter ``.grad`` fields are untouched. Layers with weights initlab
    cannot measure are listed in ``not_measured`` with the reason; ``coverage`` counts the parameter
    tensors measured and lists each other one (Keras path, shape, reason, gradient norm)."""
    inputs = _to_tensor(inputs, model)
    recorder = KerasRecorder(model)
    recorder.attach()
    try:
        with torch.enable_grad():
            outputs = model(inputs, training=False)
    finally:
        recorder.detach()
    records = recorder.records
    not_measured = list(recorder.not_measured)
    seen = {id(cast(KerasWeights, r.module).layer) for r in records if r.weighted}
    not_measured += [{"name": layer.name, "kind": type(layer).__name__, "reason": "not reached by the forward pass"}
                     for layer in recorder.weighted_layers if id(layer) not in seen]
    if not isinstance(outputs, torch.Tensor):
        raise ValidationError(f"the Keras model must return one tensor, got {type(outputs).__name__}")
    if not any(r.weighted for r in records):
        listed = ", ".join(f"{d['name']} ({d['kind']})" for d in not_measured) or "none"
        raise ValidationError(f"the Keras model has no Dense or Conv layer initlab can measure (not measured: {listed})")
    head = _logits(records, outputs)
    parameters = _parameters(model)
    with torch.enable_grad():
        if targets is not None:
            targets = torch.as_tensor(np.asarray(targets) if not isinstance(targets, torch.Tensor) else targets)
            targets = targets.to(outputs.device)
            loss = loss_fn(outputs, targets) if loss_fn is not None else default_loss(head, targets)
        else:
            loss = surrogate_loss(head)
        weight_grads, bias_grads, out_grads, param_grads = _gradients(loss, records, parameters)
    layers = [layer_stats(r, wg, og, bias_grad=bg) for r, wg, bg, og in zip(records, weight_grads, bias_grads, out_grads, strict=False)]
    return cast(KerasDiagnosis, diagnosis_from_rows(  # cls=KerasDiagnosis
        layers, float(loss.detach()), input_shape=_first_shape(inputs),
        samples={r.name: row_samples(r, og, SAMPLE_SIZE) for r, og in zip(records, out_grads, strict=False)},
        coverage=_coverage(parameters, param_grads, records, recorder.norms, not_measured),
        norms=[asdict(n) for n in recorder.norms], readout=measure_readout(head, targets), cls=KerasDiagnosis,
        not_measured=not_measured))


def _logits(records: list[Record], outputs: torch.Tensor) -> torch.Tensor:
    """The output layer's pre-activation when the model's output is its sigmoid or softmax, else the output."""
    for rec in reversed(records):
        if rec.act_output is outputs and rec.activation in ("sigmoid", "softmax"):
            return rec.output
    return outputs


def _parameters(model: Any) -> list[tuple[str, torch.Tensor, Any]]:
    """``(path, tensor, owning layer)`` of every trainable-kind variable of the model's layers (a frozen
    layer's included, shared ones once): what torch's ``named_parameters`` lists. Keras' non-trainable
    variables (BatchNormalization's moving statistics, seed states) are torch's buffers: not counted."""
    found: list[tuple[str, torch.Tensor, Any]] = []
    seen: set[int] = set()
    for layer in _layers(model):
        for variable in getattr(layer, "_trainable_variables", []):
            tensor = variable.value
            if isinstance(tensor, torch.Tensor) and id(tensor) not in seen:
                seen.add(id(tensor))
                found.append((variable.path, tensor, layer))
    return found


def _gradients(loss: torch.Tensor, records: list[Record], parameters: list[tuple[str, torch.Tensor, Any]]
               ) -> tuple[list[list[torch.Tensor | None]], list[list[torch.Tensor | None]], list[torch.Tensor | None],
                          dict[Any, torch.Tensor | None]]:
    """``(weight grads, bias grads, output grads, {path: grad})``: per row a list for its weights
    (the kernel, Keras' layout) and one for its biases, d loss / d its output, and every parameter's
    gradient, from one ``torch.autograd.grad`` call (None where a tensor takes no part in the loss)."""
    weights, biases, outputs, extra = row_gradients(loss, records, {"params": {p: t for p, t, _ in parameters}})
    return weights, biases, outputs, extra["params"]


def _coverage(parameters: list[tuple[str, torch.Tensor, Any]], grads: dict[str, torch.Tensor | None],
              records: list[Record], norms: list[NormRecord], not_measured: list[dict[str, str]]) -> Coverage:
    """Which of the model's parameter tensors a row (or a normalisation record) measured, and why each
    other one was not: its layer's ``not_measured`` reason, frozen, or no gradient reached it."""
    measured = {n for r in records for n in r.params} | {n for norm in norms for n in norm.params}
    reasons = {d["name"]: d["reason"] for d in not_measured}
    unattributed: list[dict[str, Any]] = []
    for path, tensor, layer in parameters:
        if path in measured:
            continue
        grad = grads.get(path)
        if layer.name in reasons:
            reason = reasons[layer.name]
        elif not tensor.requires_grad:
            reason = f"frozen (trainable=False) and in {layer.name} ({type(layer).__name__}), not measured"
        elif grad is not None:
            reason = f"reaches the loss through {layer.name} ({type(layer).__name__}), a layer initlab does not measure"
        else:
            reason = "not used in this forward pass (no gradient reaches it)"
        unattributed.append({"name": path, "shape": list(tensor.shape), "numel": tensor.numel(), "reason": reason,
                             "grad_norm": tensor_norm(grad) if grad is not None else None})
    total = sum(t.numel() for _, t, _ in parameters)
    missing = sum(u["numel"] for u in unattributed)
    computations = {"weighted": sum(r.weighted for r in records),
                    "activation": sum(r.activation is not None and r.activation != "linear" for r in records),
                    "norm": len(norms), "attention": 0}  # Keras attention layers are listed in not_measured
    return Coverage(len(parameters), len(parameters) - len(unattributed), total, total - missing, unattributed,
                    computations)


def apply_init_keras(model: Any, weight: Any, bias: Any = "zeros", generator: torch.Generator | int | None = None,
                     data: Any = None) -> Any:
    """``initlab.apply_init`` for a Keras model (``apply_init`` calls it): every ``Dense``/``Conv`` kernel
    drawn as initlab draws the torch layer of the same shape (torch's layout, fans of the layer), in
    Keras' layer order from one generator; biases as ``apply_init`` does. Data-dependent schemes
    (``lsuv``) are not supported on Keras models."""
    from ..initializers import compute_fans, get

    weight_init = get(weight)
    bias_init = get(bias) if bias is not None else None
    if weight_init.scheme.kind == "data-dependent":
        raise ValidationError(f"initializer {weight_init.name!r} is data-dependent, not supported on Keras models; "
                              "use a random scheme such as he_normal or glorot_normal")
    gen = make_generator(generator if generator is not None else weight_init.params.get("seed"))
    for layer in _layers(model):
        if not isinstance(layer, WEIGHTED) or not layer.built:
            continue
        kernel = layer.kernel
        drawn = weight_init(torch.empty(torch_shape(kernel.shape)), gen)  # (out, in, *kernel)
        kernel.assign(keras.ops.convert_to_tensor(to_keras_layout(drawn).contiguous(), dtype=kernel.dtype))
        if bias_init is not None and getattr(layer, "bias", None) is not None:
            b = bias_init(torch.empty(tuple(layer.bias.shape)), gen, fans=compute_fans(drawn.shape))
            layer.bias.assign(keras.ops.convert_to_tensor(b, dtype=layer.bias.dtype))
    return model


# -- initializers --------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="initlab", name="Initializer")
class Initializer(keras.initializers.Initializer):  # type: ignore[name-defined,misc]  # base from an optional package imported at run time
    """An initlab catalog scheme as a Keras initializer: ``Dense(10, kernel_initializer=Initializer("he_normal", seed=0))``.

    The values are drawn by :func:`initlab.initializers.get` on a torch tensor of torch's layout
    ``(out, in, *kernel)`` and returned in Keras' layout ``(*kernel, in, out)``, so fan_in and
    fan_out are the layer's, and the numbers are exactly initlab's draw for the same seed,
    transposed. With a ``seed`` every call gives the same values (as Keras' seeded initializers
    do); without, each call draws a fresh seed from the OS. ``get_config``/``from_config``
    round-trip (the spec and the seed), so a saved model reloads once ``initlab.keras`` is imported.
    """

    def __init__(self, identifier: str | dict[str, Any] = "he_normal", seed: int | None = None) -> None:
        from ..initializers import get

        spec = get(identifier)
        if spec.scheme.kind == "data-dependent":
            raise ValidationError(f"initializer {spec.name!r} needs data (it is data-dependent) and cannot be a "
                                  "Keras initializer; call initlab.apply_init on the model with data= instead")
        self.init = spec
        self.seed = None if seed is None else check_int("seed", seed, 0)

    def __call__(self, shape: Sequence[int], dtype: Any = None) -> torch.Tensor:
        weight = torch.empty(torch_shape(shape), dtype=torch.float32)
        self.init(weight, make_generator(self.seed))
        values = to_keras_layout(weight).contiguous()
        return cast(torch.Tensor, keras.ops.convert_to_tensor(values, dtype=dtype or keras.config.floatx()))

    def get_config(self) -> dict[str, Any]:
        return {"identifier": self.init.spec, "seed": self.seed}

    def __repr__(self) -> str:
        return f"initlab.keras.Initializer({self.init}, seed={self.seed})"


def initializer(identifier: str | dict[str, Any], seed: int | None = None) -> Initializer:
    """``initlab.keras.initializer("he_normal", seed=0)``: any catalog name, alias or spec as a Keras initializer."""
    return Initializer(identifier, seed)


# -- Monitor -------------------------------------------------------------------------------------
class Monitor(TorchMonitor, keras.callbacks.Callback):  # type: ignore[name-defined,misc]  # base from an optional package imported at run time
    """``initlab.Monitor`` as a Keras callback: ``model.fit(X, y, callbacks=[initlab.keras.Monitor(every=10)])``.

    Records what ``initlab.Monitor`` records, the same way (its recorded steps 1, every + 1, ...,
    its statistics, histograms and reading methods ``series``, ``to_dict`` and the figures of
    ``initlab.diagnostics.figures``): the hooks are attached in ``on_train_batch_begin`` of a
    recording step and removed in its ``on_train_batch_end``, where the kernel gradients Keras'
    torch trainer left in ``.grad`` and the weights after the optimizer step are read. Steps
    count across epochs and across repeated ``fit`` calls. With ``out``, the files of :meth:`save`
    are written there when training ends.
    """

    def __init__(self, every: int = 10, histograms: bool = True, sample_size: int = 2048,
                 out: str | Path | None = None) -> None:
        keras.callbacks.Callback.__init__(self)
        self.out = None if out is None else Path(out)  # where on_train_end writes the files (see save)
        self.every = check_int("every", every, 1)
        self.histograms = histograms
        self.sample_size = check_int("sample_size", sample_size, 1)
        self.records: list[dict[str, Any]] = []
        self.snapshots: list[dict[str, Any]] = []
        self.layer_info: dict[str, dict[str, Any]] = {}
        # records through a KerasRecorder (TorchMonitor's is a torch Recorder, never built here)
        self._recorder: KerasRecorder | None = None  # type: ignore[assignment]
        self._before: dict[int, torch.Tensor] = {}
        self._steps = 0

    # Keras callback -------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if getattr(self.model, "jit_compile", False) is True:  # hooks inside torch.compile'd steps: not supported
            raise ValidationError("initlab.keras.Monitor needs eager training steps: compile the model with "
                                  "jit_compile=False (the torch backend's default)")
        self._recorder = KerasRecorder(self.model, keep_grads=True)

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._recorder is not None and self._steps % self.every == 0:  # the next step is 1, every + 1, ...
            self._recorder.attach()
            self._before = {id(w.kernel): w.kernel.detach().clone() for w in self._recorder._weights.values()
                            if getattr(w.layer, "built", False)}

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._steps += 1
        recorder = self._recorder
        if recorder is not None and recorder.attached:
            recorder.detach()
            if recorder.done:
                self._collect(self._steps)
            self._before = {}

    # Keras' signature: the torch Trainer's on_epoch_end(trainer, epoch, logs) is never called on this class
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:  # type: ignore[override]
        pass

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.close()
        if self.out is not None and self.records:
            self.save(self.out, getattr(self.model, "name", "Keras model"))

    def on_step_end(self, *args: Any) -> None:  # initlab Trainer's hook; a Keras model never calls it
        raise ValidationError("initlab.keras.Monitor is a Keras callback: pass it to model.fit(callbacks=[...])")

    def step(self) -> None:
        raise ValidationError("initlab.keras.Monitor is a Keras callback: pass it to model.fit(callbacks=[...])")

    def close(self) -> None:
        if self._recorder is not None:
            self._recorder.detach()
        self._before = {}

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_model", "_recorder")}
        return {**state, "_recorder": None, "_before": {}}

    # outputs ---------------------------------------------------------------------------------
    def save(self, folder: str | Path, title: str = "Keras model") -> dict[str, Path]:
        """Write ``monitor.json`` (:meth:`to_dict`), ``monitor_heatmap.png`` and, when histograms were
        kept, ``monitor_histograms.png`` into ``folder`` (what initlab's Lightning and Hugging Face
        callbacks write); returns the paths."""
        from ._monitor_files import write_monitor

        if not self.records:
            raise ValidationError("the Monitor recorded nothing yet: pass it to model.fit(callbacks=[...]) first")
        return write_monitor(self, folder, title)


