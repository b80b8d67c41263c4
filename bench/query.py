"""Query benchmark: "failed runs of the last 24 h in one domain", as a domain operator asks.

    uv run python bench/query.py [--runs 1000000] [--queries 200] [--db PATH]
                                 [--database-url URL]

Times ``queries.list_runs`` (RunFilter(domain, state=["failed"], since=now-24h), limit
100) with the ``visible`` predicate of a real operator token bound to that domain, then
the same question through ``GET /api/v1/runs`` of the real app (FastAPI TestClient, the
operator's bearer token). Each query goes to the next of the five domains, each with its
own operator. A few warm-up queries are not counted. Prints one JSON line.

``--db PATH`` reuses a database made by ``bench/ingest.py --db PATH`` ("now" is the time
that database was generated against); without it a temporary database is filled with the
same generator first (untimed) and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _synthetic as syn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from gateway.api.app import create_app
from gateway.api.deps import Principal
from gateway.authz import load_policy
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services import queries
from gateway.store.services.tokens import create_token
from gateway.store.tables import Run

WARMUP = 10
LIMIT = 100


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Operator:
    def __init__(self, domain: str, token: str, principal: Principal) -> None:
        self.domain = domain
        self.token = token
        self.principal = principal


def operators(engine: Engine) -> list[Operator]:
    """One operator token per domain, and each one's grants as the API derives them."""
    tokens: dict[str, tuple[str, int | None]] = {}
    with session_scope(engine) as session:
        for dom in syn.DOMAINS:
            new = create_token(
                session,
                subject=f"bench-operator-{dom}",
                role="operator",
                domain=dom,
                description="query benchmark",
            )
            tokens[dom] = (new.token, new.record.id)
    with Session(engine) as session:
        policy = load_policy(session)
    out = []
    for dom, (token, token_id) in tokens.items():
        subject = f"bench-operator-{dom}"
        principal = Principal(subject, token_id, "api", policy, policy.grants(subject))
        out.append(Operator(dom, token, principal))
    return out


def _check(rows: list[tuple[str, str, datetime]], domain: str, since: datetime) -> int:
    for row_domain, state, sort_at in rows:
        if row_domain != domain or state != "failed" or sort_at < since:
            raise SystemExit(f"query returned a run outside the filter: {row_domain} {state}")
    return len(rows)


def _sort_at(item: dict[str, Any]) -> datetime:
    # RunPublic has no sort_at; it is the start time, else the queue time.
    return datetime.fromisoformat(item["started_at"] or item["queued_at"])


def time_service(
    engine: Engine, ops: list[Operator], *, since: datetime, count: int
) -> tuple[list[float], int]:
    samples: list[float] = []
    fewest = LIMIT
    for i in range(WARMUP + count):
        op = ops[i % len(ops)]
        filt = queries.RunFilter(domain=op.domain, state=["failed"], since=since)
        t0 = time.perf_counter()
        with Session(engine) as session:
            page = queries.list_runs(
                session, visible=op.principal.visible(), filt=filt, limit=LIMIT
            )
        elapsed = time.perf_counter() - t0
        got = _check([(r.domain, r.state, r.sort_at) for r in page.items], op.domain, since)
        fewest = min(fewest, got)
        if i >= WARMUP:
            samples.append(elapsed * 1000)
    return samples, fewest


def time_api(
    client: TestClient, ops: list[Operator], *, since: datetime, count: int
) -> tuple[list[float], int]:
    samples: list[float] = []
    fewest = LIMIT
    for i in range(WARMUP + count):
        op = ops[i % len(ops)]
        headers = {"Authorization": f"Bearer {op.token}"}
        params: dict[str, str | int] = {
            "domain": op.domain,
            "state": "failed",
            "since": since.isoformat(),
            "limit": LIMIT,
        }
        t0 = time.perf_counter()
        resp = client.get("/api/v1/runs", params=params, headers=headers)
        elapsed = time.perf_counter() - t0
        if resp.status_code != 200:
            raise SystemExit(f"GET /api/v1/runs answered {resp.status_code}: {resp.text[:300]}")
        items = resp.json()["items"]
        got = _check(
            [(r["domain"], r["state"], _sort_at(r)) for r in items],
            op.domain,
            since,
        )
        fewest = min(fewest, got)
        if i >= WARMUP:
            samples.append(elapsed * 1000)
    return samples, fewest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs to generate")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per path")
    parser.add_argument("--batch", type=int, default=5000, help="page size when generating")
    parser.add_argument("--db", type=Path, help="reuse this SQLite file made by ingest.py")
    parser.add_argument("--database-url", help="use this database (filled first if empty)")
    args = parser.parse_args(argv)
    if args.queries < 1 or args.runs < 1:
        parser.error("--queries and --runs must be at least 1")
    if args.db is not None and args.database_url:
        parser.error("give --db or --database-url, not both")
    if args.db is not None and not args.db.is_file():
        parser.error(f"{args.db} does not exist (make it with bench/ingest.py --db {args.db})")
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp:
        engine, backend = syn.open_database(args.db, args.database_url, Path(tmp))
        try:
            with Session(engine) as session:
                stored = session.execute(select(func.count(col(Run.id)))).scalar_one()
                anchor = syn.anchor_of(session)
            if stored == 0:
                anchor = datetime.now(UTC).replace(microsecond=0)
                syn.populate(engine, runs=args.runs, batch=args.batch, now=anchor)
                stored = args.runs
            now = anchor or datetime.now(UTC)
            since = now - timedelta(hours=24)
            ops = operators(engine)
            service, service_rows = time_service(engine, ops, since=since, count=args.queries)
            settings = Settings(data_dir=Path(tmp) / "data", sync_enabled=False)
            app = create_app(settings, engine=engine, start_sync=False)
            with TestClient(app) as client:
                api, api_rows = time_api(client, ops, since=since, count=args.queries)
        finally:
            engine.dispose()
    out = {
        "runs": stored,
        "backend": backend,
        "queries": args.queries,
        "p50_ms": round(percentile(service, 50), 2),
        "p99_ms": round(percentile(service, 99), 2),
        "api_p50_ms": round(percentile(api, 50), 2),
        "api_p99_ms": round(percentile(api, 99), 2),
        "fewest_rows": min(service_rows, api_rows),
        # Other work on the machine skews wall times; the load says how busy it was.
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
