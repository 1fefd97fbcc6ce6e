"""Every server-side limit of the browser lab, in one place.

The request models in ``specs.py`` read their bounds from here, so a request outside them is
rejected with a 4xx JSON error before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._validation import ValidationError, check_choice

if TYPE_CHECKING:
    from ..experiments.spec import RunSpec

__all__ = ["Limits", "LIMITS", "UPLOAD_NAME"]

UPLOAD_NAME = "upload.csv"  # the dataset name of a run on an uploaded CSV


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for, and on how many runs may go at once.

    A lab run is an ordinary :class:`~initlab.experiments.RunSpec` (whose own bounds apply);
    :meth:`check` adds these, tighter ones, because the lab is a public endpoint.
    """

    datasets: tuple[str, ...] = ("moons", "circles", "xor", "spirals", "gaussians")  # 2-D sets to draw

    min_samples: int = 20  # enough rows to hold some out for validation
    max_samples: int = 2000  # generated points, and rows of an uploaded CSV
    max_noise: float = 1.0
    max_validation_split: float = 0.5
    max_hidden_layers: int = 8
    max_units: int = 64  # per hidden layer
    max_epochs: int = 2000
    max_batch_size: int = 2000
    max_learning_rate: float = 10.0
    max_classes: int = 10  # of an uploaded CSV
    max_upload_bytes: int = 1_000_000  # a CSV upload, also when sent inline in a run spec
    max_body_bytes: int = 2_200_000  # any request body (an inline CSV is JSON-escaped, so larger)
    max_init_params: int = 8
    max_abs_param: float = 1e6  # any numeric initializer parameter
    min_compare: int = 2
    max_compare: int = 4
    max_runs_per_client: int = 2  # concurrent runs per client host; beyond: 429
    max_runs_total: int = 6  # concurrent runs on the server; beyond: 503
    grid: int = 40  # the decision-boundary heat map is grid x grid probabilities
    events_per_second: float = 20.0  # progress events are throttled to about this rate
    min_run_seconds: float = 3.0  # a shorter run is paced to last this long, so the view animates

    def check_dataset(self, dataset: str) -> str:
        return check_choice("dataset", dataset, (*self.datasets, "csv"), hint="the lab draws 2-D sets")

    def check(self, spec: RunSpec) -> RunSpec:
        """``spec`` if it is within the lab's limits, else a one-line ValidationError naming the field."""
        if spec.dataset != UPLOAD_NAME:
            self.check_dataset(spec.dataset)
        _at_most("n_samples", spec.n_samples, self.max_samples, at_least=self.min_samples)
        _at_most("noise", spec.noise, self.max_noise)
        _at_most("validation_split", spec.validation_split, self.max_validation_split)
        _at_most("hidden", len(spec.hidden), self.max_hidden_layers, what="layers")
        for i, units in enumerate(spec.hidden):
            _at_most(f"hidden[{i}]", units, self.max_units, what="units")
        _at_most("epochs", spec.epochs, self.max_epochs)
        _at_most("batch_size", spec.batch_size, self.max_batch_size)
        _at_most("learning_rate", spec.learning_rate, self.max_learning_rate)
        return spec


def _at_most(field: str, value: float, maximum: float, at_least: float | None = None, what: str = "") -> None:
    unit = f" {what}" if what else ""
    if value > maximum:
        raise ValidationError(f"{field}: at most {maximum}{unit} in the lab, got {value}")
    if at_least is not None and value < at_least:
        raise ValidationError(f"{field}: at least {at_least}{unit} in the lab, got {value}")


LIMITS = Limits()
