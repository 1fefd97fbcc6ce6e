"""Where `initlab sweep` spends its time outside the batched trainer, in seconds per component.

Runs ``initlab sweep`` of the classic e2e workload (``bench/sweep_bench.py --e2e N``: 5
initializers x N/5 seeds of a 2-10-1 ReLU net, 100 epochs) in a fresh process whose library
functions are wrapped by timers, and prints one Markdown table: process start and imports,
spec and grid, store setup, trainer construction (``build_stack``), ``fit``, the diagnostics,
the work after ``fit`` (evaluation, records), the writer thread (rows and commits; it overlaps
the next batch's training, except after the last batch) and the rest. Everything but
construction and ``fit`` is overhead against ``bench/sweep_bench.py``'s trainer-only rate.

    python bench/sweep_overhead.py --n 5000             # diagnostics on and off
    python bench/sweep_overhead.py --n 1000 --diagnostics on
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, threading, time
t_start = float(sys.argv[1])
t_python = time.time()
totals = {}
lock = threading.Lock()

def timed(owner, name, key):
    fn = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with lock:
                totals[key] = totals.get(key, 0.0) + time.perf_counter() - start
    setattr(owner, name, wrapper)

import importlib
cli_main = importlib.import_module("initlab.cli.main")
t_cli = time.time()
import importlib
execute, record, store, sweep_spec = (importlib.import_module(f"initlab.experiments.{m}")
                                      for m in ("execute", "record", "store", "sweep_spec"))
importlib.import_module("initlab.experiments.sweep")
importlib.import_module("initlab.experiments.executors")
from initlab.training import BatchedTrainer
t_lib = time.time()
timed(sweep_spec.SweepSpec, "runs", "grid expansion (spec.runs)")
timed(store.Store, "__init__", "store open")
timed(store.Store, "commit_batch", "writer: commit_batch")
timed(record.RunRecord, "to_dict", "writer: rows (to_dict)")
timed(execute, "build_stack", "trainer construction (build_stack)")
timed(BatchedTrainer, "fit", "trainer fit")
timed(execute, "_diagnose_all", "diagnostics (diagnose_stack)")
for name in ("_records", "summarize"):
    if hasattr(execute, name):
        timed(execute, name, f"records ({name})")
timed(execute, "run_batch", "run_batch (total)")
importlib.import_module("initlab.experiments.sweep").run_batch = execute.run_batch
code = 0
try:
    cli_main.main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code or 0
t_end = time.time()
print(json.dumps({"python": t_python - t_start, "cli import": t_cli - t_python, "library import": t_lib - t_cli,
                  "after imports": t_end - t_lib, "totals": totals, "code": code}))
"""


def spec_text(n: int, diagnostics: bool) -> str:
    sys.path.insert(0, str(HERE))
    from sweep_bench import e2e_spec

    return e2e_spec(n, diagnostics)


def measure(n: int, diagnostics: bool, threads: int) -> dict[str, float]:
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        path, db = Path(tmp) / "e2e.toml", Path(tmp) / "e2e.db"
        path.write_text(spec_text(n, diagnostics))
        start = time.time()
        out = subprocess.run([sys.executable, "-c", CHILD, str(start), "--threads", str(threads), "sweep", str(path),
                              "--store", str(db), "--json"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if out.returncode:
            raise SystemExit(out.stderr)
        wall = time.time() - start
        con = sqlite3.connect(db)
        last, first = con.execute("SELECT MAX(finished_at), MIN(finished_at) FROM runs").fetchone()
        con.close()
    child = json.loads(out.stdout.strip().splitlines()[-1])
    t = child["totals"]
    rows = {"process start (python)": child["python"],
            "imports (cli + library)": child["cli import"] + child["library import"]}
    main_thread = {k: v for k, v in t.items() if not k.startswith(("writer", "run_batch"))}
    rows.update(main_thread)
    inside = t.get("run_batch (total)", 0.0) - sum(
        v for k, v in main_thread.items() if not k.startswith(("grid", "store")))
    rows["run_batch: the rest (data, evaluate, predict, records)"] = inside
    rows["the rest of the main thread (CLI, spec, plan, progress, waiting for the writer)"] = (
        last - start - sum(rows.values()))
    rows.update({k + " (overlapped)": v for k, v in t.items() if k.startswith("writer")})
    rows["to the last commit"] = last - start
    rows["to exit"] = wall
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--diagnostics", choices=["on", "off", "both"], default="both")
    args = parser.parse_args()
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.diagnostics]
    results = {d: measure(args.n, d, args.threads) for d in modes}
    keys = list(dict.fromkeys(k for r in results.values() for k in r))
    print(f"`initlab sweep` of {args.n} classic nets, {args.threads} thread(s): seconds per component\n")
    print("| component | " + " | ".join(f"diagnostics {'on' if d else 'off'}" for d in modes) + " |")
    print("|---|" + "---:|" * len(modes))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{results[d].get(key, 0.0):.2f}" for d in modes) + " |")
    for d in modes:
        r = results[d]
        trainer = r.get("trainer construction (build_stack)", 0.0) + r.get("trainer fit", 0.0)
        print(f"\ndiagnostics {'on' if d else 'off'}: overhead to the last commit = "
              f"{r['to the last commit'] - trainer:.2f} s (trainer {trainer:.2f} s; "
              f"share {trainer / r['to the last commit']:.0%})")


if __name__ == "__main__":
    main()
