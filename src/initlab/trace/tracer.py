"""The tracer: module hooks and a function mode that observe one forward pass of any ``nn.Module``.

What is observed is listed in :mod:`initlab.trace.ops`; the tracer turns it into events:
:attr:`Tracer.records` (a weighted op and the activation that consumed its output, or a lone
activation), :attr:`Tracer.norms`, :attr:`Tracer.attention`, :attr:`Tracer.blocks`,
:attr:`Tracer.uses` (every operation that used each parameter) and :attr:`Tracer.softmaxes` (every
softmax over a >= 3-d tensor, whether it was measured as attention). Consumers (diagnose, the
Monitor) read those; the tracer judges nothing.

An activation whose input is a weighted op's output (directly, through a normalisation or dropout
module, or a reshape that keeps the last axis) is paired with that op: one row. Any other
activation (after a residual addition, say) gets its own row. In-place activation modules are fed
a copy of their input, so the layer's own output stays the pre-activation. Each row keeps the
activation as a callable (``Record.act_fn``), so its properties are measured, not looked up.
Each weighted row also records the weighted ops reading its output (``Record.readers``): directly,
after its activation, through dropout or normalisation, or through ``nn.Flatten``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard, cast

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from . import ops
from .attention import Attention, measure_attention, sdpa_logits
from .blocks import repeated_blocks, role
from .dispatch import FunctionalMode
from .events import BlockRecord, NormRecord, Record
from .hooks import ModuleHooks

__all__ = ["Tracer"]


class Tracer(ModuleHooks):
    """Hooks on ``model`` that fill the event lists during the next forward pass with autograd on.

    ``attach()`` registers the hooks, ``detach()`` removes them (always call it). Only the first
    forward with autograd on is traced, so an evaluation pass under ``torch.no_grad()`` between
    two training steps does not count.
    """

    def __init__(self, model: nn.Module, functional: bool = True) -> None:
        super().__init__()
        self.model, self.functional = model, functional
        self.records: list[Record] = []
        self.norms: list[NormRecord] = []
        self.attention: list[Attention] = []
        self.blocks: list[BlockRecord] = []
        self.uses: dict[str, set[str]] = {}  # parameter name -> operations that used it
        self.softmaxes: list[dict[str, Any]] = []  # {"name", "shape", "attention": bool} per softmax over >= 3 axes
        self.done = False
        self._handles: list[RemovableHandle] = []
        self._mode: FunctionalMode | None = None
        self._names: dict[int, str] = {}
        self._param_names: dict[int, str] = {}
        self._param_owner: dict[int, tuple[str, str]] = {}  # id(param) -> (module name, attribute)
        self._blocks: dict[str, str] = {}  # "h.3" -> "h.*" for repeated blocks
        self._reset()

    # -- life cycle -------------------------------------------------------------------------
    def attach(self) -> Tracer:
        """Register the hooks (idempotent); clears previous events."""
        if self._handles:
            return self
        self.records, self.done = [], False
        self.norms, self.attention, self.blocks, self.uses, self.softmaxes = [], [], [], {}, []
        self._reset()
        root = self.model
        self._param_names = {id(p): n for n, p in root.named_parameters()}
        for name, module in root.named_modules():
            for attr, p in module._parameters.items():
                if p is not None and id(p) not in self._param_owner:
                    self._param_owner[id(p)] = (name, attr)
        self._blocks = repeated_blocks(root)
        for name, module in root.named_modules():
            self._names[id(module)] = name
            self._handles.extend(self._module_hooks(name, module))
        self._handles.append(root.register_forward_pre_hook(self._begin))
        self._handles.append(root.register_forward_hook(self._end))
        return self

    def detach(self) -> None:
        """Remove every hook (and leave the function mode if a forward raised inside it)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._mode is not None:
            self._mode.__exit__(None, None, None)  # type: ignore[no-untyped-call]  # torch's TorchFunctionMode is unannotated
            self._mode = None
        self._reset()

    def _reset(self) -> None:
        self.lineage.clear()
        self._stack: list[tuple[str, nn.Module]] = []
        self._inside: dict[int, int] = defaultdict(int)  # id(param) of modules measured by their own hook, running now
        self._custom: dict[int, bool] = {}  # id(module) -> acts elementwise (this pass only)

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def _recording(self) -> bool:
        return not self.done and torch.is_grad_enabled()

    def _active(self) -> bool:
        return self._recording() and not self._probing

    def _begin(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if self._recording() and self.functional and self._mode is None:
            self._mode = FunctionalMode(self._seen, self._active)
            self._mode.__enter__()  # type: ignore[no-untyped-call]  # torch's TorchFunctionMode is unannotated

    def _end(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)  # type: ignore[no-untyped-call]  # as in detach()
            self._mode = None
        if self._recording() and self.records:
            self.done = True
            self.lineage.clear()

    # -- naming -----------------------------------------------------------------------------
    def role(self, name: str) -> str:
        """``name`` with every repeated-block index replaced by ``*`` (``h.3.attn`` -> ``h.*.attn``)."""
        return role(name, self._blocks)

    def param_name(self, p: torch.Tensor) -> str:
        return self._param_names.get(id(p), "")

    def _is_param(self, t: object) -> TypeGuard[torch.Tensor]:
        return isinstance(t, torch.Tensor) and id(t) in self._param_names

    def _row_name(self, weight: torch.Tensor) -> str:
        """A functional row's name: the weight's owner module, plus the attribute unless it is ``weight``."""
        owner, attr = self._param_owner.get(id(weight), ("", "weight"))
        if attr != "weight":
            attr = attr[: -len("_weight")] if attr.endswith("_weight") else attr
            owner = f"{owner}.{attr}" if owner else attr
        return owner or "weight"

    def _owner_module(self, p: torch.Tensor) -> nn.Module | None:
        owner = self._param_owner.get(id(p))
        return self.model.get_submodule(owner[0]) if owner is not None else None

    def _where(self) -> str:
        return self._stack[-1][0] if self._stack else "attention"

    # -- functional calls -------------------------------------------------------------------
    def _params_in(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.Tensor]:
        found: list[torch.Tensor] = []
        for a in [*args, *kwargs.values()]:
            if isinstance(a, (list, tuple)):
                found.extend(t for t in a if isinstance(t, torch.Tensor) and id(t) in self._param_names)
            elif isinstance(a, torch.Tensor) and id(a) in self._param_names:
                found.append(a)
        return found

    def _seen(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        """Every torch call while tracing: parameters used, weighted functional calls, norms,
        attention, activations, reshapes of a row's output."""
        params = self._params_in(args, kwargs)
        if params:
            op = ops.op_name(func)
            for p in params:
                self.uses.setdefault(self.param_name(p), set()).add(op)
            if any(self._inside.get(id(p), 0) for p in params):
                return  # a Linear/Conv/LSTM module measures its own weights
            if self._functional_weighted(func, args, kwargs, out) or self._norm(func, args, kwargs, out):
                return
        if not ops.hashable(func):
            return
        self._follow_scores(func, args, kwargs, out)
        if func in ops.ARITHMETIC and self.lineage.has_lone:
            self._arithmetic(func, args, out)
        if func in ops.SOFTMAX:
            self._softmax(args, kwargs, out)
        elif func is torch.nn.functional.scaled_dot_product_attention:
            logits = sdpa_logits(args, kwargs)
            if logits is not None and logits.ndim == 4:
                self._attention(logits)
            elif logits is not None:  # heads folded into the batch, or a single head
                self._attention(logits.reshape(-1, 1, *logits.shape[-2:]), "folded")
        elif func in ops.VIEWS:
            self._view(args, out)
        else:
            kind = ops.FUNCTIONAL.get(func)
            if kind is not None and args:
                self._functional(kind, func, args, kwargs, out)

    def _follow_scores(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        """Mark ``q @ k^T`` products of two activations, and what scaling, masking and reshaping make of them."""
        if not isinstance(out, torch.Tensor) or not out.is_floating_point() or out.ndim < 2:
            return
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if ops.short_name(func) in ops.SHAPE_OPS and tensors and (
                self._is_param(tensors[0]) or self.lineage.is_weight_view(tensors[0])):
            self.lineage.mark_weight_view(out)  # W.t(), W.view(...): still a weight, not an activation
        elif func in ops.QK_PRODUCTS:
            operands = [t for t in tensors if t.ndim >= 2]
            if len(operands) == 2 and not any(self._is_param(t) or self.lineage.is_weight_view(t) for t in operands):
                self.lineage.mark_score(out)
        elif func in ops.SCORE_KEEPING and any(self.lineage.is_score(t) for t in tensors):
            self.lineage.mark_score(out)

    def _arithmetic(self, func: Callable[..., Any], args: tuple[Any, ...], out: Any) -> None:
        """Follow a lone activation's output through ``+ - * /`` with numbers; a product with
        another tensor makes it part of an expression (``Record.composite``)."""
        if not isinstance(out, torch.Tensor) or len(args) < 2:
            return
        for mine, other in ((args[0], args[1]), (args[1], args[0])):
            rec = self.lineage.lone(mine)
            if rec is None:
                continue
            if not isinstance(other, torch.Tensor) or other.numel() == 1:
                self.lineage.set_lone(out, rec)
            elif func in ops.PRODUCT:
                rec.composite = True

    def _functional_weighted(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                             out: Any) -> bool:
        if not isinstance(out, torch.Tensor):
            return False
        call = ops.weighted_call(func, args, kwargs, self._is_param) if ops.hashable(func) else None
        if call is None:
            return False
        w = call.weight
        biases = [call.bias] if call.bias is not None else []
        self._weighted_row(self._row_name(w), self._owner_module(w), w, [w], biases, call.rows, call.input, out,
                           call.unit_dim, call.fan_in, call.fan_out, call.kind, groups=call.groups)
        return True

    def _norm(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> bool:
        where = ops.NORM_FUNCTIONS.get(func) if ops.hashable(func) else None
        if where is None or not isinstance(out, torch.Tensor):
            return False
        x = args[0] if args else kwargs.get("input")
        w = ops.arg(args, kwargs, where[0], "weight")
        b = ops.arg(args, kwargs, where[1], "bias") if where[1] is not None else None
        params = [self.param_name(p) for p in (w, b) if self._is_param(p)]
        if not params:
            return False
        name = self._row_name(w) if self._is_param(w) else self._row_name(cast(torch.Tensor, b))  # params: b is one
        with torch.no_grad():
            self.norms.append(NormRecord(
                name, func.__name__,
                float(x.detach().float().std()) if isinstance(x, torch.Tensor) and x.numel() > 1 else 0.0,
                float(out.detach().float().std()) if out.numel() > 1 else 0.0,
                float(w.detach().float().mean()) if isinstance(w, torch.Tensor) else 1.0, params))
        owner = self.lineage.owner(x)
        if owner is not None:  # a norm keeps the layer's units
            self.lineage.own(out, owner)
        return True

    def _view(self, args: tuple[Any, ...], out: Any) -> None:
        """A reshape that keeps the last axis keeps a Linear-like row's units."""
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor) or out.ndim == 0 or x.ndim == 0:
            return
        rec = self.lineage.owner(x)
        if rec is None or rec.unit_dim != -1 or out.shape[-1] != x.shape[-1]:
            return
        self.lineage.own(out, rec)
        self.lineage.pass_feed(x, out)

    def _softmax(self, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        x = args[0] if args else kwargs.get("input")
        dim = ops.arg(args, kwargs, 1, "dim")
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            return
        last = dim in (-1, x.ndim - 1)
        module = self._stack[-1][1] if self._stack else None
        logits, layout = None, "heads"
        if last and x.ndim == 3 and isinstance(module, nn.MultiheadAttention) and x.shape[0] % module.num_heads == 0:
            logits = x.reshape(-1, module.num_heads, *x.shape[1:])  # (batch * heads, T, S) with need_weights=True
        elif last and x.ndim == 4:
            logits = x
        elif self.lineage.is_score(x) and isinstance(dim, int) and x.ndim >= 2:  # a q @ k^T product, any layout
            keys_last = x if last else x.movedim(dim, -1)
            logits, layout = keys_last.reshape(-1, 1, *keys_last.shape[-2:]), "folded"
        if x.ndim >= 3:
            where = self._stack[-1][0] if self._stack else "the model's forward"
            self.softmaxes.append({"name": where, "shape": list(x.shape), "attention": logits is not None})
        if logits is not None:
            self._attention(logits.detach().float(), layout)

    def _attention(self, logits: torch.Tensor, layout: str = "heads") -> None:
        found = measure_attention(self._where(), logits, layout)
        if found is not None:
            self.attention.append(found)

    # -- rows -------------------------------------------------------------------------------
    def _unique(self, name: str) -> str:
        taken = sum(1 for r in self.records if r.name == name or r.name.startswith(name + "#"))
        return name if taken == 0 else f"{name}#{taken + 1}"

    def _add(self, rec: Record) -> None:
        self.records.append(rec)

    def _weighted_row(self, name: str, module: nn.Module | None, main: torch.Tensor, weights: list[torch.Tensor],
                      biases: list[torch.Tensor], rows: torch.Tensor, x: torch.Tensor | None, output: torch.Tensor,
                      unit_dim: int, fan_in: int, fan_out: int, kind: str, groups: int = 1) -> Record:
        out = output.detach()
        rms = (float(x.detach().double().pow(2).mean().sqrt())
               if x is not None and x.numel() and x.is_floating_point() else 0.0)
        params = [self.param_name(p) for p in [*weights, *biases] if self.param_name(p)]
        rec = Record(self._unique(name), module, output, unit_dim,
                     pre_std=float(out.float().std()) if out.numel() > 1 else 0.0, kind=kind, input_rms=rms,
                     weight=rows, weights=weights, biases=biases, fan_in=int(fan_in), fan_out=int(fan_out),
                     role=self.role(name), params=params)
        feed = self.lineage.feed(x)
        if feed is not None and x is not None:  # a feed is only found for a tensor
            self._add_reader(*feed, rows, groups, unit_dim, x)
        self._add(rec)
        self.lineage.own(output, rec)
        self.lineage.set_feed(output, (rec, False))
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

    def _activation(self, kind: str, x: Any, output: Any, name: str, label: str,
                    fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    params: Iterable[torch.Tensor] = ()) -> None:
        if not isinstance(output, torch.Tensor) or not isinstance(x, torch.Tensor):
            return
        names = [self.param_name(p) for p in params if self.param_name(p)]
        rec = self.lineage.owner(x)
        if rec is not None and rec.act_output is None and rec.weighted:
            rec.activation, rec.act_output, rec.act_fn = kind, output, fn
            rec.act_input = self.lineage.pristine(x)
            rec.params.extend(names)
            self.lineage.pass_feed(x, output)
            return
        if kind == "linear":  # an Identity on its own measures nothing new
            return
        last = next((r for r in reversed(self.records) if r.weighted), None)
        same_rank = last is not None and output.ndim == last.output.ndim
        unit_dim = last.unit_dim if same_rank and last is not None else (1 if output.ndim > 2 else -1)
        lone = Record(self._unique(name), None, output, unit_dim, activation=kind, act_output=output,
                      pre_std=float(x.detach().float().std()) if x.numel() > 1 else 0.0, kind=label, act_fn=fn,
                      params=names)
        lone.act_input = self.lineage.pristine(x)
        self._add(lone)
        self.lineage.set_lone(output, lone)
