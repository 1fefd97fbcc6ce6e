"""The analytic mode: propagate mean and variance through the model's ops and scale each weight.

One forward pass on the example runs under a ``TorchFunctionMode`` that sees every torch
function the model calls. Each tensor carries a *predicted* (mean, variance) of its entries:

* weight layers (linear, addmm/matmul with a parameter, conv, embedding): the weight is drawn
  with entry std ``s = gain * target / sqrt(fan_in * E[x^2])`` (E[x^2] the predicted second
  moment of the input, mean included; a scaled orthogonal matrix, Saxe et al. 2014, so the draw
  adds no finite-width noise), the bias zeroed, so the output has variance ``(gain * target)^2``
  (LeCun et al. 1998; He et al. 2015 for the fan_in form; Mishkin & Matas 2016's LSUV target,
  predicted instead of measured). Moments are kept per example sample (each input's own
  length, as the mean-field length map acts on each input), and where an input's measured rms
  parts from the prediction by more than x1.25 (finite width, a repelling length map) the
  measured moments are used and the correction reported;
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
from typing import Any, TypeGuard, cast

import numpy as np
import torch
from torch import nn
from torch.utils._pytree import tree_flatten  # noqa: PLC2701  (torch has no public pytree API)

from ..trace import InterceptMode, module_stack, op_kind
from ..trace.ops import DIVISIONS, PRODUCT_OPS, SUBTRACTIONS, SUM_OPS
from . import moments as mom
from .analytic_rules import LayerRules, Rec, Use
from .graph import quiet_forward, run_forward
from .moments import Stat

__all__ = ["analytic_init", "Tracker", "run_tracker"]

_ANCHOR = 1.25  # predicted vs measured input rms ratio beyond which the measured moments are used

class Tracker(LayerRules):
    """Follow the moments through one forward pass; with ``apply`` set, re-draw the weights on the way."""

    def __init__(self, model: nn.Module, *, target: float, generator: torch.Generator, apply: bool,
                 residual_r: int = 1):
        self.model, self.target, self.gen, self.apply = model, float(target), generator, apply
        self.R = max(1, residual_r)
        self.names: dict[int, str] = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            self.names.setdefault(id(p), name)
        self.params: dict[int, torch.Tensor] = {id(p): p for p in model.parameters()}  # and views of them
        self.recs: dict[int, Rec] = {}
        self.alive: list[Any] = []
        self.uses: dict[str, Use] = {}             # parameter name -> what happened to it
        self.unknown: dict[str, str] = {}           # parameter name -> op that consumed it
        self.activations: list[tuple[str, Callable[..., Any], Stat]] = []
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
        if rec.born < 0:
            rec.born = self.n
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
            assert r.fn is not None and src.stat is not None  # no stat: an expression of a source that has one
            res = mom.moments(r.fn, src.stat, r.label or "activation")
            if res.note:
                self.notes.append(res.note)
            r.stat = res.out
            if src.origin is not None:  # an activation after a weight layer: for the stability analysis
                self.activations.append((r.label or "activation", r.fn, src.stat.pooled))
        return r.stat

    def anchored(self, x: torch.Tensor, w: torch.Tensor) -> Stat:
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
            self.corrections.append((self.names.get(id(w), "?"), math.sqrt(p2), math.sqrt(m2)))
            r = self.rec(x)
            if r is not None:
                r.stat = meas
            return meas
        return pred

    def is_param(self, t: Any) -> TypeGuard[torch.Tensor]:
        return isinstance(t, torch.Tensor) and id(t) in self.params

    def module_of(self, pname: str) -> str:
        return pname.rsplit(".", 1)[0] if "." in pname else ""

    def label(self, fallback: str) -> str:
        """The innermost parameter-free module in progress (the user's activation class), else the op."""
        for _name, mod in reversed(self.stack):
            if isinstance(mod, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
                continue
            if not any(True for _ in mod.parameters()):
                return type(mod).__name__
            break
        return fallback

    # ---- weights -------------------------------------------------------------------------
    def draw(self, w: torch.Tensor, std: float, gaussian: bool = False) -> None:
        """Fill ``w`` with entries of std ``std``: a scaled orthogonal matrix (Saxe et al. 2014) for
        weights with out and in axes, so a square layer keeps every input's length exactly (no
        finite-width noise from the draw); Gaussian for vectors and tables."""
        if not self.apply:
            return
        with torch.no_grad():
            if gaussian or w.dim() < 2 or w.shape[0] == 1:
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
                self.uses[name] = Use(kind, self.module_of(name), std=0.0)

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
                self.uses[name] = Use(kind, self.module_of(name), touched=False, reason="input has no signal")
                std_now = float(w.detach().float().std()) if w.numel() > 1 else 0.0
                return Stat(0.0, std_now**2 * fan_in * max(x_second, 0.0)), name
            std = gain * self.target / math.sqrt(fan_in * x_second)
            self.draw(w, std)
            out = Stat(0.0 * rel, (gain * self.target) ** 2 * rel)
            self.uses[name] = Use(kind, self.module_of(name), std=std, predicted=out.std)
            return out, name
        std = use.std if use.std is not None else float(w.detach().float().std())
        return Stat(0.0 * rel, std * std * fan_in * x.second), name

    # ---- dispatch ------------------------------------------------------------------------
    def handle(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One torch call of the pass (from :class:`~initlab.trace.InterceptMode`): the moment rule
        of its kind in :func:`initlab.trace.op_kind`, else the measured fallback."""
        name, kind = op_kind(func)
        flat = tree_flatten((args, kwargs))[0]
        tensors = [a for a in flat if isinstance(a, torch.Tensor)]
        if not tensors or all(self.rec(a) is None and not self.is_param(a) for a in tensors):
            return func(*args, **kwargs)  # nothing we follow (shape queries, constants, index tensors)
        self.n += 1
        handler = getattr(self, _RULES[kind]) if kind is not None else None
        if handler is not None:
            res = handler(func, name, args, kwargs)
            if res is not NotImplemented:
                return res
        return self._fallback(func, name, args, kwargs)

    def _fallback(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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
    def _finish_weight(self, out: Any, stat: Stat, wname: str) -> Any:
        self.track(out, Rec(stat=stat, origin=(wname, self.n)))
        return out

    def _linear(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        x, w = args[0], args[1] if len(args) > 1 else kwargs.get("weight")
        b = args[2] if len(args) > 2 else kwargs.get("bias")
        if not self.is_param(w) or self.rec(x) is None:
            return NotImplemented
        stat, wname = self.weight_op(w, w.shape[1], self.anchored(x, w), "linear")
        self.zero(b)
        return self._finish_weight(func(*args, **kwargs), stat, wname)

    # HF Conv1D: addmm(bias, x, weight[in, out])
    def _addmm(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        b, x, w = args[0], args[1], args[2]
        if not self.is_param(w) or self.rec(x) is None:
            return NotImplemented
        stat, wname = self.weight_op(w, w.shape[0], self.anchored(x, w), "linear")
        self.zero(b)
        return self._finish_weight(func(*args, **kwargs), stat, wname)

    def _matmul(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        x, w = args[0], args[1]
        if self.is_param(w) and self.rec(x) is not None and w.dim() == 2:
            stat, wname = self.weight_op(w, w.shape[0], self.anchored(x, w), "linear")
            return self._finish_weight(func(*args, **kwargs), stat, wname)
        return NotImplemented

    def _conv(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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
        stat, wname = self.weight_op(w, fan_in, self.anchored(x, w), "conv")
        self.zero(b)
        return self._finish_weight(func(*args, **kwargs), stat, wname)

    def _embedding(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        w = args[1]
        if not self.is_param(w):
            return NotImplemented
        wname = self.names[id(w)]
        if wname not in self.uses:
            self.draw(w, self.target, gaussian=True)
            pad = args[2] if len(args) > 2 else kwargs.get("padding_idx")
            if self.apply and pad is not None and pad >= 0:
                with torch.no_grad():
                    w[pad].zero_()
            self.uses[wname] = Use("embedding", self.module_of(wname), std=self.target, predicted=self.target)
        use = self.uses[wname]
        out = func(*args, **kwargs)
        return self._finish_weight(out, Stat(0.0, (use.std or 0.0) ** 2), wname)

    # ---- elementwise and arithmetic ------------------------------------------------------
    def _elementwise(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        kw = {k: (False if k == "inplace" else v) for k, v in kwargs.items()}
        recs = [self.rec(a) for a in args]
        sources = {id(r.source()): r.source() for r in recs if r is not None}
        others = [a for a, r in zip(args, recs, strict=False) if r is None and isinstance(a, torch.Tensor) and a.numel() > 1]
        if len(sources) == 1 and not others and not any(isinstance(v, torch.Tensor) and self.rec(v) for v in kw.values()):
            src = next(iter(sources.values()))
            parts = [(r.fn if r is not None and r.src is not None else (lambda u: u)) if r is not None else None
                     for r in recs]

            def fn(u: torch.Tensor, func: Callable[..., Any] = func, args: tuple[Any, ...] = args,
                   parts: list[Any] = parts, kw: dict[str, Any] = kw) -> Any:
                vals = [p(u) if p is not None else (a.double() if isinstance(a, torch.Tensor) and a.is_floating_point() else a)
                        for a, p in zip(args, parts, strict=False)]
                return func(*vals, **kw)

            out = func(*args, **kwargs)
            first = next(r for r in recs if r is not None)
            label = self.label(name.strip("_"))
            if first.label and label == name.strip("_"):
                label = f"{name.strip('_')}({first.label})"
            homogeneous = name in PRODUCT_OPS | DIVISIONS | {"neg", "__neg__"} and len(
                [r for r in recs if r is not None]) == 1 and first.src is None
            self.track(out, Rec(src=src, fn=fn, label=label, origin=first.origin if homogeneous else None,
                                chain=first.chain if homogeneous else 0))
            return out
        if name in SUM_OPS and len(sources) == 2 and not others:
            return self._sum(func, name, args, kwargs)
        if name in PRODUCT_OPS and len(sources) == 2 and not others:
            a, b = self.stat(args[0]), self.stat(args[1])
            out = func(*args, **kwargs)
            mean = a.mean * b.mean
            self.track(out, Rec(stat=Stat(mean, np.maximum(a.second * b.second - mean * mean, 0.0))))
            return out
        if len(sources) == 1 and len(others) == 1 and (name in PRODUCT_OPS or name in SUM_OPS):
            x = next(a for a, r in zip(args, recs, strict=False) if r is not None)
            if self.is_param(others[0]) and self.names[id(others[0])] not in self.uses:
                n = self.names[id(others[0])]
                why = "multiplies the signal (a gain)" if name in PRODUCT_OPS else "added to the signal (an offset)"
                self.uses[n] = Use("other", self.module_of(n), touched=False, reason=f"{why}; left as built")
            p = others[0].detach().to(torch.float64)
            s = self.stat(x)
            out = func(*args, **kwargs)
            if name in PRODUCT_OPS:
                mean = s.mean * float(p.mean())
                st = Stat(mean, np.maximum(s.second * float((p * p).mean()) - mean * mean, 0.0))
            else:
                sign = -1.0 if name in SUBTRACTIONS else 1.0
                st = Stat(s.mean + sign * float(p.mean()), s.var + float(p.var(unbiased=False)))
            rx = cast(Rec, self.rec(x))  # x was picked for having a Rec
            self.track(out, Rec(stat=st, origin=rx.origin if name in PRODUCT_OPS else None, chain=rx.chain))
            return out
        return NotImplemented

    def _sum(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ra, rb = self.rec(args[0]), self.rec(args[1])
        assert ra is not None and rb is not None  # _elementwise: two followed sources
        a, b = self.stat(args[0]), self.stat(args[1])
        # the branch: the term a weight layer produced (up to a linear map) after the other term existed
        branch = None
        if rb.origin and rb.origin[1] > ra.born and not (ra.origin and ra.origin[1] > rb.origin[1]):
            branch = 1
        elif ra.origin and ra.origin[1] > rb.born:
            branch = 0
        skip = (ra, rb)[1 - branch] if branch is not None else ra
        chain = skip.chain + 1
        self.max_chain = max(self.max_chain, chain)
        if branch is not None and self.R > 1:
            br_t, br_r = args[branch], (ra, rb)[branch]
            wname = cast("tuple[str, int]", br_r.origin)[0]  # the branch is the term with an origin
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
        sign = -1.0 if name in SUBTRACTIONS else 1.0
        self.track(out, Rec(stat=Stat(a.mean + sign * b.mean, a.var + b.var), chain=chain))
        return out

    def _pid(self, wname: str) -> int:
        for pid, n in self.names.items():
            if n == wname:
                return pid
        raise KeyError(wname)

    def _shape(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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


_RULES = {"linear": "_linear", "addmm": "_addmm", "matmul": "_matmul", "embedding": "_embedding", "concat": "_cat",
          "conv": "_conv", "elementwise": "_elementwise", "shape": "_shape", "dropout": "_dropout", "norm": "_norm",
          "attention": "_mha", "recurrent": "_rnn"}


def run_tracker(model: nn.Module, example: Any, tracker: Tracker) -> Any:
    """One forward pass of ``model`` on ``example`` under ``tracker`` (inputs' moments measured)."""
    leaves = [t for t in tree_flatten(example)[0] if isinstance(t, torch.Tensor)]
    tracker.batch = int(leaves[0].shape[0]) if leaves and leaves[0].dim() >= 1 else 0
    for leaf in leaves:
        if leaf.is_floating_point():
            tracker.track(leaf, Rec(stat=Stat.of(leaf, tracker.batch), measured=True))
    with quiet_forward(model), module_stack(model, tracker.stack), InterceptMode(tracker.handle):
        return run_forward(model, example)


def analytic_init(model: nn.Module, example: Any, *, target_std: float, generator: torch.Generator) -> Tracker:
    """Pass 1 finds the residual streams (R); pass 2 re-draws every weight. Returns pass 2's tracker."""
    probe = Tracker(model, target=target_std, generator=generator, apply=False)
    run_tracker(model, example, probe)
    tracker = Tracker(model, target=target_std, generator=generator, apply=True, residual_r=probe.max_chain)
    run_tracker(model, example, tracker)
    return tracker
