"""The sweep spec (TOML): ``[data]``, ``[grid]``, ``[train]``; validated before any work.

Every key is checked against the tables below (unknown keys are rejected with a did-you-mean),
every grid axis must be a non-empty list, and every name (initializer, activation, data set,
optimizer) must resolve, so a typo fails in milliseconds rather than an hour into a sweep.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from .._validation import ValidationError, check_int, did_you_mean
from ..runspec import MAX_DEPTH, RunSpec, canonical_init
from ..training.optim import DEFAULT_LR

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["SweepSpec", "load_spec", "parse_spec", "spec_hash"]

# table -> key -> default. Bounds and names are RunSpec's (checked by building one), not repeated here.
DATA_KEYS: dict[str, Any] = {
    "name": "moons",  # a data set name (initlab.datasets.names()) or a .csv path
    "n_samples": 100,  # generated sets only
    "noise": 0.1,  # generated sets only
    "seed": 0,  # the data set draw (grid seeds are the init and minibatch-order seeds)
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
# sweep-spec key -> RunSpec field, where the names differ
_DATA_FIELDS = {"name": "dataset", "seed": "data_seed"}


def spec_hash(value: Mapping[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of ``value`` as canonical JSON."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
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
        return spec_hash({"data": self.data, "grid": self.grid, "train": self.train})

    def base(self) -> dict[str, Any]:
        """The RunSpec fields every run shares (data and [train] settings)."""
        out = {_DATA_FIELDS.get(k, k): v for k, v in self.data.items()}
        out.update({k: v for k, v in self.train.items() if k != "diagnostics"})
        return out

    def runs(self) -> list[RunSpec]:
        """The grid expanded: one RunSpec per combination, in a stable order, duplicates dropped.

        Every value was checked when the spec was parsed, so the runs are assembled without
        validating each one again (``RunSpec(**run.to_dict()) == run`` holds; tested).
        """
        base = RunSpec(**self.base(), init=self.grid["init"][0]).model_dump()
        # every run is a copy of this one with the grid's fields replaced: a shallow copy of its
        # fields, as model_construct(**fields) makes, at a fifth of the cost (its run_id never read)
        template = RunSpec.model_construct(**base)
        axes = list(self.grid)
        out, seen = [], set()
        for values in product(*(self.grid[a] for a in axes)):
            fields = {}
            point = dict(zip(axes, values, strict=False))
            for axis, value in point.items():
                if axis == "seed":
                    fields["init_seed"] = fields["order_seed"] = value
                elif axis not in ("depth", "width"):
                    fields[axis] = value
            fields["hidden"] = (point["width"],) * point["depth"]
            if "optimizer" in point and "learning_rate" not in point and self.train["learning_rate"] is None:
                fields["learning_rate"] = DEFAULT_LR[point["optimizer"]]
            fields["name"] = f"{_label(fields['init'])}_{fields['activation']}_d{point['depth']}w{point['width']}_s{point['seed']}"
            run = template.model_copy(update=fields)
            if run.run_id not in seen:
                seen.add(run.run_id)
                out.append(run)
        return out


def _label(init: Any) -> str:
    return init if isinstance(init, str) else init["name"]


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a TOML sweep spec."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"spec file {str(path)!r} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")  # TOML is UTF-8 by definition
    except UnicodeDecodeError as err:
        raise ValidationError(f"spec {str(path)!r} is not UTF-8 text (byte {err.start}: {err.reason}); "
                              "save it as UTF-8 TOML") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValidationError(f"spec {str(path)!r} is not valid TOML: {err}") from None
    except RecursionError:  # tomllib recurses on nested arrays and inline tables
        raise ValidationError(f"spec {str(path)!r} nests arrays or tables too deeply to be a sweep spec") from None
    return parse_spec(raw, default_name=path.stem)


def _check_keys(table: str, given: Mapping[str, Any], allowed: Iterable[str]) -> None:
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


def _checked(where: str, field_name: str, value: Any) -> Any:
    """``value`` checked and made canonical by RunSpec's own field rules; errors name ``where``."""
    if field_name == "learning_rate" and value is None:
        return None
    try:
        return getattr(RunSpec(**{field_name: value}), field_name)
    except ValidationError as err:
        text = str(err)
        named = re.match(rf"{field_name}(\[\d+\])?(: | )", text)  # "epochs must be ...", "hidden[0] must be ..."
        if named:
            raise ValidationError(f"{where}{named.group(2)}{text[named.end():]}") from None
        raise ValidationError(f"{where}: {text}") from None


def _check_train_value(key: str, value: Any, where: str) -> Any:
    if key == "diagnostics":
        if not isinstance(value, bool):
            raise ValidationError(f"{where} must be true or false, got {value!r}")
        return value
    if key in ("init", "bias_init"):
        if not isinstance(value, (str, Mapping)):
            raise ValidationError(f"{where} must be an initializer name or an inline table, got {value!r}")
        try:
            return canonical_init(value)
        except ValidationError as err:
            raise ValidationError(f"{where}: {err}") from None
    return _checked(where, key, value)


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
    for key, value in data.items():
        data[key] = _checked(f"data.{key}", _DATA_FIELDS.get(key, key), value)

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
        if axis == "depth":
            grid[axis] = [check_int(where, v, 1, MAX_DEPTH) for v in values]
        elif axis == "width":
            grid[axis] = [_checked(where, "hidden", [v])[0] for v in values]
        elif axis == "seed":
            grid[axis] = [_checked(where, "init_seed", v) for v in values]
        else:
            grid[axis] = [_check_train_value(axis, v, where) for v in values]
    top_name = raw.get("name", default_name)
    if not isinstance(top_name, str) or not top_name:
        raise ValidationError(f"name must be a non-empty string, got {top_name!r}")
    return SweepSpec(data, grid, train, top_name, dict(raw))


