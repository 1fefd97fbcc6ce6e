"""How fast the browser lab streams (issue #20.7): first frame, updates per second, and what the
per-neuron pictures cost. Not a test: the figures depend on the machine and its load.

Measured over HTTP against a real server (uvicorn in a thread, as ``initlab.lab()`` runs it),
reading the server-sent events as the page does:

- first frame: from sending ``POST /api/train`` to the first ``progress`` event (the initial
  weights drawn), in ms; the page draws it on arrival;
- single run: progress frames per second of the lab's default run (paced to
  ``LIMITS.min_run_seconds``, throttled to ``LIMITS.events_per_second``); targets: >= 20/s;
- compare-4: the same for 4 initializers side by side; target >= 10/s;
- the same single run with the neuron pictures switched off, to show what they cost;
- ``--unpaced``: the same runs with pacing off (``create_app(min_run_seconds=0)``), so the
  seconds are the work's own (training, frames); and the in-page sweep (``POST /api/sweep``:
  4 initializers x 10 seeds in one stack), seconds to its answer. Run it with
  ``INITLAB_FUSED=0`` beside a default run to see what the trainer's fused kernel buys.

    python bench/lab_bench.py                    # 3 repeats of each
    python bench/lab_bench.py --repeats 5
    python bench/lab_bench.py --unpaced          # the work's own time, and the in-page sweep
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

from initlab.server import LIMITS, background, create_app, runs

SINGLE = {"weight_init": {"name": "he_normal"}}  # the lab's defaults: 200 points, 2-10-1, 200 epochs
COMPARE = {"inits": [{"name": n} for n in ("zeros", "normal", "he_normal", "glorot_uniform")]}


def one_run(http: httpx.Client, path: str, body: dict) -> tuple[float, float, int]:
    """(ms to the first progress frame, seconds in all, progress frames) of one streamed run."""
    start = time.perf_counter()
    first, frames = None, 0
    with http.stream("POST", path, json=body) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if event["type"] == "progress":
                frames += 1
                if first is None:
                    first = (time.perf_counter() - start) * 1000
            elif event["type"] == "error":
                raise RuntimeError(event["detail"])
    return first or float("nan"), time.perf_counter() - start, frames


def measure(label: str, path: str, body: dict, repeats: int, pace: float | None = None) -> dict:
    app = create_app() if pace is None else create_app(min_run_seconds=pace)
    with background(app) as url, httpx.Client(base_url=url, timeout=120) as http:
        one_run(http, path, body)  # warm-up: imports, first allocation
        rows = [one_run(http, path, body) for _ in range(repeats)]
    first = statistics.median(r[0] for r in rows)
    rate = statistics.median(r[2] / r[1] for r in rows)
    print(f"| {label} | {first:.0f} | {statistics.median(r[1] for r in rows):.2f} | "
          f"{statistics.median(r[2] for r in rows):.0f} | {rate:.1f} |", flush=True)
    return {"label": label, "first_frame_ms": first, "updates_per_s": rate}


def sweep_seconds(repeats: int) -> float:
    """Median seconds of the in-page sweep (4 initializers x 10 seeds, one stack) to its answer."""
    with background(create_app()) as url, httpx.Client(base_url=url, timeout=300) as http:
        times = []
        for _ in range(repeats + 1):  # the first warms up
            start = time.perf_counter()
            reply = http.post("/api/sweep", json={**COMPARE, "seeds": 10})
            reply.raise_for_status()
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--unpaced", action="store_true", help="pacing off, and the in-page sweep")
    args = parser.parse_args()
    if args.unpaced:
        print(f"pacing off, throttle {LIMITS.events_per_second:g} frames/s; medians of {args.repeats} runs\n")
        print("| run | first frame (ms) | seconds | frames | updates/s |")
        print("|---|---:|---:|---:|---:|")
        measure("single (lab defaults), unpaced", "/api/train", SINGLE, args.repeats, pace=0.0)
        measure("compare-4, unpaced", "/api/compare", COMPARE, args.repeats, pace=0.0)
        print(f"\nin-page sweep, 4 inits x 10 seeds (one stack): {sweep_seconds(args.repeats):.2f} s to the answer")
        return
    print(f"throttle {LIMITS.events_per_second:g} frames/s, pacing {LIMITS.min_run_seconds:g} s; "
          f"medians of {args.repeats} runs\n")
    print("| run | first frame (ms) | seconds | frames | updates/s |")
    print("|---|---:|---:|---:|---:|")
    measure("single (lab defaults)", "/api/train", SINGLE, args.repeats)
    measure("compare-4", "/api/compare", COMPARE, args.repeats)
    original = runs.neurons
    runs.neurons = lambda model, data: []  # the pictures off: what do they cost?
    try:
        measure("single, no neuron pictures", "/api/train", SINGLE, args.repeats)
    finally:
        runs.neurons = original


if __name__ == "__main__":
    main()
