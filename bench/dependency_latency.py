"""Firing latency of Dependency documents: from "upstream finish observed" (the commit of
the run upsert that stored the end, which also wrote the outbox row) to "downstream
trigger sent" (the downstream tool's trigger call), through the real dispatcher loop.

Two in-process fake schedulers stand for two tools (no network latency: this measures
Accord's own part). Upstream runs end one at a time, ``--interval`` apart, each stored
through ``upsert_runs`` in its own write transaction from a worker thread, exactly as a
sync pass does, and the dispatcher is poked the way the gateway's sync callback pokes it.
Prints one JSON line: p50 / p90 / p99 / max in milliseconds (goal: p99 <= 1000 ms).

    uv run python bench/dependency_latency.py --firings 200
    uv run python bench/dependency_latency.py --postgres postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from adapters.base import registry
from adapters.testing.fake import FakeAdapter, FakeSystem, systems
from gateway.authz import PolicyCache
from gateway.automation import Dispatcher
from gateway.config import apply_plan, load_documents, plan
from gateway.model import (
    JobRecord,
    RunRecord,
    RunState,
)
from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.services.ingest import apply_inventory, upsert_runs

CONFIG = """
apiVersion: accord.dev/v1
kind: Source
metadata: {name: up, domain: data}
spec: {type: fake, system: bench-up}
---
apiVersion: accord.dev/v1
kind: Source
metadata: {name: down, domain: ops}
spec: {type: fake, system: bench-down}
---
apiVersion: accord.dev/v1
kind: RoleBinding
metadata: {name: bench}
spec: {role: operator, subjects: ["dependency:bench-chain"], domains: ["*"]}
---
apiVersion: accord.dev/v1
kind: Dependency
metadata: {name: bench-chain}
spec:
  upstream: up/extract
  downstream: down/report
  trigger: true
  params: {upstream: "{{ upstream.run_uid }}"}
"""


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    registry.register(FakeAdapter)
    tmp = tempfile.TemporaryDirectory()
    url = args.postgres or f"sqlite:///{Path(tmp.name) / 'accord.db'}"
    engine = create_db_engine(url)
    upgrade(engine)
    up, down = FakeSystem("bench-up"), FakeSystem("bench-down")
    up.add_job("extract")
    down.add_job("report")
    systems.update({"bench-up": up, "bench-down": down})
    sent: dict[str, float] = {}
    original = FakeAdapter.trigger

    async def timed_trigger(self: FakeAdapter, job_id: str, params: Any) -> RunRecord:
        sent[str(params["upstream"])] = time.perf_counter()
        return await original(self, job_id, params)

    FakeAdapter.trigger = timed_trigger  # type: ignore[method-assign]
    with session_scope(engine) as s:
        apply_inventory(
            s,
            source="up",
            domain="data",
            records=[JobRecord(native_id="extract", name="extract", native_type="fake")],
        )
        apply_inventory(
            s,
            source="down",
            domain="ops",
            records=[JobRecord(native_id="report", name="report", native_type="fake")],
        )
    docs = [d for d in yaml.safe_load_all(CONFIG) if d]
    res = load_documents([("bench", i, d) for i, d in enumerate(docs, 1)])
    assert res.ok, res.errors
    with session_scope(engine) as s:
        apply_plan(s, plan(s, res.documents), subject="bench", channel="cli")
    dispatcher = Dispatcher(engine, manager=None, policy=PolicyCache(engine))
    dispatcher.start()
    observed: dict[str, float] = {}

    def store(i: int) -> None:
        now = datetime.now(UTC)
        rec = RunRecord(
            native_id=f"extract-{i}",
            job_native_id="extract",
            state=RunState.SUCCESS,
            started_at=now,
            ended_at=now,
        )
        with session_scope(engine) as s:
            upsert_runs(s, source="up", domain="data", records=[rec])
        observed[f"up/extract-{i}"] = time.perf_counter()  # committed

    try:
        for i in range(args.firings):
            await asyncio.to_thread(store, i)
            dispatcher.poke()
            await asyncio.sleep(args.interval)
        deadline = time.perf_counter() + 30
        while len(sent) < args.firings and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await dispatcher.stop()
        FakeAdapter.trigger = original  # type: ignore[method-assign]
    lat = [(sent[k] - observed[k]) * 1000 for k in observed if k in sent]
    engine.dispose()
    tmp.cleanup()
    return {
        "benchmark": "dependency_latency",
        "database": engine.dialect.name,
        "firings": args.firings,
        "fired": len(lat),
        "interval_ms": args.interval * 1000,
        "p50_ms": round(statistics.median(lat), 1) if lat else None,
        "p90_ms": round(_percentile(lat, 90), 1) if lat else None,
        "p99_ms": round(_percentile(lat, 99), 1) if lat else None,
        "max_ms": round(max(lat), 1) if lat else None,
        "goal_p99_ms": 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--firings", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between ends")
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL (default SQLite)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_main(args))))


if __name__ == "__main__":
    main()
