"""The body of :func:`initlab.autoinit` (the light ``autoinit/__init__.py`` calls :func:`autoinit` here;
the method is described there)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._validation import InitlabError, ValidationError, check_choice, check_float
from .report import AutoInitReport, ParamEntry, UnhealthyInitError
from .stream import repeated_block_groups, stream_rows

if TYPE_CHECKING:
    from .analytic import Tracker

__all__ = ["autoinit", "AutoInitReport", "ParamEntry", "UnhealthyInitError"]

MODES = ("analytic", "empirical")
_MHA_IN_PROJ = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")
_KIND_OF = {nn.Linear: "linear", nn.modules.conv._ConvNd: "conv", nn.Embedding: "embedding",
            nn.MultiheadAttention: "attention", nn.RNNBase: "recurrent", nn.RNNCellBase: "recurrent"}


def _generator(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    from .._rng import make_generator

    return make_generator(generator)


def _kind(model: nn.Module, module: str, pname: str) -> str:
    try:
        mod = model.get_submodule(module) if module else model
    except AttributeError:
        return "other"
    if pname.rsplit(".", 1)[-1].startswith("bias"):
        return "bias"
    for cls, k in _KIND_OF.items():
        if isinstance(mod, cls):
            return k
    if "norm" in type(mod).__name__.lower():
        return "norm"
    return "other"


def _ancestors(module: str) -> list[str]:
    """``a.b.c`` -> [``a.b.c``, ``a.b``]: the module, then its parent."""
    return [module] + ([module.rsplit(".", 1)[0]] if "." in module else [])


def _std(t: Any) -> float | None:
    if isinstance(t, torch.Tensor) and t.is_floating_point():
        return float(t.detach().double().std(unbiased=False)) if t.numel() > 1 else 0.0
    return None


def measure(model: nn.Module, example: Any, modules: AbstractSet[str],
            entering: AbstractSet[str] = frozenset()) -> tuple[dict[str, float], dict[str, float]]:
    """(each named module's output std, the std of what enters each module named in ``entering``)
    on one quiet forward pass: the first tensor of the output; the first tensor among the
    positional inputs, else the keyword ones (a block called as ``block(hidden_states=x)``)."""
    from .graph import quiet_forward, run_forward

    out: dict[str, float] = {}
    into: dict[str, float] = {}
    handles = []

    def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def f(mod: nn.Module, args: tuple[Any, ...], res: Any) -> None:
            std = _std(res[0] if isinstance(res, (tuple, list)) and res else res)
            if std is not None and name not in out:
                out[name] = std
        return f

    def pre_hook(name: str) -> Callable[[nn.Module, tuple[Any, ...], dict[str, Any]], None]:
        def f(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            first = next((a for a in [*args, *kwargs.values()] if isinstance(a, torch.Tensor) and a.is_floating_point()), None)
            std = _std(first)
            if std is not None and name not in into:
                into[name] = std
        return f

    try:
        for name, mod in model.named_modules():
            if name in modules:
                handles.append(mod.register_forward_hook(hook(name)))
            if name in entering:
                handles.append(mod.register_forward_pre_hook(pre_hook(name), with_kwargs=True))
        with quiet_forward(model):
            run_forward(model, example)
    finally:
        for h in handles:
            h.remove()
    return out, into


def _analytic_entries(model: nn.Module, tracker: Tracker) -> list[ParamEntry]:
    entries: list[ParamEntry] = []
    first_name: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        module = name.rsplit(".", 1)[0] if "." in name else ""
        if id(p) in first_name and first_name[id(p)] != name:
            entries.append(ParamEntry(name, module, _kind(model, module, name), "left", f"tied to {first_name[id(p)]}"))
            continue
        first_name[id(p)] = name
        use = tracker.uses.get(name)
        kind = use.kind if use is not None else _kind(model, module, name)
        if use is not None and use.touched:
            entries.append(ParamEntry(name, module, "bias" if use.std == 0.0 and p.dim() == 1 else kind, "touched",
                                      std=use.std, predicted_std=use.predicted))
        elif use is not None:
            entries.append(ParamEntry(name, module, kind, "left", use.reason))
        elif name in tracker.unknown:
            cls = type(model.get_submodule(module)).__name__ if module else type(model).__name__
            entries.append(ParamEntry(name, module, kind, "left", f"unknown layer {cls} (op {tracker.unknown[name]})"))
        else:
            entries.append(ParamEntry(name, module, kind, "left", "not used in the forward pass on the example"))
    return entries


def autoinit(
    model: nn.Module,
    example: Any = None,
    *,
    input_shape: tuple[int, ...] | None = None,
    mode: str = "analytic",
    target_std: float = 1.0,
    generator: torch.Generator | int | None = None,
    tol: float = 0.1,
    max_iter: int = 10,
) -> AutoInitReport:
    """What :func:`initlab.autoinit` does (its docstring has the contract): checks, then the atomic run."""
    if not isinstance(model, nn.Module):
        raise ValidationError(f"autoinit: model must be a torch.nn.Module, got {type(model).__name__}")
    mode = check_choice("mode", str(mode).lower(), MODES)
    target_std = check_float("target_std", target_std, 0.0, strict_minimum=True)
    gen = _generator(generator)
    from ..initializers.lsuv import measuring_mode

    saved = copy.deepcopy(model.state_dict())
    try:
        with measuring_mode(model):  # init-time conditions, as LSUV's: dropout off, BatchNorm on batch statistics
            return _autoinit(model, example, input_shape, mode, target_std, gen, tol, max_iter)
    except BaseException:
        model.load_state_dict(saved)  # atomic: bad input and internal failures alike leave the model as it was
        raise


def _autoinit(model: nn.Module, example: Any, input_shape: Any, mode: str, target_std: float,
              gen: torch.Generator, tol: float, max_iter: int) -> AutoInitReport:
    from .graph import make_example

    ex = make_example(model, example, input_shape, gen)
    if mode == "analytic":
        report = _run_analytic(model, ex, target_std, gen)
    else:
        report = _run_empirical(model, ex, target_std, gen, tol, max_iter)
    groups = repeated_block_groups(model)
    blocks = {n for _, names in groups for n in names}
    measured, entered = measure(model, ex, {m for e in report.entries for m in _ancestors(e.module)} | blocks, blocks)
    report.stream = stream_rows(groups, measured, entered, model)
    report.warnings.extend(report.stream_problems())
    for e in report.entries:
        if e.kind == "bias" or (e.measured_std is not None and e.name.endswith(_MHA_IN_PROJ)):
            continue  # an MHA's q/k/v: its module's output is out_proj's; keep LSUV's reading of q/k/v
        for m in _ancestors(e.module):  # a module called only through its parent (MHA's out_proj): the parent's output
            if m in measured:
                e.measured_std = measured[m]
                break
    for e in report.entries:  # a tie fixes a weight's scale to its first use's: say so when the second use is off
        if e.reason.startswith("tied to") and e.measured_std is not None and not (
                0.5 * target_std <= e.measured_std <= 2.0 * target_std):
            report.warnings.append(f"{e.name} is {e.reason} (drawn for that use), so {e.module}'s output std "
                                   f"is {e.measured_std:.3g} on the example, not {target_std:g}")
    bad = [e.name for e in report.entries if e.action == "touched"
           and not all(math.isfinite(float(v)) for v in (e.std or 0.0, e.measured_std or 0.0))]
    if bad:
        why = f" ({report.unstable()[0]['message']})" if report.unstable() else ""
        raise ValidationError(f"autoinit: non-finite scale or output at {', '.join(bad[:3])}{why}; "
                              "model left as it was")
    report.judge(model, ex)  # diagnose's verdicts on the example: one judgement (issue 18.3)
    return report


def _run_analytic(model: nn.Module, example: Any, target: float, gen: torch.Generator) -> AutoInitReport:
    from .analytic import analytic_init
    from .stability import stability_rows

    tracker = analytic_init(model, example, target_std=target, generator=gen)
    entries = _analytic_entries(model, tracker)
    warnings = list(dict.fromkeys(tracker.notes))
    if tracker.fallbacks:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(tracker.fallbacks.items()))
        warnings.append(f"no moment rule for: {ops}; their output moments were measured on the example")
    if tracker.corrections:
        worst = max(tracker.corrections, key=lambda c: abs(math.log(c[2] / c[1])))
        warnings.append(f"{len(tracker.corrections)} weight layer(s) had an input rms off the prediction by more than "
                        f"x{1.25:g} (worst: predicted {worst[1]:.3g}, measured {worst[2]:.3g}): finite-width "
                        "fluctuations grow where the length map's fixed point repels; those layers were scaled "
                        "from the measured input moments")
    unknown = sorted({e.reason for e in entries if e.reason.startswith("unknown layer")})
    warnings.extend(f"left as built: {u}" for u in unknown)
    info = {"residual_additions": tracker.max_chain, "residual_branch_gain": 1 / math.sqrt(max(1, tracker.R)),
            "residual_branches": sorted(tracker.branch_scaled), "measured_ops": dict(tracker.fallbacks),
            "corrected_layers": len(tracker.corrections)}
    return AutoInitReport("analytic", target, entries, stability_rows(tracker.activations, target), warnings, info)


def _run_empirical(model: nn.Module, example: Any, target: float, gen: torch.Generator, tol: float,
                   max_iter: int) -> AutoInitReport:
    try:
        from .empirical import empirical_init
    except ImportError:
        raise ValidationError("autoinit: mode 'empirical' is not available in this build "
                              "(initlab.autoinit.empirical missing); use mode='analytic'") from None
    res = empirical_init(model, example, target_std=target, tol=tol, max_iter=max_iter, generator=gen)
    entries, info = (res if isinstance(res, tuple) else (res, {}))
    info = dict(info) if isinstance(info, dict) else {"iterations": info}
    stability, warnings = _probe_stability(model, example, target, gen)
    warnings = [*info.pop("warnings", []), *warnings]  # what LSUV cannot fix (a residual stream growing, ...)
    return AutoInitReport("empirical", target, list(entries), stability, warnings, info)


def _probe_stability(model: nn.Module, example: Any, target: float, gen: torch.Generator) -> tuple[list[dict[str, Any]], list[str]]:
    """The stability rows for a model initialized elsewhere: one tracking pass that changes nothing."""
    from .analytic import Tracker, run_tracker
    from .stability import stability_rows

    probe = Tracker(model, target=target, generator=gen, apply=False)
    try:
        run_tracker(model, example, probe)
        return stability_rows(probe.activations, target), []
    except InitlabError as err:
        return [], [f"stability analysis unavailable: {err}"]
