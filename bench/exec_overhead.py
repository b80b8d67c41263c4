"""What ``accord exec`` adds to a cron job: ``accord exec -- true`` against ``true``.

Runs both alternately (N times each, bounded in count and time), with the spool in a
temporary directory, and prints JSON: runs, median and p90 of the overhead in ms.

    uv run python bench/exec_overhead.py [--runs 50] [--max-seconds 120]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _accord() -> str:
    candidate = Path(sys.executable).parent / "accord"
    found = str(candidate) if candidate.exists() else shutil.which("accord")
    if not found:
        raise SystemExit("the accord console script is not installed (run uv sync)")
    return found


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    true = shutil.which("true") or "/bin/true"
    accord = _accord()
    spool = tempfile.mkdtemp(prefix="accord-bench-spool-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_GATEWAY")}
    env["ACCORD_SPOOL_DIR"] = spool
    deadline = time.monotonic() + args.max_seconds
    overheads: list[float] = []
    try:
        _time([accord, "exec", "--", true], env)  # warm the page cache
        for _ in range(max(1, args.runs)):
            if time.monotonic() > deadline:
                break
            plain = _time([true], env)
            wrapped = _time([accord, "exec", "--job", "bench", "--", true], env)
            overheads.append((wrapped - plain) * 1000)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    print(
        json.dumps(
            {
                "runs": len(overheads),
                "median_overhead_ms": round(statistics.median(overheads), 2),
                "p90_overhead_ms": round(_quantile(overheads, 0.9), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
