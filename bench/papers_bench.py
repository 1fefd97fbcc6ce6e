"""How long each re-run paper takes with the batched trainer's fused kernel and without it (issue 25.5).

Each ``initlab paper NAME`` runs in a fresh process, from process start to its report, once with
the fused C kernel (``INITLAB_FUSED=1``) and once on the torch path (``INITLAB_FUSED=0``), one
after the other, so both see the same machine. The claims' verdicts must not change (printed).
Not a test: the seconds depend on the machine and its load.

    python bench/papers_bench.py            # every paper, --quick
    python bench/papers_bench.py --full     # the full grids (many minutes)
    python bench/papers_bench.py he2015 saxe2014
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

from initlab import papers


def run(name: str, fused: bool, quick: bool) -> tuple[float, list[str]]:
    """(seconds, the claims' verdicts) of one ``initlab paper`` run."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "initlab", "paper", name, "--out", out, *(["--quick"] if quick else [])]
        env = {**os.environ, "INITLAB_FUSED": "1" if fused else "0"}
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - start
        results = json.loads((Path(out) / "results.json").read_text())
    verdicts = [str(c.get("status")) for c in results.get("claims", [])]
    return seconds, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="papers (default: all)")
    parser.add_argument("--full", action="store_true", help="the full grids instead of --quick")
    args = parser.parse_args()
    names = args.names or papers.names()
    print(f"initlab paper NAME{'' if args.full else ' --quick'}, from process start to the report\n")
    print("| paper | fused kernel | torch path | torch / fused | same verdicts |")
    print("|---|---:|---:|---:|---|")
    for name in names:
        fused_s, fused_v = run(name, True, not args.full)
        torch_s, torch_v = run(name, False, not args.full)
        print(f"| {name} | {fused_s:.1f} s | {torch_s:.1f} s | {torch_s / fused_s:.2f}x | {fused_v == torch_v} |", flush=True)


if __name__ == "__main__":
    main()
