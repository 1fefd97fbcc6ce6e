"""Generated two-dimensional data sets: (X, y) with X float32 (N, 2) and y int64 (N,)."""

from __future__ import annotations

import numpy as np
from sklearn import datasets as skd

from .._validation import check_float, check_int

__all__ = ["moons", "circles", "xor", "spirals", "gaussians"]


def _checked(n_samples: int, noise: float) -> tuple[int, float]:
    return check_int("n_samples", n_samples, 4, 1_000_000), check_float("noise", noise, 0.0, 10.0)


def _out(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return X.astype(np.float32), y.astype(np.int64)


def moons(n_samples: int = 100, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles (the U-shaped set of the classic notebook), shuffled.

    100 points and noise 0.1 look like the notebook's ``ushape.csv``.
    """
    n_samples, noise = _checked(n_samples, noise)
    return _out(*skd.make_moons(n_samples, noise=noise, random_state=seed))


def circles(n_samples: int = 100, noise: float = 0.1, seed: int = 0, factor: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A small circle (class 1) inside a large one (class 0)."""
    n_samples, noise = _checked(n_samples, noise)
    factor = check_float("factor", factor, 0.0, 1.0)
    return _out(*skd.make_circles(n_samples, noise=noise, factor=factor, random_state=seed))


def xor(n_samples: int = 100, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points in [-1, 1]^2, class 1 where x1 * x2 > 0 (the four-quadrant XOR), plus noise."""
    n_samples, noise = _checked(n_samples, noise)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n_samples, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    return _out(X + rng.normal(0.0, noise, size=X.shape), y)


def spirals(n_samples: int = 100, noise: float = 0.1, seed: int = 0, turns: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved Archimedean spirals of ``turns`` turns, one per class, radius <= 1."""
    n_samples, noise = _checked(n_samples, noise)
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % 2
    t = np.sqrt(rng.uniform(0.05, 1.0, n_samples))  # uniform density along the radius
    angle = 2 * np.pi * turns * t + np.pi * y
    X = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    X += rng.normal(0.0, noise * 0.5, size=X.shape)
    order = rng.permutation(n_samples)
    return _out(X[order], y[order])


def gaussians(n_samples: int = 100, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs centred at (-1, -1) and (1, 1); ``noise`` adds to their std of 0.5."""
    n_samples, noise = _checked(n_samples, noise)
    return _out(*skd.make_blobs(
        n_samples, centers=[(-1.0, -1.0), (1.0, 1.0)], cluster_std=0.5 + noise, random_state=seed
    ))
