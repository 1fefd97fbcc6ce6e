"""Request bodies of the lab's JSON API, derived from :class:`~initlab.experiments.RunSpec`'s fields.

Every RunSpec field the page sets (all but ``name``, ``init``/``bias_init``, which arrive as
``{"name", "params"}`` objects, and the two seeds, which the lab's ``seed`` sets together) is
copied from ``RunSpec.model_fields`` with its type, default and range; the lab's tighter limits
(:data:`~initlab.server.limits.FIELD_BOUNDS`) and defaults (:data:`~initlab.server.limits.LAB_DEFAULTS`)
are an overlay, so a field has one range and its error message states it. A field added to
RunSpec flows into the bodies (and into ``/api/options``) without a change here. Unknown keys are
rejected. The browser keeps a body in the page's URL, so a link reproduces the run (an uploaded
CSV excepted: it travels in the request body only).
"""

from __future__ import annotations

import inspect
import re
from types import GenericAlias
from typing import Annotated, Any, cast

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .. import initializers
from .._validation import ValidationError
from ..runspec import MAX_SEED, RunSpec, canonical_init
from .limits import FIELD_BOUNDS, LAB_DEFAULTS, LIMITS, UPLOAD_NAME, param_bounds

__all__ = ["InitSpec", "LabRequest", "TrainSpec", "CompareSpec", "SweepSpec", "DATASETS", "FIELDS", "field_info",
           "describe", "classic_preset"]

DATASETS = (*LIMITS.datasets, "csv")

# RunSpec fields the body does not copy as they are: the label, the initializers (objects here),
# the seeds (one ``seed`` sets both), the data set (a choice among 2-D sets or "csv").
_OWN = ("name", "init", "bias_init", "init_seed", "order_seed", "dataset")
FIELDS = tuple(f for f in RunSpec.model_fields if f not in _OWN)  # copied from RunSpec, in its order

# field -> (kind, low, low_closed, high, high_closed): the effective range, for messages and the page
_RANGES: dict[str, tuple[str, float | None, bool, float | None, bool]] = {}


def _help() -> dict[str, str]:
    """Each RunSpec field's help: its description, else the comment beside its declaration."""
    out = {n: i.description for n, i in RunSpec.model_fields.items() if i.description}
    try:
        source = inspect.getsource(RunSpec)
    except (OSError, TypeError):
        return out
    for name, comment in re.findall(r"^\s{4}(\w+):[^\n]*?#\s*([^\n]+)$", source, flags=re.M):
        out.setdefault(name, comment.strip())
    return out


_HELP = _help()


def _annotated(base: Any, *metadata: Any) -> Any:
    """``Annotated[base, *metadata]`` built at runtime for pydantic (a value, not a type mypy can check)."""
    form: Any = Annotated
    params = (base, *metadata)
    return form[params]


def _split_bounds(metadata: list[Any]) -> tuple[list[Any], float | None, bool, float | None, bool]:
    """(other metadata, low, low_closed, high, high_closed) of a field's annotated constraints."""
    others: list[Any] = []
    lo: float | None = None
    hi: float | None = None
    lo_closed, hi_closed = True, True
    for meta in metadata:  # RunSpec's bounds are numbers (annotated_types types them as comparable protocols)
        if isinstance(meta, at.Ge):
            lo, lo_closed = cast(float, meta.ge), True
        elif isinstance(meta, at.Gt):
            lo, lo_closed = cast(float, meta.gt), False
        elif isinstance(meta, at.Le):
            hi, hi_closed = cast(float, meta.le), True
        elif isinstance(meta, at.Lt):
            hi, hi_closed = cast(float, meta.lt), False
        else:
            others.append(meta)
    return others, lo, lo_closed, hi, hi_closed


def _overlay(name: str, base: Any, metadata: list[Any]) -> Any:
    """``base`` annotated with RunSpec's constraints, its range tightened by the lab's overlay."""
    others, lo, lo_closed, hi, hi_closed = _split_bounds(metadata)
    lab_lo, lab_hi = FIELD_BOUNDS.get(name, (None, None))
    if lab_lo is not None and (lo is None or lab_lo > lo or (lab_lo == lo and not lo_closed)):
        lo, lo_closed = lab_lo, True
    if lab_hi is not None and (hi is None or lab_hi < hi or (lab_hi == hi and not hi_closed)):
        hi, hi_closed = lab_hi, True
    kind = "an integer" if base is int else "a number"
    _RANGES[name] = (kind, lo, lo_closed, hi, hi_closed)
    bounds: list[at.BaseMetadata] = []
    if lo is not None:
        bounds.append(at.Ge(lo) if lo_closed else at.Gt(lo))
    if hi is not None:
        bounds.append(at.Le(hi) if hi_closed else at.Lt(hi))
    return _annotated(base, *others, *bounds) if (others or bounds) else base


def _field_definition(name: str) -> tuple[Any, Any]:
    info = RunSpec.model_fields[name]
    default = LAB_DEFAULTS.get(name, info.default)
    if name == "hidden":  # a list of layer sizes, each bounded like RunSpec's Width, fewer layers
        assert info.annotation is not None  # tuple[Width, ...]
        (width,) = [a for a in info.annotation.__args__ if a is not Ellipsis]
        unit = _overlay("hidden", int, list(width.__metadata__[0].metadata))
        depth = min(LIMITS.max_hidden_layers, *(m.max_length for m in info.metadata if isinstance(m, at.MaxLen)))
        return (_annotated(GenericAlias(list, unit), Field(min_length=1, max_length=depth)),
                Field(default_factory=lambda: list(default)))
    if info.annotation in (int, float):
        return _overlay(name, info.annotation, list(info.metadata)), default
    args = [a for a in getattr(info.annotation, "__args__", ()) if a is not type(None)]
    if len(args) == 1 and args[0] in (int, float) and type(None) in getattr(info.annotation, "__args__", ()):
        return _overlay(name, args[0], list(info.metadata)) | None, default  # e.g. batch_size None: full batch
    return (_annotated(info.annotation, *info.metadata) if info.metadata else info.annotation), default


def range_text(name: str) -> str:
    """``[1, 2000]`` (brackets closed or open) of a field's effective range."""
    _, lo, lo_closed, hi, hi_closed = _RANGES[name]
    low, high = "-inf" if lo is None else _num(lo), "inf" if hi is None else _num(hi)
    return f"{'[' if lo_closed else '('}{low}, {high}{']' if hi_closed else ')'}"


def describe(name: str) -> str | None:
    """``an integer in [1, 2000]`` for a numeric field (None for others)."""
    return f"{_RANGES[name][0]} in {range_text(name)}" if name in _RANGES else None


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _bad(sub: str, message: str) -> PydanticCustomError:
    """A validation error at ``<field>.<sub>`` whose message is ``message`` as it is."""
    return PydanticCustomError("lab_value", "{message}", {"sub": sub, "message": message})


class InitSpec(_Strict):
    """An initializer and its parameters, e.g. ``{"name": "he_normal", "params": {"mode": "fan_out"}}``.

    Numeric parameters are bounded per scheme (:func:`~initlab.server.limits.param_bounds`), so the
    work an initializer may do (LSUV's passes) is bounded too.
    """

    name: Annotated[str, Field(max_length=64)]
    params: dict[Annotated[str, Field(max_length=32)], Any] = Field(default_factory=dict,
                                                                    max_length=LIMITS.max_init_params)

    @model_validator(mode="after")
    def _known(self) -> InitSpec:
        try:
            scheme = initializers.canonical_name(self.name)
        except ValidationError as err:
            raise _bad("name", str(err)) from None
        for key, value in self.params.items():
            if isinstance(value, bool) or (isinstance(value, str) and len(value) <= 32):
                continue
            if not isinstance(value, (int, float)):
                raise _bad(f"params.{key}", f"must be a number, a string or true/false, got {_short(value)}")
            lo, hi = param_bounds(scheme, key)
            if not (lo <= value <= hi):  # also False for NaN
                kind = "an integer" if isinstance(value, int) else "a number"
                raise _bad(f"params.{key}",
                           f"must be {kind} in [{_num(lo)}, {_num(hi)}] in the lab, got {_short(value)}")
        try:
            canonical_init(self.to_spec())
        except ValidationError as err:
            raise _bad("params", str(err)) from None
        return self

    def to_spec(self) -> dict[str, Any]:
        """The library's spec dict, ``{"name": ..., **params}``."""
        return {"name": self.name, **self.params}

    def canonical(self) -> Any:
        """The canonical initializer (a name or spec dict), as RunSpec stores it."""
        return canonical_init(self.to_spec())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_Generated = create_model(  # type: ignore[call-overload]
    "_RunFields", __base__=_Strict, **{name: _field_definition(name) for name in FIELDS})


class LabRequest(_Generated):  # type: ignore[misc, valid-type]
    """Data, network and training settings shared by single runs and comparisons (the lab's defaults).

    The fields are RunSpec's (see the module's docstring), plus ``dataset`` (a 2-D set or ``csv``
    with the upload's text in ``csv``), ``seed`` (the initial weights and the minibatch order)
    and ``bias_init``.
    """

    dataset: str = "moons"
    csv: str | None = Field(None, max_length=LIMITS.max_upload_bytes)
    seed: Annotated[int, Field(ge=0, le=MAX_SEED, strict=True)] = 0  # initial weights and minibatch order
    bias_init: InitSpec = Field(default_factory=lambda: InitSpec(name="zeros"))

    @field_validator(*(f for f in FIELDS if f not in _RANGES and f != "hidden"))
    @classmethod
    def _as_runspec(cls, value: Any, info: Any) -> Any:
        """A non-numeric field (activation, optimizer, ...) checked by RunSpec's own rule, named."""
        try:
            RunSpec(**{info.field_name: value})
        except ValidationError as err:
            raise _bad("", str(err)) from None
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        if value not in DATASETS:
            raise _bad("", f"must be one of {', '.join(DATASETS)} (the lab draws 2-D sets), got {_short(value)}")
        return value

    @model_validator(mode="after")
    def _csv_matches_dataset(self) -> LabRequest:
        if self.dataset == "csv" and not self.csv:
            raise _bad("csv", "dataset 'csv' needs the file's text in 'csv' (upload it first)")
        if self.dataset != "csv" and self.csv is not None:
            raise _bad("csv", f"only allowed with dataset 'csv', got dataset {self.dataset!r}")
        if self.csv is not None and len(self.csv.encode("utf-8")) > LIMITS.max_upload_bytes:
            raise _bad("csv", f"at most {LIMITS.max_upload_bytes} bytes")
        return self

    def run_spec(self, init: InitSpec, field: str = "weight_init", name: str | None = None) -> RunSpec:
        """The run spec of this request with weight initializer ``init``, within the lab's limits."""
        dataset = UPLOAD_NAME if self.dataset == "csv" else self.dataset
        values = {f: getattr(self, f) for f in FIELDS}
        try:
            spec = RunSpec(name=name or f"{init.name} + {self.activation} on {dataset}", dataset=dataset,
                           init=init.canonical(), bias_init=self.bias_init.canonical(), seed=self.seed, **values)
        except ValidationError as err:
            raise ValidationError(str(err)) from None
        return LIMITS.check(spec)


class TrainSpec(LabRequest):
    """One network: ``POST /api/train`` and ``POST /api/preview``."""

    weight_init: InitSpec = Field(default_factory=lambda: InitSpec(name="he_normal"))

    def specs(self) -> list[RunSpec]:
        return [self.run_spec(self.weight_init)]

    @property
    def init_names(self) -> list[str]:
        return [self.weight_init.name]


class CompareSpec(LabRequest):
    """2 to 4 initializers trained side by side on the same data and split: ``POST /api/compare``."""

    inits: list[InitSpec] = Field(min_length=LIMITS.min_compare, max_length=LIMITS.max_compare)

    def specs(self) -> list[RunSpec]:
        out = []
        for i, init in enumerate(self.inits):
            spec = self.run_spec(init, f"inits[{i}]")
            if initializers.get(spec.init).scheme.kind == "data-dependent":
                raise ValidationError(f"inits[{i}]: {init.name!r} needs data at init time; compare it in a single run")
            out.append(spec)
        return out

    @property
    def init_names(self) -> list[str]:
        return [i.name for i in self.inits]


class SweepSpec(CompareSpec):
    """2 to 4 initializers x 1 to 10 seeds trained at once (one stack of the batched trainer):
    ``POST /api/sweep``. Seeds are ``seed``, ``seed + 1``, ...; the data stay those of ``data_seed``."""

    seeds: Annotated[int, Field(ge=1, le=LIMITS.max_sweep_seeds, strict=True)] = LIMITS.max_sweep_seeds

    def specs(self) -> list[RunSpec]:
        out = []
        for i, init in enumerate(self.inits):
            base = self.run_spec(init, f"inits[{i}]")
            if initializers.get(base.init).scheme.kind == "data-dependent":
                raise ValidationError(f"inits[{i}]: {init.name!r} needs data at init time; sweep it in a single run")
            out += [base.replace(seed=min(self.seed + k, MAX_SEED), name=f"{base.name}, seed {self.seed + k}")
                    for k in range(self.seeds)]
        steps = LIMITS.check_steps(out[0])
        if steps * len(out) > LIMITS.max_sweep_steps:
            raise ValidationError(f"seeds: at most {LIMITS.max_sweep_steps} minibatch steps over all runs of a sweep, "
                                  f"got {steps * len(out)} ({len(out)} runs x {steps}); use fewer seeds or epochs")
        return out


def field_info() -> dict[str, dict[str, Any]]:
    """Each body field the page sets: default, effective range, help (for ``/api/options``)."""
    out: dict[str, dict[str, Any]] = {}
    choices = {f.name: list(f.choices) for f in RunSpec.field_table() if f.choices}  # closed sets: a select
    for name in (*FIELDS, "seed"):
        info = TrainSpec.model_fields[name]
        default = info.get_default(call_default_factory=True)
        entry: dict[str, Any] = {"default": default, "help": _HELP.get(name, "")}
        if name in choices:
            entry["choices"] = choices[name]
        if name in _RANGES or name == "seed":
            kind, lo, lo_closed, hi, hi_closed = _RANGES.get(name, ("an integer", 0, True, MAX_SEED, True))
            entry.update(kind=kind, min=lo, max=hi, min_closed=lo_closed, max_closed=hi_closed)
        out[name] = entry
    out["seed"]["help"] = "initial weights and minibatch order (sets init_seed and order_seed)"
    out["hidden"]["max_layers"] = LIMITS.max_hidden_layers
    return out


def classic_preset() -> dict[str, Any]:
    """The classic notebook's setup, as ``initlab reproduce`` runs it: RunSpec's own defaults."""
    return {name: (list(v) if isinstance(v := RunSpec.model_fields[name].default, tuple) else v) for name in FIELDS}


_RANGES.setdefault("seed", ("an integer", 0, True, MAX_SEED, True))
