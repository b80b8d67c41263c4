"""Build a small estate straight through the ingest services (no simulators needed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine

from gateway.model import JobRecord, RunRecord, RunState, Schedule, Trigger
from gateway.store import session_scope
from gateway.store.services.ingest import apply_inventory, upsert_runs
from gateway.store.tables import Source


def source(engine: Engine, name: str, type_: str, domain: str = "data") -> None:
    with session_scope(engine) as s:
        if s.get(Source, name) is None:
            s.add(Source(name=name, type=type_, domain=domain))


def jobs(
    engine: Engine,
    src: str,
    records: Sequence[JobRecord],
    domain: str = "data",
    now: datetime | None = None,
) -> None:
    with session_scope(engine) as s:
        apply_inventory(s, source=src, domain=domain, records=records, now=now)


def job(
    native_id: str,
    expr: str | None = None,
    tz: str | None = None,
    *,
    next_run_at: datetime | None = None,
    paused: bool = False,
    labels: dict[str, str] | None = None,
) -> JobRecord:
    return JobRecord(
        native_id=native_id,
        name=native_id,
        native_type="test",
        schedule=Schedule(expression=expr, timezone=tz) if expr else None,
        next_run_at=next_run_at,
        paused=paused,
        labels=labels or {},
    )


def runs(engine: Engine, src: str, records: Sequence[RunRecord], domain: str = "data") -> None:
    with session_scope(engine) as s:
        upsert_runs(s, source=src, domain=domain, records=records)


def run(
    native_id: str,
    job_id: str,
    state: RunState,
    started: datetime,
    ended: datetime | None = None,
) -> RunRecord:
    return RunRecord(
        native_id=native_id,
        job_native_id=job_id,
        state=state,
        trigger=Trigger.SCHEDULE,
        started_at=started,
        ended_at=ended,
    )
