"""One registry: names and aliases (Keras and PyTorch spellings) -> schemes, and specs.

A spec is a JSON-friendly dict, ``{"name": "he_normal", "mode": "fan_in"}``, so stores and
URLs can hold an initializer; ``get(spec)`` rebuilds it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .._validation import ValidationError, did_you_mean
from . import schemes

__all__ = ["Initializer", "Scheme", "get", "names", "catalog", "register", "canonical_name"]

_SAMPLING_KW = ("generator", "fans", "batch_dims")
# Keras and PyTorch parameter spellings -> ours.
_PARAM_ALIASES = {"stddev": "std", "minval": "low", "maxval": "high", "a": "negative_slope"}


@dataclass(frozen=True)
class Scheme:
    """A catalog entry: the function, its aliases and what it is."""

    name: str
    fn: Callable[..., torch.Tensor]
    aliases: tuple[str, ...] = ()
    kind: str = "random"  # "constant", "random" or "data-dependent"
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def formula(self) -> str:
        """First docstring line: the distribution and its formula."""
        return (self.fn.__doc__ or "").strip().splitlines()[0].replace("``", "")

    @property
    def reference(self) -> str:
        """The paper, from the docstring's ``Reference:`` line."""
        for line in (self.fn.__doc__ or "").splitlines():
            if line.strip().startswith("Reference:"):
                return line.split("Reference:", 1)[1].strip().replace("``", "")
        return ""


_REGISTRY: dict[str, Scheme] = {}
_ALIASES: dict[str, str] = {}


def _snake(name: str) -> str:
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name).strip()).lower().rstrip("_").replace("-", "_")


def register(name: str, fn: Callable[..., torch.Tensor], aliases: tuple[str, ...] = (), kind: str = "random") -> Scheme:
    """Add a scheme to the catalog; its parameters and defaults are read off its signature."""
    defaults = {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.default is not inspect.Parameter.empty and p.name not in _SAMPLING_KW
        and p.kind is not inspect.Parameter.VAR_KEYWORD
    }
    scheme = Scheme(name, fn, tuple(aliases), kind, defaults)
    _REGISTRY[name] = scheme
    for alias in (name, *aliases):
        _ALIASES[_snake(alias)] = name
    return scheme


def canonical_name(name: str) -> str:
    """The catalog name for ``name`` or any alias ('xavier_uniform_', 'HeNormal', ...)."""
    key = _snake(name)
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValidationError(
        f"unknown initializer {name!r}{did_you_mean(key, _ALIASES)} (see `initlab inits`)"
    )


def names() -> list[str]:
    """Canonical names of the catalog, in catalog order."""
    return list(_REGISTRY)


def catalog() -> list[Scheme]:
    """Every scheme of the catalog."""
    return list(_REGISTRY.values())


@dataclass(frozen=True)
class Initializer:
    """A scheme with its parameters bound: ``init(tensor, generator=None)`` fills in place."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def scheme(self) -> Scheme:
        return _REGISTRY[self.name]

    @property
    def spec(self) -> dict[str, Any]:
        """JSON-friendly spec; ``get(init.spec)`` rebuilds the same initializer."""
        return {"name": self.name, **self.params}

    def __call__(
        self,
        tensor: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        fans: tuple[int, int] | None = None,
        batch_dims: int = 0,
    ) -> torch.Tensor:
        return self.scheme.fn(tensor, **self.params, generator=generator, fans=fans, batch_dims=batch_dims)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({args})" if args else self.name


def get(identifier: str | Mapping[str, Any] | Initializer, **params: Any) -> Initializer:
    """Resolve a name, alias, spec dict or Initializer to an :class:`Initializer`.

    >>> get("xavier_uniform").name
    'glorot_uniform'
    >>> get({"name": "he_normal", "mode": "fan_out"}).params
    {'mode': 'fan_out'}
    """
    if isinstance(identifier, Initializer):
        return Initializer(identifier.name, {**identifier.params, **params}) if params else identifier
    if isinstance(identifier, Mapping):
        spec = dict(identifier)
        if "name" not in spec:
            raise ValidationError(f"an initializer spec needs a 'name' key, got {spec!r}")
        identifier = spec.pop("name")
        params = {**spec, **params}
    if not isinstance(identifier, str):
        raise ValidationError(f"initializer must be a name or a spec dict, got {identifier!r}")
    name = canonical_name(identifier)
    scheme = _REGISTRY[name]
    bound = {}
    for given, value in params.items():
        key = _PARAM_ALIASES.get(given, given) if given not in scheme.defaults else given
        if key not in scheme.defaults:
            allowed = ", ".join(scheme.defaults) or "none"
            raise ValidationError(
                f"initializer {name!r} has no parameter {given!r}{did_you_mean(given, scheme.defaults)}"
                f" (allowed: {allowed})"
            )
        bound[key] = value
    init = Initializer(name, bound)
    _check_params(init)
    return init


def _check_params(init: Initializer) -> None:
    """Fail at construction, not at first use: run the scheme once on a small tensor."""
    probe = torch.empty(4, 4)
    try:
        init(probe, torch.Generator().manual_seed(0))
    except ValidationError as err:
        raise ValidationError(f"initializer {init.name!r}: {err}") from None
    except TypeError as err:
        raise ValidationError(f"initializer {init.name!r}: {err}") from None


register("zeros", schemes.zeros, ("zero", "Zeros"), kind="constant")
register("ones", schemes.ones, ("one",), kind="constant")
register("constant", schemes.constant, ("const",), kind="constant")
register("normal", schemes.normal, ("random_normal", "gaussian"))
register("uniform", schemes.uniform, ("random_uniform",))
register("truncated_normal", schemes.truncated_normal, ("trunc_normal",))
register("variance_scaling", schemes.variance_scaling)
register("glorot_normal", schemes.glorot_normal, ("xavier_normal",))
register("glorot_uniform", schemes.glorot_uniform, ("xavier_uniform", "xavier", "glorot"))
register("he_normal", schemes.he_normal, ("kaiming_normal", "he", "kaiming"))
register("he_uniform", schemes.he_uniform, ("kaiming_uniform",))
register("lecun_normal", schemes.lecun_normal, ("lecun",))
register("lecun_uniform", schemes.lecun_uniform)
register("orthogonal", schemes.orthogonal, ("orthogonal",))
register("identity", schemes.identity, ("eye", "dirac"), kind="constant")
register("sparse", schemes.sparse)
