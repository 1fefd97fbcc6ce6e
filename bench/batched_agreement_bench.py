"""Where "batched == single" holds: loss differences across the order-chaos transition.

tanh MLPs of depth 10, width 32, SGD 0.05 on 500 moons points (the setting of
examples/critical.toml), weights N(0, sigma_w2 / fan_in), zero biases. For each sigma_w2 it
prints the largest relative loss difference over the epochs and 3 init seeds between

* the batched trainer and the single-model Trainer, and
* two single-model Trainer runs whose initial weights differ by one ulp in one weight.

In the ordered phase (chi_1 < 1) rounding dies out and both stay near float32 precision; in the
chaotic phase (chi_1 > 1) rounding is amplified, by the same amount in both columns.

    python bench/batched_agreement_bench.py              # 20 epochs
    python bench/batched_agreement_bench.py --epochs 60
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from initlab import apply_init, datasets
from initlab.models import MLP
from initlab.theory import MeanField
from initlab.training import BatchedTrainer, Trainer


def _loss(init, sizes, seed, data, kw, nudge: bool = False) -> np.ndarray:
    Xt, yt, Xv, yv = data
    model = apply_init(MLP(sizes, "tanh"), init, "zeros", generator=seed)
    if nudge:
        with torch.no_grad():
            w = model.linears[0].weight
            w[0, 0] = torch.nextafter(w[0, 0], torch.tensor(10.0))  # one weight, one ulp
    return np.array(Trainer(model, seed=0, **kw).fit(Xt, yt, Xv, yv).history_["loss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--sigma-w2", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 4.0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = datasets.load("moons", 500, 0.15, 0)
    data = datasets.validation_split(ds.X, ds.y, 0.2)
    sizes = [2] + [32] * args.depth + [1]
    kw = {"optimizer": "sgd", "learning_rate": 0.05, "epochs": args.epochs}
    print(f"tanh {sizes}, SGD 0.05, {args.epochs} epochs, 3 init seeds; max relative loss difference\n")
    print("| sigma_w2 | chi_1 | phase | batched vs single | single vs single, 1 ulp apart |")
    print("|---:|---:|---|---:|---:|")
    for sw2 in args.sigma_w2:
        init = {"name": "variance_scaling", "scale": sw2, "distribution": "normal"}
        bt = BatchedTrainer(sizes, "tanh", [init] * 3, [0, 1, 2], order_seeds=0, **kw).fit(*data)
        batched = nudged = 0.0
        for i in range(3):
            single = _loss(init, sizes, i, data, kw)
            batched = max(batched, float(np.max(np.abs(bt.history_["loss"][i] - single) / single)))
            nudged = max(nudged, float(np.max(np.abs(_loss(init, sizes, i, data, kw, nudge=True) - single) / single)))
        mf = MeanField("tanh", sw2, 0.0)
        print(f"| {sw2:g} | {mf.chi_1:.3f} | {mf.phase} | {batched:.1e} | {nudged:.1e} |", flush=True)


if __name__ == "__main__":
    main()
