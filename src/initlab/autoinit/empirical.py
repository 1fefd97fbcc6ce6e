"""``autoinit(mode="empirical")``: LSUV on the model's graph, on a real batch, with a full account.

Every scalable weight (Linear, Conv, transformers' Conv1D, attention's q/k/v and output
projections) is drawn orthonormal, its bias set to zero, then rescaled in forward order until its
output std on ``example`` is ``target_std`` (Mishkin & Matas, 2016, "All you need is a good init",
generalised from a chain to any graph: see :mod:`initlab.initializers.lsuv`). Everything else is
left as it is and said so: embeddings, normalizations, recurrent weights (an LSTM's gates are
computed inside one fused kernel, where no hook can read them), layers the example does not reach.

A weight shared by an embedding and an output layer (GPT-2's ``lm_head`` is the token embedding)
is set once, deliberately, for the output layer: the logits get the target variance; the
embedding's scale reaches the blocks only through LayerNorms.

Residual streams: LSUV fixes each layer's output, not the sum a skip connection forms, so a
stream without normalization grows as sqrt(R + 1) over R additions. The weight that ends each
residual branch (found by the analytic mode's tracer) is aimed at ``target_std / sqrt(R)``
instead, so the stream grows at most sqrt(2)x (GPT-2's residual scaling, Radford et al. 2019).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .._inputs import error_line
from .._rng import make_generator
from .._validation import ValidationError, check_float, check_int
from ..initializers import schemes
from ..initializers.account import Account, ParamEntry, ParamSlot, is_conv1d, param_slots
from ..initializers.lsuv import LSUVResult, LSUVUnit, preserved, rescale_units, scalable_units

__all__ = ["empirical_init"]

_RECURRENT = ("recurrent: the gates are computed inside one fused kernel, where no hook can read their "
              "pre-activations; kept as it is")


def empirical_init(
    model: nn.Module,
    example: Any,
    *,
    target_std: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
    generator: torch.Generator | int | None = None,
    residual: bool = True,
) -> tuple[list[ParamEntry], dict[str, Any]]:
    """Initialize ``model`` in place from measurements on ``example``; return (entries, info).

    ``example``: a batch the model accepts: a tensor (``model(x)``), a tuple of positional inputs
    or a dict of keyword inputs (``{"input_ids": ids}``). ``tol``: the relative tolerance on each
    layer's output variance, ``|Var / target_std^2 - 1| < tol``; ``max_iter``: forward passes that
    may rescale (one usually suffices: a first pass measures, one fixes every layer, a last one
    confirms). ``info``: ``{"passes", "converged", "warnings", "modules": {unit: {"iterations",
    "variance", "initial_variance", "input_std"}}}``; ``warnings`` are what LSUV cannot fix (the
    input of repeated layers drifting with depth, as a residual stream without normalization does).
    ``residual``: aim the weight that ends each residual branch at ``target_std / sqrt(R)``, R the
    residual additions between normalizations (found by the analytic mode's tracer), so the stream
    grows to at most sqrt(2) x instead of sqrt(R + 1) x (GPT-2's residual scaling, Radford et al.
    2019; Fixup, Zhang et al. 2019); ``False`` is plain LSUV, every layer at ``target_std``.
    If the model rejects the example (or anything else fails) the model is restored bit for bit
    and one :class:`~initlab.DataError` line is raised. BatchNorm running statistics and all other
    buffers are left exactly as they were.
    """
    if not isinstance(model, nn.Module):
        raise ValidationError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if example is None:
        raise ValidationError("example: the empirical mode measures on data; pass a batch the model accepts")
    target_std = check_float("target_std", target_std, 0.0, strict_minimum=True)
    tol = check_float("tol", tol, 0.0, strict_minimum=True)
    max_iter = check_int("max_iter", max_iter, 1)
    gen = make_generator(generator)
    units = scalable_units(model)
    slots = list(param_slots(model))
    result = LSUVResult([], 0, True, [], target_std**2, tol)
    with preserved(model):
        branch_ends, chain, notes = _residual_branches(model, example, target_std) if residual else (set(), 1, [])
        names = {id(s.param): s.name for s in reversed(slots)}  # first name of each parameter
        for u in units:
            if chain > 1 and names.get(id(u.param)) in branch_ends:
                u.target_scale = 1.0 / math.sqrt(chain)
        snapshot = {id(u.param): u.param.detach().clone() for u in units}
        snapshot.update({id(u.bias_param): u.bias_param.detach().clone() for u in units if u.bias_param is not None})
        with torch.no_grad():
            for u in units:
                if u.scale:  # orthonormal pre-init (Saxe et al. 2014), as LSUV's first step
                    schemes.orthogonal(u.weight.T if is_conv1d(u.module) else u.weight, 1.0, generator=gen)
                if u.bias is not None:
                    u.bias.zero_()
        if units:
            result = rescale_units(model, units, example, target_std, tol, max_iter)
        with torch.no_grad():
            called = {id(u.param) for u in result.units} | {id(u.bias_param) for u in result.units}
            for key, saved in snapshot.items():  # a layer the example never reaches keeps what it had
                if key not in called:
                    _param(units, key).copy_(saved)
    info = result.info()
    info["residual_additions"] = chain
    ratio, first, last = result.input_drift()
    if first:  # structured, for the report's problems (the same finding is one of LSUV's warnings)
        info["signal_drift"] = {"ratio": ratio, "first": first, "last": last}
    info["warnings"] = notes + info["warnings"]
    return _entries(slots, result, target_std, tol, max_iter, chain), info


def _residual_branches(model: nn.Module, example: Any, target_std: float) -> tuple[set[str], int, list[str]]:
    """(names of the weights that end a residual branch, R, notes): two tracking passes that change nothing."""
    from .analytic import Tracker, run_tracker

    gen = torch.Generator().manual_seed(0)  # the trackers draw nothing with apply=False
    try:
        probe = Tracker(model, target=target_std, generator=gen, apply=False)
        run_tracker(model, example, probe)
        if probe.max_chain <= 1:
            return set(), 1, []
        tracker = Tracker(model, target=target_std, generator=gen, apply=False, residual_r=probe.max_chain)
        run_tracker(model, example, tracker)
        return set(tracker.branch_scaled), probe.max_chain, []
    except Exception as err:  # the tracer cannot follow this model: plain LSUV, and say so
        return set(), 1, [f"residual branches not found ({error_line(err)}); every layer aimed at target_std"]


def _param(units: list[LSUVUnit], key: int) -> nn.Parameter:
    for u in units:
        for p in (u.param, u.bias_param):
            if p is not None and id(p) == key:
                return p
    raise KeyError(key)


def _entries(slots: list[ParamSlot], result: LSUVResult, target_std: float, tol: float,
             max_iter: int, chain: int = 1) -> Account:
    """One entry per parameter name: what empirical mode did to it and why."""
    weights: dict[int, list[LSUVUnit]] = {}
    for u in result.units:
        weights.setdefault(id(u.param), []).append(u)
    biases = {id(u.bias_param) for u in result.units if u.bias_param is not None}
    uncalled = {id(u.param) for u in result.uncalled} | {id(u.bias_param) for u in result.uncalled}
    first: dict[int, str] = {}
    entries = Account()
    for s in slots:
        key = id(s.param)
        std = float(s.param.detach().float().std()) if s.param.numel() > 1 else None
        entry = ParamEntry(s.name, s.module_name, s.kind, "left", std=std)
        if key in first:
            entry.reason = f"tied to {first[key]}: one tensor, accounted for there"
        elif key in weights:
            units = [u for u in weights[key] if u.scale] or weights[key]
            var = sum(u.variance for u in units) / len(units)
            entry.action, entry.measured_std = "touched", var**0.5
            aim = target_std * units[0].target_scale
            if units[0].target_scale != 1.0:
                entry.predicted_std = aim
                entry.reason = (f"ends a residual branch: output std {target_std:g}/sqrt({chain}) = {aim:.3g}, "
                                "so the stream grows at most sqrt(2)x (GPT-2's residual scaling)")
            owner = units[0].module_name
            if owner != s.module_name and not s.name.startswith(owner + "."):
                # set for another holder's output (GPT-2's wte, for lm_head's logits): measured there
                entry.module, entry.reason = owner, f"tied to {owner}: set for that layer's output"
            if var == 0:
                entry.reason = "output std 0 on the example: nothing to rescale"
            elif abs(var / aim**2 - 1.0) >= tol:
                entry.reason = (f"output std {var**0.5:.3g} after {result.passes} passes: not within tol "
                                f"{tol:g} of {aim:.3g} (max_iter={max_iter})")
        elif key in biases:
            entry.action, entry.reason = "touched", "zeros"
        elif key in uncalled:
            entry.reason = "not called in the forward pass on the example: kept as it is"
        else:
            entry.reason = _RECURRENT if s.kind == "recurrent" else s.note or f"{s.kind}: kept as it is"
        first.setdefault(key, s.name)
        entries.append(entry)
    return entries
