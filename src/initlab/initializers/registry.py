"""One registry: names and aliases (Keras and PyTorch spellings) -> schemes, and specs.

A spec is a JSON-friendly dict, ``{"name": "he_normal", "mode": "fan_in"}``, so stores and
URLs can hold an initializer; ``get(spec)`` rebuilds it.

Spellings resolve to one canonical spec, with the conventions of the library they come from:

- snake_case names (``he_normal``, ``variance_scaling``) are initlab's own (Keras' defaults,
  ``distribution="normal"`` a plain normal as in JAX);
- PyTorch names end in ``_`` (``normal_``, ``uniform_``, ``trunc_normal_``) and bring torch's
  defaults (std 1, U(0, 1), cut at the absolute bounds -2, 2) and keywords (``gain``,
  ``nonlinearity``, ``a``/``b``, ``val``, ``groups``, ``mode``);
- Keras class names (``HeNormal``, ``VarianceScaling``, ``OrthogonalInitializer``) bring Keras'
  draws: ``HeNormal``/``GlorotNormal`` and ``VarianceScaling(distribution="normal")`` are
  truncated normals, and Keras keywords (``stddev``, ``minval``, ``maxval``, ``seed``).

Every weight is in PyTorch's layout ``(out, in, *kernel)``; see :mod:`initlab.initializers._fans`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import torch

from .. import _html
from .._validation import ValidationError, check_float, check_int, did_you_mean
from . import schemes

__all__ = ["Initializer", "Scheme", "get", "names", "catalog", "Catalog", "table", "register", "canonical_name"]

_SAMPLING_KW = ("generator", "fans", "batch_dims")
# Keras and PyTorch parameter spellings -> ours, per scheme.
_PARAM_ALIASES = {
    "normal": {"stddev": "std"},
    "truncated_normal": {"stddev": "std", "a": "low", "b": "high"},  # torch's a, b: absolute bounds
    "uniform": {"minval": "low", "maxval": "high", "a": "low", "b": "high"},
    "constant": {"val": "value"},
    "he_normal": {"a": "negative_slope"},
    "he_uniform": {"a": "negative_slope"},
}
# Spellings whose library draws differently from initlab's same-named scheme: spelling -> (scheme, params).
_SPELLINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "normal_": ("normal", {"std": 1.0}),  # torch.nn.init.normal_: N(0, 1)
    "uniform_": ("uniform", {"low": 0.0, "high": 1.0}),  # torch.nn.init.uniform_: U(0, 1)
    "trunc_normal_": ("truncated_normal", {"std": 1.0, "low": -2.0, "high": 2.0}),  # absolute bounds
    "HeNormal": ("variance_scaling", {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}),
    "GlorotNormal": ("variance_scaling", {"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal"}),
}
# PyTorch keywords that _torch_keywords turns into another spec.
_TORCH_KEYWORDS = {"he_normal": ("nonlinearity",), "he_uniform": ("nonlinearity",),
                   "glorot_normal": ("gain",), "glorot_uniform": ("gain",)}
_KERAS_VARIANCE_SCALING = ("VarianceScaling",)  # Keras: distribution="normal" means truncated
_SEED = "seed"  # Keras' seed=, accepted by every random scheme


@dataclass(frozen=True)
class Scheme:
    """A catalog entry: the function, its aliases and what it is."""

    name: str
    fn: Callable[..., torch.Tensor]
    aliases: tuple[str, ...] = ()
    kind: str = "random"  # "constant", "random" or "data-dependent"
    defaults: dict[str, Any] = field(default_factory=dict)
    optional: tuple[str, ...] = ()  # keyword-only parameters off by default (not listed by `initlab inits`)

    @property
    def params(self) -> tuple[str, ...]:
        """Every parameter a spec may set: the listed defaults, the optional ones and ``seed``."""
        return (*self.defaults, *self.optional, *((_SEED,) if self.kind != "constant" else ()))

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
    """Add a scheme to the catalog; its parameters and defaults are read off its signature.

    Keyword-only parameters defaulting to None (``truncated_normal``'s ``low``/``high``) are
    optional: accepted by ``get`` but not listed among the defaults.
    """
    params = [
        p for p in inspect.signature(fn).parameters.values()
        if p.default is not inspect.Parameter.empty and p.name not in _SAMPLING_KW
        and p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    optional = tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is None)
    defaults = {p.name: p.default for p in params if p.name not in optional}
    scheme = Scheme(name, fn, tuple(aliases), kind, defaults, optional)
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
class Catalog(Sequence["Scheme"]):
    """The catalog as one object a notebook shows as a table: name, aliases, kind, parameters,
    formula, reference. A sequence of :class:`Scheme` (as :func:`catalog`'s list)."""

    schemes: tuple[Scheme, ...]

    @overload
    def __getitem__(self, index: int) -> Scheme: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Scheme, ...]: ...

    def __getitem__(self, index: int | slice) -> Scheme | tuple[Scheme, ...]:
        return self.schemes[index]

    def __len__(self) -> int:
        return len(self.schemes)

    def __repr__(self) -> str:
        shown = ", ".join(s.name for s in self.schemes[:6])
        more = f", ... ({len(self)} in all)" if len(self) > 6 else ""
        return f"Catalog({shown}{more})"

    def _repr_html_(self) -> str:
        """Notebook display: one row per scheme, as ``initlab inits`` prints it."""
        rows = [(s.name, ", ".join(s.aliases), s.kind, ", ".join(f"{k}={v}" for k, v in s.defaults.items()),
                 s.formula, s.reference) for s in self.schemes]
        return _html.box("initlab initializers", _html.table(
            ("name", "aliases", "kind", "parameters", "distribution / formula", "reference"), rows),
            subtitle=f"{len(self)} schemes")


def table() -> Catalog:
    """The catalog as a :class:`Catalog`: shown as a table in a notebook, a short ``repr`` elsewhere."""
    return Catalog(tuple(_REGISTRY.values()))


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
        """Fill ``tensor`` (PyTorch layout ``(out, in, *kernel)``) in place and return it.

        ``generator`` wins; without one, a ``seed`` in the spec draws from a fresh
        ``Generator(seed)`` on every call (Keras: a seeded initializer gives the same values
        each call); without either, torch's default generator is used. ``fans`` overrides the
        ``(fan_in, fan_out)`` read off the shape; ``batch_dims`` leading dimensions index
        stacked models.
        """
        params = dict(self.params)
        seed = params.pop(_SEED, None)
        if generator is None and seed is not None:
            generator = torch.Generator(device=tensor.device).manual_seed(seed)
        if fans is not None:
            fans = _check_fans(fans)
        batch_dims = check_int("batch_dims", batch_dims, 0, max(0, tensor.dim()))
        return self.scheme.fn(tensor, **params, generator=generator, fans=fans, batch_dims=batch_dims)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({args})" if args else self.name


def _check_fans(fans: Any) -> tuple[int, int]:
    try:
        fan_in, fan_out = fans
    except (TypeError, ValueError):
        raise ValidationError(f"fans must be a pair (fan_in, fan_out) of integers, got {fans!r}") from None
    return check_int("fans[0] (fan_in)", fan_in, 0), check_int("fans[1] (fan_out)", fan_out, 0)


def get(identifier: str | Mapping[str, Any] | Initializer, **params: Any) -> Initializer:
    """Resolve a name, alias, spec dict or Initializer to an :class:`Initializer`.

    Keras and PyTorch parameter spellings are renamed to initlab's (``stddev`` -> ``std``,
    ``minval``/``maxval`` -> ``low``/``high``, torch's ``a``/``b`` -> ``low``/``high`` of
    ``uniform_``/``trunc_normal_``, ``a`` -> ``negative_slope`` of ``kaiming_*``, ``val`` ->
    ``value``); one parameter given under two spellings is an error. PyTorch's ``nonlinearity=``
    (kaiming) and ``gain=`` (xavier) become the equivalent canonical spec; ``seed=`` (Keras)
    makes the draws reproducible (see :meth:`Initializer.__call__`). The result's ``spec``
    round-trips through JSON. Parameters given here override those of a spec dict.

    >>> get("xavier_uniform").name
    'glorot_uniform'
    >>> get({"name": "he_normal", "mode": "fan_out"}).params
    {'mode': 'fan_out'}
    >>> get("kaiming_normal_", nonlinearity="tanh").spec
    {'name': 'variance_scaling', 'scale': 2.777777777777778, 'mode': 'fan_in', 'distribution': 'normal'}
    """
    if isinstance(identifier, Initializer):
        identifier = identifier.spec
    spec_params: dict[str, Any] = {}
    if isinstance(identifier, Mapping):
        spec_params = dict(identifier)
        if "name" not in spec_params:
            raise ValidationError(f"an initializer spec needs a 'name' key, got {spec_params!r}")
        identifier = spec_params.pop("name")
    if not isinstance(identifier, str):
        raise ValidationError(f"initializer must be a name or a spec dict, got {identifier!r}")
    spelling = identifier.strip()
    name = canonical_name(spelling)
    name, base = _SPELLINGS.get(spelling, (name, {}))
    bound = {**base, **_rename(name, spec_params), **_rename(name, params)}
    if spelling in _KERAS_VARIANCE_SCALING and bound.get("distribution") == "normal":
        bound["distribution"] = "truncated_normal"
    if bound.get("distribution") == "untruncated_normal":
        bound["distribution"] = "normal"
    accepted = (*_REGISTRY[name].params, *_TORCH_KEYWORDS.get(name, ()))
    for key in bound:
        if key not in accepted:
            allowed = ", ".join(accepted) or "none"
            raise ValidationError(
                f"initializer {name!r} has no parameter {key!r}{did_you_mean(key, accepted)} (allowed: {allowed})"
            )
    name, bound = _torch_keywords(name, bound)
    if _SEED in bound:
        bound[_SEED] = check_int(_SEED, bound[_SEED], 0)
    init = Initializer(name, bound)
    _check_params(init)
    return init


def _rename(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Keras/PyTorch parameter spellings -> initlab's; a parameter given twice is an error."""
    aliases = _PARAM_ALIASES.get(name, {})
    scheme = _REGISTRY[name]
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for key, value in params.items():
        ours = key if key in scheme.params else aliases.get(key, key)
        if ours in given:
            raise ValidationError(
                f"initializer {name!r}: parameter {ours!r} given twice, as {given[ours]!r} and {key!r}; give it once"
            )
        given[ours] = key
        out[ours] = value
    return out


def _torch_keywords(name: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """PyTorch's ``nonlinearity=`` (kaiming_*) and ``gain=`` (xavier_*) -> the canonical spec.

    kaiming with relu or leaky_relu stays he_* (relu ignores ``a``, as torch); any other
    nonlinearity, and xavier with gain != 1, is ``variance_scaling(scale=gain^2)``: the same draw.
    """
    params = dict(params)
    distribution = "uniform" if name.endswith("_uniform") else "normal"
    if name in ("he_normal", "he_uniform") and "nonlinearity" in params:
        nonlinearity = params.pop("nonlinearity")
        if nonlinearity == "relu":
            params.pop("negative_slope", None)
            return name, params
        if nonlinearity == "leaky_relu":
            if "negative_slope" in params:
                _gain("leaky_relu", params["negative_slope"])  # torch's check: an int or float
            return name, params
        slope = params.pop("negative_slope", None)
        mode = params.pop("mode", "fan_in")
        gain = _gain(nonlinearity, slope)
        return "variance_scaling", {"scale": gain**2, "mode": mode, "distribution": distribution, **params}
    if name in ("glorot_normal", "glorot_uniform") and "gain" in params:
        gain = check_float("gain", params.pop("gain"), 0.0, strict_minimum=True)
        if gain == 1.0:
            return name, params
        return "variance_scaling", {"scale": gain**2, "mode": "fan_avg", "distribution": distribution, **params}
    return name, params


def _gain(nonlinearity: Any, slope: Any) -> float:
    from ._fans import calculate_gain  # here: _fans is imported by schemes, kept free of the registry

    try:
        return calculate_gain(nonlinearity, slope)
    except ValidationError as err:
        raise ValidationError(f"nonlinearity: {err}") from None


def _check_params(init: Initializer) -> None:
    """Fail at construction, not at first use: run the scheme once on a small tensor."""
    groups = init.params.get("groups", 1)
    rows = 4 * groups if isinstance(groups, int) and 1 <= groups <= 64 else 4
    probe = torch.empty(rows, 4)
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
register("orthogonal", schemes.orthogonal, ("orthogonal_initializer",))
register("identity", schemes.identity, ("eye", "dirac", "identity_initializer"), kind="constant")
register("sparse", schemes.sparse)
