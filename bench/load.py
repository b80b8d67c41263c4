"""Load benchmark: many concurrent API clients against one gateway holding many runs.

    uv run python bench/load.py [--runs 200000] [--clients 50] [--subscribers 10]
                                [--seconds 60] [--quick] [--db PATH]

Fills a SQLite database with the synthetic federation (``--runs`` runs; untimed), adds a
Jenkins simulator source, starts ``accord serve`` on it (127.0.0.1, free port) and runs,
for ``--seconds``:

* ``--clients`` API clients, each looping over a mix of reads (runs and jobs pages,
  filtered runs, one run, the overview, the approvals list) and, one call in twenty, an
  action (a trigger of a job at the simulator, through authorization, guardrails and the
  audit trail);
* ``--subscribers`` clients holding the event stream (``/api/v1/events``) open.

Prints one JSON object: p50/p99 latency and count per endpoint, errors (any 5xx, any
transport error, any unexpected status), the tracebacks and failed requests in the
gateway's log, events received by the subscribers, the
gateway's RSS at the start, every twentieth of the run and at the end (with its growth
over the second half: a warm-up levels off, a leak does not), and the machine's load.
``--quick`` (20,000 runs, 20 clients, 4 subscribers, 15 s) finishes in under a minute.
Everything is bounded by ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.testing.jenkins_sim import JenkinsSimulator, SimState, cause_timer
from bench._common import free_port as _free_port
from bench._common import pct as _pct
from bench._common import rss_kib as _rss_kib
from bench._synthetic import open_database, populate
from gateway.store import session_scope
from gateway.store.services.tokens import create_token

ACCORD = Path(sys.executable).parent / "accord"
SIM_JOBS = [f"load/job-{i}" for i in range(5)]


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.events = 0

    def add(self, name: str, seconds: float) -> None:
        self.latency.setdefault(name, []).append(seconds * 1000)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def _client(
    c: httpx.AsyncClient, stats: Stats, deadline: float, seed: int, run_uids: list[str]
) -> None:
    reads: list[tuple[str, str, dict[str, Any]]] = [
        ("GET /api/v1/runs", "/api/v1/runs", {"limit": 100}),
        ("GET /api/v1/runs?state=failed", "/api/v1/runs", {"limit": 50, "state": "failed"}),
        ("GET /api/v1/jobs", "/api/v1/jobs", {"limit": 100}),
        ("GET /api/v1/overview", "/api/v1/overview", {}),
        ("GET /api/v1/approvals", "/api/v1/approvals", {}),
    ]
    i = seed
    while time.monotonic() < deadline:
        i += 1
        if i % 20 == 0:
            name = "POST /api/v1/jobs/{job}/trigger"
            job = SIM_JOBS[i % len(SIM_JOBS)]
            method, path, params = "POST", f"/api/v1/jobs/ci/{job}/trigger", {}
            ok = {200, 202}
        elif i % 7 == 0 and run_uids:
            name = "GET /api/v1/runs/{uid}"
            uid = quote(run_uids[i % len(run_uids)], safe="/")  # Jenkins uids hold '#'
            method, path, params = "GET", f"/api/v1/runs/{uid}", {}
            ok = {200}
        else:
            name, path, params = reads[i % len(reads)]
            method, ok = "GET", {200}
        began = time.monotonic()
        try:
            r = await c.request(method, path, params=params)
        except httpx.HTTPError as exc:
            stats.error(f"{name}: {type(exc).__name__}")
            continue
        stats.add(name, time.monotonic() - began)
        if r.status_code not in ok:
            stats.error(f"{name}: {r.status_code}")


async def _subscriber(c: httpx.AsyncClient, stats: Stats, deadline: float) -> None:
    """Holds the event stream open until the deadline (a quiet stream sends only a
    keep-alive every few seconds: the deadline, not the next line, ends it)."""
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            while True:
                try:
                    async with c.stream("GET", "/api/v1/events", timeout=None) as r:
                        if r.status_code != 200:
                            stats.error(f"GET /api/v1/events: {r.status_code}")
                            await asyncio.sleep(1)
                            continue
                        async for line in r.aiter_lines():
                            if line.startswith("data:"):
                                stats.events += 1
                except httpx.HTTPError as exc:
                    stats.error(f"GET /api/v1/events: {type(exc).__name__}")
                    await asyncio.sleep(1)
    except TimeoutError:
        return


class _RssSampler:
    """The gateway's RSS every ``every`` seconds while the clients run (a thread)."""

    def __init__(self, pid: int, every: float) -> None:
        self.pid, self.every = pid, every
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.samples.append(_rss_kib(self.pid))

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(_rss_kib(self.pid))

    def second_half_growth(self) -> int | None:
        """RSS at the end minus RSS at the middle of the run (KiB)."""
        if len(self.samples) < 2:
            return None
        return self.samples[-1] - self.samples[len(self.samples) // 2]


async def _drive(url: str, token: str, args: argparse.Namespace, run_uids: list[str]) -> Stats:
    stats = Stats()
    deadline = time.monotonic() + args.seconds
    # Idle connections are dropped before the server's 5 s keep-alive ends them, so a
    # request never goes out on a connection the server is closing.
    limits = httpx.Limits(max_connections=args.clients + args.subscribers + 4, keepalive_expiry=3.0)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as c:
        await asyncio.gather(
            *(_client(c, stats, deadline, i * 3, run_uids) for i in range(args.clients)),
            *(_subscriber(c, stats, deadline) for _ in range(args.subscribers)),
            return_exceptions=False,
        )
    return stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=200_000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--subscribers", type=int, default=10)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--db", type=Path, default=None, help="keep (or reuse) the database here")
    args = p.parse_args()
    if args.quick:
        args.runs, args.clients, args.subscribers, args.seconds = 20_000, 20, 4, 15.0
    args.seconds = min(args.seconds, 1800.0)  # bounded whatever is asked

    tmp = Path(tempfile.mkdtemp(prefix="accord-load-"))
    data = tmp / "data"
    data.mkdir()
    db = args.db or data / "accord.db"
    fresh = not db.exists()
    engine, _ = open_database(db, None, tmp)
    began = time.monotonic()
    if fresh:
        populate(engine, runs=args.runs, batch=2000, now=datetime.now(UTC))
    # A token of its own: a reused database (--db) gets no first admin token at start-up.
    with session_scope(engine) as session:
        token = create_token(session, subject="bench-load", role="admin", domain="*").token
    engine.dispose()
    fill_s = time.monotonic() - began

    state = SimState()
    for job in SIM_JOBS:
        state.add_job(job, concurrent=True)
        state.run(job, "SUCCESS", cause=cause_timer())
    sim_token = secrets.token_hex(16)
    sim = JenkinsSimulator(state, tokens={"accord": sim_token}).start()
    config = tmp / "ci.yaml"
    config.write_text(
        f"""apiVersion: accord.dev/v1
kind: Source
metadata: {{name: ci, domain: default}}
spec:
  type: jenkins
  url: {sim.url}
  username: accord
  token: {{env: ACCORD_SECRET_BENCH_JENKINS_TOKEN}}
  triggerWait: 0s
  sync: {{inventoryEvery: 5s, runsEvery: 2s}}
"""
    )
    port = _free_port()
    env = {
        **os.environ,
        "ACCORD_DATA_DIR": str(data),
        "ACCORD_DATABASE_URL": f"sqlite:///{db}",
        "ACCORD_SECRET_BENCH_JENKINS_TOKEN": sim_token,
        "ACCORD_LOG_LEVEL": "warning",
    }
    log_path = tmp / "gateway.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(ACCORD), "serve", "--host", "127.0.0.1", "--port", str(port), "-f", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {token}"}
        # The simulator's jobs are known before the clients start.
        while time.monotonic() < deadline:
            r = httpx.get(f"{url}/api/v1/jobs/ci/{SIM_JOBS[0]}", headers=headers, timeout=10)
            if r.status_code == 200:
                break
            time.sleep(0.5)
        page = httpx.get(f"{url}/api/v1/runs", params={"limit": 200}, headers=headers, timeout=60)
        run_uids = [r["uid"] for r in page.json()["items"]]
        rss_start = _rss_kib(proc.pid)
        sampler = _RssSampler(proc.pid, every=max(1.0, args.seconds / 20))
        sampler.start()
        try:
            stats = asyncio.run(_drive(url, token, args, run_uids))
        finally:
            sampler.stop()
        rss_end = _rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        sim.stop()
        log.close()
    # The gateway's own account of errors (warnings and up are logged): a transport error
    # on the client side with no traceback here is the client's or the machine's.
    logged = log_path.read_text(errors="replace")
    shutil.rmtree(tmp, ignore_errors=True)  # the database too, unless --db put it elsewhere
    endpoints = {
        name: {
            "count": len(v),
            "p50_ms": round(_pct(v, 0.5), 1),
            "p99_ms": round(_pct(v, 0.99), 1),
        }
        for name, v in sorted(stats.latency.items())
    }
    print(
        json.dumps(
            {
                "runs": args.runs,
                "clients": args.clients,
                "subscribers": args.subscribers,
                "seconds": args.seconds,
                "fill_seconds": round(fill_s, 1),
                "requests": sum(len(v) for v in stats.latency.values()),
                "endpoints": endpoints,
                "errors": stats.errors,
                "server_tracebacks": logged.count("Traceback"),
                "server_request_exceptions": logged.count("Exception in ASGI application"),
                "events_received": stats.events,
                "rss_kib_start": rss_start,
                "rss_kib_end": rss_end,
                # Sampled over the run: memory that grows without end keeps growing in
                # the second half; a warm-up (page caches, pools) levels off in the first.
                "rss_kib_samples": sampler.samples,
                "rss_kib_second_half_growth": sampler.second_half_growth(),
                "load_avg": os.getloadavg(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
