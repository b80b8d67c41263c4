"""Ingest benchmark: synthetic runs through the store's upsert path, against raw SQLite.

    uv run python bench/ingest.py [--runs 1000000] [--batch 5000] [--db PATH]
                                  [--database-url URL]

Creates ~5,000 jobs in 10 sources with ``apply_inventory``, then feeds pages of run
reports to ``upsert_runs``, committing once per page as the sync does. Only the ingest is
timed (record generation is reported apart as ``generate_seconds``). Then the first report
of every run is inserted with sqlite3 ``executemany`` into a plain table of the same
columns in a fresh SQLite file (WAL, synchronous=NORMAL), one commit per page: the speed
of the database itself, which ``ratio`` compares the store with. Last, the same rows go
with sqlite3 into a fresh copy of the store's own schema (the run table's indexes and one
run_event row per run): ``raw_indexed_runs_per_s``, the floor for that schema, and
``indexed_ratio``, the store against it. On all three SQLite files the WAL is checkpointed
by a thread of its own, as the gateway does (``gateway.store.checkpoint``).
``cpu_seconds`` is the process CPU time of the store ingest (steadier than wall time on a
busy machine). Prints one JSON line.

``--db PATH`` keeps the SQLite database (for ``bench/query.py --db PATH``); without it,
everything is written to a temporary directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _synthetic as syn
from sqlalchemy import Engine, func, select
from sqlmodel import col

from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.checkpoint import Checkpointer, sqlite_file
from gateway.store.engine import SQLITE_PRAGMAS, sqlite_cache_pragma
from gateway.store.services.ingest import upsert_runs
from gateway.store.tables import Run


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _timed(batches: Iterator[syn.Batch]) -> Iterator[tuple[syn.Batch, float]]:
    """Each batch with the seconds it took to generate."""
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            return
        yield batch, time.perf_counter() - t0


def _server_cpu(engine: Engine) -> dict[int, float] | None:
    """CPU seconds so far of each PostgreSQL backend serving this database, when the
    server runs on this machine and its processes are readable (else None)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        pids = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        ).scalars()
        found: dict[int, float] = {}
        for pid in pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None
            found[pid] = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        return found


def ingest_store(engine: Engine, *, runs: int, batch: int, now: datetime) -> dict[str, Any]:
    t0 = time.perf_counter()
    jobs = syn.create_sources_and_jobs(engine, now=now)
    inventory_s = time.perf_counter() - t0
    # As in the gateway: SQLite's WAL checkpoints in a thread of their own.
    db_file = sqlite_file(str(engine.url))
    checkpointer = Checkpointer(db_file).start() if db_file is not None else None
    try:
        return _ingest_store(engine, runs=runs, batch=batch, now=now, jobs=jobs) | {
            "inventory_seconds": inventory_s
        }
    finally:
        if checkpointer is not None:
            checkpointer.stop()


def _ingest_store(
    engine: Engine, *, runs: int, batch: int, now: datetime, jobs: int
) -> dict[str, Any]:
    server_before = _server_cpu(engine)
    totals = {"records": 0, "created": 0, "changed": 0, "refreshed": 0, "ignored": 0}
    seconds = 0.0
    cpu = 0.0
    gen_s = 0.0
    pages = 0
    for page, spent in _timed(syn.generate(runs, batch, now=now)):
        gen_s += spent
        records = page.records
        t0, c0 = time.perf_counter(), time.process_time()
        with session_scope(engine) as session:
            result = upsert_runs(
                session, source=page.source.name, domain=page.source.domain, records=records
            )
        seconds += time.perf_counter() - t0
        cpu += time.process_time() - c0
        pages += 1
        totals["records"] += result.received
        for key in ("created", "changed", "refreshed", "ignored"):
            totals[key] += getattr(result, key)
    server_after = _server_cpu(engine)
    server_cpu = None
    if server_before is not None and server_after is not None:
        # A backend that started during the ingest started from zero.
        server_cpu = round(
            sum(v - server_before.get(pid, 0.0) for pid, v in server_after.items()), 3
        )
    with session_scope(engine) as session:
        stored = session.execute(select(func.count()).select_from(Run)).scalar_one()
    if stored != runs or totals["created"] != runs:
        raise SystemExit(f"the store holds {stored} runs after ingesting {runs}")
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "server_cpu_seconds": server_cpu,
        "generate_seconds": gen_s,
        "jobs": jobs,
        "pages": pages,
        **totals,
    }


_RAW_DDL = (
    "CREATE TABLE run (id INTEGER PRIMARY KEY, uid TEXT NOT NULL, source TEXT NOT NULL, "
    "job_uid TEXT NOT NULL, domain TEXT NOT NULL, state TEXT NOT NULL, native_state TEXT, "
    "trigger TEXT NOT NULL, actor TEXT, queued_at DATETIME, started_at DATETIME, "
    "ended_at DATETIME, sort_at DATETIME NOT NULL, attempt INTEGER NOT NULL, url TEXT, "
    "message TEXT, event_seq INTEGER NOT NULL, observed_at DATETIME NOT NULL)"
)


_EVENT_SQL = (
    "INSERT INTO run_event (run_uid, seq, from_state, to_state, at, observed_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def ingest_raw(
    path: Path, *, runs: int, batch: int, now: datetime, store_schema: bool = False
) -> tuple[float, float]:
    """Seconds to insert the first report of every run with plain sqlite3.

    Into a plain table of the run columns (no index but the rowid) by default; with
    ``store_schema``, into a fresh copy of the store's own tables (the run table with its
    indexes, plus the run_event row each new run gets), which is the floor for any store
    that keeps those indexes.
    """
    if store_schema:
        engine = create_db_engine(f"sqlite:///{path}")
        upgrade(engine)
        engine.dispose()
    con = sqlite3.connect(path)
    checkpointer: Checkpointer | None = None
    try:
        # The store's own connection settings (WAL, synchronous=NORMAL, its page cache)
        # and, as for the store, WAL checkpoints in a thread of their own.
        for pragma in (*SQLITE_PRAGMAS, sqlite_cache_pragma()):
            con.execute(pragma)
        if not store_schema:
            con.execute(_RAW_DDL)
        con.commit()
        checkpointer = Checkpointer(path).start()
        sql = (
            f"INSERT INTO run ({', '.join(syn.RAW_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in syn.RAW_COLUMNS)})"
        )
        seconds = 0.0
        cpu = 0.0
        inserted = 0
        for page in syn.generate(runs, batch, now=now):
            if not page.fresh:
                continue
            observed = datetime.now(UTC)
            src = page.source
            rows = [
                syn.raw_row(r, source=src.name, domain=src.domain, observed=observed)
                for r in page.fresh
            ]
            # uid, seq, from, to, at (sort_at: close enough for the cost), observed_at
            events = [(r[0], 1, None, r[4], r[11], r[16]) for r in rows] if store_schema else []
            t0, c0 = time.perf_counter(), time.process_time()
            con.executemany(sql, rows)
            if events:
                con.executemany(_EVENT_SQL, events)
            con.commit()
            seconds += time.perf_counter() - t0
            cpu += time.process_time() - c0
            inserted += len(rows)
        if inserted != runs:
            raise SystemExit(f"the raw table holds {inserted} rows, expected {runs}")
        return seconds, cpu
    finally:
        if checkpointer is not None:
            checkpointer.stop()
        con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1_000_000, help="distinct runs to ingest")
    parser.add_argument("--batch", type=int, default=5000, help="run reports per page")
    parser.add_argument("--db", type=Path, help="SQLite file to create and keep")
    parser.add_argument(
        "--database-url", help="ingest into this (empty) database, e.g. PostgreSQL, instead"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.batch < 2:
        parser.error("--runs must be at least 1 and --batch at least 2")
    if args.db is not None and args.database_url:
        parser.error("give --db or --database-url, not both")
    if args.db is not None and args.db.exists():
        parser.error(f"{args.db} exists; give the path of a new file")
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp:
        engine, backend = syn.open_database(args.db, args.database_url, Path(tmp))
        try:
            with session_scope(engine) as session:
                already = session.execute(select(func.count(col(Run.id)))).scalar_one()
            if already:
                raise SystemExit("the database already holds runs; give an empty one")
            store = ingest_store(engine, runs=args.runs, batch=args.batch, now=now)
        finally:
            engine.dispose()
        raw_s, _raw_cpu = ingest_raw(
            Path(tmp) / "raw.db", runs=args.runs, batch=args.batch, now=now
        )
        floor_s, floor_cpu = ingest_raw(
            Path(tmp) / "floor.db", runs=args.runs, batch=args.batch, now=now, store_schema=True
        )
    tiny = 1e-9  # a clock tick, against dividing by zero on absurdly small runs
    runs_per_s = args.runs / max(store["seconds"], tiny)
    raw_per_s = args.runs / max(raw_s, tiny)
    out = {
        "runs": args.runs,
        "backend": backend,
        "batch": args.batch,
        "seconds": round(store["seconds"], 3),
        "runs_per_s": round(runs_per_s),
        "raw_seconds": round(raw_s, 3),
        "raw_runs_per_s": round(raw_per_s),
        "ratio": round(runs_per_s / raw_per_s, 3),
        "peak_rss_mb": peak_rss_mb(),
        "raw_indexed_runs_per_s": round(args.runs / max(floor_s, tiny)),
        "indexed_ratio": round(floor_s / max(store["seconds"], tiny), 3),
        "cpu_seconds": round(store["cpu_seconds"], 3),
        "raw_indexed_cpu_seconds": round(floor_cpu, 3),
        # CPU is steadier than wall time on a busy machine; on PostgreSQL the store's
        # CPU is split with the server, so this compares SQLite only.
        "indexed_cpu_ratio": (
            round(floor_cpu / max(store["cpu_seconds"], tiny), 3) if backend == "sqlite" else None
        ),
        "server_cpu_seconds": store["server_cpu_seconds"],
        "generate_seconds": round(store["generate_seconds"], 3),
        "inventory_seconds": round(store["inventory_seconds"], 3),
        "jobs": store["jobs"],
        "pages": store["pages"],
        "records": store["records"],
        "created": store["created"],
        "changed": store["changed"],
        "refreshed": store["refreshed"],
        "ignored": store["ignored"],
        # Other work on the machine skews wall times; the load says how busy it was.
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
