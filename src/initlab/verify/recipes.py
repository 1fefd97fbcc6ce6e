"""Recipes: what each parameter of a model was declared to be drawn from.

- ``"torch"``: what each module's ``reset_parameters`` (``_reset_parameters`` for attention)
  draws, read off torch's own code run on probes (:mod:`initlab.verify.probe`): ``nn.Linear``
  and ``nn.Conv*`` weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with
  a = sqrt(5)), ``nn.Embedding`` N(0, 1) with its padding row 0, norms 1 and 0, ...
- ``"hf"``: what a transformers model's own initialization does for its config: torch's
  construction-time draws, then ``initialize_weights()`` (the model's ``_init_weights`` on every
  module), read off transformers' code run on probes; a parameter ``_init_weights`` never writes
  keeps torch's default, and its row says so.
- a catalog name (``"he_normal"``, ``"xavier_uniform_"``, a spec dict): what
  ``initlab.apply_init(model, NAME)`` draws: the scheme for every Linear/Conv/attention/recurrent
  weight (with that weight's fans), zeros for their biases.
- a dict ``{glob over parameter names: spec}`` (or a ``recipe.toml`` of that table): the first
  pattern (in order) matching a parameter's name gives its spec; the spec ``"skip"`` leaves a
  parameter unchecked on purpose.

A parameter no rule declares is "unmatched", listed with the reason, never passed.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._validation import ValidationError, did_you_mean
from ..initializers import Initializer, get
from ..initializers.account import param_slots
from .law import Law
from .probe import Probe, Record, record_init

__all__ = ["Declared", "resolve_recipe", "load_recipe", "Recipe"]

Recipe = str | Mapping[str, Any] | Path


@dataclass
class Declared:
    """The declared law of one parameter, or why there is none."""

    law: Law | None
    source: str                                   # where the declaration comes from
    rows: dict[int, float] = field(default_factory=dict)  # dim-0 rows set to a constant (padding)
    expected: torch.Tensor | None = None          # a deterministic scheme's exact values
    reason: str = ""                              # why unmatched, when law and expected are None
    note: str = ""                                # worth knowing (e.g. left at torch's default by HF)
    skip: bool = False                            # the recipe says: do not check


def _reset_torch(model: nn.Module) -> None:
    """Every module's own reset, children first, as construction runs them."""
    for module in _post_order(model):
        reset = getattr(module, "reset_parameters", None) or getattr(module, "_reset_parameters", None)
        if callable(reset):
            reset()


def _post_order(module: nn.Module) -> list[nn.Module]:
    out: list[nn.Module] = []
    for child in module.children():
        out += _post_order(child)
    return out + [module]


def _owners(model: nn.Module) -> dict[str, str]:
    return {f"{mn}.{a}" if mn else a: type(m).__name__
            for mn, m in model.named_modules() for a, p in m._parameters.items() if p is not None}


def _from_records(records: dict[str, Record], source: str, owners: dict[str, str],
                  missing: str) -> dict[str, Declared]:
    out = {}
    for name, rec in records.items():
        if rec.law is None or rec.undeclared:  # undeclared: a write after the last law (a slice, copy_)
            why = rec.undeclared or missing.format(module=owners.get(name, "?"))
            out[name] = Declared(None, source, reason=why)
        else:
            out[name] = Declared(rec.law, source, dict(rec.rows))
    return out


def torch_recipe(model: nn.Module) -> dict[str, Declared]:
    """The ``"torch"`` recipe: what each module's reset_parameters draws."""
    records = record_init(model, _reset_torch, "reset_parameters")
    return _from_records(records, "torch reset_parameters", _owners(model),
                         "{module} has no reset_parameters: torch declares nothing for it")


def hf_recipe(model: nn.Module) -> dict[str, Declared]:
    """The ``"hf"`` recipe: torch's defaults, then the model's own ``initialize_weights()``."""
    if not callable(getattr(model, "initialize_weights", None)) or not hasattr(model, "config"):
        raise ValidationError(
            f"recipe 'hf' needs a transformers PreTrainedModel (with .config and .initialize_weights), "
            f"got {type(model).__name__}; use recipe 'torch', a catalog name or a dict"
        )
    before: dict[int, int] = {}

    def run(clone: nn.Module) -> None:
        _reset_torch(clone)  # construction: torch's defaults first
        probes: list[Any] = list(clone.parameters())
        before.update({id(p._record): p._record.writes for p in probes})
        hf: Any = clone  # a transformers PreTrainedModel
        hf.initialize_weights()

    kind = type(model).__name__
    records = record_init(model, run, f"{kind}._init_weights")
    out = _from_records(records, f"hf {kind}._init_weights", _owners(model),
                        f"neither {{module}}'s reset_parameters nor {kind}._init_weights writes it")
    for name, dec in out.items():
        if dec.law is not None and records[name].writes == before.get(id(records[name]), 0):
            dec.source, dec.note = "torch reset_parameters", f"not written by {kind}._init_weights: torch's default"
    return out


def _catalog_law(init: Initializer, shape: tuple[int, ...], fans: tuple[int, int] | None) -> Declared:
    """The law ``init`` draws into a tensor of ``shape`` with ``fans``, read off the catalog's own code."""
    text = str(init) + (f" (fan_in={fans[0]}, fan_out={fans[1]})" if fans else "")
    if init.scheme.kind == "data-dependent":
        return Declared(None, text, reason=f"{init.name} is data-dependent: no law to test against")
    if init.scheme.kind == "constant" and init.name not in ("zeros", "ones", "constant"):
        expected = torch.empty(shape)
        init(expected, torch.Generator().manual_seed(0), fans=fans)
        return Declared(None, text, expected=expected)
    probe = Probe.of(shape)
    init(probe, fans=fans)
    law = None if probe._record.undeclared else probe._record.law
    params = {**init.scheme.defaults, **init.params}
    if law is None and init.name == "truncated_normal":  # absolute bounds: drawn in float64, then copied
        mean, std = float(params["mean"]), float(params["std"])
        low = mean - 2 * std if params.get("low") is None else params["low"]
        high = mean + 2 * std if params.get("high") is None else params["high"]
        law = Law.truncated(mean, std, low, high)
    if law is None:
        return Declared(None, text, reason=f"{init.name}: not a law verify can test ({probe._record.undeclared})")
    return Declared(law, text)


def _slot_fans(model: nn.Module) -> dict[str, tuple[str, tuple[int, int] | None]]:
    """name -> (role, fans): role 'weight' or 'bias' for what apply_init draws, else the slot's kind."""
    out: dict[str, tuple[str, tuple[int, int] | None]] = {}
    for slot in param_slots(model):
        if slot.blocks:
            fans = {b.fans for b in slot.blocks}
            out[slot.name] = ("weight", fans.pop() if len(fans) == 1 else None)
        elif slot.bias_fans:
            out[slot.name] = ("bias", slot.bias_fans[0])
        else:
            out[slot.name] = (slot.kind, None)
    return out


def catalog_recipe(model: nn.Module, spec: str | Mapping[str, Any]) -> dict[str, Declared]:
    """A catalog scheme for every weight apply_init draws, zeros for their biases (apply_init's default)."""
    init, zeros = get(spec), get("zeros")
    roles = _slot_fans(model)
    out = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        role, fans = roles.get(name, ("other", None))
        if role in ("weight", "bias"):
            out[name] = _catalog_law(init if role == "weight" else zeros, tuple(p.shape), fans)
        else:
            why = f"a {role} parameter: apply_init({init.name}) does not draw it"
            out[name] = Declared(None, str(init), reason=why)
    return out


def dict_recipe(model: nn.Module, rules: Mapping[str, Any]) -> dict[str, Declared]:
    """``{glob: spec}``: the first matching pattern declares a parameter (``"skip"``: not checked)."""
    resolved: list[tuple[str, Initializer | None]] = []
    for pattern, spec in rules.items():
        if not isinstance(pattern, str):
            raise ValidationError(f"recipe patterns must be strings (globs over parameter names), got {pattern!r}")
        try:
            resolved.append((pattern, None if spec == "skip" else get(spec)))
        except ValidationError as err:
            raise ValidationError(f"recipe pattern {pattern!r}: {err}") from None
    roles = _slot_fans(model)
    out = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        rule = next(((pat, init) for pat, init in resolved if fnmatch.fnmatchcase(name, pat)), None)
        if rule is None:
            out[name] = Declared(None, "recipe", reason="no pattern of the recipe matches it")
            continue
        pat, init = rule
        if init is None:
            out[name] = Declared(None, f"pattern {pat!r}", skip=True, reason="skipped by the recipe")
            continue
        fans = roles.get(name, ("other", None))[1]
        dec = _catalog_law(init, tuple(p.shape), fans if fans is not None else _default_fans(p))
        dec.source = f"pattern {pat!r}: {dec.source}"
        out[name] = dec
    return out


def _default_fans(p: torch.Tensor) -> tuple[int, int] | None:
    from ..initializers import compute_fans

    return compute_fans(p.shape) if p.dim() >= 1 else None


def load_recipe(path: str | Path) -> dict[str, Any]:
    """``{glob: spec}`` from a TOML file: a ``[recipe]`` table, or patterns at the top level."""
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"recipe file '{path}' not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValidationError(f"recipe file '{path}' is not valid TOML: {err}") from None
    rules = data.get("recipe", data)
    if not isinstance(rules, dict) or not rules:
        raise ValidationError(f"recipe file '{path}' declares no patterns (write \"*.weight\" = \"he_normal\" lines)")
    return rules


def resolve_recipe(model: nn.Module, recipe: Recipe) -> tuple[str, dict[str, Declared]]:
    """(the recipe's label, ``{parameter name: Declared}`` for every name, tied names included)."""
    if isinstance(recipe, Path) or (isinstance(recipe, str) and recipe.endswith(".toml")):
        return str(recipe), dict_recipe(model, load_recipe(recipe))
    if isinstance(recipe, str) and recipe.strip() == "torch":
        return "torch", torch_recipe(model)
    if isinstance(recipe, str) and recipe.strip() == "hf":
        return "hf", hf_recipe(model)
    if isinstance(recipe, Mapping) and "name" not in recipe:
        return "dict", dict_recipe(model, recipe)
    if isinstance(recipe, (str, Mapping)):
        try:
            init = get(recipe)
        except ValidationError as err:
            near = did_you_mean(recipe, ("hf", "torch")) if isinstance(recipe, str) and len(recipe) <= 6 else ""
            raise ValidationError(f"recipe must be 'hf', 'torch', a catalog name, a dict or a .toml file{near or ':'}"
                                  f"{'' if near else f' {err}'}") from None
        return str(init), catalog_recipe(model, init.spec)
    raise ValidationError(f"recipe must be 'hf', 'torch', a catalog name, a {{glob: spec}} dict or a .toml path, "
                          f"got {type(recipe).__name__}")
