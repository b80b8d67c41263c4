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
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from gateway.model import (
    TERMINAL_STATES,
    EdgeRecord,
    JobRecord,
    NodeKind,
    NodeRef,
    RunRecord,
    RunState,
    Trigger,
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
    "upsert_jobs",
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


def upsert_jobs(
    session: Session,
    *,
    source: str,
    domain: str,
    records: Sequence[JobRecord],
    now: datetime | None = None,
) -> list[str]:
    """Insert or refresh these jobs of ``source`` and leave its other jobs alone.

    For sources that learn of their jobs one at a time (OpenLineage events) rather than
    by a full listing (``apply_inventory``, which tombstones what is not listed). A
    tombstoned job reported again is revived. Returns the uids created or changed.
    """
    ts = to_db(now or utcnow())
    assert ts is not None
    lock_source(session, source)
    unique = {r.native_id: r for r in records}
    if not unique:
        return []
    table = Job.__table__  # type: ignore[attr-defined]
    uids = [job_uid(source, nid) for nid in unique]
    stored = {
        r[0]: (r[1], r[2] is not None)
        for r in session.execute(
            select(table.c.uid, table.c.definition_hash, table.c.tombstoned_at).where(
                table.c.uid.in_(uids)
            )
        )
    }
    touched: list[str] = []
    for nid, rec in unique.items():
        uid = job_uid(source, nid)
        values = _job_values(rec, source=source, domain=domain, now=ts)
        prev = stored.get(uid)
        if prev is None:
            session.execute(insert(table), [{**values, "first_seen": ts}])
            touched.append(uid)
        elif prev[1] or prev[0] != values["definition_hash"]:
            session.execute(update(table).where(table.c.uid == uid).values(**values))
            touched.append(uid)
        else:
            session.execute(update(table).where(table.c.uid == uid).values(last_seen=ts))
    return touched


# The stored text of each enum member: a dict lookup costs less than ``Enum.value``.
_TEXT: dict[str, str] = {m: m.value for m in (*RunState, *Trigger)}
_STATE: dict[str, RunState] = {m.value: m for m in RunState}
_TERMINAL_TEXT = frozenset(m.value for m in TERMINAL_STATES)


_ZERO = timedelta(0)


def _sqlite_text(value: datetime | None) -> str | None:
    """A datetime in the text form SQLAlchemy's SQLite ``DateTime`` stores (naive UTC)."""
    if value is None:
        return None
    tz = value.tzinfo
    if tz is None:
        return value.isoformat(" ", "microseconds")
    if tz is not UTC and tz.utcoffset(value) != _ZERO:  # (parsed "Z" is not ``UTC`` itself)
        value = value.astimezone(UTC)
    # "YYYY-MM-DD HH:MM:SS.ffffff+00:00" without its offset
    return value.isoformat(" ", "microseconds")[:26]


def _entered(state: RunState, queued: Any, started: Any, ended: Any, observed: Any) -> Any:
    """When the reported state was entered, as well as the record tells."""
    if ended is not None and state in TERMINAL_STATES:
        return ended
    if started is not None and state == RunState.RUNNING:
        return started
    if queued is not None and state == RunState.QUEUED:
        return queued
    return observed


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
# What is read of a stored run (in this order) to decide what a report does to it.
_STORED = ("uid", "state", "attempt", "event_seq", "cancel_requested_at", "cancel_requested_by")
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
# An update writes every column of an insert but uid, and the cancel request; by uid.
_RUN_UPDATE_COLS = (*_RUN_INSERT_COLS[1:], "cancel_requested_at", "cancel_requested_by")
_EVENT_COLS = ("run_uid", "seq", "from_state", "to_state", "at", "observed_at")
_RUN_PG_TYPES = {
    "attempt": "integer",
    "event_seq": "integer",
    **dict.fromkeys(
        ("queued_at", "started_at", "ended_at", "sort_at", "observed_at", "cancel_requested_at"),
        "timestamp",
    ),
}


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


@dataclass
class _RunWrites:
    """The rows one ``upsert_runs`` call writes, in the driver's stored form."""

    inserts: list[tuple[Any, ...]] = field(default_factory=list)  # _RUN_INSERT_COLS
    updates: list[tuple[Any, ...]] = field(default_factory=list)  # _RUN_UPDATE_COLS + uid
    events: list[tuple[Any, ...]] = field(default_factory=list)  # _EVENT_COLS
    # job uid -> (latest sort_at, state of that run)
    latest_by_job: dict[str, tuple[Any, str]] = field(default_factory=dict)
    steps: list[tuple[str, RunRecord]] = field(default_factory=list)


def upsert_runs(
    session: Session,
    *,
    source: str,
    domain: str,
    records: Iterable[RunRecord],
    observed_at: datetime | None = None,
) -> RunIngest:
    """Insert or advance runs of one source (the path every sync and push takes).

    The hot path of every sync. Rows go to the driver in their stored form (SQLite: the
    datetime text SQLAlchemy writes; PostgreSQL: naive UTC datetimes), without
    SQLAlchemy's per-value processing: one ``executemany`` per table on SQLite, ``COPY``
    for new rows and one ``UPDATE … FROM unnest(…)`` per table on PostgreSQL.
    """
    observed = to_db(observed_at or utcnow())
    assert observed is not None
    result = RunIngest()
    prefix = source + "/"
    # Later reports of the same run in one batch win if they are allowed transitions.
    batch: dict[str, RunRecord] = {}
    received = ignored = 0
    for rec in records:
        received += 1
        uid = prefix + rec.native_id
        prev = batch.get(uid)
        if (
            prev is None
            or accept_transition(
                prev.state, rec.state, current_attempt=prev.attempt, proposed_attempt=rec.attempt
            )
            or (prev.state == rec.state and prev.attempt == rec.attempt)
        ):
            batch[uid] = rec
        else:
            ignored += 1
    result.received, result.ignored = received, ignored
    if not batch:
        return result
    lock_source(session, source)
    conn = session.connection()
    pg = conn.dialect.name == "postgresql"
    stored_form: Any = to_db if pg else _sqlite_text
    obs = stored_form(observed)
    existing = _stored_runs(conn, list(batch), pg)
    out = _RunWrites()
    changes = result.changes
    # Bound once: this loop runs for every run of every sync.
    insert_run, insert_event, change = out.inserts.append, out.events.append, changes.append
    stored_row, latest_by_job, texts = existing.get, out.latest_by_job, _TEXT
    created = 0
    for uid, rec in batch.items():
        state = rec.state
        queued = stored_form(rec.queued_at)
        started = stored_form(rec.started_at)
        ended = stored_form(rec.ended_at)
        sort_at = started or queued or ended or obs
        job = prefix + rec.job_native_id
        trigger = texts[rec.trigger]
        row = stored_row(uid)
        # The stored columns after the state text (the same for an insert and an update).
        tail = (
            rec.native_state,
            trigger,
            rec.actor,
            queued,
            started,
            ended,
            sort_at,
            rec.attempt,
            rec.url,
            rec.message,
            obs,
        )
        if row is None:
            text = texts[state]
            insert_run((uid, source, job, domain, text, *tail, 1))
            insert_event((uid, 1, None, text, _entered(state, queued, started, ended, obs), obs))
            created += 1
            change(RunChange(uid, job, None, text, domain))
        else:
            stored_state, stored_attempt, seq = row[1], row[2], row[3]
            current = _STATE[stored_state]
            if rec.attempt > stored_attempt:
                # A new attempt (a retry) starts over: an earlier cancel is not about it.
                cancel_at = cancel_by = None
            else:
                cancel_at, cancel_by = row[4], row[5]
                if cancel_at is not None and state == RunState.FAILED:
                    # Accord cancelled this run and the source can only say "failed"
                    # (Airflow): it is a cancel. The native state stays as reported.
                    state = RunState.CANCELLED
            text = _TEXT[state]
            written = (source, job, domain, text, *tail)
            if accept_transition(
                current, state, current_attempt=stored_attempt, proposed_attempt=rec.attempt
            ):
                seq += 1
                out.updates.append((*written, seq, cancel_at, cancel_by, uid))
                out.events.append(
                    (
                        uid,
                        seq,
                        stored_state,
                        text,
                        _entered(state, queued, started, ended, obs),
                        obs,
                    )
                )
                result.changed += 1
                changes.append(RunChange(uid, job, stored_state, text, domain))
            elif (
                current == state
                and stored_attempt == rec.attempt
                # native_state, trigger, actor, queued_at, started_at, ended_at, url, message
                and row[6:] != (*written[4:10], rec.url, rec.message)
            ):
                out.updates.append((*written, seq, cancel_at, cancel_by, uid))
                result.refreshed += 1
            else:
                result.ignored += 1
                continue
        if rec.steps is not None:
            out.steps.append((uid, rec))
        prev_latest = latest_by_job.get(job)
        if prev_latest is None or sort_at >= prev_latest[0]:
            latest_by_job[job] = (sort_at, text)
    result.created = created
    if pg:
        _write_runs_postgres(conn, out)
    else:
        _write_runs_sqlite(conn, out)
    if out.steps:
        _replace_steps(session, out.steps)
    finished = [c.uid for c in result.changes if c.to_state in _TERMINAL_TEXT]
    if finished:
        # Firings owed by Dependency / RetryPolicy documents, durable in this same commit.
        observe(session, changed_uids=finished, now=observed)
    if any(c.to_state == "failed" for c in result.changes):
        # run.failed / run.missed messages, durable in this same commit: in a cluster the
        # replica that sends them need not be the one that saw the failure.
        from gateway.governance.notify import run_failures  # (an import cycle at module level)

        run_failures(session, result.changes, now=observed)
    return result


def _stored_runs(conn: Connection, uids: list[str], pg: bool) -> dict[str, tuple[Any, ...]]:
    """uid -> (*_STORED, *_MUTABLE) of the stored runs among ``uids``, as the driver reads
    them (datetimes in the same stored form the writes use)."""
    cols = ", ".join((*_STORED, *_MUTABLE))
    found: dict[str, tuple[Any, ...]] = {}
    if pg:
        rows = conn.exec_driver_sql(f"SELECT {cols} FROM run WHERE uid = ANY(%s)", (uids,))
        for r in rows:
            found[r[0]] = tuple(r)
        return found
    for i in range(0, len(uids), _CHUNK):
        chunk = uids[i : i + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for r in conn.exec_driver_sql(
            f"SELECT {cols} FROM run WHERE uid IN ({marks})", tuple(chunk)
        ):
            found[r[0]] = tuple(r)
    return found


_SQLITE_RUN_INSERT = (
    f"INSERT INTO run ({', '.join(_RUN_INSERT_COLS)}) "
    f"VALUES ({', '.join('?' * len(_RUN_INSERT_COLS))})"
)
_SQLITE_RUN_UPDATE = (
    f"UPDATE run SET {', '.join(f'{c} = ?' for c in _RUN_UPDATE_COLS)} WHERE uid = ?"
)
_SQLITE_EVENT_INSERT = (
    f"INSERT INTO run_event ({', '.join(_EVENT_COLS)}) VALUES ({', '.join('?' * len(_EVENT_COLS))})"
)
# A job's last run moves only forward in time.
_SQLITE_JOB_LAST_RUN = (
    "UPDATE job SET last_run_state = ?, last_run_at = ? "
    "WHERE uid = ? AND (last_run_at IS NULL OR last_run_at <= ?)"
)


def _write_runs_sqlite(conn: Connection, out: _RunWrites) -> None:
    if out.inserts:
        conn.exec_driver_sql(_SQLITE_RUN_INSERT, out.inserts)
    if out.updates:
        conn.exec_driver_sql(_SQLITE_RUN_UPDATE, out.updates)
    if out.events:
        conn.exec_driver_sql(_SQLITE_EVENT_INSERT, out.events)
    if out.latest_by_job:
        conn.exec_driver_sql(
            _SQLITE_JOB_LAST_RUN,
            [(st, at, job, at) for job, (at, st) in out.latest_by_job.items()],
        )


def _pg_unnest(cols: tuple[str, ...]) -> str:
    return ", ".join(f"%s::{_RUN_PG_TYPES.get(c, 'text')}[]" for c in cols)


_PG_RUN_UPDATE = (
    f"UPDATE run AS r SET {', '.join(f'{c} = v.{c}' for c in _RUN_UPDATE_COLS)} "
    f"FROM unnest({_pg_unnest((*_RUN_UPDATE_COLS, 'uid'))}) "
    f"AS v({', '.join((*_RUN_UPDATE_COLS, 'uid'))}) WHERE r.uid = v.uid"
)
_PG_JOB_LAST_RUN = (
    "UPDATE job AS j SET last_run_state = v.state, last_run_at = v.at "
    "FROM unnest(%s::text[], %s::timestamp[], %s::text[]) AS v(uid, at, state) "
    "WHERE j.uid = v.uid AND (j.last_run_at IS NULL OR j.last_run_at <= v.at)"
)


def _write_runs_postgres(conn: Connection, out: _RunWrites) -> None:
    """New rows by ``COPY`` straight into their tables, changes by one ``UPDATE … FROM
    unnest(…)`` per table.

    ``COPY`` into the run table itself (not a staging table and ``INSERT … ON CONFLICT``)
    is safe because the caller holds the source's lock (``lock_source``) and has just read
    which of these uids are stored: no other writer can insert a run of this source until
    the transaction ends, so every row here is new. Were one not, ``COPY`` fails on the
    unique uid and the transaction rolls back, as the plain ``INSERT`` it replaces did.
    """
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        if out.inserts:
            with cur.copy(f"COPY run ({', '.join(_RUN_INSERT_COLS)}) FROM STDIN") as copy:
                for row in out.inserts:
                    copy.write_row(row)
        if out.updates:
            cur.execute(_PG_RUN_UPDATE, [list(c) for c in zip(*out.updates, strict=True)])
        if out.events:
            with cur.copy(f"COPY run_event ({', '.join(_EVENT_COLS)}) FROM STDIN") as copy:
                for row in out.events:
                    copy.write_row(row)
        if out.latest_by_job:
            jobs = list(out.latest_by_job)
            ats = [out.latest_by_job[j][0] for j in jobs]
            states = [out.latest_by_job[j][1] for j in jobs]
            cur.execute(_PG_JOB_LAST_RUN, [jobs, ats, states])


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
