"""Throughput of the batched trainer vs the single-model loop on the classic workload.

Classic workload: a 2-10-1 ReLU MLP (Glorot uniform init, one init seed per network), 100
moons points, minibatches of 32, Adam, 100 epochs. Both are measured in this run, with the
same torch thread count; times include building and initializing the networks. Prints a
Markdown table of nets/s and the ratio to the single-model loop.

    python bench/sweep_bench.py                  # M = 1, 10, 100, 1000, 10000
    python bench/sweep_bench.py --threads 2 --single 10 --m 1 10 100 1000
    python bench/sweep_bench.py --e2e 5000       # `initlab sweep` end to end vs the trainer alone
    python bench/sweep_bench.py --e2e 5000 --ray # ... and with --executor ray on a local cluster

End to end (``--e2e N``): N classic nets (5 initializers x N/5 seeds; each seed its own init and
minibatch order, shared across the initializers) as ``initlab sweep`` in a fresh process, from
process start to the last commit, with diagnostics off and on; beside it, the trainer alone on
the same runs (same batches, seeds and orders): ``BatchedTrainer`` construction and ``fit``, in a
fresh process from its start (it pays Python's, torch's and initlab's imports as the sweep does:
the like-for-like reference) and in this process (imports already paid).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


E2E_INITS = ["glorot_uniform", "he_normal", "lecun_normal", "orthogonal", "zeros"]


def e2e_spec(n: int, diagnostics: bool) -> str:
    seeds = ", ".join(str(s) for s in range(max(1, n // len(E2E_INITS))))
    inits = ", ".join(f'"{i}"' for i in E2E_INITS)
    return (f'name = "e2e"\n[data]\nname = "moons"\nn_samples = 100\n[grid]\ninit = [{inits}]\n'
            f'activation = ["{ACTIVATION}"]\ndepth = [1]\nwidth = [10]\nseed = [{seeds}]\n'
            f'[train]\nepochs = {EPOCHS}\nbatch_size = {BATCH}\ndiagnostics = {str(diagnostics).lower()}\n')


def trainer_only(spec_text: str, device: str) -> tuple[int, float]:
    """Runs and nets/s of the batched trainer alone on the sweep's batches (build, init, fit)."""
    import tomllib

    from initlab.experiments.execute import build_stack, load_split, plan
    from initlab.experiments.sweep_spec import parse_spec

    runs = parse_spec(tomllib.loads(spec_text)).runs()
    batches = plan(runs, device)
    data, split = load_split(runs[0])
    start = time.perf_counter()
    for batch in batches:
        build_stack(batch, data, split).fit(*split)
    return len(runs), len(runs) / (time.perf_counter() - start)


_TRAINER_PROCESS = """
import sys, time, tomllib, torch
torch.set_num_threads(int(sys.argv[2]))
from initlab.experiments.execute import build_stack, load_split, plan
from initlab.experiments.sweep_spec import parse_spec
runs = parse_spec(tomllib.loads(open(sys.argv[1]).read())).runs()
data, split = load_split(runs[0])
for batch in plan(runs, "cpu"):
    build_stack(batch, data, split).fit(*split)
print(time.time())
"""


def trainer_process(spec_text: str, threads: int) -> float:
    """Seconds of the trainer alone in a fresh process, from its start (Python, torch and initlab
    imported, as ``initlab sweep`` must) to the end of its last fit, on the sweep's batches."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e2e.toml"
        path.write_text(spec_text)
        start = time.time()
        out = subprocess.run([sys.executable, "-c", _TRAINER_PROCESS, str(path), str(threads)], check=True,
                             capture_output=True, text=True)
        return float(out.stdout.strip().splitlines()[-1]) - start


def sweep_process(spec_text: str, threads: int, extra: list[str]) -> tuple[float, float]:
    """Seconds of `initlab sweep` in a fresh process: from its start to its last commit (the
    store's latest ``finished_at``), and to its exit."""
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        path, store = Path(tmp) / "e2e.toml", Path(tmp) / "e2e.db"
        path.write_text(spec_text)
        cmd = [sys.executable, "-m", "initlab", "--threads", str(threads), "sweep", str(path),
               "--store", str(store), "--json", *extra]
        start, wall = time.time(), time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wall = time.perf_counter() - wall
        con = sqlite3.connect(store)
        last = con.execute("SELECT MAX(finished_at) FROM runs").fetchone()[0]
        con.close()
        return last - start, wall


def end_to_end(n: int, threads: int, device: str, ray: bool, repeat: int = 3) -> None:
    """Each row is the best of ``repeat`` runs (a shared machine only ever adds time)."""
    print(f"end to end: {n} classic nets ({len(E2E_INITS)} inits x {n // len(E2E_INITS)} seeds), "
          f"torch {torch.__version__}, {threads} thread(s), device {device}\n")
    print("| what | runs | seconds to the last commit (to exit) | nets/s | share of the trainer's rate: fresh process "
          "| in-process |")
    print("|---|---:|---:|---:|---:|---:|")
    runs, rate = max((trainer_only(e2e_spec(n, False), device) for _ in range(repeat)), key=lambda r: r[1])
    fresh = runs / min(trainer_process(e2e_spec(n, False), threads) for _ in range(repeat)) if device == "cpu" else rate
    print(f"| trainer only, in this process (BatchedTrainer build + fit) | {runs:,} | {runs / rate:.1f} | {rate:,.0f} "
          f"| | 100% |", flush=True)
    print(f"| trainer only, fresh process (start, imports, build + fit) | {runs:,} | {runs / fresh:.1f} | {fresh:,.0f} "
          f"| 100% | |", flush=True)
    rows = [("initlab sweep, diagnostics off", e2e_spec(n, False), []),
            ("initlab sweep, diagnostics on", e2e_spec(n, True), [])]
    if ray:
        rows.append(("initlab sweep --executor ray (local, 2 CPUs), diagnostics off", e2e_spec(n, False),
                     ["--executor", "ray"]))
    for label, text, extra in rows:
        seconds, wall = min(sweep_process(text, threads, extra) for _ in range(repeat))
        print(f"| {label} | {runs:,} | {seconds:.1f} ({wall:.1f}) | {runs / seconds:,.0f} | {runs / seconds / fresh:.0%} "
              f"| {runs / seconds / rate:.0%} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, nargs="+", default=[1, 10, 100, 1000, 10000])
    parser.add_argument("--single", type=int, default=20, help="fits timed for the single-model loop")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both (1: steadiest on a shared box)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--e2e", type=int, default=0, help="N: `initlab sweep` of N classic nets end to end instead")
    parser.add_argument("--ray", action="store_true", help="with --e2e: also a row for --executor ray")
    parser.add_argument("--repeat", type=int, default=3, help="with --e2e: best of this many runs per row")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.e2e:
        end_to_end(args.e2e, args.threads, args.device, args.ray, args.repeat)
        return
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
