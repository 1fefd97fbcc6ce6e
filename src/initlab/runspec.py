"""``RunSpec``: the one spec of one training run, checked up front.

Everything that determines a run's numbers is a field here, with its type and bounds declared
beside it, once. CLI flags (``initlab train``), sweep grid rows (TOML), the lab's HTTP bodies
and results.json entries are thin parsers into this model; the lab's tighter public limits are
a separate layer (:mod:`initlab.server.limits`) over the same spec.

Three seeds, each explicit in every record:

- ``data_seed``: the draw of a generated data set (and the shuffle of a bundled one);
- ``init_seed``: the weight (and bias) draw;
- ``order_seed``: the minibatch order (:func:`initlab.training.minibatch_order`).

``seed=N`` on input sets ``init_seed`` and ``order_seed`` together (``--seed N`` on the CLI, a
grid's ``seed`` axis, the lab's ``seed``); in a sweep, runs with the same seed then share their
minibatch order across initializers (common random numbers) and different seeds are
independent replicates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._defaults import DEFAULT_LR, OPTIMIZERS
from ._validation import ValidationError, check_choice, check_int, did_you_mean

if TYPE_CHECKING:
    from .initializers import Initializer

# The catalog, the data sets and the activation names are loaded when a spec is checked, not when
# this module is imported: ``initlab train --help`` derives its options from RunSpec without torch.


def _initializers() -> Any:
    from . import initializers

    return initializers


def _datasets() -> Any:
    from . import datasets

    return datasets


def _canonical_activation(name: str) -> str:
    """The activation's canonical name (:func:`initlab.models.activations.canonical_activation`)."""
    from .models.activations import canonical_activation as canonical

    return canonical(name)

__all__ = ["RunSpec", "SpecField", "LOSSES", "PER_MODEL_LR", "ExperimentSpec", "InitSpec", "parse_hidden", "parse_init",
           "canonical_init", "MAX_SEED", "MAX_DEPTH"]

InitSpec = str | dict[str, Any]

MAX_SEED = 2**32 - 1  # numpy / scikit-learn seeds are 32-bit
MAX_DEPTH = 100  # hidden layers
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, strict=True)]
Width = Annotated[int, Field(ge=1, le=100_000, strict=True)]
LOSSES = ("auto", "bce", "ce", "mse")  # auto: bce for two classes, ce for more
PER_MODEL_LR = ("sgd",)  # optimizers whose batched step takes one learning rate per run
_DEFAULT_BATCH = 32
# fields added after 0.2, with their defaults: not in 0.2's run ids
_LATER_FIELDS = {"bias": True, "loss": "auto", "full_batch": False, "init_rows": None, "residual": False}


class RunSpec(BaseModel):
    """One run: data, network, initialization, optimizer, schedule, seeds.

    The defaults are the classic Keras notebook's: 100 two-moons points, 2-10-1, Adam with
    Keras' defaults, 100 epochs of minibatches of 32, the last 20% held out for validation.
    Names are stored canonically (``"Xavier_Uniform"`` -> ``"glorot_uniform"``) and
    ``learning_rate=None`` becomes Keras' default for the optimizer, so two specs that run the
    same numbers compare equal and share a :attr:`run_id`. Bad values raise
    :class:`initlab.ValidationError` with a one-line message naming the field and its bounds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200, description="a label; never changes the numbers")] = "run"
    dataset: Annotated[str, Field(
        description="a name from initlab.datasets.names() or a path to a .csv file")] = "moons"
    n_samples: Annotated[int, Field(ge=4, le=1_000_000, strict=True, description="points of a generated set")] = 100
    noise: Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False, description="noise of a generated set")] = 0.1
    data_seed: Annotated[int, Field(ge=0, le=MAX_SEED, strict=True,
                                    description="the draw of a generated set (the shuffle of a bundled one)")] = 0
    validation_split: Annotated[float, Field(ge=0.0, le=0.9, allow_inf_nan=False,
                                             description="the LAST fraction of the rows held out, as Keras")] = 0.2
    activation: Annotated[str, Field(description="of every hidden layer: relu, tanh, sigmoid, leaky_relu, elu, selu, "
                                                 "gelu, silu, linear, ...")] = "relu"
    hidden: Annotated[tuple[Width, ...], Field(min_length=1, max_length=MAX_DEPTH,
                                               description="hidden layer sizes, input to output: 10 or 32,32")] = (10,)
    residual: Annotated[bool, Field(strict=True, description="residual connections: every hidden layer after the "
                                                             "first whose input and output widths are equal adds its "
                                                             "input, h + act(W h + b)")] = False
    init: Annotated[InitSpec, Field(description="weights: a catalog name (initlab inits) or a spec dict such as "
                                                "{\"name\": \"normal\", \"std\": 0.5} (Keras' default)"
                                    )] = "glorot_uniform"
    bias_init: Annotated[InitSpec, Field(description="biases: same forms as init (Keras' default)")] = "zeros"
    bias: Annotated[bool, Field(strict=True, description="layers have biases; false: bias-free layers (biases stay 0, "
                                                         "never trained)")] = True
    loss: Annotated[str, Field(description="auto (bce for two classes, ce for more), bce (one sigmoid output), "
                                           "ce (softmax over the classes), mse (squared error on linear outputs; "
                                           "targets are the rows' float vectors)")] = "auto"
    optimizer: Annotated[str, Field(description="adam, sgd or rmsprop, with Keras' defaults")] = "adam"
    learning_rate: Annotated[float, Field(gt=0.0, le=1000.0, allow_inf_nan=False,
                                          description="step size (None: Keras' default for the optimizer)"
                                          )] = DEFAULT_LR["adam"]
    momentum: Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False, description="SGD/RMSprop only")] = 0.0
    epochs: Annotated[int, Field(ge=1, le=1_000_000, strict=True, description="training epochs")] = 100
    batch_size: Annotated[int, Field(ge=1, le=1_000_000, strict=True,
                                     description="minibatch size (Keras' default; ignored with full_batch)")] = 32
    full_batch: Annotated[bool, Field(strict=True, description="one gradient step per epoch on all training rows "
                                                               "(full-batch gradient descent)")] = False
    init_rows: Annotated[int | None, Field(ge=1, le=1_000_000, strict=True,
                                           description="rows a data-dependent init (lsuv) measures on: the first "
                                                       "training rows; None: all of them")] = None
    init_seed: Annotated[int, Field(ge=0, le=MAX_SEED, strict=True, description="the weight draw")] = 0
    order_seed: Annotated[int, Field(ge=0, le=MAX_SEED, strict=True, description="the minibatch order")] = 0

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as err:
            raise ValidationError(_one_line(err)) from None

    # ------------------------------------------------------------------ parsing
    @model_validator(mode="before")
    @classmethod
    def _inputs(cls, data: Any) -> Any:
        """``seed`` sets init and order seeds; ``learning_rate=None`` is the optimizer's default."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if "seed" in data:
            seed = check_int("seed", data.pop("seed"), 0, MAX_SEED)
            for key in ("init_seed", "order_seed"):
                if key in data and data[key] != seed:
                    raise ValueError(f"seed sets init_seed and order_seed; got seed={seed!r} and {key}={data[key]!r}")
                data[key] = seed
        if data.get("learning_rate") is None:
            data["learning_rate"] = DEFAULT_LR.get(str(data.get("optimizer", "adam")).lower(), DEFAULT_LR["adam"])
        if isinstance(data.get("hidden"), (int, str)):
            data["hidden"] = parse_hidden(data["hidden"])
        return data

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        if value.lower().endswith(".csv"):
            return value
        return check_choice("dataset", value.lower(), _datasets().names(), hint="or a path to a .csv file")

    @field_validator("activation")
    @classmethod
    def _activation(cls, value: str) -> str:
        return _canonical_activation(value)

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, value: str) -> str:
        return check_choice("optimizer", value.lower(), OPTIMIZERS)

    @field_validator("loss")
    @classmethod
    def _loss(cls, value: str) -> str:
        return check_choice("loss", value.lower(), LOSSES)

    @model_validator(mode="after")
    def _full_batch(self) -> RunSpec:
        """With ``full_batch`` the minibatch size means nothing: stored as its default, so equal runs compare equal."""
        if self.full_batch and self.batch_size != _DEFAULT_BATCH:
            object.__setattr__(self, "batch_size", _DEFAULT_BATCH)
        return self

    @field_validator("init", "bias_init")
    @classmethod
    def _init(cls, value: Any) -> InitSpec:
        return canonical_init(value)

    # ------------------------------------------------------------------ identity
    @cached_property
    def run_id(self) -> str:
        """SHA-256 (first 16 hex digits) of every field but ``name``, as canonical JSON."""
        params = self.model_dump(exclude={"name"})
        for key, default in _LATER_FIELDS.items():  # fields added after 0.2 count only when set: old ids stay
            if params[key] == default:
                del params[key]
        text = json.dumps(params, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def batch_key(self) -> tuple[Any, ...]:
        """Runs with equal keys share data, architecture and training settings: one batched stack.

        Initializers, the init and order seeds and (with SGD, whose step takes one learning rate per
        model) the learning rate may differ within a batch.
        """
        lr = None if self.optimizer in PER_MODEL_LR else self.learning_rate
        return (self.dataset, self.n_samples, self.noise, self.data_seed, self.validation_split, self.activation,
                self.hidden, self.residual, self.bias, self.loss, self.optimizer, lr, self.momentum, self.epochs,
                self.batch_size, self.full_batch, self.init_rows)

    @classmethod
    def field_table(cls) -> list[SpecField]:
        """Every field with its type, default, bounds, choices and help, in declaration order.

        The one description of a run's inputs: the CLI's ``train`` options and the lab's request
        bodies are generated from it (the lab's tighter limits narrow these bounds, see
        :mod:`initlab.server.limits`).
        """
        return [_spec_field(name, info) for name, info in cls.model_fields.items()]

    # ------------------------------------------------------------------ labels
    @property
    def initializer(self) -> str:
        """The weight initializer with its parameters, e.g. ``he_normal`` or ``normal(std=0.5)``."""
        return str(_initializers().get(self.init))

    @property
    def init_name(self) -> str:
        """The weight initializer's canonical name alone (for colours), e.g. ``normal``."""
        init: Initializer = _initializers().get(self.init)
        return init.name

    @property
    def bias_initializer(self) -> str:
        return str(_initializers().get(self.bias_init))

    @property
    def lr(self) -> float:
        """The learning rate (kept for older callers; ``learning_rate`` is always set)."""
        return self.learning_rate

    @property
    def seed(self) -> int | None:
        """The ``--seed`` that made this spec: ``init_seed`` when it equals ``order_seed``, else None."""
        return self.init_seed if self.init_seed == self.order_seed else None

    @property
    def depth(self) -> int:
        return len(self.hidden)

    @property
    def width(self) -> int | None:
        """Units per hidden layer when all are equal, else None."""
        return self.hidden[0] if len(set(self.hidden)) == 1 else None

    def replace(self, **changes: Any) -> RunSpec:
        """A checked copy with ``changes`` applied (``seed=`` replaces both init and order seeds)."""
        base = self.model_dump(exclude={"init_seed", "order_seed"} if "seed" in changes else set())
        return RunSpec(**{**base, **changes})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready data; ``RunSpec(**spec.to_dict()) == spec``."""
        out = self.model_dump()
        out["hidden"] = list(self.hidden)
        return out


ExperimentSpec = RunSpec  # the name used by initlab 0.1


@dataclass(frozen=True)
class SpecField:
    """One :class:`RunSpec` field as a front end needs it (CLI option, HTTP body key, form control)."""

    name: str
    kind: str  # "int", "float", "bool", "str", "init" (a catalog name or spec dict), "sizes" (a tuple of ints)
    default: Any
    help: str
    minimum: float | None = None  # bounds as declared; None: unbounded
    maximum: float | None = None
    exclusive_minimum: bool = False  # True: the bound itself is not allowed
    exclusive_maximum: bool = False
    choices: tuple[str, ...] | None = None  # the allowed values of a closed set of names
    optional: bool = False  # None is allowed (and means what ``help`` says)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["default"] = list(self.default) if isinstance(self.default, tuple) else self.default
        out["choices"] = list(self.choices) if self.choices is not None else None
        return out


_KINDS = {"hidden": "sizes", "init": "init", "bias_init": "init"}
_CHOICES: dict[str, Callable[[], tuple[str, ...]]] = {"optimizer": lambda: tuple(OPTIMIZERS), "loss": lambda: LOSSES}


def _spec_field(name: str, info: Any) -> SpecField:
    annotation = info.annotation
    optional = type(None) in getattr(annotation, "__args__", ())
    args = getattr(annotation, "__args__", ())
    base = next((a for a in args if a is not type(None)), annotation) if optional else annotation
    kind = _KINDS.get(name) or {int: "int", float: "float", bool: "bool"}.get(base, "str")
    bounds: dict[str, Any] = {}
    for meta in info.metadata:
        for key, attr, excl in (("minimum", "ge", False), ("minimum", "gt", True), ("maximum", "le", False),
                                ("maximum", "lt", True)):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds[key] = value
                bounds["exclusive_" + key] = excl
    if name == "hidden":
        bounds = {"minimum": 1, "maximum": 100_000}  # each size (Width); 1 to MAX_DEPTH of them
    choices = _CHOICES[name]() if name in _CHOICES else None
    return SpecField(name, kind, info.default, info.description or "", choices=choices, optional=optional, **bounds)


def canonical_init(value: Any) -> InitSpec:
    """An initializer as stored: its canonical name, or a spec dict when it has parameters."""
    if isinstance(value, Mapping):
        init: Initializer = _initializers().get(dict(value))
        return dict(init.spec) if init.params else init.name
    if not isinstance(value, str):
        raise ValidationError(f"an initializer must be a catalog name or a spec dict, got {value!r}")
    name: str = _initializers().canonical_name(value)
    return name


def _bounds(field: str) -> tuple[str, str]:
    """The declared range of a numeric field as ``("[1", "1000000]")`` (brackets: closed or open)."""
    info = RunSpec.model_fields[field] if field != "hidden" else None
    metadata = info.metadata if info is not None else [Field(ge=1, le=100_000)]  # a hidden size (Width)
    lo, hi = "-inf", "inf"
    for meta in (m for item in metadata for m in getattr(item, "metadata", [item])):
        if getattr(meta, "ge", None) is not None:
            lo = f"[{meta.ge}"
        if getattr(meta, "gt", None) is not None:
            lo = f"({meta.gt}"
        if getattr(meta, "le", None) is not None:
            hi = f"{meta.le}]"
        if getattr(meta, "lt", None) is not None:
            hi = f"{meta.lt})"
    return (lo if lo != "-inf" else "[-inf"), (hi if hi != "inf" else "inf]")


_NUMBER_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "int_type", "int_parsing",
                  "int_from_float", "float_type", "float_parsing", "finite_number")


def _one_line(err: pydantic.ValidationError) -> str:
    """The first error as one line, as ``check_int`` words it: ``epochs must be an integer in [1, 1000000], got 0``."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    field = loc[0] if loc else "spec"
    where = field + "".join(f"[{p}]" for p in loc[1:])
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(RunSpec.model_fields)
        return f"unknown run field {field!r}{did_you_mean(field, RunSpec.model_fields)} (allowed: {allowed}, seed)"
    if first["type"] == "value_error":
        return str(first["ctx"]["error"]) if "ctx" in first else first["msg"].removeprefix("Value error, ")
    if field == "hidden" and len(loc) == 1 and first["type"] in ("too_short", "too_long"):
        return f"hidden needs 1 to {MAX_DEPTH} layer sizes, e.g. 10 or 10,10; got {len(first.get('input') or ())}"
    if first["type"] in _NUMBER_ERRORS and (field in RunSpec.model_fields):
        annotation = RunSpec.model_fields[field].annotation
        kind = "an integer" if annotation in (int, int | None) or field == "hidden" else "a number"
        lo, hi = _bounds(field)
        return f"{where} must be {kind} in {lo}, {hi}, got {first.get('input')!r}"
    return f"{where}: {first['msg'].lower()}, got {first.get('input')!r}"


def parse_hidden(text: Any) -> list[int]:
    """``"10,10"`` -> ``[10, 10]``; every size must be an integer >= 1."""
    if isinstance(text, int):
        return [text]
    sizes = []
    for part in str(text).split(","):
        try:
            sizes.append(int(part.strip()))
        except ValueError:
            raise ValidationError(f"hidden must be comma-separated layer sizes such as 10 or 10,10; got {text!r}") from None
    return sizes


def parse_init(text: str) -> InitSpec:
    """An initializer argument: a catalog name, or a JSON spec such as ``{"name": "normal", "std": 0.5}``."""
    text = str(text).strip()
    if text.startswith("{"):
        try:
            spec: dict[str, Any] = json.loads(text)  # text starts with "{"
        except json.JSONDecodeError as err:
            raise ValidationError(f"initializer spec is not valid JSON ({err.msg}): {text!r}") from None
        _initializers().get(spec)
        return spec
    _initializers().get(text)
    return text
