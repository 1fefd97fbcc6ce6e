"""scikit-learn's bundled data sets (no download needed)."""

from __future__ import annotations

import numpy as np

__all__ = ["digits", "breast_cancer"]


def digits(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8x8 handwritten digits: X (1797, 64) scaled to [0, 1], y in 0..9, shuffled by ``seed``."""
    from sklearn import datasets as skd  # lazy: scikit-learn takes 1.5 s to import

    X, y = skd.load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    return (X[order] / 16.0).astype(np.float32), y[order].astype(np.int64)


def breast_cancer(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Wisconsin breast cancer: X (569, 30) standardized per feature, y in {0, 1}, shuffled."""
    from sklearn import datasets as skd

    X, y = skd.load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    order = np.random.default_rng(seed).permutation(len(y))
    return X[order].astype(np.float32), y[order].astype(np.int64)
