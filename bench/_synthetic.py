"""A deterministic synthetic federation for the benchmarks: sources, jobs and run reports.

The stream looks like what the sync hands to the store: pages of run reports, one source
per page, roughly in time order, where some runs are first seen running and reported again
with their final state in a later page of the same source, and a few pages re-deliver
runs unchanged (overlapping cursors). Records are produced one page at a time, so a
million runs never sit in memory together.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.model import JobRecord, RunRecord, RunState, Schedule, Trigger
from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.services.ingest import apply_inventory, job_uid, run_uid, upsert_runs
from gateway.store.services.meta import get_meta, set_meta
from gateway.store.tables import Source

__all__ = [
    "ANCHOR_KEY",
    "DOMAINS",
    "RAW_COLUMNS",
    "SOURCES",
    "Batch",
    "SourceSpec",
    "anchor_of",
    "create_sources_and_jobs",
    "generate",
    "jobs_of",
    "open_database",
    "populate",
    "raw_row",
]

# The time the data was generated against, kept in the database so a later query
# benchmark asks about "the last 24 hours" of the data, not of the wall clock.
ANCHOR_KEY = "bench.anchor"
SPAN = timedelta(days=30)


@dataclass(frozen=True)
class SourceSpec:
    name: str
    type: str
    domain: str
    jobs: int


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("airflow-data", "airflow", "data", 1200),
    SourceSpec("airflow-ml", "airflow", "ml", 400),
    SourceSpec("airflow-finance", "airflow", "finance", 300),
    SourceSpec("cron-ops", "cron", "ops", 600),
    SourceSpec("cron-platform", "cron", "platform", 300),
    SourceSpec("jenkins-platform", "jenkins", "platform", 500),
    SourceSpec("jenkins-finance", "jenkins", "finance", 350),
    SourceSpec("k8s-data", "kubernetes", "data", 700),
    SourceSpec("k8s-ml", "kubernetes", "ml", 450),
    SourceSpec("tfc-platform", "terraform", "platform", 200),
)
DOMAINS: tuple[str, ...] = tuple(sorted({s.domain for s in SOURCES}))

_VERBS = ("ingest", "load", "export", "refresh", "train", "score", "backup", "deploy", "sync")
_NOUNS = ("orders", "customers", "ledger", "events", "features", "invoices", "clicks", "users")
_SCHEDULES = {
    "airflow": ("@daily", "@hourly", "0 */6 * * *", "30 2 * * *"),
    "cron": ("*/15 * * * *", "0 * * * *", "5 3 * * *", "0 4 * * 0"),
    "jenkins": ("H 2 * * *", "H/30 * * * *", "H H * * 1-5"),
    "kubernetes": ("0 3 * * *", "*/10 * * * *", "0 */2 * * *"),
    "terraform": (),
}
_NATIVE_TYPE = {
    "airflow": "dag",
    "cron": "crontab-line",
    "jenkins": "job",
    "kubernetes": "cronjob",
    "terraform": "workspace",
}
_NATIVE_STATE = {
    RunState.SUCCESS: {"airflow": "success", "jenkins": "SUCCESS", "terraform": "applied"},
    RunState.FAILED: {"airflow": "failed", "jenkins": "FAILURE", "terraform": "errored"},
    RunState.CANCELLED: {"airflow": "failed", "jenkins": "ABORTED", "terraform": "canceled"},
    RunState.RUNNING: {"airflow": "running", "jenkins": "BUILDING", "terraform": "applying"},
    RunState.QUEUED: {"airflow": "queued", "jenkins": "QUEUED", "terraform": "pending"},
}
# Final states of runs: mostly success.
_STATES = (RunState.SUCCESS, RunState.FAILED, RunState.CANCELLED, RunState.RUNNING, RunState.QUEUED)
_STATE_CUM = (88.0, 95.0, 97.0, 99.0, 100.0)
_TRIGGERS = (Trigger.SCHEDULE, Trigger.MANUAL, Trigger.UPSTREAM, Trigger.API, Trigger.RETRY)
_TRIGGER_CUM = (85.0, 92.0, 97.0, 99.0, 100.0)
REREPORT_RATE = 0.06  # first seen running, final state reported in a later page
DUPLICATE_RATE = 0.01  # re-delivered unchanged by an overlapping page

# Columns of the run table, in the order ``raw_row`` gives them (for the raw baseline).
RAW_COLUMNS: tuple[str, ...] = (
    "uid",
    "source",
    "job_uid",
    "domain",
    "state",
    "native_state",
    "trigger",
    "actor",
    "queued_at",
    "started_at",
    "ended_at",
    "sort_at",
    "attempt",
    "url",
    "message",
    "event_seq",
    "observed_at",
)


def _native_job_id(spec: SourceSpec, i: int) -> str:
    name = f"{_VERBS[i % len(_VERBS)]}_{_NOUNS[(i // len(_VERBS)) % len(_NOUNS)]}_{i:04d}"
    if spec.type == "cron":
        return f"host-{i % 40:02d}:{name}"
    if spec.type == "jenkins":
        return f"team-{i % 12:02d}/{name}"
    if spec.type == "kubernetes":
        return f"ns-{i % 20:02d}/{name.replace('_', '-')}"
    return name


def jobs_of(spec: SourceSpec) -> list[JobRecord]:
    """The inventory of one source (deterministic)."""
    rng = random.Random(f"jobs:{spec.name}")
    schedules = _SCHEDULES[spec.type]
    out: list[JobRecord] = []
    for i in range(spec.jobs):
        native = _native_job_id(spec, i)
        expr = rng.choice(schedules) if schedules else None
        out.append(
            JobRecord(
                native_id=native,
                name=native.rsplit("/", 1)[-1],
                native_type=_NATIVE_TYPE[spec.type],
                schedule=Schedule(expression=expr, timezone="UTC") if expr else None,
                paused=rng.random() < 0.03,
                owners=(f"team-{i % 12:02d}",),
                labels={"env": "prod" if rng.random() < 0.8 else "staging", "tier": str(i % 3)},
                url=f"https://{spec.name}.example.com/jobs/{native}",
                description=f"{spec.type} job {native} of the {spec.domain} domain",
            )
        )
    return out


@dataclass
class Batch:
    """One page of run reports from one source."""

    source: SourceSpec
    repeats: list[RunRecord] = field(default_factory=list)  # runs seen in an earlier page
    fresh: list[RunRecord] = field(default_factory=list)  # runs reported for the first time

    @property
    def records(self) -> list[RunRecord]:
        return self.repeats + self.fresh


def _native_state(state: RunState, kind: str) -> str:
    return _NATIVE_STATE[state].get(kind, state.value)


def generate(runs: int, batch: int, *, now: datetime, seed: int = 20240601) -> Iterator[Batch]:
    """Pages of run reports for ``runs`` distinct runs spread over the 30 days before ``now``.

    The same arguments give the same stream. Each page holds at most ``batch`` records.
    """
    if batch < 2:
        raise ValueError("batch must be at least 2")
    rng = random.Random(seed)
    # Runs per source in proportion to its jobs; every source's runs cover the whole span.
    total_jobs = sum(s.jobs for s in SOURCES)
    share = [runs * s.jobs // total_jobs for s in SOURCES]
    for k in range(runs - sum(share)):
        share[k % len(SOURCES)] += 1
    done = [0] * len(SOURCES)
    job_ids = {s.name: [_native_job_id(s, i) for i in range(s.jobs)] for s in SOURCES}
    # Some jobs run far more often than others (every 10 minutes vs weekly).
    job_cum: dict[str, list[float]] = {}
    durations: dict[str, list[float]] = {}
    for s in SOURCES:
        jr = random.Random(f"freq:{s.name}")
        total = 0.0
        cum = []
        for _ in range(s.jobs):
            total += jr.paretovariate(1.5)
            cum.append(total)
        job_cum[s.name] = cum
        durations[s.name] = [jr.uniform(20, 3600) for _ in range(s.jobs)]
    start = now - SPAN
    span_s = SPAN.total_seconds()
    pending: dict[str, list[RunRecord]] = {}
    made = 0
    while made < runs:
        # The source furthest behind in time reports next, as when every source is synced
        # in turn: pages of all sources interleave and move forward in time together.
        at = min(
            (k for k in range(len(SOURCES)) if done[k] < share[k]),
            key=lambda k: done[k] / share[k],
        )
        spec = SOURCES[at]
        waiting = pending.pop(spec.name, [])
        repeats, held = waiting[: batch - 1], waiting[batch - 1 :]
        n = min(batch - len(repeats), share[at] - done[at])
        chosen = rng.choices(range(spec.jobs), cum_weights=job_cum[spec.name], k=n)
        fresh: list[RunRecord] = []
        later: list[RunRecord] = held
        for j in chosen:
            i = made
            made += 1
            offset = span_s * done[at] / share[at]
            done[at] += 1
            queued = start + timedelta(seconds=offset + rng.uniform(0, 60))
            job = job_ids[spec.name][j]
            state = rng.choices(_STATES, cum_weights=_STATE_CUM)[0]
            trigger = rng.choices(_TRIGGERS, cum_weights=_TRIGGER_CUM)[0]
            started = (
                None if state == RunState.QUEUED else queued + timedelta(seconds=rng.random() * 30)
            )
            ended = None
            if state.terminal:
                if state == RunState.CANCELLED and rng.random() < 0.3:
                    started = None  # cancelled while still queued
                    ended = queued + timedelta(seconds=rng.uniform(1, 600))
                else:
                    assert started is not None
                    ended = started + timedelta(
                        seconds=durations[spec.name][j] * rng.uniform(0.5, 1.5)
                    )
            attempt = 2 if state == RunState.FAILED and rng.random() < 0.1 else 1
            native = f"{job}/{i}"
            final = RunRecord(
                native_id=native,
                job_native_id=job,
                state=state,
                native_state=_native_state(state, spec.type),
                trigger=trigger,
                actor=f"user{i % 97}@example.com" if trigger == Trigger.MANUAL else None,
                queued_at=queued,
                started_at=started,
                ended_at=ended,
                attempt=attempt,
                url=f"https://{spec.name}.example.com/runs/{native}",
                message=f"exit status {1 + i % 3}" if state == RunState.FAILED else None,
            )
            roll = rng.random()
            if state.terminal and started is not None and roll < REREPORT_RATE:
                fresh.append(
                    final.model_copy(
                        update={
                            "state": RunState.RUNNING,
                            "native_state": _native_state(RunState.RUNNING, spec.type),
                            "ended_at": None,
                            "message": None,
                        }
                    )
                )
                later.append(final)
            else:
                fresh.append(final)
                if roll > 1.0 - DUPLICATE_RATE:
                    later.append(final)
        if later:
            pending[spec.name] = later
        yield Batch(spec, repeats, fresh)
    for spec in SOURCES:
        rest = pending.pop(spec.name, [])
        for k in range(0, len(rest), batch):
            yield Batch(spec, rest[k : k + batch], [])


def _fmt(value: datetime | None) -> str | None:
    # The text form SQLAlchemy's SQLite dialect stores datetimes in (UTC, no offset).
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def raw_row(
    rec: RunRecord, *, source: str, domain: str, observed: datetime
) -> tuple[str | int | None, ...]:
    """The run-table row the store writes for a first report, as plain SQLite values."""
    sort_at = rec.started_at or rec.queued_at or rec.ended_at or observed
    return (
        run_uid(source, rec.native_id),
        source,
        job_uid(source, rec.job_native_id),
        domain,
        rec.state.value,
        rec.native_state,
        rec.trigger.value,
        rec.actor,
        _fmt(rec.queued_at),
        _fmt(rec.started_at),
        _fmt(rec.ended_at),
        _fmt(sort_at),
        rec.attempt,
        rec.url,
        rec.message,
        1,
        _fmt(observed),
    )


def create_sources_and_jobs(engine: Engine, *, now: datetime) -> int:
    """Register the sources and their inventories (through ``apply_inventory``)."""
    total = 0
    with session_scope(engine) as session:
        for spec in SOURCES:
            session.add(Source(name=spec.name, type=spec.type, domain=spec.domain, spec={}))
        set_meta(session, ANCHOR_KEY, now.isoformat())
    for spec in SOURCES:
        with session_scope(engine) as session:
            counts = apply_inventory(
                session, source=spec.name, domain=spec.domain, records=jobs_of(spec), now=now
            )
            total += counts.created
    return total


def anchor_of(session: Session) -> datetime | None:
    raw = get_meta(session, ANCHOR_KEY)
    return datetime.fromisoformat(raw) if raw else None


def open_database(db: Path | None, database_url: str | None, tmp: Path) -> tuple[Engine, str]:
    """An engine on the chosen database (a file in ``tmp`` when none is named), migrated."""
    if database_url:
        url = database_url
    else:
        path = db if db is not None else tmp / "accord.db"
        url = f"sqlite:///{path}"
    engine = create_db_engine(url)
    upgrade(engine)
    return engine, engine.dialect.name


def populate(engine: Engine, *, runs: int, batch: int, now: datetime) -> None:
    """Fill an empty database with the synthetic federation (untimed)."""
    create_sources_and_jobs(engine, now=now)
    for page in generate(runs, batch, now=now):
        with session_scope(engine) as session:
            upsert_runs(
                session, source=page.source.name, domain=page.source.domain, records=page.records
            )
