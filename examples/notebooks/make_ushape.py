"""Write ``ushape.csv``: the U-shaped two-class set of the classic notebook (columns X, Y, class).

100 points, two interleaved half circles with Gaussian noise 0.1, drawn by
``initlab.datasets.moons(100, noise=0.1, seed=0)``: the same file on every run.

    python examples/notebooks/make_ushape.py [OUT.csv]
"""

from __future__ import annotations

import sys
from pathlib import Path

from initlab.datasets import moons


def write_ushape(path: str | Path = Path(__file__).with_name("ushape.csv"), n_samples: int = 100,
                 seed: int = 0) -> Path:
    """Write the CSV (header ``X,Y,class``, coordinates to 6 decimals, class 0 or 1); returns the path."""
    X, y = moons(n_samples, noise=0.1, seed=seed)
    lines = ["X,Y,class"] + [f"{a:.6f},{b:.6f},{int(c)}" for (a, b), c in zip(X.tolist(), y.tolist())]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    print(write_ushape(*sys.argv[1:2]))
