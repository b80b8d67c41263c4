"""Read-path benchmark: list pages and the streamed export through the real HTTP API.

    uv run python bench/read_path.py [--runs 1000000] [--quick] [--db PATH]
                                     [--database-url URL] [--requests 200]

Fills a database with the synthetic federation (``bench/_synthetic.py``; untimed; or
reuses ``--db`` made by ``bench/ingest.py --db``), starts the gateway in its own process
(uvicorn on 127.0.0.1, sync off) and asks it over HTTP, with one keep-alive client:

- ``GET /api/v1/runs?limit=100`` and ``limit=1000`` as an admin (the newest runs of the
  whole estate) and as a domain operator ("failed in the last 24 h in my domain"),
  uncompressed (``Accept-Encoding: identity``) → p50 / p99 ms; the 1,000-run page also
  gzip-compressed, and revalidated with its ETag (a 304);
- ``GET /api/v1/runs/export`` (NDJSON) of every run → runs/s from the store to the
  socket, and the server's peak resident memory before and after (constant memory).

``--quick``: 20,000 runs and fewer requests (under two minutes). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _synthetic as syn
import httpx
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from gateway.store import session_scope
from gateway.store.services.tokens import create_token
from gateway.store.tables import Run

SERVER = """
import sys, uvicorn
from gateway.api.app import create_app
from gateway.settings import Settings
app = create_app(Settings(), start_sync=False)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
"""


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def tokens(engine: Engine) -> dict[str, str]:
    with session_scope(engine) as s:
        return {
            "admin": create_token(s, subject="bench-read-admin", role="admin", domain="*").token,
            "operator": create_token(
                s, subject="bench-read-op", role="operator", domain="data"
            ).token,
        }


def start_server(url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "ACCORD_DATABASE_URL": url,
        "ACCORD_DATA_DIR": str(data_dir),
        "ACCORD_SYNC_ENABLED": "false",
    }
    log = (data_dir.parent / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("the gateway did not start")
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the gateway did not answer /healthz within 120 s")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, limit: float = 90.0) -> float:
    """Wait (at most ``limit`` seconds) until the gateway's start-up work (missed-run
    detection over the whole store, the first forecast, ...) is done: its process used
    under 5 % of a core for a second. Returns the seconds waited. Timing requests while
    that work runs would measure the two together."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        if cpu_seconds(pid) - before < 0.05:
            break
    return round(time.monotonic() - t0, 1)


def time_pages(
    client: httpx.Client,
    token: str,
    params: dict[str, Any],
    count: int,
    *,
    encoding: str = "identity",
    want: int | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": encoding}
    samples = []
    size = 0
    items = 0
    for i in range(count + 5):
        t0 = time.perf_counter()
        resp = client.get("/api/v1/runs", params=params, headers=headers)
        body = resp.content  # read (and, for gzip, decompressed) inside the timing
        elapsed = time.perf_counter() - t0
        if resp.status_code != 200:
            raise SystemExit(f"GET /api/v1/runs answered {resp.status_code}: {resp.text[:300]}")
        if i >= 5:
            samples.append(elapsed * 1000)
        size = int(resp.headers.get("content-length", len(body)))
    items = len(json.loads(body)["items"])
    if want is not None and items != want:
        raise SystemExit(f"expected {want} runs in a page, got {items}")
    return {
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "runs": items,
        "bytes": size,
    }


def time_304(client: httpx.Client, token: str, params: dict[str, Any], count: int) -> float:
    """Revalidate a page with its ETag: the answer is a 304 while nothing changed (the
    gateway's own background work may change the newest runs: then take the new tag)."""
    auth = {"Authorization": f"Bearer {token}"}
    etag = client.get("/api/v1/runs", params=params, headers=auth).headers["etag"]
    samples: list[float] = []
    for _ in range(count * 3):
        t0 = time.perf_counter()
        resp = client.get("/api/v1/runs", params=params, headers={**auth, "If-None-Match": etag})
        elapsed = (time.perf_counter() - t0) * 1000
        if resp.status_code == 304:
            samples.append(elapsed)
            if len(samples) == count:
                break
        elif resp.status_code == 200:
            etag = resp.headers["etag"]
        else:
            raise SystemExit(f"revalidation answered {resp.status_code}")
    if not samples:
        raise SystemExit("no revalidation answered 304")
    return round(percentile(samples, 50), 2)


def count_runs(client: httpx.Client, token: str) -> int:
    resp = client.get(
        "/api/v1/runs",
        params={"limit": 1, "total": "true"},
        headers={"Authorization": f"Bearer {token}"},
    )
    resp.raise_for_status()
    return int(resp.json()["total"])


def time_export(client: httpx.Client, token: str) -> dict[str, Any]:
    """Every run, streamed; the count must lie between the store's before and after
    (the gateway's own background work may add runs meanwhile, e.g. missed ones)."""
    before = count_runs(client, token)
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
    lines = 0
    size = 0
    t0 = time.perf_counter()
    with client.stream("GET", "/api/v1/runs/export", headers=headers, timeout=None) as resp:
        if resp.status_code != 200:
            raise SystemExit(f"export answered {resp.status_code}")
        for chunk in resp.iter_raw(1 << 20):
            lines += chunk.count(b"\n")
            size += len(chunk)
    elapsed = time.perf_counter() - t0
    after = count_runs(client, token)
    if not before <= lines <= after:
        raise SystemExit(f"the export gave {lines} runs, the store held {before} to {after}")
    return {"runs": lines, "seconds": round(elapsed, 2), "runs_per_s": round(lines / elapsed),
            "mb": round(size / 1e6, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 runs, fewer requests")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per question")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--db", type=Path, help="reuse this SQLite file made by ingest.py")
    parser.add_argument("--database-url", help="use this database (filled first if empty)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, 20_000)
        args.requests = min(args.requests, 40)
    if args.db is not None and args.database_url:
        parser.error("give --db or --database-url, not both")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp:
        engine, backend = syn.open_database(args.db, args.database_url, Path(tmp))
        url = args.database_url or f"sqlite:///{args.db or Path(tmp) / 'accord.db'}"
        with Session(engine) as session:
            stored = session.execute(select(func.count(col(Run.id)))).scalar_one()
            anchor = syn.anchor_of(session)
        if stored == 0:
            anchor = datetime.now(UTC).replace(microsecond=0)
            syn.populate(engine, runs=args.runs, batch=args.batch, now=anchor)
            stored = args.runs
        now = anchor or datetime.now(UTC)
        toks = tokens(engine)
        engine.dispose()
        proc, base = start_server(url, Path(tmp) / "data")
        settled = settle(proc.pid)
        try:
            with httpx.Client(base_url=base, timeout=120) as client:
                n = args.requests
                since = (now - timedelta(hours=24)).isoformat()
                page100 = time_pages(client, toks["admin"], {"limit": 100}, n, want=100)
                page1000 = time_pages(
                    client, toks["admin"], {"limit": 1000}, max(10, n // 2), want=1000
                )
                gz1000 = time_pages(
                    client, toks["admin"], {"limit": 1000}, max(10, n // 4), encoding="gzip"
                )
                failed = {"domain": "data", "state": "failed", "since": since, "limit": 100}
                op100 = time_pages(client, toks["operator"], failed, n)
                reval = time_304(client, toks["admin"], {"limit": 1000}, n)
                rss_before = peak_rss_mb(proc.pid)
                exported = time_export(client, toks["admin"])
                rss_after = peak_rss_mb(proc.pid)
        except SystemExit:
            sys.stderr.write((Path(tmp) / "gateway.log").read_text(errors="replace")[-4000:])
            raise
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            errors = (Path(tmp) / "gateway.log").read_text(errors="replace").count("Traceback")
    out = {
        "runs": stored,
        "backend": backend,
        "settled_after_s": settled,
        "requests": args.requests,
        "page100_p50_ms": page100["p50_ms"],
        "page100_p99_ms": page100["p99_ms"],
        "page1000_p50_ms": page1000["p50_ms"],
        "page1000_p99_ms": page1000["p99_ms"],
        "page1000_bytes": page1000["bytes"],
        "page1000_gzip_p50_ms": gz1000["p50_ms"],
        "page1000_gzip_bytes": gz1000["bytes"],
        "page1000_304_p50_ms": reval,
        "operator_failed_24h_page100_p50_ms": op100["p50_ms"],
        "operator_failed_24h_page100_p99_ms": op100["p99_ms"],
        "operator_failed_24h_runs": op100["runs"],
        "export_runs_per_s": exported["runs_per_s"],
        "export_seconds": exported["seconds"],
        "export_mb": exported["mb"],
        "server_peak_rss_mb_before_export": rss_before,
        "server_peak_rss_mb_after_export": rss_after,
        "goal_page100_p50_ms": 5,
        "goal_page1000_p50_ms": 25,
        "goal_export_runs_per_s": 200_000,
        "server_tracebacks": errors,
        "seconds": round(time.perf_counter() - started, 1),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
