"""Parametrizations: how each weight's initial scale and Adam learning rate move with width and depth.

Every rule here is written in the *absorbed* form for Adam: a parameter multiplier ``a`` in the
forward pass (``W_eff = a * W``), an init ``W ~ N(0, b^2)`` and a per-parameter learning rate
``c * lr`` give, under Adam (whose update does not depend on the gradient's scale, up to its
``eps``), the same training run as a plain weight ``W_eff`` with init std ``a * b`` and learning
rate ``a * c * lr`` (the "abc" symmetry that Yang et al. 2022 and Blake et al. 2024 both use to
move a multiplier between the forward pass, the init and the learning rate). So each
parametrization is, per weight, two numbers: ``std`` and ``lr_factor``.

Notation: ``n`` = the weight's fan-in (1 for an embedding table, which sees one-hot inputs),
``n_out`` its fan-out, ``m = width / base_width`` the width multiplier, ``d = depth / base_depth``
the depth multiplier. Roles: ``input`` (fan-in fixed, fan-out grows with width: the first layer
or an embedding), ``hidden`` (both grow), ``readout`` (fan-in grows, fan-out fixed: the last
layer), ``vector`` (biases and norm gains). A residual block's last weight is a *branch output*.

=================  ==============================  =====================================  ==========================
parametrization    input                           hidden                                 readout
=================  ==============================  =====================================  ==========================
``sp``             std 1/sqrt(n), lr 1             std 1/sqrt(n), lr 1                    std 1/sqrt(n), lr 1
``mup``            std 1/sqrt(n), lr 1             std 1/sqrt(n), lr 1/m                  std 1/sqrt(n m), lr 1/m
``umup``           std 1/sqrt(n), lr 1/sqrt(n n_o) std 1/sqrt(n), lr 1/n                  std 1/n, lr 1/n
``depth-mup``      as ``mup``                      ``mup`` x lr d^-1/2; branch output      as ``mup``
                                                   std x d^-1/2, lr x d^-1/2 more
``completep``      as ``mup``                      ``mup``; branch output std x d^-1,     as ``mup``
                                                   lr x d^-1
=================  ==============================  =====================================  ==========================

Vectors (biases, gains): init 0 (gains 1), lr 1, in every parametrization. Attention logits:
``q.k / sqrt(d_head)`` in ``sp`` and ``umup``-as-implemented, ``q.k / d_head`` in the muP family
(Tensor Programs V, section 4, "attention logit scaling"); only the built-in transformer has it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._validation import ValidationError, check_int, did_you_mean

__all__ = ["Parametrization", "Rule", "Parametrized", "PARAMETRIZATIONS", "get", "names", "parametrize", "ROLES"]

ROLES = ("input", "hidden", "readout", "vector")


@dataclass(frozen=True)
class Rule:
    """One parameter's rule: its role, fan-in, init ``std`` (0: zeros; a gain starts at 1) and ``lr_factor``."""

    name: str
    role: str
    fan_in: int
    fan_out: int
    std: float
    lr_factor: float
    branch_output: bool = False
    in_block: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "fan_in": self.fan_in, "fan_out": self.fan_out,
                "std": self.std, "lr_factor": self.lr_factor, "branch_output": self.branch_output,
                "in_block": self.in_block}


@dataclass(frozen=True)
class Parametrization:
    """A named parametrization: ``rule(...)`` gives a parameter's ``(std, lr_factor)`` (module docstring)."""

    name: str
    title: str
    paper: str
    mup_width: bool  # muP's width rules (else SP's, or u-muP's own)
    unit: bool = False  # u-muP's absolute (base-free) rules
    depth_alpha: float | None = None  # branch multiplier d^-alpha with hidden Adam lr d^(alpha-1)
    attention_scale: str = "sqrt"  # "sqrt": q.k/sqrt(d_head); "linear": q.k/d_head (muP)

    def rule(self, role: str, fan_in: int, fan_out: int, width_mult: float = 1.0, depth_mult: float = 1.0,
             branch_output: bool = False, in_block: bool = False) -> tuple[float, float]:
        """``(std, lr_factor)`` of one weight; see the table in the module docstring."""
        n, m, d = float(fan_in), float(width_mult), float(depth_mult)
        if role == "vector":
            return 0.0, 1.0
        std, lr = 1.0 / math.sqrt(n), 1.0
        if self.unit:  # Blake et al. 2024, u-muP's weight rules (init B = 1, multiplier A, Adam lr C): std A, lr A C
            if role == "input":
                lr = 1.0 / math.sqrt(n * fan_out)  # A = 1/sqrt(n) (1 for an embedding), C = 1/sqrt(fan-out)
            elif role == "hidden":
                lr = 1.0 / n  # A = C = 1/sqrt(fan-in)
            else:
                std, lr = 1.0 / n, 1.0 / n  # A = 1/fan-in, C = 1
        elif self.mup_width:  # Yang et al. 2022, Table 3 (Adam), relative to the base width
            if role == "hidden":
                lr = 1.0 / m
            elif role == "readout":
                std, lr = std / math.sqrt(m), 1.0 / m
        if self.depth_alpha is not None and in_block:  # Bordelon et al. 2023 / Yang et al. 2023; Dey et al. 2025
            lr *= d ** (self.depth_alpha - 1.0)
            if branch_output:  # the branch multiplier d^-alpha, absorbed into the branch's last weight
                std *= d ** (-self.depth_alpha)
                lr *= d ** (-self.depth_alpha)
        return std, lr


PARAMETRIZATIONS: dict[str, Parametrization] = {p.name: p for p in (
    Parametrization("sp", "standard (SP)", "LeCun et al. 1998 init, one Adam learning rate for every weight",
                    mup_width=False),
    Parametrization("mup", "muP", "Yang et al. 2022, Tensor Programs V, Table 3 (Adam)", mup_width=True,
                    attention_scale="linear"),
    Parametrization("umup", "u-muP", "Blake et al. 2024, u-muP: The Unit-Scaled Maximal Update Parametrization, "
                    "weight rules only", mup_width=False, unit=True, attention_scale="linear"),
    Parametrization("depth-mup", "depth-muP", "Bordelon et al. 2023 (ICLR 2024) and Yang et al. 2023, Tensor "
                    "Programs VI: branch multiplier 1/sqrt(L), hidden Adam lr 1/sqrt(L)", mup_width=True,
                    depth_alpha=0.5, attention_scale="linear"),
    Parametrization("completep", "CompleteP", "Dey et al. 2025, Don't be lazy: CompleteP enables compute-efficient "
                    "deep transformers: branch multiplier 1/L (alpha = 1)", mup_width=True, depth_alpha=1.0,
                    attention_scale="linear"),
)}
_ALIASES = {"standard": "sp", "mu-p": "mup", "mup-width": "mup", "u-mup": "umup", "u_mup": "umup",
            "depth_mup": "depth-mup", "depthmup": "depth-mup", "complete-p": "completep", "complete_p": "completep"}


def names() -> list[str]:
    """Canonical names of the parametrizations."""
    return list(PARAMETRIZATIONS)


def get(name: str | Parametrization) -> Parametrization:
    """A parametrization by name (aliases: ``u-mup``, ``depth_mup``, ``complete-p``, ...)."""
    if isinstance(name, Parametrization):
        return name
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in PARAMETRIZATIONS:
        raise ValidationError(f"unknown parametrization {name!r}{did_you_mean(key, PARAMETRIZATIONS)} "
                              f"(allowed: {', '.join(PARAMETRIZATIONS)})")
    return PARAMETRIZATIONS[key]


def parse_parametrizations(value: str | Sequence[str]) -> list[str]:
    """``"sp,mup"`` or a list -> canonical names, distinct, in the given order."""
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else [str(p) for p in value]
    out = [get(p).name for p in parts if p]
    if not out:
        raise ValidationError(f"parametrizations must name at least one of {', '.join(PARAMETRIZATIONS)}, "
                              f"got {value!r}")
    if len(set(out)) != len(out):
        raise ValidationError(f"parametrizations must be distinct, got {value!r}")
    return out


@dataclass
class Parametrized:
    """What :func:`parametrize` decided for a model: one :class:`Rule` per parameter.

    ``param_groups(lr)`` feeds ``torch.optim.Adam``: one group per learning-rate factor.
    """

    parametrization: Parametrization
    model: nn.Module
    rules: list[Rule] = field(default_factory=list)
    width: int = 0
    base_width: int = 0

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """``[{"params": [...], "lr": lr * factor}, ...]`` for a torch optimizer (Adam: the rules assume it)."""
        params = dict(self.model.named_parameters())
        groups: dict[float, list[torch.Tensor]] = {}
        for r in self.rules:
            groups.setdefault(r.lr_factor, []).append(params[r.name])
        return [{"params": ps, "lr": lr * f} for f, ps in groups.items()]

    def lr_factors(self) -> dict[str, float]:
        """Parameter name -> learning-rate factor."""
        return {r.name: r.lr_factor for r in self.rules}

    def to_dict(self) -> dict[str, Any]:
        return {"parametrization": self.parametrization.name, "width": self.width, "base_width": self.base_width,
                "rules": [r.to_dict() for r in self.rules]}


def _weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]


def parametrize(model: nn.Module, parametrization: str | Parametrization = "mup", *, base_width: int | None = None,
                width: int | None = None, depth: int = 1, base_depth: int = 1,
                branch_outputs: Iterable[str] = (), blocks: Iterable[str] = (),
                generator: torch.Generator | None = None, init: bool = True) -> Parametrized:
    """Apply a parametrization to ``model``: re-draw its weights (``init=True``) and return the
    per-parameter learning-rate factors (``.param_groups(lr)`` for ``torch.optim.Adam``).

    Roles come from the order of the ``nn.Linear`` / ``nn.Embedding`` modules: an embedding or the
    first Linear is ``input``, the last Linear is ``readout``, the others ``hidden``; every
    parameter of another module, and every bias, is a ``vector``. ``width``: the readout's fan-in
    unless given; ``base_width``: the width at which muP equals SP (default ``width``).
    ``depth``/``base_depth``/``blocks``/``branch_outputs`` (module-name prefixes and names) enable
    the depth rules of ``depth-mup`` and ``completep``. Formulas and papers: module docstring.

    >>> p = parametrize(nn.Sequential(nn.Linear(8, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
    ...                               nn.Linear(256, 10)), "mup", base_width=64)
    >>> opt = torch.optim.Adam(p.param_groups(1e-3))
    """
    spec = get(parametrization)
    layers = _weighted_layers(model)
    linears = [n for n, m in layers if isinstance(m, nn.Linear)]
    if not linears:
        raise ValidationError("parametrize needs a model with at least one nn.Linear (its readout)")
    readout = linears[-1]
    first = linears[0] if not any(isinstance(m, nn.Embedding) for _, m in layers) else None
    modules = dict(model.named_modules())
    if width is None:
        width = modules[readout].in_features
    width = check_int("width", width, 1)
    base_width = width if base_width is None else check_int("base_width", base_width, 1)
    depth, base_depth = check_int("depth", depth, 1), check_int("base_depth", base_depth, 1)
    branch_outputs, blocks = set(branch_outputs), tuple(blocks)
    for name in branch_outputs:
        if name not in modules:
            raise ValidationError(f"branch output {name!r} is not a module of the model{did_you_mean(name, modules)}")
    rules = []
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            is_matrix = isinstance(module, (nn.Linear, nn.Embedding)) and p_name == "weight"
            if not is_matrix:
                role, fan_in, fan_out = "vector", 1, int(p.numel())
            elif isinstance(module, nn.Embedding):
                role, fan_in, fan_out = "input", 1, module.embedding_dim
            else:
                fan_in, fan_out = module.in_features, module.out_features
                role = "readout" if mod_name == readout else "input" if mod_name == first else "hidden"
            in_block = any(mod_name == b or mod_name.startswith(b + ".") for b in blocks) or mod_name in branch_outputs
            std, lr = spec.rule(role, fan_in, fan_out, width / base_width, depth / base_depth,
                                mod_name in branch_outputs, in_block)
            rules.append(Rule(full, role, fan_in, fan_out, std, lr, mod_name in branch_outputs, in_block))
            if init:
                with torch.no_grad():
                    if role == "vector":
                        p.fill_(1.0 if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d)) and
                                p_name == "weight" else 0.0)
                    else:
                        p.normal_(0.0, std, generator=generator) if std > 0 else p.zero_()
    return Parametrized(spec, model, rules, width, base_width)
