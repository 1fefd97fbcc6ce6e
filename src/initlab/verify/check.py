"""The body of :func:`initlab.verify` (the light ``verify/__init__.py`` calls :func:`verify` here; the
statistics and the correction are described there)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .._validation import ValidationError, check_float, check_int
from .law import Law
from .recipes import Declared, Recipe, load_recipe, resolve_recipe
from .report import ParamCheck, TieCheck, VerifyReport
from .stats import MIN_VALUES, Measured, measure

__all__ = ["verify", "VerifyReport", "ParamCheck", "TieCheck", "Law", "load_recipe"]


def verify(model: nn.Module, recipe: Recipe, *, alpha: float = 0.01, min_values: int = MIN_VALUES,
           ties: Iterable[tuple[str, str]] = ()) -> VerifyReport:
    """What :func:`initlab.verify` does (its docstring has the contract): declared laws, tests, Bonferroni."""
    if not isinstance(model, nn.Module):
        raise ValidationError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    alpha = check_float("alpha", alpha, 0.0, 1.0, strict_minimum=True)
    min_values = check_int("min_values", min_values, 2)
    label, declared = resolve_recipe(model, recipe)
    aliases = _aliases(model)
    checks = []
    for name, param in model.named_parameters():
        dec = declared.get(name) or Declared(None, label, reason="the recipe does not name it")
        checks.append(_check(name, param, dec, aliases.get(name, []), min_values))
    tests = sum(len(c.measured.p) for c in checks if c.measured is not None)
    threshold = alpha / max(tests, 1)
    for c in checks:
        _verdict(c, threshold)
    pairs = list(_model_ties(model)) + [(a, b, "given") for a, b in ties]
    return VerifyReport(label, alpha, tests, threshold, checks, [_tie(model, *pair) for pair in pairs])


def _aliases(model: nn.Module) -> dict[str, list[str]]:
    """First name of each tensor -> its other names (tied parameters)."""
    first: dict[int, str] = {}
    out: dict[str, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            out.setdefault(first[id(p)], []).append(name)
        else:
            first[id(p)] = name
    return out


def _check(name: str, param: torch.Tensor, dec: Declared, aliases: list[str], min_values: int) -> ParamCheck:
    shape = tuple(param.shape)
    if dec.skip:
        return ParamCheck(name, shape, "skipped", source=dec.source, aliases=aliases, reason=dec.reason)
    if dec.expected is not None:
        values = param.detach().to(dec.expected.dtype).cpu()
        mismatches = int((values != dec.expected).sum()) if values.shape == dec.expected.shape else values.numel()
        return ParamCheck(name, shape, "pass", f"exact values of {dec.source}", dec.source, None,
                          Measured(n=values.numel(), mismatches=mismatches), aliases=aliases)
    if dec.law is None:
        return ParamCheck(name, shape, "unmatched", source=dec.source, aliases=aliases, reason=dec.reason)
    declared = dec.law.describe() + "".join(f"; row {r} = {v:g}" for r, v in dec.rows.items())
    measured = measure(param.detach().cpu(), dec.law, dec.rows, min_values=min_values)
    status = "pass" if not dec.law.random or measured.p else "untested"
    return ParamCheck(name, shape, status, declared, dec.source, dec.law, measured, aliases=aliases, note=dec.note)


def _verdict(check: ParamCheck, threshold: float) -> None:
    m = check.measured
    if m is None:
        return
    check.failed = [stat for stat, p in m.p.items() if p < threshold]
    if m.mismatches:
        check.failed.append("exact")
    if check.failed:
        check.status = "fail"


def _model_ties(model: nn.Module) -> Iterable[tuple[str, str, str]]:
    """(name, target, source) pairs the model declares tied: transformers' ``all_tied_weights_keys``
    (set from ``tie_word_embeddings`` and ``_tied_weights_keys``), else the input/output embeddings
    when the config ties them."""
    keys = getattr(model, "all_tied_weights_keys", None)
    if isinstance(keys, dict) and keys:
        for name, target in keys.items():
            yield str(name), str(target), "transformers tied weights"
        return
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "tie_word_embeddings", False):
        try:
            hf: Any = model  # a transformers PreTrainedModel
            out, inp = hf.get_output_embeddings(), hf.get_input_embeddings()
        except (AttributeError, NotImplementedError):
            return
        if out is not None and inp is not None:
            names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
            yield f"{names.get(id(out), '?')}.weight", f"{names.get(id(inp), '?')}.weight", "config.tie_word_embeddings"


def _tie(model: nn.Module, name: str, target: str, source: str) -> TieCheck:
    try:
        a, b = model.get_parameter(name), model.get_parameter(target)
    except AttributeError as err:
        return TieCheck(name, target, False, source, f"missing: {err}")
    if a is b:
        return TieCheck(name, target, True, source)
    same = a.shape == b.shape and bool(torch.equal(a.detach(), b.detach()))
    return TieCheck(name, target, False, source, "two tensors" + (" with equal values (a copy)" if same else ""))
