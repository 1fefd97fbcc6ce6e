"""The op vocabulary: which torch modules and functions a traced forward pass interprets, and how.

Five kinds of op are recognised, each by the module class or function object (never by name):

- a *weighted op*: ``nn.Linear``, any ``_ConvNd``, Hugging Face's ``Conv1D``, ``nn.LSTM/GRU/RNN``,
  and ``F.linear``, ``F.conv*``, ``F.embedding``, ``torch.addmm`` / ``x @ W`` with a parameter
  ``W`` (:func:`weighted_call` gives the weight, input, output, fans and unit axis);
- a *normalisation*: :data:`NORM_FUNCTIONS` with the model's parameters, :data:`PASS_THROUGH`
  modules, and leaf modules named ``...Norm`` with 1-d parameters (:func:`is_custom_norm`);
- an *activation*: :data:`ACTIVATION_MODULES`, :data:`FUNCTIONAL`, or a parameter-free leaf
  module found to act elementwise (:func:`acts_elementwise`);
- *softmax attention*: a softmax over the last axis of a 4-d ``(B, H, T, S)`` tensor, of a
  ``q @ k^T`` product of two activations (any layout, heads folded into the batch too), or
  ``F.scaled_dot_product_attention``;
- a *residual add* and other arithmetic: :data:`ARITHMETIC`.

The tracer observes ops by function object (above). :func:`op_kind` classifies any torch call by
name into the kinds the analytic autoinit propagates moments through (weighted, elementwise, shape,
dropout, norm, attention, recurrent, concatenation): the same five kinds, at the finer grain that
moment rules need.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "WEIGHTED", "RECURRENT", "ACTIVATION_MODULES", "FUNCTIONAL", "PASS_THROUGH", "NORM_FUNCTIONS", "SOFTMAX",
    "VIEWS", "PRODUCT", "ARITHMETIC", "QK_PRODUCTS", "WeightedCall", "weighted_call", "op_name", "first_tensor",
    "hashable", "arg", "is_hf_conv1d", "recurrent_rows", "is_custom_norm", "may_call_functional",
    "may_be_activation", "acts_elementwise", "module_fn", "functional_fn", "op_kind", "short_name",
    "ELEMENTWISE_UNARY", "SUM_OPS", "SUBTRACTIONS", "PRODUCT_OPS", "DIVISIONS", "BINARY", "SHAPE_OPS",
]

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
CONV = {torch.conv1d: 1, torch.conv2d: 2, torch.conv3d: 3}
MATMUL = {torch.matmul, torch.mm, torch.Tensor.matmul, torch.Tensor.mm, torch.Tensor.__matmul__}
ADDMM = {torch.addmm, torch.Tensor.addmm}
# products of two activations that make attention scores (q @ k^T), batched or not
QK_PRODUCTS = MATMUL | {torch.bmm, torch.Tensor.bmm, torch.einsum, torch.baddbmm, torch.Tensor.baddbmm}
# function -> (position of the weight, of the bias) among its arguments
NORM_FUNCTIONS = {F.layer_norm: (2, 3), F.group_norm: (2, 3), F.batch_norm: (3, 4), F.instance_norm: (3, 4),
                  F.rms_norm: (2, None)}
SOFTMAX = {F.softmax, torch.softmax, torch.Tensor.softmax}
VIEWS = {torch.Tensor.view, torch.Tensor.reshape, torch.reshape}
PRODUCT = {torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.div, torch.Tensor.div,
           torch.Tensor.__truediv__, torch.Tensor.__rtruediv__}
ARITHMETIC = PRODUCT | {torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__, torch.sub,
                        torch.Tensor.sub, torch.Tensor.__sub__, torch.Tensor.__rsub__}
# ops through which attention scores stay scores: scaling, masking, reshaping, transposing
SCORE_KEEPING = ARITHMETIC | VIEWS | {torch.Tensor.masked_fill, torch.masked_fill, torch.Tensor.masked_fill_,
                                      torch.where, torch.Tensor.float, torch.Tensor.to, torch.Tensor.contiguous,
                                      torch.Tensor.view_as, torch.Tensor.type_as}


@dataclass
class WeightedCall:
    """A functional weighted op on a parameter: what a row needs to measure it."""

    weight: torch.Tensor  # the parameter
    bias: torch.Tensor | None  # the bias parameter, if one was passed
    rows: torch.Tensor  # (units, fan_in...) view of the weight: one row per unit
    input: torch.Tensor | None
    unit_dim: int  # -1 for linear-like ops, 1 for convolutions (N, C, *spatial)
    fan_in: int
    fan_out: int
    kind: str  # "linear()", "conv2d()", "Embedding", "addmm()", "matmul()"
    groups: int = 1


def arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str) -> Any:
    """Argument ``i`` (positional) or ``name`` (keyword) of a call."""
    return args[i] if len(args) > i else kwargs.get(name)


def weighted_call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                  is_param: Callable[[object], bool]) -> WeightedCall | None:
    """The weighted op ``func(*args, **kwargs)`` applies with a parameter, or None."""
    if func is F.linear or func is torch._C._nn.linear:
        x, w, b = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
        if not is_param(w) or w.ndim != 2:
            return None
        return WeightedCall(w, b if is_param(b) else None, w, x, -1, w.shape[1], w.shape[0], "linear()")
    if func in CONV:
        x, w, b = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight"), arg(args, kwargs, 2, "bias")
        if not is_param(w):
            return None
        groups = arg(args, kwargs, 6, "groups") or 1
        receptive = math.prod(w.shape[2:])
        return WeightedCall(w, b if is_param(b) else None, w, x, 1, math.prod(w.shape[1:]), w.shape[0] * receptive,
                            f"conv{CONV[func]}d()", int(groups))
    if func is F.embedding:
        w = arg(args, kwargs, 1, "weight")
        if not is_param(w) or w.ndim != 2:
            return None
        return WeightedCall(w, None, w.t(), None, -1, 0, 0, "Embedding")
    if func in ADDMM or func in MATMUL:
        first = 1 if func in ADDMM else 0  # addmm(bias, x, W); matmul(x, W)
        if len(args) < first + 2:
            return None
        a, w = args[first], args[first + 1]
        if not is_param(w) or w.ndim != 2 or is_param(a):
            return None
        b = args[0] if func in ADDMM and is_param(args[0]) else None
        return WeightedCall(w, b, w.t(), a, -1, w.shape[0], w.shape[1], "addmm()" if func in ADDMM else "matmul()")
    return None


def op_name(func: Callable[..., Any]) -> str:
    """``torch.relu`` or ``Tensor.add``: how a use of a parameter is named in coverage."""
    name = getattr(func, "__name__", str(func))
    owner = getattr(func, "__qualname__", name)
    if "." in owner and owner.startswith(("Tensor", "_TensorBase", "TensorBase")):
        return "Tensor." + owner.rpartition(".")[2]
    return f"torch.{name}"


def first_tensor(obj: object) -> torch.Tensor | None:
    """The first tensor of a module's output (a tensor, tuple, dict or ``ModelOutput``)."""
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, (tuple, list)) and obj:
        return first_tensor(obj[0])
    if isinstance(obj, dict) and obj:
        return first_tensor(next(iter(obj.values())))
    value = getattr(obj, "last_hidden_state", None)
    return value if isinstance(value, torch.Tensor) else None


def hashable(obj: object) -> bool:
    try:
        hash(obj)
    except TypeError:
        return False
    return True


def is_hf_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): a Linear whose weight is stored ``(in, out)``."""
    return (type(module).__name__ == "Conv1D" and hasattr(module, "nf")
            and isinstance(getattr(module, "weight", None), torch.Tensor))


def recurrent_rows(module: nn.RNNBase) -> torch.Tensor:
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


def is_custom_norm(module: nn.Module) -> bool:
    """A leaf module, not one of torch's, named ``...Norm`` whose parameters are all 1-d gains or
    biases (Hugging Face's ``LlamaRMSNorm``, ``T5LayerNorm``): its own hooks measure it."""
    if isinstance(module, PASS_THROUGH) or module._modules or not module._parameters:
        return False
    return ("norm" in type(module).__name__.lower()
            and all(p is None or p.ndim == 1 for p in module._parameters.values()))


def may_call_functional(module: nn.Module) -> bool:
    """Modules whose ``forward`` is user code (containers and custom blocks), tracked for naming."""
    return not isinstance(module, WEIGHTED + PASS_THROUGH + RECURRENT) or type(module) in ACTIVATION_MODULES


def may_be_activation(module: nn.Module) -> bool:
    """A leaf module without parameters whose class initlab does not know: maybe an activation."""
    if type(module) in ACTIVATION_MODULES or isinstance(module, WEIGHTED + PASS_THROUGH + RECURRENT + (nn.Flatten,)):
        return False
    return not module._modules and not module._parameters and type(module).forward is not nn.Module.forward


_PROBE = torch.linspace(-4.0, 4.0, 9)


def acts_elementwise(fn: Callable[[torch.Tensor], torch.Tensor], device: torch.device | None = None) -> bool:
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


def module_fn(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module``'s function without its hooks (so measuring it records nothing)."""
    forward = type(module).forward
    return lambda t: forward(module, t)


def functional_fn(func: Callable[..., Any], rest: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``func`` applied with the rest of the arguments of one call."""
    return lambda t: func(t, *rest, **kwargs)


# -- the moment vocabulary: ops by name ------------------------------------------------------------
# The analytic autoinit follows a tensor's predicted moments through every op; an op is matched by
# its name, so ``torch.relu``, ``F.relu``, ``Tensor.relu`` and ``Tensor.relu_`` share one rule.
ELEMENTWISE_UNARY = frozenset({
    "relu", "relu_", "gelu", "silu", "sigmoid", "tanh", "elu", "selu", "celu", "leaky_relu", "softplus",
    "mish", "hardswish", "hardsigmoid", "hardtanh", "relu6", "exp", "neg", "__neg__", "abs", "sin", "cos",
    "erf", "softsign", "logsigmoid", "tanhshrink", "square", "sqrt", "rsqrt", "log1p", "expm1", "clamp",
    "clip", "clamp_min", "sigmoid_", "tanh_", "atan", "sinh", "cosh",
    "log_sigmoid", "softshrink", "hardshrink", "threshold",
})
SUM_OPS = frozenset({"add", "__add__", "__radd__", "add_", "__iadd__",
                     "sub", "__sub__", "__rsub__", "sub_", "__isub__"})
SUBTRACTIONS = frozenset({"sub", "__sub__", "sub_", "__isub__"})
PRODUCT_OPS = frozenset({"mul", "__mul__", "__rmul__", "mul_", "__imul__", "multiply"})
DIVISIONS = frozenset({"div", "__truediv__", "div_", "__itruediv__"})
BINARY = SUM_OPS | PRODUCT_OPS | {"div", "__truediv__", "__rtruediv__", "div_", "__itruediv__", "pow", "__pow__",
                                  "__rpow__", "maximum", "minimum", "true_divide"}
SHAPE_OPS = frozenset({
    "view", "reshape", "permute", "transpose", "t", "flatten", "unflatten", "contiguous", "squeeze",
    "unsqueeze", "__getitem__", "expand", "expand_as", "repeat", "to", "float", "double", "half", "type_as",
    "clone", "detach", "narrow", "select", "split", "chunk", "unbind", "view_as", "reshape_as", "movedim",
    "swapaxes", "T", "mT", "identity", "flip", "roll", "tensor_split", "_unsafe_view", "type",
})
_KINDS_BY_NAME = {
    "linear": "linear", "addmm": "addmm", "matmul": "matmul", "mm": "matmul", "__matmul__": "matmul",
    "embedding": "embedding", "cat": "concat", "stack": "concat", "concat": "concat", "concatenate": "concat",
}
_KIND_SETS: tuple[tuple[str, frozenset[str]], ...] = (
    ("conv", frozenset({"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"})),
    ("elementwise", ELEMENTWISE_UNARY | BINARY),
    ("shape", SHAPE_OPS),
    ("dropout", frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                           "feature_alpha_dropout"})),
    ("norm", frozenset({"layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm"})),
    ("attention", frozenset({"multi_head_attention_forward", "_native_multi_head_attention"})),
    ("recurrent", frozenset({"lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell",
                             "rnn_relu_cell"})),
)


def short_name(func: Callable[..., Any]) -> str:
    """A torch function's or Tensor method's bare name (``relu_``, ``__add__``; ``T`` for the property)."""
    name = getattr(func, "__name__", "")
    if name == "__get__":  # a Tensor property such as .T
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return name


def op_kind(func: Callable[..., Any]) -> tuple[str, str | None]:
    """``(name, kind)`` of a torch call in the moment vocabulary: kind is one of linear, addmm, matmul,
    embedding, concat, conv, elementwise, shape, dropout, norm, attention, recurrent, or None."""
    name = short_name(func)
    if name in _KINDS_BY_NAME:
        return name, _KINDS_BY_NAME[name]
    for kind, names in _KIND_SETS:
        if name in names:
            return name, kind
    return name, None
