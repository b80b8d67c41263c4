"""Console benchmark: the web console over a large estate in headless Chromium.

    uv run python bench/console.py [--jobs 100000] [--runs 1000000] [--lineage 2000]
                                   [--db PATH]

Fills a SQLite database (untimed; raw inserts) with ``--jobs`` jobs over ten sources,
``--runs`` runs over the last 30 days and a lineage tree of ``--lineage`` jobs, starts
``accord serve --no-sync`` on it (127.0.0.1, free port), builds the console if needed and
runs ``web/bench/console-bench.mjs`` in Debian's Chromium, which measures with the
Performance API:

* overview and jobs table: time from navigation start until the page shows its data
  (the first meaningful paint), plus the browser's largest contentful paint;
* jobs table scroll: frame intervals while scrolling the virtualized table;
* lineage: time to lay out and draw the neighbourhood (from the API response to the
  nodes on screen) and the API time itself.

Prints one JSON line. ``--db PATH`` keeps (or reuses) the database.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.services.tokens import create_token

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    ("airflow-data", "airflow", "data"),
    ("airflow-ml", "airflow", "ml"),
    ("cron-ops", "cron", "ops"),
    ("cron-platform", "cron", "platform"),
    ("jenkins-platform", "jenkins", "platform"),
    ("jenkins-finance", "jenkins", "finance"),
    ("k8s-data", "kubernetes", "data"),
    ("k8s-ml", "kubernetes", "ml"),
    ("tfc-platform", "terraform", "platform"),
    ("tfc-finance", "terraform", "finance"),
]
STATES = ["success"] * 88 + ["failed"] * 7 + ["cancelled"] * 2 + ["running", "queued", "skipped"]
FANOUT = 7


def _ts(d: datetime) -> str:
    return d.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def populate(path: Path, *, jobs: int, runs: int, lineage: int, seed: int = 7) -> str:
    """Raw inserts (the store's column forms); returns the lineage root's uid."""
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    rnd = random.Random(seed)
    now = datetime.now(UTC)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.executemany(
        "INSERT INTO source (name, type, domain, spec, labels, demo, enabled, health,"
        " health_message, last_sync_at, last_success_at, consecutive_failures,"
        " inventory_every_s, runs_every_s, stale_after_s, created_at, updated_at)"
        " VALUES (?, ?, ?, '{}', '{}', 0, 1, 'ok', '', ?, ?, 0, 300, 30, 1e9, ?, ?)",
        [(n, t, d, _ts(now), _ts(now), _ts(now), _ts(now)) for n, t, d in SOURCES],
    )
    job_rows = []
    uids: list[tuple[str, str, str]] = []
    for i in range(jobs):
        name, _type, domain = SOURCES[i % len(SOURCES)]
        native = f"lin_{i // len(SOURCES)}" if i < lineage * len(SOURCES) else f"job_{i:06d}"
        uid = f"{name}/{native}"
        uids.append((uid, name, domain))
        owners = "[]" if i % 11 == 0 else json.dumps([f"team-{i % 17}"])
        labels = json.dumps({"env": "prod" if i % 3 == 0 else "dev", "tier": str(i % 4)})
        job_rows.append(
            (
                uid,
                name,
                native,
                domain,
                native.replace("_", " "),
                "job",
                "0 * * * *",
                "UTC",
                None,
                i % 50 == 0,
                owners,
                labels,
                f"https://tool.example/{uid}",
                "{}",
                "[]",
                f"h{i}",
                _ts(now - timedelta(days=40)),
                _ts(now),
                rnd.choice(STATES),
                _ts(now - timedelta(minutes=rnd.randrange(60 * 24 * 40))),
            )
        )
    con.executemany(
        "INSERT INTO job (uid, source, native_id, domain, name, native_type, schedule_expr,"
        " schedule_tz, schedule_text, paused, owners, labels, url, attributes, problems,"
        " definition_hash, first_seen, last_seen, last_run_state, last_run_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        job_rows,
    )
    del job_rows
    span = 30 * 24 * 3600
    batch: list[tuple[object, ...]] = []
    for k in range(runs):
        uid, source, domain = uids[rnd.randrange(len(uids))]
        start = now - timedelta(seconds=rnd.randrange(span))
        state = rnd.choice(STATES)
        end = None if state in ("running", "queued") else start + timedelta(seconds=30 + k % 900)
        batch.append(
            (
                f"{uid}@{k}",
                source,
                uid,
                domain,
                state,
                state,
                "schedule",
                _ts(start),
                _ts(start),
                _ts(end) if end else None,
                _ts(start),
                1,
                1,
                _ts(now),
            )
        )
        if len(batch) >= 50_000:
            _insert_runs(con, batch)
            batch = []
    _insert_runs(con, batch)
    # Lineage: a tree over the first source's "lin_" jobs, each with FANOUT children.
    first = SOURCES[0][0]
    edges = [
        ("depends_on", "job", f"{first}/lin_{(c - 1) // FANOUT}", "job", f"{first}/lin_{c}")
        for c in range(1, lineage)
    ]
    con.executemany(
        "INSERT INTO edge (kind, src_kind, src_uid, dst_kind, dst_uid, reported_by, evidence,"
        " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, 'bench', '', ?, ?)",
        [(*e, _ts(now), _ts(now)) for e in edges],
    )
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return f"{first}/lin_0"


def _insert_runs(con: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    con.executemany(
        "INSERT INTO run (uid, source, job_uid, domain, state, native_state, trigger,"
        " queued_at, started_at, ended_at, sort_at, attempt, event_seq, observed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--lineage", type=int, default=2000)
    ap.add_argument("--db", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="accord-bench-console-") as tmp:
        db = args.db or Path(tmp) / "accord.db"
        t0 = time.perf_counter()
        root = f"{SOURCES[0][0]}/lin_0"
        if not db.exists():
            root = populate(db, jobs=args.jobs, runs=args.runs, lineage=args.lineage)
        fill_s = time.perf_counter() - t0
        engine = create_db_engine(f"sqlite:///{db}")
        with session_scope(engine) as s:
            token = create_token(s, subject="bench", role="admin", domain="*").token
        engine.dispose()

        build = subprocess.run([str(ROOT / "scripts" / "build-console.sh")], cwd=ROOT)
        if build.returncode != 0:
            sys.exit("the console could not be built")
        port = _free_port()
        env = {**os.environ, "ACCORD_DATA_DIR": tmp, "ACCORD_DATABASE_URL": f"sqlite:///{db}"}
        accord = Path(sys.executable).parent / "accord"
        proc = subprocess.Popen(
            [str(accord), "serve", "--no-sync", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            else:
                sys.exit("the gateway did not start")
            out = subprocess.run(
                ["node", "bench/console-bench.mjs", url, token, root],
                cwd=ROOT / "web",
                capture_output=True,
                text=True,
                timeout=600,
            )
            if out.returncode != 0:
                sys.exit(out.stdout + out.stderr)
            result = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        result["data"] = {
            "jobs": args.jobs,
            "runs": args.runs,
            "lineage_nodes": args.lineage,
            "fill_seconds": round(fill_s, 1),
        }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
