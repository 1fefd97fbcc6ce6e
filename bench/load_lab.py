"""Load on the browser lab (issue #21): concurrent training streams and previews against
``initlab serve`` on 127.0.0.1, while a small endpoint is timed; the server's memory sampled.

What it measures (printed as a table, and as JSON with ``--json``):

- ``GET /api/options`` latency, p50 and p95, idle and then under load (one request every
  ``--probe-interval`` seconds from one client while the load runs);
- the answers to ``--streams`` concurrent ``POST /api/train`` streams and ``--previews``
  concurrent ``POST /api/preview`` requests (status codes: the lab's slot limits answer 429/503);
- the server process's resident memory (RSS), before, peak during, and after the load.

Bounded: fixed counts, small runs (``--epochs``), and an overall ``--timeout``; the server is a
child process stopped at the end. Timings depend on the machine and its load: they are measured
here, never asserted in the tests.

    python bench/load_lab.py                       # 50 streams + 50 previews
    python bench/load_lab.py --streams 10 --previews 10 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter

import httpx
import psutil


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def _rss_mib(proc: psutil.Process) -> float:
    """Resident memory of the server and its children (MiB)."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


async def _probe(client: httpx.AsyncClient, interval: float, stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        response = await client.get("/api/options")
        response.raise_for_status()
        out.append(time.perf_counter() - start)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass


async def _stream(client: httpx.AsyncClient, body: dict) -> tuple[int, int]:
    """(status, events received) of one training stream read to its end."""
    events = 0
    async with client.stream("POST", "/api/train", json=body) as response:
        async for line in response.aiter_lines():
            events += line.startswith("data: ")
    return response.status_code, events


async def _preview(client: httpx.AsyncClient, body: dict) -> int:
    return (await client.post("/api/preview", json=body)).status_code


async def _sample_rss(proc: psutil.Process, stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        out.append(_rss_mib(proc))
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except asyncio.TimeoutError:
            pass


async def _load(url: str, proc: psutil.Process, args: argparse.Namespace) -> dict:
    limits = httpx.Limits(max_connections=args.streams + args.previews + 10)
    timeout = httpx.Timeout(args.timeout)
    body = {"epochs": args.epochs, "n_samples": 200, "hidden": [10, 10]}
    # Requests come from --clients loopback source addresses (127.0.0.2, ...): the lab limits runs per client host.
    clients = [httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout,
                                 transport=httpx.AsyncHTTPTransport(local_address=f"127.0.0.{i + 2}"))
               for i in range(args.clients)]
    async with httpx.AsyncClient(base_url=url, timeout=timeout) as prober:
        idle: list[float] = []
        stop_idle = asyncio.Event()
        task = asyncio.create_task(_probe(prober, args.probe_interval, stop_idle, idle))
        await asyncio.sleep(args.probe_interval * 40)
        stop_idle.set()
        await task
        rss_before = _rss_mib(proc)

        loaded: list[float] = []
        rss: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.create_task(_probe(prober, args.probe_interval, stop, loaded))
        sampler = asyncio.create_task(_sample_rss(proc, stop, rss))
        start = time.perf_counter()
        work = ([_stream(clients[i % len(clients)], body) for i in range(args.streams)]
                + [_preview(clients[i % len(clients)], body) for i in range(args.previews)])
        try:
            results = await asyncio.wait_for(asyncio.gather(*work, return_exceptions=True), args.timeout)
        finally:
            took = time.perf_counter() - start
            stop.set()
            await asyncio.gather(probe, sampler)
            for client in clients:
                await client.aclose()
    streams, previews = results[:args.streams], results[args.streams:]
    return {
        "streams": args.streams, "previews": args.previews, "clients": args.clients, "epochs": args.epochs,
        "load_seconds": took,
        "stream_status": dict(Counter(r[0] if isinstance(r, tuple) else type(r).__name__ for r in streams)),
        "stream_events_mean": statistics.fmean([r[1] for r in streams if isinstance(r, tuple) and r[0] == 200] or [0]),
        "preview_status": dict(Counter(r if isinstance(r, int) else type(r).__name__ for r in previews)),
        "options_idle_ms": {"n": len(idle), "p50": 1e3 * _percentile(idle, 0.5), "p95": 1e3 * _percentile(idle, 0.95)},
        "options_loaded_ms": {"n": len(loaded), "p50": 1e3 * _percentile(loaded, 0.5),
                              "p95": 1e3 * _percentile(loaded, 0.95), "max": 1e3 * max(loaded, default=float("nan"))},
        "rss_mib": {"before": rss_before, "peak": max(rss, default=rss_before), "after": _rss_mib(proc)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--previews", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--clients", type=int, default=10, help="loopback source addresses the requests come from")
    parser.add_argument("--probe-interval", type=float, default=0.05, help="seconds between /api/options probes")
    parser.add_argument("--timeout", type=float, default=240.0, help="the most the load may take (seconds)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "initlab", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/api/options", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the lab did not start") from None
                time.sleep(0.2)
        report = asyncio.run(_load(url, psutil.Process(server.pid), args))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    report["cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    idle, loaded, rss = report["options_idle_ms"], report["options_loaded_ms"], report["rss_mib"]
    print(f"lab under load: {args.streams} streams (POST /api/train, {args.epochs} epochs) + {args.previews} previews "
          f"from {args.clients} client addresses, {report['cpus']} CPUs, {report['load_seconds']:.1f} s")
    print(f"  streams:  {report['stream_status']}  (events per 200 stream: {report['stream_events_mean']:.0f})")
    print(f"  previews: {report['preview_status']}")
    print(f"  GET /api/options: idle p50 {idle['p50']:.1f} ms, p95 {idle['p95']:.1f} ms ({idle['n']} probes); "
          f"under load p50 {loaded['p50']:.1f} ms, p95 {loaded['p95']:.1f} ms, max {loaded['max']:.0f} ms "
          f"({loaded['n']} probes)")
    print(f"  server RSS: {rss['before']:.0f} MiB before, {rss['peak']:.0f} MiB peak, {rss['after']:.0f} MiB after")


if __name__ == "__main__":
    main()
