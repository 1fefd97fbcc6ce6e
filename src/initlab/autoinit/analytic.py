"""The analytic mode: propagate mean and variance through the model's ops and scale each weight.

One forward pass on the example runs under a ``TorchFunctionMode`` that sees every torch
function the model calls. Each tensor carries a *predicted* (mean, variance) of its entries:

* weight layers (linear, addmm/matmul with a parameter, conv, embedding): the weight is drawn
  ``N(0, s^2)`` with ``s = gain * target / sqrt(fan_in * E[x^2])`` (E[x^2] the predicted second
  moment of the input, mean included), the bias zeroed, so the output has variance
  ``(gain * target)^2`` (LeCun et al. 1998; He et al. 2015 for the fan_in form; data-free, as
  in Mishkin & Matas 2016's LSUV but predicted instead of measured);
* elementwise functions (any composition of torch ops on one pre-activation, so user activations
  work): the moment map by quadrature (``moments.py``), checked by Monte Carlo;
* sums of independent terms (residual additions): means and variances add; products multiply;
  concatenation mixes; dropout scales E[x^2] by 1/(1-p); normalizations output their affine
  parameters' scale; shape ops keep the moments;
* residual branches: on a stream with R additions between normalizations, the weight that ends
  each branch gets gain 1/sqrt(R), so the stream's variance grows from target^2 to at most
  2 target^2 (the 1/sqrt(N) residual scaling of GPT-2, Radford et al. 2019; Fixup, Zhang et
  al. 2019);
* attention's softmax mixing and recurrent cells have no closed-form moment map: their output
  second moment is measured on the example, and the out projection scaled from it;
* any other op: its output moments are measured on the example (counted in the report).

The weights change during the pass, so each measured fallback sees the new upstream weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from . import moments as mom
from .graph import module_stack_hooks, quiet_forward, run_forward
from .moments import Stat
from .report import ParamEntry

__all__ = ["analytic_init", "Tracker"]

_ANCHOR = 1.25  # predicted vs measured input rms ratio beyond which the measured moments are used

ELEMENTWISE_UNARY = {
    "relu", "relu_", "gelu", "silu", "sigmoid", "tanh", "elu", "selu", "celu", "leaky_relu", "softplus",
    "mish", "hardswish", "hardsigmoid", "hardtanh", "relu6", "exp", "neg", "__neg__", "abs", "sin", "cos",
    "erf", "softsign", "logsigmoid", "tanhshrink", "square", "sqrt", "rsqrt", "log1p", "expm1", "clamp",
    "clip", "clamp_min", "sigmoid_", "tanh_", "atan", "sinh", "cosh",
    "log_sigmoid", "softshrink", "hardshrink", "threshold",
}
BINARY = {"add", "__add__", "__radd__", "add_", "__iadd__", "sub", "__sub__", "__rsub__", "sub_", "__isub__",
          "mul", "__mul__", "__rmul__", "mul_", "__imul__", "div", "__truediv__", "__rtruediv__", "div_",
          "__itruediv__", "pow", "__pow__", "__rpow__", "maximum", "minimum", "true_divide", "multiply"}
SUMS = {"add", "__add__", "__radd__", "add_", "__iadd__", "sub", "__sub__", "__rsub__", "sub_", "__isub__"}
PRODUCTS = {"mul", "__mul__", "__rmul__", "mul_", "__imul__", "multiply"}
SHAPE = {"view", "reshape", "permute", "transpose", "t", "flatten", "unflatten", "contiguous", "squeeze",
         "unsqueeze", "__getitem__", "expand", "expand_as", "repeat", "to", "float", "double", "half", "type_as",
         "clone", "detach", "narrow", "select", "split", "chunk", "unbind", "view_as", "reshape_as", "movedim",
         "swapaxes", "T", "mT", "identity", "flip", "roll", "tensor_split", "_unsafe_view", "type"}
DROPOUT = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"}
NORMS = {"layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm"}
CONVS = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}
MHA = {"multi_head_attention_forward", "_native_multi_head_attention"}
RNN = {"lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"}


def _opname(func: Any) -> str:
    name = getattr(func, "__name__", "")
    if name == "__get__":  # a Tensor property such as .T
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return name


@dataclass(eq=False)
class Rec:
    """What is known of one tensor: a predicted Stat, or an elementwise expression of a source Rec."""

    stat: Stat | None = None
    src: "Rec | None" = None                       # the pre-activation this is an elementwise function of
    fn: Callable | None = None                     # u -> value, on float64 tensors
    label: str = ""                                # the activation's name in the report
    origin: tuple[str, int] | None = None          # (weight name, op index) if a weight op's output, up to a linear map
    chain: int = 0                                 # residual additions since the last normalization
    measured: bool = False                         # the stat was measured, not predicted

    def source(self) -> "Rec":
        return self.src if self.src is not None else self


@dataclass
class _Use:
    kind: str
    module: str
    std: float | None = None
    predicted: float | None = None
    touched: bool = True
    reason: str = ""


class Tracker(TorchFunctionMode):
    """Follow the moments through one forward pass; with ``apply`` set, re-draw the weights on the way."""

    def __init__(self, model: nn.Module, *, target: float, generator: torch.Generator, apply: bool, residual_r: int = 1):
        super().__init__()
        self.model, self.target, self.gen, self.apply, self.R = model, float(target), generator, apply, max(1, residual_r)
        self.names: dict[int, str] = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            self.names.setdefault(id(p), name)
        self.params = {id(p): p for p in model.parameters()}
        self.recs: dict[int, Rec] = {}
        self.alive: list[Any] = []
        self.uses: dict[str, _Use] = {}             # parameter name -> what happened to it
        self.unknown: dict[str, str] = {}           # parameter name -> op that consumed it
        self.activations: list[tuple[str, Callable, Stat]] = []
        self.fallbacks: dict[str, int] = {}
        self.notes: list[str] = []
        self.max_chain = 0
        self.branch_scaled: set[str] = set()
        self.stack: list[tuple[str, nn.Module]] = []
        self.n = 0
        self.batch = 0  # the example's batch size: dim 0 of the inputs
        self.corrections: list[tuple[str, float, float]] = []  # (where, predicted rms, measured rms)

    # ---- bookkeeping ---------------------------------------------------------------------
    def track(self, t: Any, rec: Rec) -> None:
        for leaf in tree_flatten(t)[0]:
            if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
                self.recs[id(leaf)] = rec
                self.alive.append(leaf)

    def rec(self, t: Any) -> Rec | None:
        return self.recs.get(id(t)) if isinstance(t, torch.Tensor) else None

    def stat(self, t: torch.Tensor) -> Stat:
        """The predicted Stat of a tensor (materializing an elementwise expression), else its measured one."""
        r = self.rec(t)
        if r is None:
            return Stat.of(t, self.batch)
        if r.stat is None:
            src = r.source()
            res = mom.moments(r.fn, src.stat, r.label or "activation")
            if res.note:
                self.notes.append(res.note)
            r.stat = res.out
            if src.origin is not None:  # an activation after a weight layer: for the stability analysis
                self.activations.append((r.label or "activation", r.fn, src.stat.pooled))
        return r.stat

    def anchored(self, x: torch.Tensor) -> Stat:
        """The predicted Stat of a weight layer's input, re-anchored to the measured one where they part.

        The prediction is the large-width expectation; at finite width each layer's realized
        moments fluctuate around it, and where the length map's fixed point repels (slope > 1,
        e.g. silu and gelu at unit scale) the fluctuations grow with depth. So the input's
        measured std is compared with the predicted one, and beyond a ratio of 1.25 (either way)
        the measured moments are used and the correction is reported.
        """
        pred = self.stat(x)
        if not self.apply:
            return pred
        meas = Stat.of(x, self.batch)
        p2, m2 = pred.second_pooled, meas.second_pooled
        if p2 > 0 and m2 > 0 and math.isfinite(m2) and abs(math.log(m2 / p2)) > 2 * math.log(_ANCHOR):
            self.corrections.append((self.label("input"), math.sqrt(p2), math.sqrt(m2)))
            r = self.rec(x)
            if r is not None:
                r.stat = meas
            return meas
        return pred

    def is_param(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor) and id(t) in self.params

    def module_of(self, pname: str) -> str:
        return pname.rsplit(".", 1)[0] if "." in pname else ""

    def label(self, fallback: str) -> str:
        """The innermost parameter-free module in progress (the user's activation class), else the op."""
        for name, mod in reversed(self.stack):
            if isinstance(mod, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
                continue
            if not any(True for _ in mod.parameters()):
                return type(mod).__name__
            break
        return fallback

    # ---- weights -------------------------------------------------------------------------
    def draw(self, w: torch.Tensor, std: float) -> None:
        """Fill ``w`` with entries of std ``std``: a scaled orthogonal matrix (Saxe et al. 2014) for
        weights with out and in axes, so a square layer keeps every input's length exactly (no
        finite-width noise from the draw); Gaussian for vectors and tables."""
        if not self.apply:
            return
        with torch.no_grad():
            if w.dim() < 2 or w.shape[0] == 1:
                w.normal_(0.0, std, generator=self.gen)
                return
            rows, cols = w.shape[0], w[0].numel()
            g = torch.randn(max(rows, cols), min(rows, cols), generator=self.gen, dtype=torch.float64)
            q, r = torch.linalg.qr(g)
            q = q * torch.sign(torch.diagonal(r))  # a uniform (Haar) draw
            q = q if rows >= cols else q.T       # (rows, cols) with orthonormal columns or rows
            w.copy_((q * std * math.sqrt(max(rows, cols))).reshape(w.shape).to(w.dtype))

    def zero(self, b: Any, kind: str = "bias") -> None:
        if self.is_param(b):
            name = self.names[id(b)]
            if name not in self.uses:
                if self.apply:
                    with torch.no_grad():
                        b.zero_()
                self.uses[name] = _Use(kind, self.module_of(name), std=0.0)

    def weight_op(self, w: torch.Tensor, fan_in: float, x: Stat, kind: str, gain: float = 1.0) -> tuple[Stat, str]:
        """Draw ``w`` (first use) so the op's output has batch variance (gain*target)^2; the output's Stat.

        Per sample, the output's variance is proportional to the input's second moment (each
        input keeps its own length, as in the mean-field length map).
        """
        name = self.names[id(w)]
        x_second = x.second_pooled
        rel = np.clip(x.second / x_second, 1e-12, 1e12) if x_second > 0 else 1.0  # per-sample lengths
        rel = rel / np.mean(rel)
        use = self.uses.get(name)
        if use is None:
            if x_second <= 0.0 or not math.isfinite(x_second):
                self.notes.append(f"{name}: its input has no signal (E[x^2] = {x_second:.3g}); left as it was")
                self.uses[name] = _Use(kind, self.module_of(name), touched=False, reason="input has no signal")
                std_now = float(w.detach().float().std()) if w.numel() > 1 else 0.0
                return Stat(0.0, std_now**2 * fan_in * max(x_second, 0.0)), name
            std = gain * self.target / math.sqrt(fan_in * x_second)
            self.draw(w, std)
            out = Stat(0.0 * rel, (gain * self.target) ** 2 * rel)
            self.uses[name] = _Use(kind, self.module_of(name), std=std, predicted=out.std)
            return out, name
        std = use.std if use.std is not None else float(w.detach().float().std())
        return Stat(0.0 * rel, std * std * fan_in * x.second), name

    # ---- dispatch ------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _opname(func)
        flat = tree_flatten((args, kwargs))[0]
        tensors = [a for a in flat if isinstance(a, torch.Tensor)]
        if not tensors or all(self.rec(a) is None and not self.is_param(a) for a in tensors):
            return func(*args, **kwargs)  # nothing we follow (shape queries, constants, index tensors)
        self.n += 1
        handler = getattr(self, _HANDLED[name], None) if name in _HANDLED else None
        if handler is None:
            if name in CONVS:
                handler = self._conv
            elif name in ELEMENTWISE_UNARY or name in BINARY:
                handler = self._elementwise
            elif name in SHAPE:
                handler = self._shape
            elif name in DROPOUT:
                handler = self._dropout
            elif name in NORMS:
                handler = self._norm
            elif name in MHA:
                handler = self._mha
            elif name in RNN:
                handler = self._rnn
        if handler is not None:
            res = handler(func, name, args, kwargs)
            if res is not NotImplemented:
                return res
        return self._fallback(func, name, args, kwargs)

    def _fallback(self, func, name, args, kwargs):
        out = func(*args, **kwargs)
        for a in tree_flatten((args, kwargs))[0]:
            if self.is_param(a) and self.names[id(a)] not in self.uses:
                self.unknown.setdefault(self.names[id(a)], name)
        floats = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.is_floating_point()]
        if floats and any(self.rec(a) is not None for a in tree_flatten((args, kwargs))[0]):
            self.fallbacks[name] = self.fallbacks.get(name, 0) + 1
        for leaf in tree_flatten(out)[0]:
            if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
                self.track(leaf, Rec(stat=Stat.of(leaf, self.batch), measured=True))
        return out

    # ---- weight layers -------------------------------------------------------------------
    def _finish_weight(self, out, stat: Stat, wname: str):
        self.track(out, Rec(stat=stat, origin=(wname, self.n)))
        return out

    def _linear(self, func, name, args, kwargs):
        x, w = args[0], args[1] if len(args) > 1 else kwargs.get("weight")
        b = args[2] if len(args) > 2 else kwargs.get("bias")
        if not self.is_param(w) or self.rec(x) is None:
            return NotImplemented
        stat, wname = self.weight_op(w, w.shape[1], self.anchored(x), "linear")
        self.zero(b)
        return self._finish_weight(func(*args, **kwargs), stat, wname)

    def _addmm(self, func, name, args, kwargs):  # HF Conv1D: addmm(bias, x, weight[in, out])
        b, x, w = args[0], args[1], args[2]
        if not self.is_param(w) or self.rec(x) is None:
            return NotImplemented
        stat, wname = self.weight_op(w, w.shape[0], self.anchored(x), "linear")
        self.zero(b)
        return self._finish_weight(func(*args, **kwargs), stat, wname)

    def _matmul(self, func, name, args, kwargs):
        x, w = args[0], args[1]
        if self.is_param(w) and self.rec(x) is not None and w.dim() == 2:
            stat, wname = self.weight_op(w, w.shape[0], self.anchored(x), "linear")
            return self._finish_weight(func(*args, **kwargs), stat, wname)
        return NotImplemented

    _mm = _matmul

    def _conv(self, func, name, args, kwargs):
        x, w = args[0], args[1] if len(args) > 1 else kwargs.get("weight")
        b = args[2] if len(args) > 2 else kwargs.get("bias")
        if not self.is_param(w) or self.rec(x) is None:
            return NotImplemented
        k = math.prod(w.shape[2:])
        if "transpose" in name:
            stride = args[3] if len(args) > 3 else kwargs.get("stride", 1)
            s = math.prod(stride) if isinstance(stride, (tuple, list)) else int(stride) ** (w.dim() - 2)
            fan_in = w.shape[0] * k / max(s, 1)
        else:
            fan_in = w.shape[1] * k
        stat, wname = self.weight_op(w, fan_in, self.anchored(x), "conv")
        self.zero(b)
        return self._finish_weight(func(*args, **kwargs), stat, wname)

    def _embedding(self, func, name, args, kwargs):
        idx, w = args[0], args[1]
        if not self.is_param(w):
            return NotImplemented
        wname = self.names[id(w)]
        if wname not in self.uses:
            self.draw(w, self.target)
            pad = args[2] if len(args) > 2 else kwargs.get("padding_idx")
            if self.apply and pad is not None and pad >= 0:
                with torch.no_grad():
                    w[pad].zero_()
            self.uses[wname] = _Use("embedding", self.module_of(wname), std=self.target, predicted=self.target)
        use = self.uses[wname]
        out = func(*args, **kwargs)
        return self._finish_weight(out, Stat(0.0, (use.std or 0.0) ** 2), wname)

    # ---- elementwise and arithmetic ------------------------------------------------------
    def _elementwise(self, func, name, args, kwargs):
        kw = {k: (False if k == "inplace" else v) for k, v in kwargs.items()}
        recs = [self.rec(a) for a in args]
        sources = {id(r.source()): r.source() for r in recs if r is not None}
        others = [a for a, r in zip(args, recs) if r is None and isinstance(a, torch.Tensor) and a.numel() > 1]
        if len(sources) == 1 and not others and not any(isinstance(v, torch.Tensor) and self.rec(v) for v in kw.values()):
            src = next(iter(sources.values()))
            parts = [(r.fn if r is not None and r.src is not None else (lambda u: u)) if r is not None else None
                     for r in recs]

            def fn(u, func=func, args=args, parts=parts, kw=kw):
                vals = [p(u) if p is not None else (a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a)
                        for a, p in zip(args, parts)]
                return func(*vals, **kw)

            out = func(*args, **kwargs)
            first = next(r for r in recs if r is not None)
            label = self.label(name.strip("_"))
            if first.label and label == name.strip("_"):
                label = f"{name.strip('_')}({first.label})"
            homogeneous = name in PRODUCTS | {"div", "__truediv__", "div_", "__itruediv__", "neg", "__neg__"} and len(
                [r for r in recs if r is not None]) == 1 and first.src is None
            self.track(out, Rec(src=src, fn=fn, label=label, origin=first.origin if homogeneous else None,
                                chain=first.chain if homogeneous else 0))
            return out
        if name in SUMS and len(sources) == 2 and not others:
            return self._sum(func, name, args, kwargs)
        if name in PRODUCTS and len(sources) == 2 and not others:
            a, b = self.stat(args[0]), self.stat(args[1])
            out = func(*args, **kwargs)
            mean = a.mean * b.mean
            self.track(out, Rec(stat=Stat(mean, np.maximum(a.second * b.second - mean * mean, 0.0))))
            return out
        if len(sources) == 1 and len(others) == 1 and (name in PRODUCTS or name in SUMS):
            x = next(a for a, r in zip(args, recs) if r is not None)
            p = others[0].detach().to(torch.float64)
            s = self.stat(x)
            out = func(*args, **kwargs)
            if name in PRODUCTS:
                mean = s.mean * float(p.mean())
                st = Stat(mean, np.maximum(s.second * float((p * p).mean()) - mean * mean, 0.0))
            else:
                sign = -1.0 if name in {"sub", "__sub__", "sub_", "__isub__"} else 1.0
                st = Stat(s.mean + sign * float(p.mean()), s.var + float(p.var(unbiased=False)))
            self.track(out, Rec(stat=st, origin=self.rec(x).origin if name in PRODUCTS else None, chain=self.rec(x).chain))
            return out
        return NotImplemented

    def _sum(self, func, name, args, kwargs):
        ra, rb = self.rec(args[0]), self.rec(args[1])
        a, b = self.stat(args[0]), self.stat(args[1])
        # the branch: the term that a weight layer produced most recently (up to a linear map)
        branch = None
        if ra.origin and rb.origin:
            branch = 1 if rb.origin[1] > ra.origin[1] else 0
        elif rb.origin:
            branch = 1
        elif ra.origin:
            branch = 0
        skip = (ra, rb)[1 - branch] if branch is not None else ra
        chain = skip.chain + 1
        self.max_chain = max(self.max_chain, chain)
        if branch is not None and self.R > 1:
            br_t, br_r = args[branch], (ra, rb)[branch]
            wname = br_r.origin[0]
            use = self.uses.get(wname)
            if wname not in self.branch_scaled and use is not None and use.std is not None and use.touched:
                f = 1.0 / math.sqrt(self.R)
                self.branch_scaled.add(wname)
                if self.apply:
                    with torch.no_grad():
                        w = self.params[self._pid(wname)]
                        w.mul_(f)
                        br_t.mul_(f)  # the branch is linear in the weight (bias zero), so its value scales too
                use.std *= f
                use.predicted = (use.predicted or 0.0) * f
                st = br_r.stat if br_r.stat is not None else self.stat(br_t)
                br_r.stat = Stat(st.mean * f, st.var * f * f)
                if branch == 0:
                    a = br_r.stat
                else:
                    b = br_r.stat
        out = func(*args, **kwargs)
        sign = -1.0 if name in {"sub", "__sub__", "sub_", "__isub__"} else 1.0
        self.track(out, Rec(stat=Stat(a.mean + sign * b.mean, a.var + b.var), chain=chain))
        return out

    def _pid(self, wname: str) -> int:
        for pid, n in self.names.items():
            if n == wname:
                return pid
        raise KeyError(wname)

    def _shape(self, func, name, args, kwargs):
        out = func(*args, **kwargs)
        r = self.rec(args[0]) if args else None
        if r is None:  # a view of a parameter (w.t()) or a constant
            if args and self.is_param(args[0]):
                self.params[id(out)] = args[0]
                self.names[id(out)] = self.names[id(args[0])]
                self.alive.append(out)
            return out
        self.track(out, r)
        return out

    def _cat(self, func, name, args, kwargs):
        seq = args[0] if args else kwargs.get("tensors")
        if not all(self.rec(t) is not None for t in seq):
            return NotImplemented
        sts, ns = [self.stat(t).pooled for t in seq], [t.numel() for t in seq]
        tot = sum(ns)
        mean = sum(s.mean * n for s, n in zip(sts, ns)) / tot
        second = sum(s.second * n for s, n in zip(sts, ns)) / tot
        out = func(*args, **kwargs)
        self.track(out, Rec(stat=Stat(mean, max(second - mean * mean, 0.0))))
        return out

    def _dropout(self, func, name, args, kwargs):
        x = args[0]
        r = self.rec(x)
        if r is None:
            return NotImplemented
        p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
        training = args[2] if len(args) > 2 else kwargs.get("training", True)
        s = self.stat(x)
        out = func(*args, **kwargs)
        if training and p > 0 and "alpha" not in name:
            st = Stat(s.mean, np.maximum(s.second / (1 - p) - s.mean**2, 0.0))
        else:
            st = s
        self.track(out, Rec(stat=st, origin=r.origin, chain=r.chain))
        return out

    def _norm(self, func, name, args, kwargs):
        x = args[0]
        if self.rec(x) is None:
            return NotImplemented
        if name == "batch_norm":
            rm, rv = args[1], args[2]
            w = args[3] if len(args) > 3 else kwargs.get("weight")
            b = args[4] if len(args) > 4 else kwargs.get("bias")
            training = args[5] if len(args) > 5 else kwargs.get("training", False)
        elif name in ("layer_norm", "group_norm"):
            w = args[2] if len(args) > 2 else kwargs.get("weight")
            b = args[3] if len(args) > 3 else kwargs.get("bias")
        elif name == "rms_norm":
            w, b = (args[2] if len(args) > 2 else kwargs.get("weight")), None
        else:  # instance_norm(input, running_mean, running_var, weight, bias, ...)
            w = args[3] if len(args) > 3 else kwargs.get("weight")
            b = args[4] if len(args) > 4 else kwargs.get("bias")
        for p, why in ((w, "norm scale"), (b, "norm shift")):
            if self.is_param(p) and self.names[id(p)] not in self.uses:
                n = self.names[id(p)]
                self.uses[n] = _Use("norm", self.module_of(n), touched=False, reason=why)
        gw = float((w.detach().double() ** 2).mean()) if isinstance(w, torch.Tensor) else 1.0
        mb = float(b.detach().double().mean()) if isinstance(b, torch.Tensor) else 0.0
        vb = float(b.detach().double().var(unbiased=False)) if isinstance(b, torch.Tensor) and b.numel() > 1 else 0.0
        if name == "batch_norm" and not training and rm is not None:
            s = self.stat(x)
            scale = float((1.0 / (rv.double() + 1e-5)).mean())
            st = Stat(mb, gw * ((s.mean - float(rm.double().mean())) ** 2 + s.var) * scale + vb)
        elif name == "rms_norm":
            s = self.stat(x)
            m = s.mean / np.sqrt(np.maximum(s.second, 1e-30))
            st = Stat(m, np.maximum(gw - m * m, 0.0))
        elif name == "batch_norm":  # per channel over the batch: each sample keeps its relative length
            s = self.stat(x)
            st = Stat(mb + 0.0 * s.mean, gw * s.second / s.second_pooled + vb) if s.second_pooled > 0 else Stat(mb, gw + vb)
        else:
            st = Stat(mb, gw + vb)
        out = func(*args, **kwargs)
        self.track(out, Rec(stat=st))
        return out

    # ---- attention and recurrent cells ---------------------------------------------------
    def _mha(self, func, name, args, kwargs):
        params = [a for a in tree_flatten((args, kwargs))[0] if self.is_param(a)]
        q = args[0]
        if self.rec(q) is None:
            return NotImplemented
        x2 = self.stat(q).second_pooled
        out_w = None
        for p in params:
            n = self.names[id(p)]
            if n in self.uses:
                continue
            if p.dim() == 1:
                self.zero(p)
            elif n.endswith("in_proj_weight") or n.rsplit(".", 1)[-1] in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                std = self.target / math.sqrt(p.shape[1] * x2)
                self.draw(p, std)
                self.uses[n] = _Use("attention", self.module_of(n), std=std)  # q, k, v: not the module's output
            elif out_w is None:
                out_w = p
        if out_w is not None:
            self.draw(out_w, 1.0 / math.sqrt(out_w.shape[1]))
        out = func(*args, **kwargs)
        o = out[0] if isinstance(out, (tuple, list)) else out
        if out_w is not None:
            n = self.names[id(out_w)]
            m2 = float((o.detach().double() ** 2).mean())
            f = self.target / math.sqrt(m2) if m2 > 0 else 1.0
            if self.apply:
                with torch.no_grad():
                    out_w.mul_(f)
                    o.mul_(f)
            self.uses[n] = _Use("attention", self.module_of(n), std=f / math.sqrt(out_w.shape[1]), predicted=self.target)
            self.fallbacks["attention mixing (softmax)"] = self.fallbacks.get("attention mixing (softmax)", 0) + 1
            stat = Stat(0.0, self.target**2)
            self.track(o, Rec(stat=stat, origin=(n, self.n)))
        else:
            self.track(o, Rec(stat=Stat.of(o, self.batch), measured=True))
        return out

    def _rnn(self, func, name, args, kwargs):
        params = [a for a in tree_flatten((args, kwargs))[0] if self.is_param(a)]
        x = args[0]
        x2 = self.stat(x).second_pooled if self.rec(x) is not None else 1.0
        for p in params:
            n = self.names[id(p)]
            if n in self.uses:
                continue
            short = n.rsplit(".", 1)[-1]
            if p.dim() == 1:
                self.zero(p)
            elif short.startswith("weight_ih"):
                layer0 = short.endswith("_l0") or short == "weight_ih" or "_l0_" in short
                std = 1.0 / math.sqrt(p.shape[1] * (x2 if layer0 else 1.0))
                self.draw(p, std)
                self.uses[n] = _Use("recurrent", self.module_of(n), std=std)
            elif short.startswith("weight_hh"):
                std = 1.0 / math.sqrt(p.shape[1])
                self.draw(p, std)
                self.uses[n] = _Use("recurrent", self.module_of(n), std=std)
        out = func(*args, **kwargs)
        self.fallbacks["recurrent cell"] = self.fallbacks.get("recurrent cell", 0) + 1
        for leaf in tree_flatten(out)[0]:
            if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
                self.track(leaf, Rec(stat=Stat.of(leaf, self.batch), measured=True))
        return out


_HANDLED = {"linear": "_linear", "addmm": "_addmm", "matmul": "_matmul", "mm": "_mm", "__matmul__": "_matmul",
            "embedding": "_embedding", "cat": "_cat", "stack": "_cat", "concat": "_cat", "concatenate": "_cat"}


def run_tracker(model: nn.Module, example: Any, tracker: Tracker) -> Any:
    """One forward pass of ``model`` on ``example`` under ``tracker`` (inputs' moments measured)."""
    leaves = [t for t in tree_flatten(example)[0] if isinstance(t, torch.Tensor)]
    tracker.batch = int(leaves[0].shape[0]) if leaves and leaves[0].dim() >= 1 else 0
    for leaf in leaves:
        if leaf.is_floating_point():
            tracker.track(leaf, Rec(stat=Stat.of(leaf, tracker.batch), measured=True))
    with quiet_forward(model), module_stack_hooks(model, tracker.stack), tracker:
        return run_forward(model, example)


def analytic_init(model: nn.Module, example: Any, *, target_std: float, generator: torch.Generator) -> Tracker:
    """Pass 1 finds the residual streams (R); pass 2 re-draws every weight. Returns pass 2's tracker."""
    probe = Tracker(model, target=target_std, generator=generator, apply=False)
    run_tracker(model, example, probe)
    tracker = Tracker(model, target=target_std, generator=generator, apply=True, residual_r=probe.max_chain)
    run_tracker(model, example, tracker)
    return tracker
