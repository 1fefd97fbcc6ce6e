"""Request bodies of the lab's JSON API: thin parsers into :class:`~initlab.experiments.RunSpec`.

A body holds what the page's controls hold (initializers as ``{"name", "params"}``, an
uploaded CSV's text); :meth:`LabRequest.run_spec` turns it into the one run spec, whose own
field rules check every value, and then applies the lab's tighter public limits
(:meth:`~initlab.server.limits.Limits.check`). Unknown keys are rejected. The browser keeps a
body in the page's URL, so a link reproduces the run (an uploaded CSV excepted: it travels in
the request body only).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import initializers
from .._validation import ValidationError
from ..experiments.spec import RunSpec, canonical_init
from .limits import LIMITS, UPLOAD_NAME

__all__ = ["InitSpec", "LabRequest", "TrainSpec", "CompareSpec", "DATASETS"]

DATASETS = (*LIMITS.datasets, "csv")

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

    def to_spec(self) -> dict[str, Any]:
        """The library's spec dict, ``{"name": ..., **params}``."""
        return {"name": self.name, **self.params}

    def checked(self, field: str) -> Any:
        """The canonical initializer (a name or spec dict); an error names ``field``."""
        try:
            return canonical_init(self.to_spec())
        except ValidationError as err:
            raise ValidationError(f"{field}: {err}") from None


class LabRequest(_Strict):
    """Data, network and training settings shared by single runs and comparisons (the lab's defaults)."""

    dataset: str = "moons"  # a generated 2-D set, or "csv" with the upload's text in ``csv``
    n_samples: int = 200  # generated sets only
    noise: float = 0.2  # generated sets only
    csv: str | None = Field(None, max_length=LIMITS.max_upload_bytes)
    validation_split: float = 0.2
    activation: str = "relu"
    hidden: list[int] = Field(default_factory=lambda: [10])
    bias_init: InitSpec = Field(default_factory=lambda: InitSpec(name="zeros"))
    optimizer: str = "adam"
    learning_rate: float = 0.03
    momentum: float = 0.0
    batch_size: int = 32
    epochs: int = 200
    seed: int = 0  # initial weights and minibatch order (as --seed and a grid's seed)
    data_seed: int = 0  # the generated points (or the shuffle of an upload)

    @model_validator(mode="after")
    def _csv_matches_dataset(self) -> LabRequest:
        if self.dataset == "csv" and not self.csv:
            raise ValueError("csv: dataset 'csv' needs the file's text in 'csv' (upload it first)")
        if self.dataset != "csv" and self.csv is not None:
            raise ValueError(f"csv: only allowed with dataset 'csv', got dataset {self.dataset!r}")
        if self.csv is not None and len(self.csv.encode("utf-8")) > LIMITS.max_upload_bytes:
            raise ValueError(f"csv: at most {LIMITS.max_upload_bytes} bytes")
        return self

    def run_spec(self, init: InitSpec, field: str = "weight_init", name: str | None = None) -> RunSpec:
        """The run spec of this request with weight initializer ``init``, within the lab's limits."""
        weights, bias = init.checked(field), self.bias_init.checked("bias_init")
        dataset = UPLOAD_NAME if self.dataset == "csv" else self.dataset
        LIMITS.check_dataset(self.dataset)
        spec = RunSpec(
            name=name or f"{init.name} + {self.activation} on {dataset}", dataset=dataset,
            n_samples=self.n_samples, noise=self.noise, data_seed=self.data_seed,
            validation_split=self.validation_split, activation=self.activation, hidden=self.hidden, init=weights,
            bias_init=bias, optimizer=self.optimizer, learning_rate=self.learning_rate, momentum=self.momentum,
            epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
        )
        return LIMITS.check(spec)


class TrainSpec(LabRequest):
    """One network: ``POST /api/train`` and ``POST /api/preview``."""

    weight_init: InitSpec = Field(default_factory=lambda: InitSpec(name="he_normal"))

    def specs(self) -> list[RunSpec]:
        return [self.run_spec(self.weight_init)]


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
