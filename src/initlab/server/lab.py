"""What a lab run needs from the library: its data, its network, and the frames it streams.

A frame is one JSON-ready snapshot: the decision boundary on a grid, the losses so far, and
the per-layer statistics and verdicts of :func:`initlab.diagnose` on the current weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__, datasets, diagnose
from .._validation import DataError
from ..initializers import apply_init
from ..models import MLP
from ..plots.style import CLASS_COLORS, init_color
from .limits import LIMITS
from .specs import TrainSpec, RunSpec

__all__ = [
    "LabData", "load_data", "sizes", "build_model", "boundary", "predict_grid", "layer_rows", "diagnostics", "clean",
    "experiment_record", "results_json",
]


@dataclass
class LabData:
    """The split data of a run and the square window the boundary is drawn in."""

    name: str
    X: np.ndarray  # (N, 2) float32, training rows
    y: np.ndarray  # (N,) int64
    X_val: np.ndarray  # (N_val, 2)
    y_val: np.ndarray  # (N_val,)
    class_names: list[str]
    extent: tuple[float, float, float, float]  # x0, x1, y0, y1
    grid: torch.Tensor = field(repr=False)  # (grid * grid, 2), row 0 at the top (y1)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def sizes_out(self) -> tuple[int, str]:
        """Output units and output function: one sigmoid logit for two classes, else softmax."""
        return (1, "sigmoid") if self.n_classes == 2 else (self.n_classes, "softmax")

    def points(self) -> dict[str, Any]:
        return {
            "X": np.round(self.X, 4).tolist(), "y": self.y.tolist(),
            "X_val": np.round(self.X_val, 4).tolist(), "y_val": self.y_val.tolist(),
            "class_names": self.class_names, "class_colors": list(CLASS_COLORS[: self.n_classes]),
            "extent": list(self.extent),
        }


def load_data(spec: RunSpec) -> LabData:
    """Generate (or parse the uploaded CSV of) ``spec``'s data and split it.

    An uploaded CSV is shuffled with ``spec.seed`` before the split, since files are often
    sorted by class and Keras' split holds out the last rows.
    """
    if spec.dataset == "csv":
        X, y, class_names = datasets.parse_csv(spec.csv or "", "upload.csv")
        if X.shape[1] != 2:
            raise DataError(f"upload.csv: the lab draws 2-D data: needs exactly 2 feature columns, got {X.shape[1]}")
        if len(X) > LIMITS.max_samples:
            raise DataError(f"upload.csv: at most {LIMITS.max_samples} rows, got {len(X)}")
        if len(class_names) > LIMITS.max_classes:
            raise DataError(f"upload.csv: at most {LIMITS.max_classes} classes, got {len(class_names)}")
        order = np.random.default_rng(spec.seed).permutation(len(X))
        X, y, name = X[order], y[order], "upload.csv"
    else:
        ds = datasets.load(spec.dataset, n_samples=spec.n_samples, noise=spec.noise, seed=spec.seed)
        X, y, class_names, name = ds.X, ds.y, ds.class_names, ds.name
    X_tr, y_tr, X_val, y_val = datasets.validation_split(X, y, spec.validation_split)
    extent = _square_window(X)
    return LabData(name, X_tr, y_tr, X_val, y_val, class_names, extent, _grid(extent, LIMITS.grid))


def _square_window(X: np.ndarray, pad: float = 0.1) -> tuple[float, float, float, float]:
    lo, hi = X.min(axis=0).astype(float), X.max(axis=0).astype(float)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-3) * (1 + pad)
    return (centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half)


def _grid(extent: tuple[float, float, float, float], n: int) -> torch.Tensor:
    x0, x1, y0, y1 = extent
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y1 - (np.arange(n) + 0.5) * (y1 - y0) / n  # top row first, as a canvas draws
    gx, gy = np.meshgrid(xs, ys)
    return torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=torch.float32)  # (n*n, 2)


def sizes(spec: RunSpec, data: LabData) -> list[int]:
    return [2, *spec.hidden, data.sizes_out[0]]


def build_model(spec: TrainSpec, data: LabData) -> MLP:
    """The network of a single run, initialized from ``spec.seed`` (same seed, same weights)."""
    model = MLP(sizes(spec, data), spec.activation, data.sizes_out[1])
    return apply_init(model, spec.weight_init.to_spec(), spec.bias_init.to_spec(),
                      generator=spec.seed, data=torch.as_tensor(data.X))


def boundary(proba: np.ndarray) -> dict[str, Any]:
    """``proba`` on the grid, ``(n*n,)`` P(class 1) or ``(n*n, K)``: what the heat map draws.

    ``p`` is P(class 1) for two classes, else the winning class's probability, with the
    winning class in ``c``.
    """
    out: dict[str, Any] = {"n": LIMITS.grid}
    if proba.ndim == 1:
        out["p"] = np.round(proba, 3).tolist()
    else:
        out["p"] = np.round(proba.max(axis=1), 3).tolist()
        out["c"] = proba.argmax(axis=1).tolist()
    return out


@torch.no_grad()
def predict_grid(model: MLP, data: LabData) -> np.ndarray:
    return model.predict_proba(data.grid).cpu().numpy()


def diagnostics(model: nn.Module, data: LabData) -> dict[str, Any]:
    """``diagnose`` on the training rows, as the lab shows it: per-layer rows and verdicts."""
    diag = diagnose(model, torch.as_tensor(data.X), torch.as_tensor(data.y))
    return {"layers": layer_rows(diag), "verdicts": [v.to_dict() for v in diag.verdicts]}


def layer_rows(diag: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name, "units": s.units, "activation": s.activation,
            "distinct_units": s.distinct_units, "dead_units": round(s.dead_fraction * s.units),
            "dead_fraction": s.dead_fraction, "saturated_fraction": s.saturated_fraction,
            "activation_mean": s.mean, "activation_std": s.std, "grad_norm": s.grad_norm,
            "weight_std": s.weight_std, "healthy_weight_std": s.healthy_weight_std,
        }
        for s in diag.layers
    ]


def clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN and infinities to ``None``, floats to 6 digits."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return round(value, 6) if math.isfinite(value) else None
    return value


def experiment_record(
    spec: RunSpec, data: LabData, init: dict[str, Any], history: dict[str, list[float]], diag: dict[str, Any],
    diverged_epoch: int | None,
) -> dict[str, Any]:
    """One entry of results.json's ``experiments`` (the format ``initlab reproduce`` writes)."""
    last = {k: (v[-1] if v else None) for k, v in history.items()}
    return {
        "name": f"{init['name']} + {spec.activation} on {data.name}",
        "dataset": data.name, "n_samples": len(data.X) + len(data.X_val), "noise": spec.noise,
        "validation_split": spec.validation_split, "activation": spec.activation,
        "initializer": init, "bias_initializer": spec.bias_init.to_spec(), "color": init_color(init["name"]),
        "hidden": list(spec.hidden), "optimizer": spec.optimizer, "learning_rate": spec.learning_rate,
        "momentum": spec.momentum, "epochs": spec.epochs, "epochs_run": len(history.get("loss", [])),
        "batch_size": spec.batch_size, "seed": spec.seed, "diverged_epoch": diverged_epoch,
        "train_accuracy": last.get("accuracy"), "val_accuracy": last.get("val_accuracy"),
        "train_loss": last.get("loss"), "val_loss": last.get("val_loss"),
        "history": history, "diagnostics": diag,
    }


def results_json(experiments: list[dict[str, Any]]) -> dict[str, Any]:
    return {"initlab_version": __version__, "source": "initlab serve", "experiments": experiments}
