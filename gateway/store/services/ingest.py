"""Writing what adapters report: inventory diffs, run upserts, steps and edges.

Everything here is idempotent by uid: replays, duplicates and out-of-order deliveries
change nothing. A run's state only moves forward (``accept_transition``), and every
accepted change appends a RunEvent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from gateway.model import (
    EdgeRecord,
    JobRecord,
    NodeKind,
    NodeRef,
    RunRecord,
    RunState,
    accept_transition,
)

from ..tables import Dataset, Edge, Job, Run, RunEvent, Step
from ..types import to_db, utcnow
from .automation import observe

__all__ = [
    "IngestCounts",
    "InventoryDiff",
    "apply_inventory",
    "definition_hash",
    "diff_inventory",
    "job_uid",
    "lock_source",
    "mark_cancel_requested",
    "node_uid",
    "record_edges",
    "run_uid",
    "upsert_runs",
]

_CHUNK = 500
_SOURCE_LOCK = 4242003


def lock_source(session: Session, source: str) -> None:
    """Make the caller the one writer of this source's jobs and runs until it commits.

    Every write path (sync passes, agent pushes, actions) reads a run and then writes it;
    two of them interleaving on one run would write back stale state. On PostgreSQL a
    transaction-scoped advisory lock per source serializes them across processes and
    replicas; on SQLite the write transaction (``session_scope`` begins with ``BEGIN
    IMMEDIATE``) already holds the database's only write lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, hashtext(:source))"),
            {"ns": _SOURCE_LOCK, "source": source},
        )


def _insert_ignoring_duplicates(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert rows another source may be inserting at the same moment (shared datasets and
    edges): a duplicate is already what we wanted."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(table).on_conflict_do_nothing(), rows)
    elif dialect == "sqlite":
        session.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        session.execute(insert(table), rows)


def job_uid(source: str, native_id: str) -> str:
    return f"{source}/{native_id}"


run_uid = job_uid


def node_uid(ref: NodeRef, reporting_source: str) -> str:
    if ref.kind == NodeKind.DATASET:
        return f"{ref.namespace or 'default'}/{ref.id}"
    return f"{ref.source or reporting_source}/{ref.id}"


def definition_hash(record: JobRecord) -> str:
    """A digest of everything the source says about a job (to detect changes)."""
    payload = record.model_dump(mode="json", exclude={"next_run_at"})
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class InventoryDiff:
    new: list[JobRecord] = field(default_factory=list)
    changed: list[JobRecord] = field(default_factory=list)
    revived: list[JobRecord] = field(default_factory=list)
    unchanged: list[JobRecord] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # native ids to tombstone


def diff_inventory(
    stored: dict[str, tuple[str, bool]], listed: Sequence[JobRecord]
) -> InventoryDiff:
    """Pure diff of a full listing against what is stored.

    ``stored`` maps native id → (definition hash, tombstoned). A listed job that is not
    stored is new; one whose hash differs is changed; a tombstoned one listed again is
    revived; stored live jobs that are not listed are gone.
    """
    diff = InventoryDiff()
    seen: set[str] = set()
    for rec in listed:
        if rec.native_id in seen:
            continue  # a source listing a job twice counts it once
        seen.add(rec.native_id)
        prev = stored.get(rec.native_id)
        if prev is None:
            diff.new.append(rec)
        elif prev[1]:
            diff.revived.append(rec)
        elif prev[0] != definition_hash(rec):
            diff.changed.append(rec)
        else:
            diff.unchanged.append(rec)
    diff.gone.extend(
        sorted(nid for nid, (_h, dead) in stored.items() if not dead and nid not in seen)
    )
    return diff


@dataclass
class IngestCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    tombstoned: int = 0
    revived: int = 0
    # Uids of the jobs created, changed or revived, and of those tombstoned: what an
    # incremental compliance evaluation has to look at.
    touched: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "tombstoned": self.tombstoned,
            "revived": self.revived,
        }


def _job_values(rec: JobRecord, *, source: str, domain: str, now: datetime) -> dict[str, Any]:
    sched = rec.schedule
    return {
        "uid": job_uid(source, rec.native_id),
        "source": source,
        "native_id": rec.native_id,
        "domain": domain,
        "name": rec.name,
        "native_type": rec.native_type,
        "schedule_expr": sched.expression if sched else None,
        "schedule_tz": sched.timezone if sched else None,
        "schedule_text": sched.text if sched else None,
        "next_run_at": to_db(rec.next_run_at),
        "paused": rec.paused,
        "owners": list(rec.owners),
        "labels": dict(rec.labels),
        "url": rec.url,
        "description": rec.description,
        "attributes": dict(rec.attributes),
        "problems": list(rec.problems),
        "definition_hash": definition_hash(rec),
        "last_seen": now,
        "tombstoned_at": None,
    }


def apply_inventory(
    session: Session,
    *,
    source: str,
    domain: str,
    records: Sequence[JobRecord],
    now: datetime | None = None,
) -> IngestCounts:
    """Reconcile the stored jobs of ``source`` with a full listing."""
    now = to_db(now or utcnow())
    assert now is not None
    lock_source(session, source)
    rows = session.execute(
        select(Job.native_id, Job.definition_hash, Job.tombstoned_at).where(  # type: ignore[call-overload]
            Job.source == source
        )
    ).all()
    stored = {r[0]: (r[1], r[2] is not None) for r in rows}
    diff = diff_inventory(stored, records)
    counts = IngestCounts(
        created=len(diff.new),
        updated=len(diff.changed),
        unchanged=len(diff.unchanged),
        tombstoned=len(diff.gone),
        revived=len(diff.revived),
        touched=[job_uid(source, r.native_id) for r in (*diff.new, *diff.changed, *diff.revived)],
        gone=[job_uid(source, nid) for nid in diff.gone],
    )
    table = Job.__table__  # type: ignore[attr-defined]
    if diff.new:
        values = [
            {**_job_values(r, source=source, domain=domain, now=now), "first_seen": now}
            for r in diff.new
        ]
        session.execute(insert(table), values)
    refresh = diff.changed + diff.revived + diff.unchanged
    if refresh:
        values = [
            {
                **_job_values(r, source=source, domain=domain, now=now),
                "b_uid": job_uid(source, r.native_id),
            }
            for r in refresh
        ]
        stmt = update(table).where(table.c.uid == bindparam("b_uid"))
        for i in range(0, len(values), _CHUNK):
            session.execute(stmt, values[i : i + _CHUNK])
    # When a job was first seen paused (compliance rules measure how long it stays so).
    session.execute(
        update(table)
        .where(table.c.source == source, table.c.paused.is_(True), table.c.paused_since.is_(None))
        .values(paused_since=now)
    )
    session.execute(
        update(table)
        .where(
            table.c.source == source, table.c.paused.is_(False), table.c.paused_since.is_not(None)
        )
        .values(paused_since=None)
    )
    if diff.gone:
        uids = [job_uid(source, nid) for nid in diff.gone]
        for i in range(0, len(uids), _CHUNK):
            session.execute(
                update(table).where(table.c.uid.in_(uids[i : i + _CHUNK])).values(tombstoned_at=now)
            )
    return counts


def _sort_at(rec: RunRecord, observed: datetime) -> datetime:
    return to_db(rec.started_at or rec.queued_at or rec.ended_at) or observed


def _event_time(rec: RunRecord, observed: datetime) -> datetime:
    """When the reported state was entered, as well as the record tells."""
    if rec.state.terminal and rec.ended_at:
        return to_db(rec.ended_at) or observed
    if rec.state == RunState.RUNNING and rec.started_at:
        return to_db(rec.started_at) or observed
    if rec.state == RunState.QUEUED and rec.queued_at:
        return to_db(rec.queued_at) or observed
    return observed


def _run_values(rec: RunRecord, *, source: str, domain: str, observed: datetime) -> dict[str, Any]:
    return {
        "uid": run_uid(source, rec.native_id),
        "source": source,
        "job_uid": job_uid(source, rec.job_native_id),
        "domain": domain,
        "state": rec.state.value,
        "native_state": rec.native_state,
        "trigger": rec.trigger.value,
        "actor": rec.actor,
        "queued_at": to_db(rec.queued_at),
        "started_at": to_db(rec.started_at),
        "ended_at": to_db(rec.ended_at),
        "sort_at": _sort_at(rec, observed),
        "attempt": rec.attempt,
        "url": rec.url,
        "message": rec.message,
        "observed_at": observed,
    }


_MUTABLE = (
    "native_state",
    "trigger",
    "actor",
    "queued_at",
    "started_at",
    "ended_at",
    "url",
    "message",
)


@dataclass
class RunChange:
    uid: str
    job_uid: str
    from_state: str | None
    to_state: str
    domain: str = ""


@dataclass
class RunIngest:
    received: int = 0
    created: int = 0
    changed: int = 0  # state changes (each appended a RunEvent)
    refreshed: int = 0  # same state, other fields updated
    ignored: int = 0  # stale, duplicate or backwards reports
    changes: list[RunChange] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "created": self.created,
            "changed": self.changed,
            "refreshed": self.refreshed,
            "ignored": self.ignored,
        }


def upsert_runs(
    session: Session,
    *,
    source: str,
    domain: str,
    records: Iterable[RunRecord],
    observed_at: datetime | None = None,
) -> RunIngest:
    """Insert or advance runs of one source (the path every sync and push takes)."""
    observed = to_db(observed_at or utcnow())
    assert observed is not None
    result = RunIngest()
    # Later reports of the same run in one batch win if they are allowed transitions.
    batch: dict[str, RunRecord] = {}
    order: list[str] = []
    for rec in records:
        result.received += 1
        uid = run_uid(source, rec.native_id)
        prev = batch.get(uid)
        if prev is None:
            order.append(uid)
            batch[uid] = rec
        elif accept_transition(
            prev.state, rec.state, current_attempt=prev.attempt, proposed_attempt=rec.attempt
        ) or (prev.state == rec.state and prev.attempt == rec.attempt):
            batch[uid] = rec
        else:
            result.ignored += 1
    if not batch:
        return result
    lock_source(session, source)
    run_t = Run.__table__  # type: ignore[attr-defined]
    existing: dict[str, Any] = {}
    for i in range(0, len(order), _CHUNK):
        chunk = order[i : i + _CHUNK]
        cols = [
            run_t.c[c]
            for c in (
                "uid",
                "state",
                "attempt",
                "event_seq",
                "cancel_requested_at",
                "cancel_requested_by",
                *_MUTABLE,
            )
        ]
        for found in session.execute(select(*cols).where(run_t.c.uid.in_(chunk))):
            existing[found.uid] = found
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    latest_by_job: dict[str, tuple[datetime, str]] = {}
    steps: list[tuple[str, RunRecord]] = []
    for uid in order:
        rec = batch[uid]
        values = _run_values(rec, source=source, domain=domain, observed=observed)
        row = existing.get(uid)
        if row is None:
            values["event_seq"] = 1
            inserts.append(values)
            events.append(
                {
                    "run_uid": uid,
                    "seq": 1,
                    "from_state": None,
                    "to_state": rec.state.value,
                    "at": _event_time(rec, observed),
                    "observed_at": observed,
                }
            )
            result.created += 1
            result.changes.append(RunChange(uid, values["job_uid"], None, rec.state.value, domain))
        else:
            current = RunState(row.state)
            if rec.attempt > row.attempt:
                # A new attempt (a retry) starts over: an earlier cancel is not about it.
                values["cancel_requested_at"] = None
                values["cancel_requested_by"] = None
            else:
                values["cancel_requested_at"] = row.cancel_requested_at
                values["cancel_requested_by"] = row.cancel_requested_by
                if row.cancel_requested_at is not None and rec.state == RunState.FAILED:
                    # Accord cancelled this run and the source can only say "failed"
                    # (Airflow): it is a cancel. The native state stays as reported.
                    rec = rec.model_copy(update={"state": RunState.CANCELLED})
                    values["state"] = rec.state.value
            if accept_transition(
                current, rec.state, current_attempt=row.attempt, proposed_attempt=rec.attempt
            ):
                seq = row.event_seq + 1
                values["event_seq"] = seq
                values["b_uid"] = uid
                updates.append(values)
                events.append(
                    {
                        "run_uid": uid,
                        "seq": seq,
                        "from_state": row.state,
                        "to_state": rec.state.value,
                        "at": _event_time(rec, observed),
                        "observed_at": observed,
                    }
                )
                result.changed += 1
                result.changes.append(
                    RunChange(uid, values["job_uid"], row.state, rec.state.value, domain)
                )
            elif (
                current == rec.state
                and row.attempt == rec.attempt
                and any(_plain(getattr(row, c)) != values[c] for c in _MUTABLE)
            ):
                values["event_seq"] = row.event_seq
                values["b_uid"] = uid
                updates.append(values)
                result.refreshed += 1
            else:
                result.ignored += 1
                continue
        if rec.steps is not None:
            steps.append((uid, rec))
        prev_latest = latest_by_job.get(values["job_uid"])
        if prev_latest is None or values["sort_at"] >= prev_latest[0]:
            latest_by_job[values["job_uid"]] = (values["sort_at"], rec.state.value)
    if inserts:
        _bulk_insert(session, "run", _RUN_INSERT_COLS, inserts)
    if updates:
        session.execute(update(run_t).where(run_t.c.uid == bindparam("b_uid")), updates)
    if events:
        _bulk_insert(session, "run_event", _EVENT_COLS, events)
    if steps:
        _replace_steps(session, steps)
    if latest_by_job:
        job_t = Job.__table__  # type: ignore[attr-defined]
        stmt = (
            update(job_t)
            .where(job_t.c.uid == bindparam("b_uid"))
            .where((job_t.c.last_run_at.is_(None)) | (job_t.c.last_run_at <= bindparam("b_at")))
            .values(last_run_state=bindparam("b_state"), last_run_at=bindparam("b_at"))
        )
        session.execute(
            stmt,
            [{"b_uid": j, "b_at": at, "b_state": st} for j, (at, st) in latest_by_job.items()],
        )
    ended = [c.uid for c in result.changes if RunState(c.to_state).terminal]
    if ended:
        # Firings owed by Dependency / RetryPolicy documents, durable in this same commit.
        observe(session, changed_uids=ended, now=observed)
    return result


def _plain(value: Any) -> Any:
    """Stored datetimes come back aware; compare them in the form they are written."""
    return to_db(value) if isinstance(value, datetime) else value


_RUN_INSERT_COLS = (
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
    "observed_at",
    "event_seq",
)
_EVENT_COLS = ("run_uid", "seq", "from_state", "to_state", "at", "observed_at")


def _sqlite_dt(value: Any) -> Any:
    # The text form SQLAlchemy's SQLite DateTime type stores and parses.
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return value


def _bulk_insert(
    session: Session, table: str, cols: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """The hot path of every sync: one executemany straight to the driver.

    The values are already in their stored form (UTC, naive), so SQLAlchemy's per-value
    processing is skipped; on SQLite datetimes are formatted the way its DateTime type
    stores them.
    """
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
    if sqlite:
        params = [tuple(_sqlite_dt(r[c]) for c in cols) for r in rows]
    else:
        params = [tuple(r[c] for c in cols) for r in rows]
    conn.exec_driver_sql(sql, params)


def _replace_steps(session: Session, steps: list[tuple[str, RunRecord]]) -> None:
    step_t = Step.__table__  # type: ignore[attr-defined]
    uids = [u for u, _ in steps]
    for i in range(0, len(uids), _CHUNK):
        session.execute(step_t.delete().where(step_t.c.run_uid.in_(uids[i : i + _CHUNK])))
    rows = [
        {
            "run_uid": uid,
            "name": s.name,
            "state": s.state.value,
            "native_state": s.native_state,
            "started_at": to_db(s.started_at),
            "ended_at": to_db(s.ended_at),
            "attempt": s.attempt,
        }
        for uid, rec in steps
        for s in {st.name: st for st in rec.steps or ()}.values()
    ]
    if rows:
        session.execute(insert(step_t), rows)


def record_edges(
    session: Session,
    *,
    source: str,
    edges: Iterable[EdgeRecord],
    now: datetime | None = None,
) -> int:
    """Upsert lineage edges (and the datasets they name). Returns how many were new."""
    ts = to_db(now or utcnow())
    edge_t = Edge.__table__  # type: ignore[attr-defined]
    ds_t = Dataset.__table__  # type: ignore[attr-defined]
    unique: dict[tuple[str, str, str], EdgeRecord] = {}
    datasets: dict[str, NodeRef] = {}
    for e in edges:
        src = node_uid(e.src, source)
        dst = node_uid(e.dst, source)
        unique[(e.kind.value, src, dst)] = e
        for ref in (e.src, e.dst):
            if ref.kind == NodeKind.DATASET:
                datasets[node_uid(ref, source)] = ref
    if not unique:
        return 0
    if datasets:
        known = set(
            session.execute(select(ds_t.c.uid).where(ds_t.c.uid.in_(list(datasets)))).scalars()
        )
        new_ds = [
            {
                "uid": u,
                "namespace": r.namespace or "default",
                "name": r.id,
                "first_seen": ts,
                "last_seen": ts,
            }
            for u, r in datasets.items()
            if u not in known
        ]
        if new_ds:
            _insert_ignoring_duplicates(session, ds_t, new_ds)
        if known:
            session.execute(update(ds_t).where(ds_t.c.uid.in_(list(known))).values(last_seen=ts))
    existing = {
        (r.kind, r.src_uid, r.dst_uid): r.id
        for r in session.execute(
            select(edge_t.c.id, edge_t.c.kind, edge_t.c.src_uid, edge_t.c.dst_uid).where(
                edge_t.c.src_uid.in_({k[1] for k in unique})
            )
        )
    }
    new_rows = []
    seen_ids = []
    for (kind, src, dst), e in unique.items():
        eid = existing.get((kind, src, dst))
        if eid is not None:
            seen_ids.append(eid)
            continue
        new_rows.append(
            {
                "kind": kind,
                "src_kind": e.src.kind.value,
                "src_uid": src,
                "dst_kind": e.dst.kind.value,
                "dst_uid": dst,
                "reported_by": source,
                "evidence": e.evidence,
                "first_seen": ts,
                "last_seen": ts,
            }
        )
    if new_rows:
        _insert_ignoring_duplicates(session, edge_t, new_rows)
    for i in range(0, len(seen_ids), _CHUNK):
        session.execute(
            update(edge_t).where(edge_t.c.id.in_(seen_ids[i : i + _CHUNK])).values(last_seen=ts)
        )
    return len(new_rows)


def mark_cancel_requested(session: Session, *, uid: str, subject: str) -> bool:
    """Record that a cancel of run ``uid`` through Accord succeeded at the source.

    From then on a ``failed`` report of the same attempt is stored as ``cancelled`` (the
    native state is kept). If the failure was already stored (a sync read it before this
    call), it is corrected now, with a RunEvent. Returns whether the run is known.
    """
    row = session.execute(select(Run).where(col(Run.uid) == uid)).scalars().first()
    if row is None:
        return False
    now = utcnow()
    row.cancel_requested_at = now
    row.cancel_requested_by = subject
    if row.state == RunState.FAILED.value:
        row.event_seq += 1
        session.add(
            RunEvent(
                run_uid=uid,
                seq=row.event_seq,
                from_state=row.state,
                to_state=RunState.CANCELLED.value,
                at=row.ended_at or now,
                observed_at=now,
            )
        )
        row.state = RunState.CANCELLED.value
        job = session.execute(select(Job).where(col(Job.uid) == row.job_uid)).scalars().first()
        if (
            job is not None
            and job.last_run_state == RunState.FAILED.value
            and (job.last_run_at is None or to_db(job.last_run_at) == to_db(row.sort_at))
        ):
            job.last_run_state = RunState.CANCELLED.value
            session.add(job)
    session.add(row)
    return True
