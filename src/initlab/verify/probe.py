"""Read a recipe off the code that draws it: run the init code on recording tensors.

The "torch" and "hf" recipes are not tables written here: they are what torch's
``reset_parameters`` and the model's own ``_init_weights`` (transformers) do. We run that code
on a copy of the model whose parameters are :class:`Probe` tensors on the ``meta`` device (no
memory, no values, no random numbers drawn) and record every in-place write: ``normal_(mean,
std)``, ``uniform_(a, b)``, ``zero_``, ``fill_``, and the affine steps of an inverse-CDF
truncated normal (``uniform_`` -> ``erfinv_`` -> ``mul_`` -> ``add_`` -> ``clamp_``, as
``torch.nn.init.trunc_normal_`` and initlab's catalog draw it). The last full write of a
parameter is its declared :class:`~initlab.verify.law.Law`; a constant written into one row
(an embedding's padding row) is recorded as that row's value. A write that cannot be read as a
law (``copy_`` from another tensor, a slice) makes the parameter "undeclared", with the op named.

Nothing global is patched: the recording happens in ``__torch_function__`` of the probes.
"""

from __future__ import annotations

import copy
import inspect
import math
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._inputs import error_line
from .._validation import ValidationError
from ..initializers import calculate_gain, compute_fans
from .law import Law

__all__ = ["Record", "Probe", "probe_model", "record_init"]

# in-place tensor methods that do not change values
_HARMLESS = {"requires_grad_", "share_memory_", "retain_grad", "pin_memory"}
# ops returning a view of the whole tensor: writes through them are writes to the parameter
_WHOLE_VIEWS = {"detach", "view_as", "view", "reshape", "reshape_as", "t", "T", "contiguous", "flatten", "as_strided"}


@dataclass
class Record:
    """What the init code wrote into one parameter."""

    law: Law | None = None                 # the last full write
    rows: dict[int, float] = field(default_factory=dict)  # dim-0 rows set to a constant afterwards
    undeclared: str = ""                   # why the writes cannot be read as a law
    writes: int = 0                        # in-place writes seen

    def full(self, law: Law | None, why: str = "") -> None:
        self.law, self.rows = law, {}
        self.undeclared = "" if law is not None else why


class Probe(torch.Tensor):
    """A meta tensor that records in-place writes into its :class:`Record`."""

    _record: Record
    _row: int | None  # a view of one dim-0 row, or None for the whole tensor

    @staticmethod
    def of(shape: torch.Size | tuple[int, ...], dtype: torch.dtype = torch.float32) -> Probe:
        probe = torch.Tensor._make_subclass(Probe, torch.empty(shape, dtype=dtype, device="meta"), False)
        probe._record, probe._row = Record(), None
        return probe

    def _view(self, out: torch.Tensor, row: int | None) -> Probe:
        view = out.as_subclass(Probe)
        view._record, view._row = self._record, row
        return view

    @classmethod
    def __torch_function__(cls, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        me = args[0] if args and isinstance(args[0], Probe) else None
        name = getattr(func, "__name__", "")
        if name in _INIT_HOOKS and getattr(func, "__module__", "") in _INIT_MODULES:
            bound = _bind(func, args, kwargs)  # torch passes the tensor as a keyword here
            target = bound.get("tensor")
            if isinstance(target, Probe):
                _INIT_HOOKS[name](target, bound)
                return target
        if me is not None and name.endswith("_") and not name.startswith("__") and name not in _HARMLESS:
            _write(me, name, args[1:], kwargs)
            return me
        if me is not None and name == "__setitem__":
            _setitem(me, args[1], args[2])
            return None
        if me is not None and getattr(func, "__self__", None) is torch.Tensor.is_meta:
            _trunc_normal_caller(me)
        with torch._C.DisableTorchFunctionSubclass():
            out = func(*args, **kwargs)
        if me is None or not isinstance(out, torch.Tensor) or out.device.type != "meta":
            return out
        if name == "__get__" or name in _WHOLE_VIEWS:  # .data, .detach(), ...
            return me._view(out, me._row)
        if name == "__getitem__" and me._row is None:
            index = args[1]
            row = int(index) if isinstance(index, int) or (isinstance(index, torch.Tensor) and index.numel() == 1
                                                         and index.dim() == 0) else -1
            return me._view(out, row)
        if name == "__getitem__":
            return me._view(out, -1)
        return out  # a new tensor computed from the probe (not a view we follow)


def _trunc_normal_caller(me: Probe) -> None:
    """torch's ``trunc_normal_`` (2.13) returns early on a meta tensor (``if tensor.is_meta``), before
    any write: read its ``mean, std, a, b`` off its frame when it asks. (Where it draws by inverse
    CDF instead, the uniform -> erfinv -> mul -> add -> clamp writes are read as they come.)"""
    code = getattr(getattr(torch.nn.init, "_no_grad_trunc_normal_", None), "__code__", None)
    frame: types.FrameType | None = sys._getframe(2)
    for _ in range(3):
        if frame is None:
            return
        if frame.f_code is code:
            f = frame.f_locals
            _set(me, Law.truncated(f["mean"], f["std"], f["a"], f["b"]))
            return
        frame = frame.f_back


def _bind(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = inspect.signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _shape(p: Probe) -> tuple[int, ...]:
    with torch._C.DisableTorchFunctionSubclass():
        return tuple(p.shape)


def _set(me: Probe, law: Law | None, why: str = "") -> None:
    rec = me._record
    rec.writes += 1
    if me._row is None:
        rec.full(law, why)
    elif me._row >= 0 and law is not None and law.family == "constant":
        rec.rows[me._row] = law.value
    else:
        rec.undeclared = why or "a part of the tensor was drawn on its own"


def _kaiming_uniform(me: Probe, a: dict[str, Any]) -> None:
    """torch.nn.init.kaiming_uniform_: U(-b, b), b = gain sqrt(3 / fan) (He et al., 2015)."""
    fan_in, fan_out = compute_fans(_shape(me))
    fan = fan_in if a["mode"] == "fan_in" else fan_out
    gain = calculate_gain(a["nonlinearity"], a["a"])
    bound = gain * math.sqrt(3.0 / fan) if fan else 0.0
    _set(me, Law.uniform(-bound, bound))


# transformers swaps torch.nn.init's functions for its own while it initializes (same signatures)
_INIT_MODULES = ("torch.nn.init", "transformers.initialization")
_INIT_HOOKS: dict[str, Callable[[Probe, dict[str, Any]], None]] = {
    # torch.nn.init functions that dispatch to __torch_function__ before drawing
    "normal_": lambda me, a: _set(me, Law.normal(a["mean"], a["std"])),
    "uniform_": lambda me, a: _set(me, Law.uniform(a["a"], a["b"])),
    "constant_": lambda me, a: _set(me, Law.constant(a["val"])),
    "kaiming_uniform_": _kaiming_uniform,
}


def _scalar(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, torch.Tensor) and x.numel() == 1 and x.device.type != "meta":
        return float(x)
    return None


def _write(me: Probe, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """An in-place tensor method on a probe (or a view of it)."""
    rec = me._record
    if name == "normal_":
        mean, std = (list(args) + [kwargs.get("mean", 0.0), kwargs.get("std", 1.0)][len(args):])[:2]
        return _set(me, Law.normal(mean, std))
    if name == "uniform_":
        low, high = (list(args) + [kwargs.get("from", 0.0), kwargs.get("to", 1.0)][len(args):])[:2]
        return _set(me, Law.uniform(low, high))
    if name == "zero_":
        return _set(me, Law.constant(0.0))
    if name == "fill_":
        value = _scalar(args[0] if args else kwargs.get("value"))
        return _set(me, Law.constant(value) if value is not None else None, "fill_ with a tensor")
    if me._row is not None:
        return _set(me, None, f"{name} on a part of the tensor")
    law = rec.law
    if name == "erfinv_" and law is not None and law.family == "uniform" and -1.0 <= law.low < law.high <= 1.0:
        from scipy.special import erfinv

        # erfinv(U), U ~ U(2 Phi(a) - 1, 2 Phi(b) - 1), is Z / sqrt(2) with Z ~ N(0, 1) cut to [a, b]
        rec.law = Law.truncated(0.0, 1.0 / math.sqrt(2.0), float(erfinv(law.low)), float(erfinv(law.high)))
        return None
    affine = _affine(name, args, kwargs)
    if affine is not None and law is not None:
        return _set(me, _transform(law, *affine))
    if name == "clamp_" and law is not None:
        lo = _scalar(args[0] if args else kwargs.get("min"))
        hi = _scalar(args[1] if len(args) > 1 else kwargs.get("max"))
        clamped = _clamp(law, -math.inf if lo is None else lo, math.inf if hi is None else hi)
        return _set(me, clamped, "clamp_ that piles values on a bound")
    return _set(me, None, f"written by {name}")


def _affine(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, float] | None:
    """(scale, shift) of ``mul_``/``div_``/``add_``/``sub_`` by a number, else None."""
    other = _scalar(args[0] if args else kwargs.get("other"))
    alpha = _scalar(kwargs.get("alpha", 1.0))
    if other is None or alpha is None:
        return None
    return {"mul_": (other, 0.0), "div_": (1.0 / other if other else math.nan, 0.0),
            "add_": (1.0, other * alpha), "sub_": (1.0, -other * alpha)}.get(name)


def _transform(law: Law, scale: float, shift: float) -> Law | None:
    if not math.isfinite(scale):
        return None
    if law.family == "constant":
        return Law.constant(law.value * scale + shift)
    if law.family == "uniform":
        return Law.uniform(law.low * scale + shift, law.high * scale + shift)
    if law.family == "normal":
        return Law.normal(law.mean * scale + shift, law.std * abs(scale))
    return Law.truncated(law.mean * scale + shift, law.std * abs(scale), law.low * scale + shift,
                         law.high * scale + shift)


def _clamp(law: Law, lo: float, hi: float) -> Law | None:
    """The law after ``clamp_(lo, hi)``; None where the clamp piles values on a bound."""
    if law.family == "constant":
        return Law.constant(min(max(law.value, lo), hi))
    tol = 1e-6 * (law.std if law.family != "uniform" else law.high - law.low)
    cuts = [b for b, inside in ((lo, lo > law.low + tol), (hi, hi < law.high - tol)) if inside]
    if law.family == "uniform":
        return None if cuts else Law.uniform(max(law.low, lo), min(law.high, hi))
    # a normal cut within 8 std puts real mass on the bound; beyond, no float32 draw reaches it
    if any(abs(b - law.mean) < _PILE * law.std for b in cuts):
        return None
    return Law.truncated(law.mean, law.std, max(law.low, lo), min(law.high, hi))


_PILE = 8.0


def _setitem(me: Probe, index: Any, value: Any) -> None:
    v = _scalar(value)
    row = int(index) if isinstance(index, int) else -1
    target = me._view(me, row if me._row is None else -1)
    _set(target, Law.constant(v) if v is not None and row >= 0 else None, "written by __setitem__")


def probe_model(model: nn.Module) -> tuple[nn.Module, dict[str, Probe]]:
    """A structural copy of ``model`` whose parameters are probes (tied ones stay one probe).

    Returns the copy and ``{parameter name in model: probe}`` for every name (tied names too).
    Buffers are copied as they are (the init code may read or write them).
    """
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = Probe.of(p.shape, p.dtype)
    clone = copy.deepcopy(model, memo)
    for m in clone.modules():
        params: dict[str, Any] = m._parameters
        for attr, held in list(params.items()):  # deepcopy kept our probes; make sure of it
            if held is not None and not isinstance(held, Probe):
                params[attr] = Probe.of(held.shape, held.dtype)
        m.__dict__.pop("_is_hf_initialized", None)  # transformers skips modules flagged as done
    probes: dict[str, Any] = dict(clone.named_parameters(remove_duplicate=False))
    return clone, probes


def record_init(model: nn.Module, run: Callable[[nn.Module], None], what: str = "init code") -> dict[str, Record]:
    """Run ``run(copy)`` on a probe copy of ``model``; the record of every parameter name.

    Raises ValidationError (one line) when the model cannot be copied or ``what`` fails on probes
    (code that needs values, such as ``.item()``, cannot run on the meta device).
    """
    try:
        clone, probes = probe_model(model)
    except Exception as err:
        raise ValidationError(f"cannot copy {type(model).__name__}'s structure to read its {what}: "
                              f"{error_line(err)}; declare the recipe as a {{glob: spec}} dict instead") from err
    try:
        with torch.no_grad():
            run(clone)
    except Exception as err:
        raise ValidationError(f"running {what} on recording tensors failed: {error_line(err)}; "
                              "declare the recipe as a {glob: spec} dict instead") from err
    return {name: p._record for name, p in probes.items()}
