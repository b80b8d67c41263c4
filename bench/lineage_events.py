"""OpenLineage throughput, both ways, on SQLite (prints one JSON line).

- out: ``--changes`` stored run state changes (runs first seen running, then ended) are
  sent by the emitter through the file transport, pass after pass of
  ``ACCORD_OPENLINEAGE_BATCH`` changes: events per second, from the stored rows to the
  file;
- in: ``--events`` RunEvents (START then COMPLETE of ``--events / 2`` runs) posted one by
  one to ``POST /api/v1/sources/{name}/openlineage`` through the ASGI app in process
  (no network): events per second, validation and storage included.

    uv run python bench/lineage_events.py --changes 20000 --events 2000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.model import JobRecord, RunRecord, RunState
from gateway.openlineage import Emitter
from gateway.settings import Settings
from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.services import ingest
from gateway.store.services.tokens import create_token
from gateway.store.tables import Source


def _out(tmp: Path, changes: int) -> dict[str, float]:
    engine = create_db_engine(f"sqlite:///{tmp / 'out.db'}")
    upgrade(engine)
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    with session_scope(engine) as s:
        s.add(Source(name="af", type="airflow", domain="data", spec={}))
        s.flush()
        ingest.apply_inventory(
            s,
            source="af",
            domain="data",
            records=[
                JobRecord(native_id=f"j{i}", name=f"j{i}", native_type="dag") for i in range(100)
            ],
        )
    runs = changes // 2
    for state in (RunState.RUNNING, RunState.SUCCESS):
        for lo in range(0, runs, 1000):
            with session_scope(engine) as s:
                ingest.upsert_runs(
                    s,
                    source="af",
                    domain="data",
                    records=[
                        RunRecord(
                            native_id=f"r{i}",
                            job_native_id=f"j{i % 100}",
                            state=state,
                            native_state=state.value,
                            started_at=t0 + timedelta(seconds=i),
                            ended_at=t0 + timedelta(seconds=i + 60) if state.terminal else None,
                        )
                        for i in range(lo, min(runs, lo + 1000))
                    ],
                )
    settings = Settings(
        data_dir=tmp, openlineage_transport="file", openlineage_start_at="beginning"
    )
    emitter = Emitter(engine, settings)
    started = time.perf_counter()
    sent = 0
    while True:
        n = emitter.run_once()
        if n == 0:
            break
        sent += n
    seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "out_changes": sent,
        "out_events": emitter.sent,
        "out_seconds": round(seconds, 2),
        "out_events_per_s": round(emitter.sent / seconds, 1),
    }


def _in(tmp: Path, events: int) -> dict[str, float]:
    engine = create_db_engine(f"sqlite:///{tmp / 'in.db'}")
    upgrade(engine)
    with session_scope(engine) as s:
        s.add(
            Source(name="lineage", type="openlineage", domain="data", spec={"type": "openlineage"})
        )
        token = create_token(s, subject="bench", role="agent", domain="data").token
    app = create_app(Settings(data_dir=tmp / "data"), engine=engine, start_sync=False)
    schema = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
    bodies = []
    for i in range(events // 2):
        rid = str(uuid.uuid4())
        for kind, at in (("START", "2026-05-01T03:00:00Z"), ("COMPLETE", "2026-05-01T03:05:00Z")):
            bodies.append(
                {
                    "eventType": kind,
                    "eventTime": at,
                    "producer": "https://example.com/bench",
                    "schemaURL": schema,
                    "run": {"runId": rid},
                    "job": {"namespace": "bench", "name": f"job{i % 50}"},
                    "inputs": [{"namespace": "s3://raw", "name": f"in{i % 20}"}],
                    "outputs": [{"namespace": "s3://out", "name": f"out{i % 50}"}],
                }
            )
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        started = time.perf_counter()
        for b in bodies:
            r = client.post("/api/v1/sources/lineage/openlineage", json=b, headers=headers)
            assert r.status_code == 200, r.text
        seconds = time.perf_counter() - started
    engine.dispose()
    return {
        "in_events": len(bodies),
        "in_seconds": round(seconds, 2),
        "in_events_per_s": round(len(bodies) / seconds, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=20000)
    ap.add_argument("--events", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        result = {**_out(tmp, args.changes), **_in(tmp, args.events)}
    result["load_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
