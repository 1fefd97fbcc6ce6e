"""Throughput of the batched trainer vs the single-model loop on the classic workload.

Classic workload: a 2-10-1 ReLU MLP (Glorot uniform init, one init seed per network), 100
moons points, minibatches of 32, Adam, 100 epochs. Both are measured in this run, with the
same torch thread count; times include building and initializing the networks. Prints a
Markdown table of nets/s and the ratio to the single-model loop.

    python bench/sweep_bench.py                  # M = 1, 10, 100, 1000, 10000
    python bench/sweep_bench.py --threads 2 --single 10 --m 1 10 100 1000
"""

from __future__ import annotations

import argparse
import time

import torch

from initlab import apply_init, datasets
from initlab.models import MLP
from initlab.training import BatchedTrainer, Trainer

SIZES, ACTIVATION, INIT, EPOCHS, BATCH = [2, 10, 1], "relu", "glorot_uniform", 100, 32


def single_loop(X, y, n: int) -> float:
    """Nets/s of n independent ``Trainer`` fits, one after another."""
    start = time.perf_counter()
    for seed in range(n):
        model = apply_init(MLP(SIZES, ACTIVATION), INIT, generator=seed)
        Trainer(model, epochs=EPOCHS, batch_size=BATCH, seed=0).fit(X, y)
    return n / (time.perf_counter() - start)


def batched(X, y, m: int, device: str) -> float:
    """Nets/s of one BatchedTrainer of m networks (build + init + fit)."""
    start = time.perf_counter()
    trainer = BatchedTrainer(SIZES, ACTIVATION, [INIT] * m, list(range(m)), epochs=EPOCHS, batch_size=BATCH, device=device)
    trainer.fit(X, y)
    if device != "cpu":
        torch.cuda.synchronize()
    return m / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, nargs="+", default=[1, 10, 100, 1000, 10000])
    parser.add_argument("--single", type=int, default=20, help="fits timed for the single-model loop")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both (1: steadiest on a shared box)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = datasets.load("moons", 100, 0.1, 0)
    X, y = ds.X, ds.y
    batched(X, y, 10, args.device)  # warm-up
    single = single_loop(X, y, args.single)
    print(f"classic workload {SIZES} {ACTIVATION}, 100 points, batch {BATCH}, {EPOCHS} epochs, "
          f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}\n")
    print("| trainer | M | nets/s | × single loop |")
    print("|---|---:|---:|---:|")
    print(f"| single-model loop | 1 | {single:,.1f} | 1 |")
    for m in args.m:
        rate = batched(X, y, m, args.device)
        print(f"| batched | {m:,} | {rate:,.0f} | {rate / single:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
