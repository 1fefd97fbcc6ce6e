"""Request models of the lab's JSON API: every field bounded, unknown keys rejected.

A spec is everything a run needs; the browser keeps it in the page's URL, so a link
reproduces the run (an uploaded CSV excepted: it travels in the request body only).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import initializers
from .._validation import InitlabError
from ..models import activation_names
from ..training import OPTIMIZERS
from .limits import LIMITS

__all__ = ["InitSpec", "TrainSpec", "CompareSpec", "DATASETS"]

DATASETS = ("moons", "circles", "xor", "spirals", "gaussians", "csv")

Number = Annotated[float, Field(ge=-LIMITS.max_abs_param, le=LIMITS.max_abs_param, allow_inf_nan=False)]
Integer = Annotated[int, Field(ge=-LIMITS.max_abs_param, le=LIMITS.max_abs_param)]
ParamValue = Union[bool, Integer, Number, Annotated[str, Field(max_length=32)]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitSpec(_Strict):
    """An initializer from the catalog and its parameters, e.g. ``{"name": "he_normal", "params": {"mode": "fan_out"}}``."""

    name: str = Field(max_length=64)
    params: dict[Annotated[str, Field(max_length=32)], ParamValue] = Field(
        default_factory=dict, max_length=LIMITS.max_init_params
    )

    @model_validator(mode="after")
    def _in_catalog(self) -> InitSpec:
        try:
            init = initializers.get(self.name, **self.params)
        except InitlabError as err:
            raise ValueError(str(err)) from None
        self.name, self.params = init.name, dict(init.params)
        return self

    def to_spec(self) -> dict[str, Any]:
        """The library's spec dict, ``{"name": ..., **params}``."""
        return {"name": self.name, **self.params}


class RunSpec(_Strict):
    """Data, network and training settings shared by single runs and comparisons."""

    dataset: Literal[DATASETS] = "moons"  # type: ignore[valid-type]
    n_samples: int = Field(200, ge=LIMITS.min_samples, le=LIMITS.max_samples)  # generated sets only
    noise: float = Field(0.2, ge=0.0, le=LIMITS.max_noise)  # generated sets only
    csv: str | None = Field(None, max_length=LIMITS.max_upload_bytes)  # the CSV text when dataset == "csv"
    validation_split: float = Field(0.2, ge=0.0, le=0.5)  # the last fraction is held out, as Keras
    activation: Literal[tuple(activation_names())] = "relu"  # type: ignore[valid-type]
    hidden: list[Annotated[int, Field(ge=1, le=LIMITS.max_units)]] = Field(
        default_factory=lambda: [10], min_length=1, max_length=LIMITS.max_hidden_layers
    )
    bias_init: InitSpec = Field(default_factory=lambda: InitSpec(name="zeros"))
    optimizer: Literal[OPTIMIZERS] = "adam"  # type: ignore[valid-type]
    learning_rate: float = Field(0.03, gt=0.0, le=LIMITS.max_learning_rate)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)  # sgd and rmsprop only
    batch_size: int = Field(32, ge=1, le=LIMITS.max_batch_size)
    epochs: int = Field(200, ge=1, le=LIMITS.max_epochs)
    seed: int = Field(0, ge=0, le=2**31 - 1)  # data, initial weights and minibatch order

    @model_validator(mode="after")
    def _csv_matches_dataset(self) -> RunSpec:
        if self.dataset == "csv" and not self.csv:
            raise ValueError("csv: dataset 'csv' needs the file's text in 'csv' (upload it first)")
        if self.dataset != "csv" and self.csv is not None:
            raise ValueError(f"csv: only allowed with dataset 'csv', got dataset {self.dataset!r}")
        if self.csv is not None and len(self.csv.encode("utf-8")) > LIMITS.max_upload_bytes:
            raise ValueError(f"csv: at most {LIMITS.max_upload_bytes} bytes")
        return self


class TrainSpec(RunSpec):
    """One network: ``POST /api/train`` and ``POST /api/preview``."""

    weight_init: InitSpec = Field(default_factory=lambda: InitSpec(name="he_normal"))


class CompareSpec(RunSpec):
    """2 to 4 initializers trained side by side on the same data and split: ``POST /api/compare``."""

    inits: list[InitSpec] = Field(min_length=LIMITS.min_compare, max_length=LIMITS.max_compare)

    @model_validator(mode="after")
    def _no_data_dependent(self) -> CompareSpec:
        for spec in self.inits:
            if initializers.get(spec.name).scheme.kind == "data-dependent":
                raise ValueError(f"inits: {spec.name!r} needs data at init time; compare it in a single run")
        return self
