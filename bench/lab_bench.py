"""How fast the browser lab streams: progress frames per second of a run, paced and unpaced.

The lab paces a short run to ``LIMITS.min_run_seconds`` so that the view animates, and throttles
progress frames to ``LIMITS.events_per_second``. Whether a machine reaches that rate depends on
the machine and its load, so it is measured here rather than asserted in the tests (which check
only what holds anywhere: several frames arrive, never more than the throttle allows).

    python bench/lab_bench.py                    # the lab's default quick run, 3 repeats
    python bench/lab_bench.py --epochs 300 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import time

from fastapi.testclient import TestClient

from initlab.server import LIMITS, create_app


def one_run(client: TestClient, spec: dict) -> tuple[float, int]:
    """(seconds, full progress frames) of one ``/api/train`` stream."""
    start = time.perf_counter()
    body = client.post("/api/train", json=spec).text
    took = time.perf_counter() - start
    events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    frames = sum(1 for e in events if e["type"] == "progress" and not e.get("partial"))
    return took, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--n-samples", type=int, default=200)
    parser.add_argument("--hidden", type=int, nargs="+", default=[10])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    spec = {"epochs": args.epochs, "n_samples": args.n_samples, "hidden": args.hidden}
    print(f"lab run: {spec}; throttle {LIMITS.events_per_second:g} frames/s, pacing "
          f"{LIMITS.min_run_seconds:g} s\n")
    print("| pacing | run | seconds | frames | frames/s |")
    print("|---|---:|---:|---:|---:|")
    for pace in (LIMITS.min_run_seconds, 0.0):
        with TestClient(create_app(min_run_seconds=pace)) as client:
            for i in range(args.repeats):
                took, frames = one_run(client, spec)
                print(f"| {pace:g} s | {i + 1} | {took:.2f} | {frames} | {frames / took:.1f} |", flush=True)


if __name__ == "__main__":
    main()
