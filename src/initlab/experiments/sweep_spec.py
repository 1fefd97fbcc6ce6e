"""The sweep spec (TOML): ``[data]``, ``[grid]``, ``[train]``; validated before any work.

Every key is checked against the tables below (unknown keys are rejected with a did-you-mean),
every grid axis must be a non-empty list, and every name (initializer, activation, data set,
optimizer) must resolve, so a typo fails in milliseconds rather than an hour into a sweep.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from .._validation import ValidationError, check_choice, check_float, check_int, did_you_mean
from .. import datasets, initializers
from ..models.activations import _canonical as canonical_activation
from ..training.optim import DEFAULT_LR, OPTIMIZERS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SweepSpec", "RunSpec", "load_spec", "parse_spec", "run_id"]

# table -> key -> default (None: required). Grid axes may also set any [train] key.
DATA_KEYS: dict[str, Any] = {
    "name": "moons",  # a data set name (initlab.datasets.names()) or a .csv path
    "n_samples": 100,  # generated sets only
    "noise": 0.1,  # generated sets only
    "seed": 0,  # the data set draw and the minibatch order
    "validation_split": 0.2,  # the last fraction is held out, as Keras does
}
TRAIN_KEYS: dict[str, Any] = {
    "epochs": 100,
    "batch_size": 32,  # Keras' default
    "optimizer": "adam",
    "learning_rate": None,  # None: Keras' default for the optimizer
    "momentum": 0.0,  # SGD/RMSprop momentum
    "bias_init": "zeros",
    "diagnostics": True,  # diagnose each run at init and at the end (stored as JSON)
}
GRID_AXES = ("init", "activation", "depth", "width", "seed")  # required axes
GRID_OPTIONAL = ("learning_rate", "optimizer", "batch_size", "bias_init", "momentum", "epochs")
TOP_KEYS = ("name", "data", "grid", "train")


@dataclass(frozen=True)
class RunSpec:
    """One network to train: every parameter that determines its numbers (and so its ``run_id``)."""

    dataset: str
    n_samples: int
    noise: float
    data_seed: int
    validation_split: float
    init: Any  # canonical name, or a spec dict with parameters
    bias_init: Any
    activation: str
    depth: int  # hidden layers
    width: int  # units per hidden layer
    init_seed: int
    optimizer: str
    learning_rate: float
    momentum: float
    epochs: int
    batch_size: int

    @property
    def run_id(self) -> str:
        return run_id(asdict(self))

    @property
    def init_label(self) -> str:
        """The initializer as a short string: its name, with parameters when it has some."""
        return str(initializers.get(self.init))

    def batch_key(self) -> tuple:
        """Runs with equal keys share an architecture and training settings: one batch."""
        return (self.dataset, self.n_samples, self.noise, self.data_seed, self.validation_split, self.activation,
                self.depth, self.width, self.optimizer, self.learning_rate, self.momentum, self.epochs, self.batch_size)


def run_id(params: Mapping[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of the run's full parameters as canonical JSON."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, validated spec: data settings, grid axes (lists) and train settings."""

    data: dict[str, Any]
    grid: dict[str, list[Any]]
    train: dict[str, Any]
    name: str = "sweep"
    source: dict[str, Any] = field(default_factory=dict)  # the spec as written

    @property
    def spec_hash(self) -> str:
        return run_id({"data": self.data, "grid": self.grid, "train": self.train})

    def runs(self) -> list[RunSpec]:
        """The grid expanded: one RunSpec per combination, in a stable order, duplicates dropped."""
        axes = list(self.grid)
        out, seen = [], set()
        for values in product(*(self.grid[a] for a in axes)):
            point = dict(zip(axes, values))
            train = {k: point.get(k, v) for k, v in self.train.items()}
            optimizer = train["optimizer"]
            lr = train["learning_rate"]
            run = RunSpec(
                dataset=self.data["name"], n_samples=self.data["n_samples"], noise=self.data["noise"],
                data_seed=self.data["seed"], validation_split=self.data["validation_split"],
                init=point["init"], bias_init=train["bias_init"], activation=point["activation"],
                depth=point["depth"], width=point["width"], init_seed=point["seed"], optimizer=optimizer,
                learning_rate=float(DEFAULT_LR[optimizer] if lr is None else lr), momentum=float(train["momentum"]),
                epochs=train["epochs"], batch_size=train["batch_size"],
            )
            if run.run_id not in seen:
                seen.add(run.run_id)
                out.append(run)
        return out


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a TOML sweep spec."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"spec file {str(path)!r} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValidationError(f"spec {str(path)!r} is not valid TOML: {err}") from None
    return parse_spec(raw, default_name=path.stem)


def _check_keys(table: str, given: Mapping[str, Any], allowed) -> None:
    allowed = list(allowed)
    for key in given:
        if key not in allowed:
            where = f"{table}.{key}" if table else key
            raise ValidationError(
                f"unknown key {where!r} in the sweep spec{did_you_mean(key, allowed)} (allowed: {', '.join(allowed)})"
            )


def _as_list(key: str, value: Any) -> list[Any]:
    values = list(value) if isinstance(value, list) else [value]
    if not values:
        raise ValidationError(f"grid.{key} is empty: give at least one value")
    return values


def _init_spec(field_name: str, value: Any) -> Any:
    """Canonical form of an initializer: its catalog name, or a spec dict with the canonical name."""
    if isinstance(value, Mapping):
        init = initializers.get(dict(value))
        return init.spec if init.params else init.name
    if not isinstance(value, str):
        raise ValidationError(f"{field_name} must be an initializer name or an inline table, got {value!r}")
    try:
        return initializers.canonical_name(value)
    except ValidationError as err:
        raise ValidationError(f"{field_name}: {err}") from None


def _check_train_value(key: str, value: Any, where: str) -> Any:
    if key == "epochs":
        return check_int(where, value, 1, 1_000_000)
    if key == "batch_size":
        return check_int(where, value, 1)
    if key == "optimizer":
        return check_choice(where, str(value).lower(), OPTIMIZERS)
    if key == "learning_rate":
        return None if value is None else check_float(where, value, 0.0, strict_minimum=True)
    if key == "momentum":
        return check_float(where, value, 0.0, 1.0)
    if key == "bias_init":
        return _init_spec(where, value)
    if key == "diagnostics":
        if not isinstance(value, bool):
            raise ValidationError(f"{where} must be true or false, got {value!r}")
        return value
    raise AssertionError(key)


def parse_spec(raw: Mapping[str, Any], default_name: str = "sweep") -> SweepSpec:
    """Validate a spec dict (as read from TOML) and fill defaults."""
    _check_keys("", raw, TOP_KEYS)
    for table in ("data", "grid", "train"):
        if table in raw and not isinstance(raw[table], Mapping):
            raise ValidationError(f"[{table}] must be a table, got {raw[table]!r}")
    data_in, grid_in, train_in = (dict(raw.get(t, {})) for t in ("data", "grid", "train"))
    if not grid_in:
        raise ValidationError("the sweep spec has no [grid] table: give at least init, activation, depth, width, seed")
    _check_keys("data", data_in, DATA_KEYS)
    _check_keys("train", train_in, TRAIN_KEYS)
    _check_keys("grid", grid_in, GRID_AXES + GRID_OPTIONAL)

    data = {**DATA_KEYS, **data_in}
    name = str(data["name"])
    data["name"] = name if name.lower().endswith(".csv") else check_choice("data.name", name.lower(), datasets.names())
    data["n_samples"] = check_int("data.n_samples", data["n_samples"], 4, 1_000_000)
    data["noise"] = check_float("data.noise", data["noise"], 0.0, 10.0)
    data["seed"] = check_int("data.seed", data["seed"], 0, 2**32 - 1)  # numpy / scikit-learn seeds are 32-bit
    data["validation_split"] = check_float("data.validation_split", data["validation_split"], 0.0, 0.9)

    train = {**TRAIN_KEYS, **train_in}
    for key, value in train.items():
        train[key] = _check_train_value(key, value, f"train.{key}")

    grid: dict[str, list[Any]] = {}
    for axis in GRID_AXES:
        if axis not in grid_in:
            raise ValidationError(f"grid.{axis} is missing: the grid needs {', '.join(GRID_AXES)}")
    for axis, value in grid_in.items():
        values = _as_list(axis, value)
        where = f"grid.{axis}"
        if axis == "init":
            grid[axis] = [_init_spec(where, v) for v in values]
        elif axis == "activation":
            grid[axis] = [_wrap(where, canonical_activation, v) for v in values]
        elif axis == "depth":
            grid[axis] = [check_int(where, v, 1, 100) for v in values]
        elif axis == "width":
            grid[axis] = [check_int(where, v, 1, 100_000) for v in values]
        elif axis == "seed":
            grid[axis] = [check_int(where, v, 0, 2**32 - 1) for v in values]
        else:
            grid[axis] = [_check_train_value(axis, v, where) for v in values]
    top_name = raw.get("name", default_name)
    if not isinstance(top_name, str) or not top_name:
        raise ValidationError(f"name must be a non-empty string, got {top_name!r}")
    return SweepSpec(data, grid, train, top_name, dict(raw))


def _wrap(where: str, fn, value: Any) -> Any:
    try:
        return fn(value)
    except ValidationError as err:
        raise ValidationError(f"{where}: {err}") from None
