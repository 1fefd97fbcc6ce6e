"""How close the batched trainer runs to the machine's matmul rate (issue 25's floor table).

In one run: the machine's single-thread sgemm rate (a large float32 matmul), then the batched
trainer's matmul-FLOP rate on the classic workload (2-10-1 ReLU, 80 training rows, minibatches
of 32, Adam, Glorot uniform) and on 2-64-64-1 and 2-256-256-1 stacks, each printed as a share of
that rate, at M = 1k, 5k and 20k nets (a stack whose parameters and Adam state would pass
``--memory-gb`` is skipped and said so).

Matmul FLOPs per net and epoch are counted as the issue counts them: 3 x the forward's
2 * rows * fan_in * fan_out per layer (forward, weight gradient, input gradient); 14,400 for the
classic net. The FLOP rate is the fit's (training); nets/s counts building and initializing the
stack too. Both after one small warm-up fit per path, which pays the process's one-time costs
(imports, loading the compiled kernel). On the CPU each row is
measured on both of the trainer's paths, the fused C kernel and the torch ops (``--path``), with
their ratio.

    python bench/trainer_floor.py                       # CPU, 1 thread
    python bench/trainer_floor.py --m 1000 --epochs 20  # quicker
    python bench/trainer_floor.py --device cuda         # a GPU, when one is there
"""

from __future__ import annotations

import argparse
import time

import torch

from initlab import datasets
from initlab.training import BatchedTrainer

ROWS = 80  # the classic notebook's training rows (100 points, the last 20% held out)
STACKS = {"classic 2-10-1": [2, 10, 1], "2-64-64-1": [2, 64, 64, 1], "2-256-256-1": [2, 256, 256, 1]}


def sgemm_rate(device: str, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an n x n float32 matmul on ``device`` (best of ``repeats``)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first call warms up
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def flops_per_net_epoch(sizes: list[int], rows: int = ROWS) -> int:
    """3 x the forward's matmul FLOPs (forward, weight gradient, input gradient), as issue 25 counts."""
    return 3 * sum(2 * rows * fan_in * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True))


def state_gb(sizes: list[int], m: int) -> float:
    """Parameters, gradients and Adam's two moments of m nets, in GB (float32)."""
    params = sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:], strict=True))
    return 4 * params * m * 4 / 1e9


def trainer_times(sizes: list[int], m: int, epochs: int, device: str, fused: bool | None = None) -> tuple[float, float]:
    """(seconds to build and initialize the stack, seconds to fit it) for m nets on the classic data."""
    X, y = datasets.moons(100, seed=0)
    X_train, y_train = X[:ROWS], y[:ROWS]
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    trainer = BatchedTrainer(sizes, "relu", ["glorot_uniform"] * m, list(range(m)), epochs=epochs, batch_size=32,
                             device=device, fused=fused)
    built = time.perf_counter()
    trainer.fit(X_train, y_train)
    if device != "cpu":
        torch.cuda.synchronize()
    return built - start, time.perf_counter() - built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--m", type=int, nargs="+", default=[1000, 5000, 20000], help="nets per stack")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of the classic net (wider stacks: a tenth)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--memory-gb", type=float, default=8.0, help="skip a stack whose state would exceed this")
    parser.add_argument("--repeat", type=int, default=2, help="fits per row (the best counts)")
    parser.add_argument("--stacks", nargs="+", choices=list(STACKS), default=list(STACKS), help="which stacks to run")
    parser.add_argument("--sgemm-n", type=int, default=None, help="size of the reference matmul (default: 2048 "
                        "on the CPU, 8192 on a GPU, which needs a large one to reach its peak)")
    parser.add_argument("--path", choices=["both", "fused", "torch"], default="both",
                        help="the trainer's CPU path(s) to measure (fused: the C kernel)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.sgemm_n or (2048 if args.device == "cpu" else 8192)
    peak = sgemm_rate(args.device, n)
    print(f"device {args.device}, {torch.get_num_threads()} thread(s); sgemm {n}^3: {peak / 1e9:.1f} GFLOP/s\n")
    paths = ["torch"] if args.device != "cpu" else (["fused", "torch"] if args.path == "both" else [args.path])
    for path in paths:  # once per process, not per fit: imports, the kernel's build or load, first allocations
        trainer_times(STACKS["classic 2-10-1"], 16, 1, args.device, fused=path == "fused")
    print("| stack | M | epochs | path | nets/s (build + fit) | fit: matmul GFLOP/s | sgemm GFLOP/s (this row) "
          "| fit: share of sgemm | fused / torch |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for name, sizes in STACKS.items():
        if name not in args.stacks:
            continue
        epochs = args.epochs if name.startswith("classic") else max(1, args.epochs // 10)
        for m in args.m:
            if state_gb(sizes, m) > args.memory_gb:
                print(f"| {name} | {m} | - | | skipped: {state_gb(sizes, m):.1f} GB of state | | | |")
                continue
            rates = {}
            for path in paths:
                # best of --repeat fits, and the sgemm rate measured right beside them: a shared machine's
                # speed drifts, and the share compares the two under the same conditions
                times = [trainer_times(sizes, m, epochs, args.device, fused=path == "fused") for _ in range(args.repeat)]
                build, fit = min(times, key=lambda t: t[1])
                row_peak = sgemm_rate(args.device, n, repeats=3)
                rate = rates[path] = m * epochs * flops_per_net_epoch(sizes) / fit
                ratio = f"{rates['fused'] / rate:.2f}x" if path == "torch" and "fused" in rates else ""
                print(f"| {name} | {m} | {epochs} | {path} | {m / (build + fit):,.0f} | {rate / 1e9:.2f} | "
                      f"{row_peak / 1e9:.1f} | {rate / row_peak:.1%} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
