"""Generated two-dimensional data sets: (X, y) with X float32 (N, 2) and y int64 (N,)."""

from __future__ import annotations

import numpy as np

from .._validation import check_float, check_int

__all__ = ["moons", "circles", "xor", "spirals", "gaussians"]


def _checked(n_samples: int, noise: float) -> tuple[int, float]:
    return check_int("n_samples", n_samples, 4, 1_000_000), check_float("noise", noise, 0.0, 10.0)


def _out(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return X.astype(np.float32), y.astype(np.int64)


def _two_curves(outer: tuple[np.ndarray, np.ndarray], inner: tuple[np.ndarray, np.ndarray], noise: float,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 on ``outer``, class 1 on ``inner``, shuffled, plus Gaussian noise: the draws of
    scikit-learn's ``make_moons``/``make_circles`` (same seed, same points; tested), without
    importing scikit-learn (1.5 s of every command's start)."""
    rng = np.random.RandomState(seed)
    X = np.vstack([np.append(outer[0], inner[0]), np.append(outer[1], inner[1])]).T
    y = np.hstack([np.zeros(len(outer[0]), dtype=np.intp), np.ones(len(inner[0]), dtype=np.intp)])
    order = np.arange(len(y))
    rng.shuffle(order)
    X, y = X[order], y[order]
    return X + rng.normal(scale=noise, size=X.shape), y


def moons(n_samples: int = 100, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles (the U-shaped set of the classic notebook), shuffled.

    100 points and noise 0.1 look like the notebook's ``ushape.csv``.
    """
    n_samples, noise = _checked(n_samples, noise)
    n_out, n_in = n_samples // 2, n_samples - n_samples // 2
    a, b = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    return _out(*_two_curves((np.cos(a), np.sin(a)), (1 - np.cos(b), 1 - np.sin(b) - 0.5), noise, seed))


def circles(n_samples: int = 100, noise: float = 0.1, seed: int = 0, factor: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A small circle (class 1) inside a large one (class 0)."""
    n_samples, noise = _checked(n_samples, noise)
    factor = check_float("factor", factor, 0.0, 1.0)
    n_out, n_in = n_samples // 2, n_samples - n_samples // 2
    a = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    b = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    return _out(*_two_curves((np.cos(a), np.sin(a)), (np.cos(b) * factor, np.sin(b) * factor), noise, seed))


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
    from sklearn import datasets as skd  # lazy: scikit-learn takes 1.5 s to import

    n_samples, noise = _checked(n_samples, noise)
    return _out(*skd.make_blobs(
        n_samples, centers=[(-1.0, -1.0), (1.0, 1.0)], cluster_std=0.5 + noise, random_state=seed
    ))
