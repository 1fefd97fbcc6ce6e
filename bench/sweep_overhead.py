"""Where `initlab sweep` spends its time outside the batched trainer, in seconds per component.

Runs ``initlab sweep`` of the classic e2e workload (``bench/sweep_bench.py --e2e N``: 5
initializers x N/5 seeds of a 2-10-1 ReLU net, 100 epochs) in a fresh process whose library
functions are wrapped by timers, and prints one Markdown table: process start and imports,
spec and grid, store setup, trainer construction (``build_stack``), ``fit``, the diagnostics,
the work after ``fit`` (evaluation, records), the writer thread (rows and commits; it overlaps
the next batch's training, except after the last batch) and the rest. Everything but
construction and ``fit`` is overhead against ``bench/sweep_bench.py``'s trainer-only rate.

    python bench/sweep_overhead.py --n 5000             # diagnostics on and off
    python bench/sweep_overhead.py --n 1000 --diagnostics on --cpu  # CPU seconds: steadier on a shared box
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
CPU = sys.argv.pop(2) == "cpu"
t_python = time.time()
c_python = time.process_time()
totals = {}
lock = threading.Lock()

def timed(owner, name, key):
    fn = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.thread_time() if CPU else time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            with lock:
                totals[key] = totals.get(key, 0.0) + (time.thread_time() if CPU else time.perf_counter()) - start
    setattr(owner, name, wrapper)

import importlib
cli_main = importlib.import_module("initlab.cli.main")
t_cli = time.time()
c_cli = time.process_time()
import importlib
execute, record, store, sweep_spec = (importlib.import_module(f"initlab.experiments.{m}")
                                      for m in ("execute", "record", "store", "sweep_spec"))
importlib.import_module("initlab.experiments.sweep")
importlib.import_module("initlab.experiments.executors")
from initlab.training import BatchedTrainer
t_lib = time.time()
c_lib = time.process_time()
timed(sweep_spec.SweepSpec, "runs", "grid expansion (spec.runs)")
timed(store.Store, "__init__", "store open")
timed(store.Store, "commit_batch", "writer: commit_batch")
timed(record.RunRecord, "to_dict", "writer: rows (to_dict)")
timed(execute, "build_stack", "trainer construction (build_stack)")
timed(BatchedTrainer, "fit", "trainer fit")
timed(execute, "diagnose_trainer", "diagnostics (diagnose_stack)")
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
if CPU:
    t_start, t_python, t_cli, t_lib = -c_python, 0.0, c_cli - c_python, c_lib - c_python
print(json.dumps({"python": t_python - t_start, "cli import": t_cli - t_python, "library import": t_lib - t_cli,
                  "after imports": t_end - t_lib, "totals": totals, "code": code}))
"""


def spec_text(n: int, diagnostics: bool) -> str:
    sys.path.insert(0, str(HERE))
    from sweep_bench import e2e_spec

    return e2e_spec(n, diagnostics)


def measure(n: int, diagnostics: bool, threads: int, cpu: bool) -> dict[str, float]:
    """Seconds per component: wall-clock, or (``cpu``) CPU seconds of the thread that ran it
    (steadier on a shared machine; the rest is then the process's CPU time not in a component)."""
    import resource
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        path, db = Path(tmp) / "e2e.toml", Path(tmp) / "e2e.db"
        path.write_text(spec_text(n, diagnostics))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.time()
        out = subprocess.run([sys.executable, "-c", CHILD, str(start), "cpu" if cpu else "wall", "--threads",
                              str(threads), "sweep", str(path), "--store", str(db), "--json"],
                             capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if out.returncode:
            raise SystemExit(out.stderr)
        wall = time.time() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        con = sqlite3.connect(db)
        last = con.execute("SELECT MAX(finished_at) FROM runs").fetchone()[0]
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
    writer = {k + (" (its own thread)" if cpu else " (overlapped)"): v for k, v in t.items() if k.startswith("writer")}
    if cpu:
        total = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        rest = total - sum(rows.values()) - sum(writer.values())
        rows["the rest (CLI, spec, plan, progress, store close, exit)"] = rest
        rows.update(writer)
        rows["process CPU time, to exit"] = total
    else:
        rows["the rest of the main thread (CLI, spec, plan, progress, waiting for the writer)"] = (
            last - start - sum(rows.values()))
        rows.update(writer)
    rows["wall: to the last commit"] = last - start
    rows["wall: to exit"] = wall
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--diagnostics", choices=["on", "off", "both"], default="both")
    parser.add_argument("--cpu", action="store_true", help="CPU seconds per component (steadier on a shared machine)")
    args = parser.parse_args()
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.diagnostics]
    results = {d: measure(args.n, d, args.threads, args.cpu) for d in modes}
    keys = list(dict.fromkeys(k for r in results.values() for k in r))
    unit = "CPU seconds of the thread that ran it" if args.cpu else "seconds (wall)"
    print(f"`initlab sweep` of {args.n} classic nets, {args.threads} thread(s): {unit} per component\n")
    print("| component | " + " | ".join(f"diagnostics {'on' if d else 'off'}" for d in modes) + " |")
    print("|---|" + "---:|" * len(modes))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{results[d].get(key, 0.0):.2f}" for d in modes) + " |")
    for d in modes:
        r = results[d]
        trainer = r.get("trainer construction (build_stack)", 0.0) + r.get("trainer fit", 0.0)
        total = r["process CPU time, to exit"] if args.cpu else r["wall: to the last commit"]
        print(f"\ndiagnostics {'on' if d else 'off'}: overhead = {total - trainer:.2f} s (trainer {trainer:.2f} s; "
              f"share {trainer / total:.0%}) of the {'process CPU time' if args.cpu else 'time to the last commit'}")


if __name__ == "__main__":
    main()
