"""What a lab run needs from the library: its data, its network, and the frames it streams.

A frame is one JSON-ready snapshot: the decision boundary on a grid, the losses so far, and
the per-layer statistics and verdicts of :func:`initlab.diagnose` on the current weights.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import datasets
from .._json import json_safe
from .._validation import DataError
from .._version import __version__
from ..diagnostics import diagnose
from ..experiments.record import summarize
from ..models import MLP
from ..plots.style import CLASS_COLORS
from ..runspec import RunSpec
from .limits import LIMITS, UPLOAD_NAME
from .specs import LabRequest

__all__ = ["LabData", "load_data", "boundary", "predict_grid", "layer_rows", "diagnostics", "clean", "results_json",
           "neurons", "TILE_SCALE", "variance_vs_theory", "histograms", "HIST_BINS", "RESIDUAL_NO_THEORY"]

HIST_BINS = 24  # bins of each weight and activation histogram

TILE_SCALE = 1.0  # a neuron's picture colours its output from -TILE_SCALE to +TILE_SCALE (clipped), as the Playground


@dataclass
class LabData:
    """The split data of a run and the square window the boundary is drawn in."""

    dataset: datasets.Dataset  # all rows, in the order the split takes them
    X: np.ndarray  # (N, 2) float32, training rows
    y: np.ndarray  # (N,) int64
    X_val: np.ndarray  # (N_val, 2)
    y_val: np.ndarray  # (N_val,)
    extent: tuple[float, float, float, float]  # x0, x1, y0, y1
    grid: torch.Tensor = field(repr=False)  # (grid * grid, 2), row 0 at the top (y1)
    tile_grid: torch.Tensor | None = field(repr=False, default=None)  # (tile * tile, 2), the neurons' pictures

    @property
    def name(self) -> str:
        return self.dataset.name

    @property
    def split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.X, self.y, self.X_val, self.y_val

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset.class_names)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def points(self) -> dict[str, Any]:
        return {
            "X": np.round(self.X, 4).tolist(), "y": self.y.tolist(),
            "X_val": np.round(self.X_val, 4).tolist(), "y_val": self.y_val.tolist(),
            "class_names": self.class_names, "class_colors": list(CLASS_COLORS[: self.n_classes]),
            "extent": list(self.extent),
        }


def load_data(request: LabRequest, spec: RunSpec | None = None) -> LabData:
    """Generate (or parse the uploaded CSV of) the data of ``spec`` (a validated run spec of
    ``request``; its first when omitted) and split it.

    An uploaded CSV is shuffled with ``spec.data_seed`` before the split, since files are often
    sorted by class and Keras' split holds out the last rows.
    """
    if spec is None:
        spec = request.specs()[0]  # validates every field (seeds included) before numpy sees them
    if request.dataset == "csv":
        X, y, class_names = datasets.parse_csv(request.csv or "", UPLOAD_NAME)
        if X.shape[1] != 2:
            raise DataError(f"{UPLOAD_NAME}: the lab draws 2-D data: needs exactly 2 feature columns, got {X.shape[1]}")
        if len(X) > LIMITS.max_samples:
            raise DataError(f"{UPLOAD_NAME}: at most {LIMITS.max_samples} rows, got {len(X)}")
        if len(class_names) > LIMITS.max_classes:
            raise DataError(f"{UPLOAD_NAME}: at most {LIMITS.max_classes} classes, got {len(class_names)}")
        order = np.random.default_rng(spec.data_seed).permutation(len(X))
        ds = datasets.Dataset(UPLOAD_NAME, X[order], y[order], class_names)
    else:
        LIMITS.check_dataset(spec.dataset)
        ds = datasets.load(spec.dataset, n_samples=spec.n_samples, noise=spec.noise, seed=spec.data_seed)
    X_tr, y_tr, X_val, y_val = datasets.validation_split(ds.X, ds.y, spec.validation_split)
    extent = _square_window(ds.X)
    return LabData(ds, X_tr, y_tr, X_val, y_val, extent, _grid(extent, LIMITS.grid), _grid(extent, LIMITS.tile_grid))


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
    proba: np.ndarray = model.predict_proba(data.grid).cpu().numpy()
    return proba


def diagnostics(model: nn.Module, data: LabData) -> dict[str, Any]:
    """``diagnose`` on the training rows, as the lab shows it: per-layer rows and verdicts."""
    diag = diagnose(model, torch.as_tensor(data.X), torch.as_tensor(data.y))
    return {"layers": layer_rows(diag), "verdicts": [v.to_dict() for v in diag.verdicts]}


def layer_rows(diag: Any) -> list[dict[str, Any]]:
    """The run record's per-layer summary (:func:`~initlab.experiments.record.summarize`), plus the
    two numbers the page shows as they are: dead units as a count, the activation mean."""
    return [row | {"dead_units": round(row["dead_fraction"] * row["units"]), "activation_mean": row["mean"]}
            for row in summarize(diag)["layers"]]


@torch.no_grad()
def neurons(model: MLP, data: LabData) -> list[dict[str, Any]]:
    """Each hidden unit's output over the input plane (``LIMITS.tile_grid`` squared points), per layer.

    ``q`` is base64 of ``units * n * n`` bytes, unit by unit, row 0 at the top: the output clipped
    to [-TILE_SCALE, TILE_SCALE] in 255 steps (127 is 0), one fixed scale for every unit as the
    Playground draws, so a unit whose output is 1e-10 everywhere is white, not noise stretched
    over a full colour scale. ``min``/``max``: the exact outputs' range per unit; ``flat``: the
    range is below one colour step.
    """
    assert data.tile_grid is not None, "load_data sets it"
    out = []
    for layer, acts in enumerate(model.hidden(data.tile_grid), start=1):  # (n*n, units) each
        a = acts.double().T.numpy()  # (units, n*n)
        finite = np.isfinite(a)
        clipped = np.clip(np.where(finite, a, 0.0), -TILE_SCALE, TILE_SCALE)
        q = np.rint((clipped / TILE_SCALE + 1) * 127).astype(np.uint8)
        q[~finite] = 255  # not a number: drawn as such (the page reads min/max)
        any_finite = finite.any(axis=1)
        lo = np.where(any_finite, np.where(finite, a, np.inf).min(axis=1), np.nan)
        hi = np.where(any_finite, np.where(finite, a, -np.inf).max(axis=1), np.nan)
        out.append({"layer": layer, "units": int(a.shape[0]), "n": LIMITS.tile_grid,
                    "q": base64.b64encode(q.tobytes()).decode("ascii"), "min": lo.tolist(), "max": hi.tolist(),
                    "flat": (np.nan_to_num(hi - lo, nan=np.inf) < 2 * TILE_SCALE / 254).tolist()})
    return out


def _hist(values: np.ndarray) -> dict[str, Any]:
    """``HIST_BINS`` equal bins over the finite values' own range (``lo == hi``: one spike)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return {"lo": None, "hi": None, "counts": [], "non_finite": int(values.size)}
    lo, hi = float(finite.min()), float(finite.max())
    counts = np.histogram(finite, bins=HIST_BINS, range=(lo, hi) if hi > lo else (lo - 0.5, lo + 0.5))[0]
    return {"lo": lo, "hi": hi, "counts": counts.tolist(), "non_finite": int(values.size - finite.size)}


@torch.no_grad()
def histograms(model: MLP, data: LabData) -> list[dict[str, Any]]:
    """Per weighted layer: a histogram of its weights, and (hidden layers) of its outputs on the
    training rows (:meth:`MLP.hidden`: with residual connections, the input added), each over its
    own range, ``HIST_BINS`` bins."""
    out = [{"layer": name, "weights": _hist(module.weight.detach().double().numpy().ravel())}
           for name, module in model.named_children() if isinstance(module, nn.Linear)]
    for row, acts in zip(out, model.hidden(torch.as_tensor(data.X)), strict=False):  # the output layer has none
        row["activations"] = _hist(acts.double().numpy().ravel())
    return out


# Why the panel draws no prediction for a residual network (the length map models plain layers).
RESIDUAL_NO_THEORY = ("the mean-field length map (Poole et al. 2016) is for plain layers; with residual connections "
                      "a layer's input is h + act(W h + b), which it does not model")


@torch.no_grad()
def variance_vs_theory(model: MLP, data: LabData, spec: RunSpec) -> dict[str, Any]:
    """Per hidden layer, the pre-activation variance q^l at init: measured (mean of h^2 over units
    and the training rows) and predicted by the mean-field length map (Poole et al. 2016, eq. 3;
    :func:`initlab.theory.predicted_preactivation_variance`) from q^0 = the rows' mean square and
    sigma_w2 = Var(W) * fan_in of the scheme on each layer's shape. The theory holds for wide
    layers and i.i.d. zero-mean weights: a 10-unit layer of one network scatters around it.
    ``unavailable`` says why there is no prediction (a constant or data-dependent scheme, biases
    not zero, residual connections: :data:`RESIDUAL_NO_THEORY`)."""
    from .._validation import InitlabError
    from ..theory import effective_sigma_w2, predicted_preactivation_variance

    x = torch.as_tensor(data.X)
    q0 = float((x.double() ** 2).mean())
    measured = [float((z.double() ** 2).mean()) for z in model.preactivations(x)]
    out: dict[str, Any] = {"q0": q0, "measured": measured, "predicted": None, "unavailable": None}
    sizes = [data.X.shape[1], *spec.hidden]
    if any(model.skips):
        out["unavailable"] = RESIDUAL_NO_THEORY
        return out
    if spec.bias_init != "zeros":
        out["unavailable"] = f"the prediction here assumes zero biases; bias_init is {spec.bias_initializer}"
        return out
    try:
        sigma_w2 = [effective_sigma_w2(spec.init, sizes[i], sizes[i + 1]) for i in range(len(spec.hidden))]
        out["sigma_w2"] = sigma_w2
        out["predicted"] = [float(q) for q in predicted_preactivation_variance(spec.activation, sigma_w2, 0.0, q0)]
    except InitlabError as err:
        out["unavailable"] = str(err).splitlines()[0]
    return out


def clean(value: Any) -> Any:
    """JSON-safe at full precision (the one cleaner, :func:`initlab._json.json_safe`): a gradient
    norm of 1.44e-11 stays 1.44e-11; only the boundary's probabilities are rounded (to 3 decimals)."""
    return json_safe(value)


def results_json(records: list[dict[str, Any]]) -> dict[str, Any]:
    """A results.json of lab runs: the same entries (``RunRecord.to_dict()``) as ``initlab train`` writes."""
    return {"initlab_version": __version__, "source": "initlab serve", "experiments": records}
