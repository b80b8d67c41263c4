"""Scale-out: sources synced per interval by 1 and by 3 gateway replicas, and failover.

Starts a throwaway PostgreSQL (``initdb`` on 127.0.0.1, or ``--database-url`` to an
empty database you own), the Jenkins simulator with ``--latency`` seconds per answer (so
that a sync pass is I/O-bound, as against a real controller), ``--sources`` Jenkins
sources on it, and then ``accord serve`` replicas with ``ACCORD_SYNC_CONCURRENCY`` =
``--cap`` (the per-replica cap on passes at once). For 1 and for 3 replicas it counts
the sync passes completed in ``--window`` seconds (``accord_sync_passes_total`` of each
replica) and reports them per runs interval. Then it SIGKILLs one of the 3 replicas and
measures how long until every source it held was synced by another one. With the
default sizes the replicas are saturated (more sources than the cap lets them sync per
interval, which is what the throughput figures need); a rescued source's first pass goes
before the survivors' own waiting passes, but the rescued sources still share the
survivors' capped slots, so the failover figure includes a few passes after the
hand-over (``failover_leases_s``); ``--cap 0`` measures the hand-over alone (see
docs/benchmarks.md).

Prints one JSON object, always, within ``--deadline`` seconds: when something fails (a
replica that does not start, PostgreSQL, the deadline) the object has an ``error`` with
the reason (and the tail of the failing replica's log) beside the figures measured so far,
and the exit status is 1. Every process it started is stopped either way. ``--quick``
uses small sizes (about two minutes on an idle machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from adapters.testing.jenkins_sim import JenkinsSimulator
from adapters.testing.jenkins_sim.state import SimState
from gateway.config import apply_plan, load_documents, plan
from gateway.store import create_db_engine, session_scope, upgrade

TOKEN = uuid.uuid4().hex


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


class Report:
    """Prints the result once, from the main thread or from the deadline's watchdog."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        self.lock = threading.Lock()
        self.sent = False

    def send(self) -> bool:
        with self.lock:
            if self.sent:
                return False
            self.sent = True
        self.result["load_after"] = _load()
        print(json.dumps(self.result), flush=True)
        if "error" in self.result:
            print(f"bench/scale.py: {self.result['error']}", file=sys.stderr, flush=True)
        return True


def _on_sigterm(signum: int, frame: Any) -> None:
    raise BenchError("stopped by SIGTERM")


def _watchdog(
    seconds: float, report: Report, stop_pg: list[str], dirs: list[Path]
) -> threading.Timer:
    """At the deadline, whatever the main thread is doing (waiting on a replica, the
    database, a stuck clean-up): kill what was started, print the result with the
    reason, and exit with status 1."""

    def fire() -> None:
        if report.sent:
            return
        report.result.setdefault(
            "error",
            f"no result within {seconds:g} s (--deadline); the machine may be overloaded",
        )
        for r in list(Replica.running):
            r.proc.kill()
        if stop_pg:
            subprocess.run(stop_pg, check=False, capture_output=True, timeout=30)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        if report.send():
            os._exit(1)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def _load() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return list(os.getloadavg())


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _postgres(tmp: Path) -> tuple[str, list[str]]:
    found = shutil.which("initdb")
    bindir = Path(found).resolve().parent if found else None
    if bindir is None:
        cands = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
        bindir = cands[0] if cands else None
    if bindir is None:
        raise BenchError("PostgreSQL server binaries not found; pass --database-url")
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if run_as:
        shutil.chown(tmp, "postgres")
    data = tmp / "data"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "accord", "-A", "trust", "--no-sync"]
    done = subprocess.run([*run_as, *initdb], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"initdb failed: {done.stderr.strip()[-500:]}")
    ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"), "-w", "-t", "60"]
    for _attempt in range(3):  # the port was free when picked; another process may take it
        port = _port()
        opts = f"-h 127.0.0.1 -p {port} -k {tmp} -F -c max_connections=300"
        done = subprocess.run(
            [*run_as, *ctl, "-o", opts, "start"], capture_output=True, text=True, timeout=120
        )
        if done.returncode == 0:
            stop = [*run_as, *ctl, "-m", "immediate", "stop"]
            return f"postgresql+psycopg://accord@127.0.0.1:{port}/postgres", stop
    log = (tmp / "log").read_text(errors="replace") if (tmp / "log").exists() else ""
    raise BenchError(f"PostgreSQL did not start: {done.stderr.strip()[-300:]} {log[-500:]}")


def _fresh(server: str) -> str:
    name = "scale_" + uuid.uuid4().hex[:8]
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.rsplit("/", 1)[0] + "/" + name


def _sources(n: int, url: str, every: float) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "accord.dev/v1",
            "kind": "Source",
            "metadata": {"name": f"s{i:03d}", "domain": "ci"},
            "spec": {
                "type": "jenkins",
                "url": url,
                "username": "accord",
                "token": {"env": "ACCORD_SECRET_BENCH_JENKINS"},
                "stages": False,
                "sync": {"runsEvery": f"{every:g}s", "inventoryEvery": "1h", "timeout": "60s"},
            },
        }
        for i in range(n)
    ]


class Replica:
    running: list[Replica] = []  # every replica started and not yet stopped

    def __init__(self, i: int, db: str, tmp: Path, args: argparse.Namespace) -> None:
        self.id = f"b{i}"
        tmp.mkdir(parents=True, exist_ok=True)
        self.log_path = tmp / f"{self.id}.log"
        self.env = {
            **os.environ,
            "ACCORD_DATABASE_URL": db,
            "ACCORD_DATA_DIR": str(tmp / self.id),
            "ACCORD_LEASE_SECONDS": str(args.lease),
            "ACCORD_REPLICA_ID": self.id,
            "ACCORD_SYNC_CONCURRENCY": str(args.cap),
            "ACCORD_LOG_LEVEL": "error",
            "ACCORD_SECRET_BENCH_JENKINS": TOKEN,
        }
        self._spawn()
        Replica.running.append(self)

    def _spawn(self) -> None:
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        accord = Path(sys.executable).parent / "accord"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(accord), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def ready(self, timeout: float = 180) -> None:
        """Wait until it serves. A replica that exits first is reported at once with its
        log; one that lost its port to another process (the port was free when picked)
        is started again on another."""
        deadline = time.monotonic() + timeout
        respawned = 0
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                if "address already in use" in self.tail().lower() and respawned < 3:
                    respawned += 1
                    self._spawn()
                    continue
                raise BenchError(
                    f"replica {self.id} exited with status {code} before serving:\n{self.tail()}"
                )
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise BenchError(f"replica {self.id} did not serve within {timeout:g}s:\n{self.tail()}")

    def passes(self) -> float:
        body = httpx.get(self.url + "/metrics", timeout=30).text
        return sum(
            float(m.group(1))
            for m in re.finditer(r"^accord_sync_passes_total\{[^}]*\} (\S+)$", body, re.M)
        )

    def stop(self) -> None:
        if self in Replica.running:
            Replica.running.remove(self)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _throughput(
    n: int, db: str, tmp: Path, args: argparse.Namespace
) -> tuple[float, list[Replica]]:
    reps = [Replica(i, db, tmp, args) for i in range(n)]
    for r in reps:
        r.ready()
    # Warm up: leases settle and every source has had its first (inventory) pass, which
    # costs more requests than the runs passes measured below.
    engine = create_db_engine(db)
    deadline = time.monotonic() + 300
    while True:
        last = _last_success(engine)
        if last and all(v is not None for v in last.values()):
            break
        if time.monotonic() > deadline:
            never = sorted(k for k, v in last.items() if v is None)
            raise BenchError(f"{len(never)} source(s) never synced in 300 s, e.g. {never[:3]}")
        time.sleep(0.5)
    engine.dispose()
    time.sleep(args.interval)
    before = sum(r.passes() for r in reps)
    time.sleep(args.window)
    done = sum(r.passes() for r in reps) - before
    return done / (args.window / args.interval), reps


def _holders(engine: Any) -> dict[str, str | None]:
    with session_scope(engine, write=False) as s:
        rows = s.execute(
            text(
                "SELECT name, CASE WHEN expires_at > (clock_timestamp() AT TIME ZONE 'UTC')"
                " THEN holder END FROM lease WHERE name LIKE 'source:%'"
            )
        ).all()
    return {str(n)[len("source:") :]: h for n, h in rows}


def _last_success(engine: Any) -> dict[str, Any]:
    with session_scope(engine, write=False) as s:
        return dict(s.execute(text("SELECT name, last_success_at FROM source")).all())  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--database-url")
    ap.add_argument("--sources", type=int, default=60)
    ap.add_argument("--latency", type=float, default=0.25)
    ap.add_argument("--cap", type=int, default=2)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--lease", type=float, default=5.0)
    ap.add_argument(
        "--deadline", type=float, help="seconds for the whole run (default 1200; quick 600)"
    )
    args = ap.parse_args()
    if args.quick:
        args.sources, args.window = 30, 12.0
    deadline = args.deadline or (600.0 if args.quick else 1200.0)
    tmp = Path(tempfile.mkdtemp(prefix="accord-scale-"))
    stop_pg: list[str] = []
    pgdir = tmp
    state = SimState()
    for job in ("build", "deploy"):
        state.add_job(job)
        state.run(job)
    sim: JenkinsSimulator | None = None
    result: dict[str, Any] = {
        "load_before": _load(),
        "sources": args.sources,
        "latency_s": args.latency,
        "cap_per_replica": args.cap,
        "runs_interval_s": args.interval,
        "lease_s": args.lease,
        "window_s": args.window,
    }
    report = Report(result)
    dirs = [tmp]
    watchdog = _watchdog(deadline, report, stop_pg, dirs)
    signal.signal(signal.SIGTERM, _on_sigterm)  # `timeout` and CI cancels clean up too
    try:
        sim = JenkinsSimulator(state, tokens={"accord": TOKEN}, latency=args.latency).start()
        if args.database_url:
            server = args.database_url
        else:
            pgdir = Path(tempfile.mkdtemp(prefix="accord-scale-pg-"))
            dirs.append(pgdir)
            server, stop = _postgres(pgdir)
            stop_pg.extend(stop)
        for n in (1, 3):
            db = _fresh(server)
            engine = create_db_engine(db)
            upgrade(engine)
            docs = load_documents(
                [
                    ("bench", i, d)
                    for i, d in enumerate(_sources(args.sources, sim.url, args.interval), 1)
                ]
            )
            with session_scope(engine) as s:
                apply_plan(s, plan(s, docs.documents), subject="bench", channel="cli")
            per_interval, reps = _throughput(n, db, tmp / f"n{n}", args)
            result[f"synced_per_interval_{n}"] = round(per_interval, 2)
            if n == 3:
                victim = reps[1]
                mine = [s for s, h in _holders(engine).items() if h == victim.id]
                victim.proc.send_signal(signal.SIGKILL)
                victim.proc.wait()
                killed_wall = _db_now(engine)
                t0 = time.monotonic()
                took = held = None
                while time.monotonic() - t0 < 10 * args.lease + 10 * args.interval:
                    holders, last = _holders(engine), _last_success(engine)
                    taken = all(holders.get(s) not in (None, victim.id) for s in mine)
                    if taken and held is None:
                        held = time.monotonic() - t0
                    if taken and all(
                        last.get(s) is not None and last[s] > killed_wall for s in mine
                    ):
                        took = time.monotonic() - t0
                        break
                    time.sleep(0.1)
                result["failover_sources"] = len(mine)
                # Until every source of the killed replica had a new holder, and until
                # every one of them had been synced by it.
                result["failover_leases_s"] = None if held is None else round(held, 2)
                result["failover_s"] = None if took is None else round(took, 2)
                result["failover_goal_s"] = args.lease + args.interval
            for r in reps:
                r.stop()
            engine.dispose()
        one, three = result["synced_per_interval_1"], result["synced_per_interval_3"]
        result["speedup"] = round(three / one, 2) if one else None
    except (Exception, KeyboardInterrupt) as exc:  # say why, with what was measured
        detail = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        result["error"] = detail
    finally:
        # The watchdog stays armed: a clean-up that hangs still ends at the deadline.
        for r in list(Replica.running):
            try:
                r.stop()
            except Exception:  # a replica that cannot be stopped is killed
                r.proc.kill()
        if sim is not None:
            sim.stop()
        if stop_pg:
            subprocess.run(stop_pg, check=False, capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.database_url:
            shutil.rmtree(pgdir, ignore_errors=True)
    watchdog.cancel()
    if not report.send():  # the watchdog reported first and is exiting
        time.sleep(60)
    if "error" in result:
        sys.exit(1)


def _db_now(engine: Any) -> Any:
    with session_scope(engine, write=False) as s:
        return s.execute(text("SELECT (clock_timestamp() AT TIME ZONE 'UTC')")).scalar_one()


if __name__ == "__main__":
    main()
