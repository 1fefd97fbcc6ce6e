"""The analytic mode's rules for ops with their own moment maps: concatenation, dropout,
normalisation, attention (measured mixing) and recurrent cells; and what is known of each tensor.

:class:`LayerRules` is the base of :class:`initlab.autoinit.analytic.Tracker`, whose bookkeeping
(``stat``, ``track``, ``draw``, ``zero``, ``uses``) these rules use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard, cast

import numpy as np
import torch
from torch.utils._pytree import tree_flatten  # noqa: PLC2701  (torch has no public pytree API)

from .moments import Stat

__all__ = ["Rec", "Use", "LayerRules"]


@dataclass(eq=False)
class Rec:
    """What is known of one tensor: a predicted Stat, or an elementwise expression of a source Rec."""

    stat: Stat | None = None
    src: Rec | None = None                       # the pre-activation this is an elementwise function of
    fn: Callable[..., Any] | None = None                    # u -> value, on float64 tensors
    label: str = ""                                # the activation's name in the report
    origin: tuple[str, int] | None = None          # (weight name, op index) if a weight op's output, up to a linear map
    chain: int = 0                                 # residual additions since the last normalization
    measured: bool = False                         # the stat was measured, not predicted
    born: int = -1                                 # op index at which the tensor was first produced

    def source(self) -> Rec:
        return self.src if self.src is not None else self


@dataclass
class Use:
    kind: str
    module: str
    std: float | None = None
    predicted: float | None = None
    touched: bool = True
    reason: str = ""


class LayerRules:
    """Moment rules for concatenation, dropout, normalisation, attention and recurrent cells."""

    if TYPE_CHECKING:  # provided by Tracker (declared here for the type checker only)
        uses: dict[str, Use]
        names: dict[int, str]
        target: float
        fallbacks: dict[str, int]
        batch: int
        n: int
        apply: bool

        def track(self, t: Any, rec: Rec) -> None: ...

        def rec(self, t: Any) -> Rec | None: ...

        def stat(self, t: torch.Tensor) -> Stat: ...

        def is_param(self, t: Any) -> TypeGuard[torch.Tensor]: ...

        def module_of(self, pname: str) -> str: ...

        def draw(self, w: torch.Tensor, std: float, gaussian: bool = False) -> None: ...

        def zero(self, b: Any, kind: str = "bias") -> None: ...

    def _cat(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        seq = cast("Sequence[torch.Tensor]", args[0] if args else kwargs.get("tensors"))  # torch.cat(tensors)
        if not all(self.rec(t) is not None for t in seq):
            return NotImplemented
        sts, ns = [self.stat(t).pooled for t in seq], [t.numel() for t in seq]
        tot = sum(ns)
        mean = sum(s.mean * n for s, n in zip(sts, ns, strict=False)) / tot
        second = sum(s.second * n for s, n in zip(sts, ns, strict=False)) / tot
        out = func(*args, **kwargs)
        self.track(out, Rec(stat=Stat(mean, max(second - mean * mean, 0.0))))
        return out

    def _dropout(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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

    def _norm(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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
                self.uses[n] = Use("norm", self.module_of(n), touched=False, reason=why)
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
            if s.second_pooled > 0:
                st = Stat(mb + 0.0 * s.mean, gw * s.second / s.second_pooled + vb)
            else:
                st = Stat(mb, gw + vb)
        else:
            st = Stat(mb, gw + vb)
        out = func(*args, **kwargs)
        self.track(out, Rec(stat=st))
        return out

    # ---- attention and recurrent cells ---------------------------------------------------
    def _mha(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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
            elif n.endswith("in_proj_weight") or n.rsplit(".", 1)[-1] in ("q_proj_weight", "k_proj_weight",
                                                                          "v_proj_weight"):
                std = self.target / math.sqrt(p.shape[1] * x2)
                self.draw(p, std)
                self.uses[n] = Use("attention", self.module_of(n), std=std)  # q, k, v: not the module's output
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
            self.uses[n] = Use("attention", self.module_of(n), std=f / math.sqrt(out_w.shape[1]), predicted=self.target)
            self.fallbacks["attention mixing (softmax)"] = self.fallbacks.get("attention mixing (softmax)", 0) + 1
            stat = Stat(0.0, self.target**2)
            self.track(o, Rec(stat=stat, origin=(n, self.n)))
        else:
            self.track(o, Rec(stat=Stat.of(o, self.batch), measured=True))
        return out

    def _rnn(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
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
                self.uses[n] = Use("recurrent", self.module_of(n), std=std)
            elif short.startswith("weight_hh"):
                std = 1.0 / math.sqrt(p.shape[1])
                self.draw(p, std)
                self.uses[n] = Use("recurrent", self.module_of(n), std=std)
        out = func(*args, **kwargs)
        self.fallbacks["recurrent cell"] = self.fallbacks.get("recurrent cell", 0) + 1
        for leaf in tree_flatten(out)[0]:
            if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
                self.track(leaf, Rec(stat=Stat.of(leaf, self.batch), measured=True))
        return out
