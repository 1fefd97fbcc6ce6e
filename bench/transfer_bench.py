"""Time the transfer grid (issue 24's acceptance: the MLP grid, 4+ widths x 12 lrs x 3 seeds, in
under 10 minutes on 2 CPU cores with 1 thread) and print its drift table.

    PYTHONPATH=src python bench/transfer_bench.py                      # MLP/digits, sp and mup
    PYTHONPATH=src python bench/transfer_bench.py --family transformer --parametrizations sp,mup,umup

Each parametrization is timed as its own grid (a fresh call, no store): wall-clock seconds and the
CPU seconds this process used (``time.process_time``). The load average is printed before and
after: on a shared machine the wall time measures the load too, the CPU time much less so (with 1
thread it is what the grid costs on one free core, up to cache and memory-bandwidth contention).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="mlp")
    parser.add_argument("--widths", default=None)
    parser.add_argument("--depths", default=None)
    parser.add_argument("--lrs", default=None, help="default: the library's (2^-12:2^-1; umup 2^-7:2^4)")
    parser.add_argument("--parametrizations", default="sp,mup")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--store", default=None, help="reuse cells from a store (then the time is not the grid's)")
    parser.add_argument("--out", default="initlab-out/transfer-bench")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import initlab

    cells, drift, per_grid, cpu, lrs = [], [], {}, {}, {}
    load_before = os.getloadavg()
    for name in args.parametrizations.split(","):
        t0, c0 = time.perf_counter(), time.process_time()
        r = initlab.transfer(family=args.family, widths=args.widths, depths=args.depths, lrs=args.lrs,
                             parametrizations=name, seeds=args.seeds, steps=args.steps, store=args.store)
        per_grid[name], cpu[name] = time.perf_counter() - t0, time.process_time() - c0
        cells += r.cells
        drift += r.drift
        settings = r.settings
        lrs.update(settings["lrs"])
        print(f"{name}: {len(r.cells)} cells ({r.trained} trained) in {per_grid[name]:.1f} s wall, {cpu[name]:.1f} s "
              f"CPU; per width (wall) "
              + ", ".join(f"{k.split('|')[1]}x{k.split('|')[2]}: {v:.1f} s" for k, v in r.timing.items()), flush=True)
    load_after = os.getloadavg()
    from initlab.transfer import TransferResult

    settings["parametrizations"], settings["lrs"] = args.parametrizations.split(","), lrs
    result = TransferResult(cells, drift, settings, elapsed_s=sum(per_grid.values()))
    paths = result.save(args.out)
    print(f"\n{args.family} on {settings['task']}: widths {settings['widths']}, depths {settings['depths']}, "
          f"{[len(v) for v in lrs.values()]} lrs, {len(settings['seeds'])} seeds, {settings['steps']} steps, "
          f"{args.threads} thread(s), {os.cpu_count()} cores")
    print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}")
    print("| parametrization | axis | best log2 lr per size | drift (oct/doubling) | 95% interval | verdict "
          "| grid wall / CPU |")
    print("|---|---|---|---|---|---|---|")
    for d in drift:
        best = ", ".join(f"{k}: {b:+.2f}{' (edge)' if e else ''}"
                         for k, b, e in zip(d.sizes, d.best_log2_lr, d.at_edge, strict=True))
        print(f"| {d.parametrization} | {d.axis} | {best} | {d.octaves_per_doubling:+.3f} | "
              f"[{d.interval[0]:+.3f}, {d.interval[1]:+.3f}] | {d.verdict} | "
              f"{per_grid[d.parametrization]:.0f} s / {cpu[d.parametrization]:.0f} s |")
    print(json.dumps({"per_grid_s": per_grid, "per_grid_cpu_s": cpu, "load_before": load_before,
                      "load_after": load_after, "outputs": {k: str(v) for k, v in paths.items()}}))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
