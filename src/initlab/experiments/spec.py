"""``ExperimentSpec``: everything that defines one training run, checked up front.

A spec is a flat pydantic model that rejects unknown keys; ``run_experiment(spec)`` is a pure
function of it, so the same spec gives the same numbers on any executor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict

from .._validation import ValidationError, check_choice, check_float, check_int, did_you_mean
from .. import datasets
from ..initializers import get as get_initializer
from ..models.activations import make_activation
from ..training.optim import DEFAULT_LR, OPTIMIZERS

__all__ = ["ExperimentSpec", "parse_hidden", "parse_init"]

InitSpec = str | dict[str, Any]

MAX_EPOCHS = 1_000_000
MAX_SAMPLES = 1_000_000
MAX_WIDTH = 100_000
MAX_SEED = 2**32 - 1  # numpy / scikit-learn seeds are 32-bit


class ExperimentSpec(BaseModel):
    """One experiment: data, network, initialization, optimizer, schedule, seeds.

    The defaults are the classic Keras notebook's: 100 two-moons points, 2-10-1, Adam with
    Keras' defaults, 100 epochs of minibatches of 32, the last 20% held out for validation.
    Bad values raise :class:`initlab.ValidationError` with a one-line message.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "experiment"  # a label for files and tables; never changes what runs
    dataset: str = "moons"  # a name from initlab.datasets.names() or a path to a .csv file
    n_samples: int = 100  # generated sets only
    noise: float = 0.1  # generated sets only
    data_seed: int = 0  # the draw of a generated set (and the shuffle of bundled ones)
    validation_split: float = 0.2  # the LAST fraction of rows is held out, as Keras does
    activation: str = "relu"  # of every hidden layer
    hidden: list[int] = [10]  # hidden layer sizes, input to output
    init: InitSpec = "glorot_uniform"  # weights: a catalog name, alias or spec dict (Keras' default)
    bias_init: InitSpec = "zeros"  # biases: same (Keras' default)
    optimizer: str = "adam"
    learning_rate: float | None = None  # None: Keras' default for the optimizer
    momentum: float = 0.0  # SGD/RMSprop only
    epochs: int = 100
    batch_size: int = 32  # Keras' default
    seed: int = 0  # weight draw and minibatch order

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as err:
            raise ValidationError(_one_line(err)) from None
        self._check()

    def _check(self) -> None:
        """Semantic checks the types cannot express; every message is one line."""
        if not self.name.strip():
            raise ValidationError("name must not be empty")
        # upper bounds as the sweep spec's: a typo'd 1e9 fails now, not as an hour-long run or an OOM
        check_int("epochs", self.epochs, 1)  # the lower bound first: its message is "[1, inf]"
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        check_int("batch_size", self.batch_size, 1)
        check_int("n_samples", self.n_samples, 4)
        check_int("n_samples", self.n_samples, 4, MAX_SAMPLES)
        check_int("seed", self.seed, 0, MAX_SEED)
        check_int("data_seed", self.data_seed, 0, MAX_SEED)
        if not self.hidden:
            raise ValidationError("hidden needs at least one layer size, e.g. 10 or 10,10")
        for i, size in enumerate(self.hidden):
            check_int(f"hidden size #{i + 1}", size, 1)
            check_int(f"hidden size #{i + 1}", size, 1, MAX_WIDTH)
        check_float("validation_split", self.validation_split, 0.0, 1.0)
        if self.validation_split >= 1.0:
            raise ValidationError(f"validation_split must be in [0, 1), got {self.validation_split}")
        check_float("noise", self.noise, 0.0)
        check_float("momentum", self.momentum, 0.0, 1.0)
        if not self.dataset.lower().endswith(".csv"):
            check_choice("dataset", self.dataset.lower(), datasets.names(), hint="or a path to a .csv file")
        make_activation(self.activation)  # unknown name: did-you-mean
        check_choice("optimizer", self.optimizer.lower(), OPTIMIZERS)
        if self.learning_rate is not None:
            check_float("learning_rate", self.learning_rate, 0.0, strict_minimum=True)
        get_initializer(self.init)  # unknown name or parameter: did-you-mean
        get_initializer(self.bias_init)

    @property
    def initializer(self) -> str:
        """The weight initializer's canonical name with its parameters, e.g. ``he_normal``."""
        return str(get_initializer(self.init))

    @property
    def init_name(self) -> str:
        """The weight initializer's canonical name alone (for colours), e.g. ``normal``."""
        return get_initializer(self.init).name

    @property
    def bias_initializer(self) -> str:
        return str(get_initializer(self.bias_init))

    @property
    def lr(self) -> float:
        """The learning rate actually used (Keras' default when ``learning_rate`` is None)."""
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.optimizer.lower()]

    def replace(self, **changes: Any) -> ExperimentSpec:
        """A checked copy with ``changes`` applied."""
        return ExperimentSpec(**{**self.model_dump(), **changes})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentSpec:
        return cls(**dict(data))


def _one_line(err: pydantic.ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "spec"
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(ExperimentSpec.model_fields)
        return f"unknown experiment field {field!r}{did_you_mean(field, ExperimentSpec.model_fields)} (allowed: {allowed})"
    return f"{field}: {first['msg'].lower()}, got {first.get('input')!r}"


def parse_hidden(text: str) -> list[int]:
    """``"10,10"`` -> ``[10, 10]``; every size must be an integer >= 1."""
    sizes = []
    for i, part in enumerate(str(text).split(",")):
        part = part.strip()
        try:
            size = int(part)
        except ValueError:
            raise ValidationError(
                f"hidden must be comma-separated layer sizes such as 10 or 10,10; got {text!r}"
            ) from None
        check_int(f"hidden size #{i + 1}", size, 1)
        sizes.append(check_int(f"hidden size #{i + 1}", size, 1, MAX_WIDTH))
    return sizes


def parse_init(text: str) -> InitSpec:
    """An initializer argument: a catalog name, or a JSON spec such as ``{"name": "normal", "std": 0.5}``."""
    text = str(text).strip()
    if text.startswith("{"):
        import json

        try:
            spec = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValidationError(f"initializer spec is not valid JSON ({err.msg}): {text!r}") from None
        get_initializer(spec)
        return spec
    get_initializer(text)
    return text
