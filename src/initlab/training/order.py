"""The minibatch order: one function, used by both trainers.

Epoch ``e`` of a run with order seed ``s`` visits the training rows in the order that sorts
``key(s, e, row)``, where ``key`` is a counter-based hash (SplitMix64's finaliser, Steele et
al., 2014, "Fast splittable pseudorandom number generators"). Nothing is stateful, so the
order of thousands of runs with different seeds is one vectorised hash and one sort, a run's
order does not depend on which other runs it was trained with, and the single-model and the
batched trainer see the same minibatches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import numpy.typing as npt

__all__ = ["minibatch_order", "minibatch_orders"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finaliser: a bijection of uint64 that spreads every input bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return cast("npt.NDArray[np.uint64]", x ^ (x >> np.uint64(31)))  # numpy's stubs: uint64 shifts are Any


def minibatch_order(order_seeds: int | Sequence[int] | np.ndarray, epoch: int, n: int) -> np.ndarray:
    """Row order of ``epoch`` for each seed: ``(n,)`` int64 for one seed, ``(G, n)`` for several.

    Each row is a permutation of ``range(n)``; the same ``(seed, epoch, n)`` always gives the same one.
    """
    order: np.ndarray = minibatch_orders(np.atleast_1d(np.asarray(order_seeds)), [epoch], n)[0]  # (G, n)
    return order[0] if np.ndim(order_seeds) == 0 else order


def minibatch_orders(order_seeds: Sequence[int] | np.ndarray, epochs: Sequence[int], n: int) -> np.ndarray:
    """:func:`minibatch_order` for several epochs at once: ``(E, G, n)``, row ``[e, g]`` the order of
    seed ``g`` in epoch ``epochs[e]`` (one hash and one sort for all of them)."""
    seeds = np.asarray(order_seeds, dtype=np.uint64).reshape(1, -1)  # (1, G)
    epoch = np.asarray(epochs, dtype=np.uint64).reshape(-1, 1)  # (E, 1)
    with np.errstate(over="ignore"):
        stream = _mix(_mix(seeds * _GOLDEN + epoch) + _GOLDEN)  # (E, G) one stream per (seed, epoch)
        keys = _mix(stream[:, :, None] ^ (np.arange(n, dtype=np.uint64) * _GOLDEN))  # (E, G, n)
    # 64-bit keys: two rows of one epoch tie with probability ~ n^2 / 2^65 (1e-8 at a million rows),
    # so the order does not depend on the sort's tie rule and the 3x faster quicksort is safe.
    return np.argsort(keys, axis=2).astype(np.int64, copy=False)
