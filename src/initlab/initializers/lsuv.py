"""Layer-sequential unit-variance (LSUV) initialization on any model's graph.

Mishkin & Matas (2016) pre-initialize every layer with an orthonormal matrix, then walk the
layers of a chain from input to output and divide each weight by the std of its output on a
batch until ``|Var - 1| < tol``. Here the walk is the model's own forward pass: every layer that
can be scaled (Linear, Conv, transformers' Conv1D, MultiheadAttention's q/k/v in-projections and
its out-projection) is hooked, and layers are met in the order the forward calls them, which is a
topological order of the graph whatever its branches, residuals or attention.

One forward pass fixes every layer: the hook of a layer reads its output std (as a number, at
once: an in-place activation after the layer would overwrite the tensor), rescales the weight and
hands the rescaled output on, so that every later layer in the same pass sees exactly what the
rescaled earlier layers give (with a bias, the factor solves ``Var(a*(y - b) + b) = target^2``).
A first pass only measures (each layer's variance as drawn); the next fixes every layer; a third
measures everything again, and a layer still off by more than ``tol`` (a weight used outside its
module, a tied weight) is fixed again, up to ``max_iter`` fixing passes.

The pass runs with Dropout off and BatchNorm on batch statistics (as in training); every buffer
(running means, variances, counters) is restored afterwards. On any error the model's parameters
and buffers are restored bit for bit before the error is raised.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from .._inputs import call_model, error_line
from .._validation import DataError, ValidationError, check_float, check_int
from . import schemes
from .account import is_conv1d

__all__ = ["lsuv", "lsuv_rescale", "rescale_units", "lsuv_model", "LSUVResult", "LSUVUnit", "scalable_units", "preserved",
           "run_example"]


def lsuv(tensor: torch.Tensor, tol: float = 0.1, max_iter: int = 10, *, generator: torch.Generator | None = None,
         fans: tuple[int, int] | None = None, batch_dims: int = 0) -> torch.Tensor:
    """LSUV: orthonormal pre-init, then each layer rescaled in forward order to unit output variance on data.

    On a bare tensor only the orthonormal step runs; ``apply_init(model, "lsuv", data=X)``
    runs the data-driven rescaling on the model's graph (until |Var - 1| < tol, at most
    max_iter rescaling passes).
    Reference: Mishkin & Matas, 2016, "All you need is a good init".
    """
    check_float("tol", tol, 0.0, strict_minimum=True)
    check_int("max_iter", max_iter, 1)
    return schemes.orthogonal(tensor, 1.0, generator=generator, batch_dims=batch_dims)


@dataclass(eq=False)
class LSUVUnit:
    """One scalable matrix: a layer's weight, or one of attention's q/k/v blocks."""

    name: str                      # "fc1", "enc.layers.0.self_attn.in_proj[q]"
    module_name: str
    module: nn.Module
    param: nn.Parameter            # the whole parameter the block lives in
    weight: torch.Tensor           # the view that is scaled
    bias: torch.Tensor | None      # the view of its bias
    bias_param: nn.Parameter | None = None  # the whole parameter that view lives in
    scale: bool = True             # False: measured only (its weight is scaled by another unit)
    iterations: int = 0            # passes in which it was rescaled
    variance: float = math.nan     # output variance at the last measurement
    initial_variance: float = math.nan  # output variance before any rescaling (the first pass)
    target_scale: float = 1.0      # its target std is target_std * target_scale (a residual branch's end: 1/sqrt(R))
    input_std: float = math.nan    # std of the signal entering it, at the last measurement
    calls: int = 0                 # calls in the last pass

    @property
    def std(self) -> float:
        return math.sqrt(self.variance) if self.variance >= 0 else math.nan


def _role(name: str) -> str:
    """``name`` with its outermost numeric index replaced by ``#``: the same layer across repeated blocks."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            parts[i] = "#"
            break
    return ".".join(parts)

@dataclass
class LSUVResult:
    """What a graph LSUV run did: the units in forward order, passes used, convergence."""

    units: list[LSUVUnit]
    passes: int
    converged: bool
    uncalled: list[LSUVUnit] = field(default_factory=list)  # never called on the example
    target_var: float = 1.0
    tol: float = 0.1

    def input_drift(self) -> tuple[float, str, str]:
        """(ratio, first, last): the largest drift of the signal entering a repeated layer across depth.

        Repeated layers share a name but for their outermost index (``h.0.attn.c_proj``,
        ``h.1.attn.c_proj``, ...; ``blocks.0.2``, ``blocks.1.2``; ``1``, ``3``, ``5`` in a Sequential;
        ``blocks.0.0`` and ``blocks.0.2`` are two roles, never compared); the ratio is the input std of the last over the
        first, the one farthest from 1 over all such groups (of 3 or more). LSUV fixes every layer's
        output; what it cannot fix shows here: a residual stream without normalization adds each
        block's unit-variance output to what it carries, so the 50th block's input is ~sqrt(50) times
        the first's.
        """
        groups: dict[str, list[LSUVUnit]] = {}
        for u in self.units:
            if math.isfinite(u.input_std) and u.input_std > 0:
                groups.setdefault(_role(u.name), []).append(u)
        worst = (1.0, "", "")
        for units in groups.values():
            if len(units) >= 3:
                ratio = units[-1].input_std / units[0].input_std
                if abs(math.log(ratio)) > abs(math.log(worst[0])):
                    worst = (ratio, units[0].name, units[-1].name)
        return worst

    def warnings(self, limit: float = 2.0) -> list[str]:
        """One line per finding: a layer left off target, the input of repeated layers drifting with depth
        by more than ``limit`` (max/min). The default is ``diagnostics.thresholds.STREAM_SPREAD``, written
        out here because initializers sit below diagnostics (a test keeps the two equal)."""
        out = [f"{u.name}: output variance {u.variance:.3g}, not within tol {self.tol:g} of "
               f"{self.target_var * u.target_scale**2:.3g} after {self.passes} passes" for u in self.units
               if u.scale and u.variance > 0 and abs(u.variance / (self.target_var * u.target_scale**2) - 1.0) >= self.tol]
        ratio, first, last = self.input_drift()
        if not (1.0 / limit <= ratio <= limit):
            on_target = "every layer's output is on target, but " if not out else ""
            out.append(f"the signal entering the layers changes {ratio:.3g}x from {first} to {last}: {on_target}"
                       "what lies between them (a residual addition without normalization, a fixed scale) moves it")
        return out

    def info(self) -> dict[str, Any]:
        """``{"passes", "converged", "warnings", "modules": {unit: {"iterations", "variance", "initial_variance",
        "input_std"}}}``."""
        return {"passes": self.passes, "converged": self.converged, "warnings": self.warnings(),
                "modules": {u.name: {"iterations": u.iterations, "variance": u.variance,
                                     "initial_variance": u.initial_variance, "input_std": u.input_std}
                            for u in self.units}}


def _mha_blocks(m: nn.MultiheadAttention) -> list[tuple[str, nn.Parameter, torch.Tensor, torch.Tensor | None]]:
    """(letter, parameter, weight view, bias view) of the q, k, v in-projections."""
    out: list[tuple[str, nn.Parameter, torch.Tensor, torch.Tensor | None]] = []
    if m.in_proj_weight is not None:
        e = m.in_proj_weight.shape[0] // 3
        for i, letter in enumerate("qkv"):
            b = m.in_proj_bias[i * e:(i + 1) * e] if m.in_proj_bias is not None else None
            out.append((letter, m.in_proj_weight, m.in_proj_weight[i * e:(i + 1) * e], b))  # (E, E_in)
    else:
        e = m.embed_dim
        for i, (letter, w) in enumerate(zip("qkv", (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight), strict=False)):
            b = m.in_proj_bias[i * e:(i + 1) * e] if m.in_proj_bias is not None else None
            out.append((letter, w, w, b))
    return out


def scalable_units(model: nn.Module, modules: Iterable[nn.Module] | None = None) -> list[LSUVUnit]:
    """The units of ``model`` LSUV can scale, in registration order (``modules``: only those).

    A weight held by two units (tied layers) is scaled by the first only; the others are measured.
    """
    wanted = None if modules is None else {id(m) for m in modules}
    units: list[LSUVUnit] = []
    mha_children = {id(m.out_proj) for m in model.modules() if isinstance(m, nn.MultiheadAttention)}
    for name, m in model.named_modules():
        if wanted is not None and id(m) not in wanted:
            continue
        if isinstance(m, nn.MultiheadAttention):
            for letter, param, w, b in _mha_blocks(m):
                units.append(LSUVUnit(f"{name}.in_proj[{letter}]", name, m, param, w, b, m.in_proj_bias))
            out = m.out_proj
            weight = cast(nn.Parameter, out.weight)  # torch annotates Linear.weight as Tensor; it is a Parameter
            units.append(LSUVUnit(f"{name}.out_proj", name, m, weight, out.weight, out.bias, out.bias))
        elif id(m) in mha_children:
            continue  # attention calls its out_proj's weight directly; measured at the attention's output
        elif isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) or is_conv1d(m):
            units.append(LSUVUnit(name, name, m, m.weight, m.weight, m.bias, m.bias))
    owners: set[int] = set()
    for u in units:
        key = u.weight.data_ptr()
        u.scale = key not in owners
        owners.add(key)
    return units


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[None]:
    """Snapshot parameters and buffers; on an exception restore them bit for bit; always restore buffers.

    Initialization sets parameters only: running statistics and other buffers come back as they were.
    """
    params = {id(p): (p, p.detach().clone()) for p in model.parameters()}
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    except BaseException:
        with torch.no_grad():
            for p, saved in params.values():
                p.copy_(saved)
        raise
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)


@contextlib.contextmanager
def measuring_mode(model: nn.Module) -> Iterator[None]:
    """Dropout off, BatchNorm on batch statistics, attention's fused fast path off (it skips hooks)."""
    flags = [(m, m.training) for m in model.modules()]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for m, training in flags:
            m.training = training


def run_example(model: nn.Module, example: Any) -> Any:
    """``model(example)``; a tuple or list is passed as positional arguments, a dict as keywords.

    Anything the model raises becomes one line: a :class:`DataError` naming the error.
    """
    return call_model(model, example, lambda err: None if isinstance(err, _HookError) else
                      DataError(f"example: the model rejected it ({error_line(err)})"))


_MHAOutput = tuple[torch.Tensor, torch.Tensor | None]  # MultiheadAttention's (output, attention weights or None)


class _HookError(Exception):
    """A measurement inside a hook failed (non-finite output): raised after restoring the model."""


def _bias_view(bias: torch.Tensor, out: torch.Tensor, dim: int) -> torch.Tensor:
    shape = [1] * out.dim()
    shape[dim] = -1
    return bias.reshape(shape)


def _factor(out: torch.Tensor, bias_b: torch.Tensor | None, target_var: float) -> float:
    """a > 0 with Var(a*(out - b) + b) = target_var (b broadcast along its dim); without bias t/std."""
    if bias_b is None or not bool(bias_b.any()):
        return math.sqrt(target_var / float(out.var()))
    z = (out - bias_b).double()
    bb = bias_b.double().expand_as(z)
    vz = float(z.var(unbiased=False))
    c = float(((z - z.mean()) * (bb - bb.mean())).mean())
    vb = float(bb.var(unbiased=False))
    disc = c * c - vz * (vb - target_var)
    if vz <= 0 or disc < 0 or vb >= target_var:  # the bias alone is too wide: step as without it
        return math.sqrt(target_var / float(out.var()))
    return (-c + math.sqrt(disc)) / vz


class _Pass:
    """Hooks for one model; ``correct`` says whether a pass rescales or only measures."""

    def __init__(self, units: list[LSUVUnit], target_var: float, tol: float):
        self.units = units
        self.target_var = target_var
        self.tol = tol
        self.correct = False
        self.order: list[LSUVUnit] = []

    def off(self, unit: LSUVUnit, var: float) -> bool:
        return abs(var / (self.target_var * unit.target_scale**2) - 1.0) >= self.tol

    def _measure(self, unit: LSUVUnit, out: torch.Tensor, bias_dim: int, x: Any = None) -> torch.Tensor | None:
        unit.calls += 1
        if unit.calls > 1:  # a layer called twice per forward: calibrated at its first call
            return None
        self.order.append(unit)
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel() > 1:
            unit.input_std = float(x.detach().std())
        var = float(out.detach().var()) if out.numel() > 1 else 0.0
        if not math.isfinite(var):
            raise _HookError(f"{unit.name}: output is not finite on the example (variance {var})")
        unit.variance = var
        if not (self.correct and unit.scale and var > 0 and self.off(unit, var)):
            return None
        b = _bias_view(unit.bias, out, bias_dim) if unit.bias is not None else None
        a = _factor(out.detach(), b, self.target_var * unit.target_scale**2)
        unit.weight.mul_(a)
        unit.iterations += 1
        new = out * a if b is None else (out - b) * a + b
        unit.variance = float(new.var())
        return new

    def hooks(self) -> list[Callable[[], None]]:
        handles = []
        by_module: dict[int, list[LSUVUnit]] = {}
        for u in self.units:
            by_module.setdefault(id(u.module), []).append(u)
        for units in by_module.values():
            m = units[0].module
            if isinstance(m, nn.MultiheadAttention):
                qkv = {u.name[-2]: u for u in units if u.name.endswith("]")}
                out = [u for u in units if not u.name.endswith("]")]
                handles.append(m.register_forward_pre_hook(self._mha_pre(m, qkv), with_kwargs=True))
                if out:
                    handles.append(m.register_forward_hook(self._mha_post(out[0])))
            else:
                handles.append(m.register_forward_hook(self._layer(units[0])))
        return [h.remove for h in handles]

    def _layer(self, unit: LSUVUnit) -> Callable[[nn.Module, tuple[Any, ...], torch.Tensor], torch.Tensor | None]:
        m = unit.module
        dim_from_end = 1 + len(m.kernel_size) if isinstance(m, nn.modules.conv._ConvNd) else 1

        def hook(_m: nn.Module, inputs: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor | None:
            return self._measure(unit, out, out.dim() - dim_from_end, inputs[0] if inputs else None)
        return hook

    def _mha_pre(self, m: nn.MultiheadAttention,
                 qkv: dict[str, LSUVUnit]) -> Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], None]:
        names = ("query", "key", "value")

        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            inputs = [args[i] if i < len(args) else kwargs.get(n) for i, n in enumerate(names)]
            for letter, x in zip("qkv", inputs, strict=False):
                unit = qkv.get(letter)
                if unit is None or x is None:
                    continue
                # q = x W_q^T + b_q, computed here as the attention computes it, before it runs
                # (so a rescaled block is what the attention uses in this very pass).
                self._measure(unit, F.linear(x, unit.weight, unit.bias), -1, x)
            return None
        return hook

    def _mha_post(self, unit: LSUVUnit) -> Callable[[nn.Module, tuple[Any, ...], _MHAOutput], _MHAOutput | None]:
        def hook(_m: nn.Module, inputs: tuple[Any, ...], output: _MHAOutput) -> _MHAOutput | None:
            out, weights = output
            new = self._measure(unit, out, -1)  # its input, the attention's mix of values, is not exposed
            return None if new is None else (new, weights)
        return hook

    def reset(self) -> None:
        self.order = []
        for u in self.units:
            u.calls = 0


@torch.no_grad()
def rescale_units(model: nn.Module, units: list[LSUVUnit], example: Any, target_std: float, tol: float,
                  max_iter: int) -> LSUVResult:
    """LSUV's passes over ``units`` (no snapshot here: :func:`lsuv_model` restores on failure; autoinit's
    empirical mode calls this inside its own)."""
    state = _Pass(units, target_std**2, tol)
    removers = state.hooks()
    passes, corrected = 0, True
    try:
        with measuring_mode(model):
            state.reset()  # a first pass only measures: each layer's variance as it was given
            run_example(model, example)
            passes += 1
            for u in units:
                u.initial_variance = u.variance
            corrected = any(u.scale and u.variance > 0 and state.off(u, u.variance) for u in state.order)
            while passes <= max_iter and corrected:
                state.reset()
                state.correct = True
                before = sum(u.iterations for u in units)
                run_example(model, example)
                passes += 1
                corrected = sum(u.iterations for u in units) > before
            if corrected:  # the last pass rescaled: measure once more, so the variances are the final ones
                state.reset()
                state.correct = False
                run_example(model, example)
                passes += 1
    except _HookError as err:
        raise DataError(f"example: {err}") from None
    finally:
        for remove in removers:
            remove()
    called = list(state.order)
    uncalled = [u for u in units if u.calls == 0]
    converged = all(not state.off(u, u.variance) for u in called if u.scale and u.variance > 0)
    return LSUVResult(called, passes, converged, uncalled, target_std**2, tol)


def lsuv_model(model: nn.Module, example: Any, *, target_std: float = 1.0, tol: float = 0.1, max_iter: int = 10,
               modules: Iterable[nn.Module] | None = None) -> LSUVResult:
    """Rescale every scalable layer of ``model`` (or of ``modules``) to output std ``target_std`` on ``example``.

    The weights are rescaled as they are (pre-initialize them first, e.g. orthogonally). Returns an
    :class:`LSUVResult`. On any error the model is restored and the error raised (one line).
    Reference: Mishkin & Matas, 2016, "All you need is a good init".
    """
    target_std = check_float("target_std", target_std, 0.0, strict_minimum=True)
    tol = check_float("tol", tol, 0.0, strict_minimum=True)
    max_iter = check_int("max_iter", max_iter, 1)
    units = scalable_units(model, modules)
    if not units:
        raise ValidationError(f"lsuv: {type(model).__name__} has no Linear, Conv or attention layer to scale")
    with preserved(model):
        return rescale_units(model, units, example, target_std, tol, max_iter)


def lsuv_rescale(
    model: nn.Module, layers: list[nn.Module], data: torch.Tensor, tol: float = 0.1, max_iter: int = 10
) -> list[dict[str, float]]:
    """Rescale each of ``layers`` so its output variance on ``data`` is 1, on the model's graph.

    Returns per layer (in the order given) the final output variance and the passes in which it
    was rescaled. ``data`` is a batch of inputs (a tensor, a tuple of positional inputs or a dict
    of keyword inputs).
    """
    if data is None:
        raise ValidationError("initializer 'lsuv' is data-dependent: pass data= (a batch of inputs)")
    if not isinstance(data, (torch.Tensor, tuple, list, Mapping)):
        data = torch.as_tensor(data, dtype=torch.float32)
    result = lsuv_model(model, data, tol=tol, max_iter=max_iter, modules=layers)
    per_module: dict[int, list[LSUVUnit]] = {}
    for u in result.units:
        per_module.setdefault(id(u.module), []).append(u)
    report = []
    for layer in layers:
        units = per_module.get(id(layer), [])
        var = max((u.variance for u in units), key=lambda v: abs(v - 1.0), default=math.nan)
        report.append({"variance": var, "passes": max((u.iterations for u in units), default=0)})
    return report
