"""Data sets: generated 2-D sets, CSV files, scikit-learn's bundled sets, and the split.

Every loader returns ``(X, y)``: X float32 ``(N, features)``, y int64 ``(N,)`` class indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._validation import ValidationError, check_choice, check_float
from .bundled import breast_cancer, digits
from .files import MIN_ROWS, load_csv, parse_csv
from .synthetic import circles, gaussians, moons, spirals, xor

__all__ = [
    "Dataset", "load", "names", "validation_split", "load_csv", "parse_csv",
    "moons", "circles", "xor", "spirals", "gaussians", "digits", "breast_cancer", "MIN_ROWS",
]

GENERATED = {"moons": moons, "circles": circles, "xor": xor, "spirals": spirals, "gaussians": gaussians}
BUNDLED = {"digits": digits, "breast_cancer": breast_cancer}


@dataclass
class Dataset:
    """Features, labels and what they are called."""

    name: str
    X: np.ndarray  # (N, features) float32
    y: np.ndarray  # (N,) int64 class indices
    class_names: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])


def names() -> list[str]:
    """Names ``load`` accepts (besides a CSV path)."""
    return [*GENERATED, *BUNDLED]


def load(name: str, n_samples: int = 100, noise: float = 0.1, seed: int = 0) -> Dataset:
    """A data set by name (``moons``, ..., ``digits``) or by CSV path (ends in ``.csv``).

    ``n_samples`` and ``noise`` apply to the generated sets only.
    """
    if str(name).lower().endswith(".csv"):
        X, y, classes = load_csv(name)
        return Dataset(Path(name).name, X, y, classes)
    key = check_choice("dataset", str(name).lower(), names(), hint="or a path to a .csv file")
    if key in GENERATED:
        X, y = GENERATED[key](n_samples=n_samples, noise=noise, seed=seed)
    else:
        X, y = BUNDLED[key](seed=seed)
    return Dataset(key, X, y, [str(c) for c in range(int(y.max()) + 1)])


def validation_split(
    X: np.ndarray, y: np.ndarray, fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out the *last* ``fraction`` of the rows, as Keras' ``fit(validation_split=...)``.

    The split point is ``int(N * (1 - fraction))`` and rows are not shuffled first, so shuffle
    the data beforehand if its order means something. ``fraction=0`` returns empty validation arrays.
    """
    fraction = check_float("validation_split", fraction, 0.0, 1.0)
    if fraction >= 1.0:
        raise ValidationError(f"validation_split must be in [0, 1), got {fraction}")
    split = int(len(X) * (1.0 - fraction))
    if split < 1:
        raise ValidationError(f"validation_split={fraction} leaves no training rows out of {len(X)}")
    return X[:split], y[:split], X[split:], y[split:]
