"""The append-only, hash-chained audit log.

Each record's hash is SHA-256 over the previous record's hash and the record's canonical
JSON (sorted keys, no whitespace). The first record chains to ``GENESIS``.

Appends are serialized by the database, never by a process lock, so they hold across
threads, processes and replicas: on PostgreSQL a transaction-scoped advisory lock taken
before the head is read; on SQLite the caller's write transaction (``session_scope``
begins with ``BEGIN IMMEDIATE``), which holds the only write lock. The lock lasts until
the caller commits, so the next writer reads the new head. ``prev_hash`` is also unique
in the table: a writer that bypassed the lock could never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, select, text
from sqlmodel import Session, col

from gateway.store.tables import AuditRecord
from gateway.store.types import to_db, utcnow

__all__ = [
    "GENESIS",
    "HASHED_FIELDS",
    "AuditEntry",
    "VerifyResult",
    "append",
    "canonical",
    "list_records",
    "lock_chain",
    "record",
    "record_hash",
    "verify",
]

GENESIS = "0" * 64
_CHAIN_LOCK = 4242001
HASHED_FIELDS = (
    "seq",
    "at",
    "subject",
    "channel",
    "action",
    "target",
    "domain",
    "decision",
    "policy",
    "reason",
    "outcome",
    "request_id",
    "details",
)


@dataclass(frozen=True)
class AuditEntry:
    subject: str
    channel: str
    action: str
    target: str
    domain: str
    decision: str
    outcome: str
    policy: str | None = None
    reason: str | None = None
    request_id: str | None = None
    details: dict[str, Any] | None = None


def _iso(value: datetime) -> str:
    return (to_db(value) or value).isoformat(timespec="microseconds") + "Z"


def canonical(fields: dict[str, Any]) -> str:
    body = {k: fields[k] for k in HASHED_FIELDS}
    if isinstance(body["at"], datetime):
        body["at"] = _iso(body["at"])
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(fields)).encode()).hexdigest()


def _head(session: Session) -> tuple[int, str]:
    row = session.execute(
        select(col(AuditRecord.seq), col(AuditRecord.hash))
        .order_by(col(AuditRecord.seq).desc())
        .limit(1)
    ).first()
    if row is None:
        return 0, GENESIS
    return int(row[0]), str(row[1])


def lock_chain(session: Session) -> None:
    """Hold the audit chain for the rest of the caller's transaction.

    Call it before reading anything a decision depends on that other appends change
    (rate limits count audit records). Idempotent within a transaction.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SELECT pg_advisory_xact_lock({_CHAIN_LOCK})"))


def append(session: Session, entry: AuditEntry, *, at: datetime | None = None) -> AuditRecord:
    """Append a record in the caller's write transaction and return it."""
    lock_chain(session)
    return _append(session, entry, at)


def record(engine: Engine, entry: AuditEntry) -> int:
    """Append one record in its own write transaction; returns its sequence number."""
    from gateway.store.engine import session_scope

    with session_scope(engine) as session:
        return append(session, entry).seq


def list_records(
    session: Session,
    *,
    read: Callable[[Any], ColumnElement[bool]],
    export: Callable[[Any], ColumnElement[bool]],
    since: datetime | None = None,
    until: datetime | None = None,
    subject: str | None = None,
    action: str | None = None,
    target: str | None = None,
    decision: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    """Newest first. Records are visible by domain (``read``); configuration changes
    (domain ``*``) need ``export``."""
    domain = col(AuditRecord.domain)
    stmt = select(AuditRecord).where((read(domain) & (domain != "*")) | export(domain))
    if since:
        stmt = stmt.where(col(AuditRecord.at) >= to_db(since))
    if until:
        stmt = stmt.where(col(AuditRecord.at) < to_db(until))
    for column, value in (
        (AuditRecord.subject, subject),
        (AuditRecord.action, action),
        (AuditRecord.target, target),
        (AuditRecord.decision, decision),
    ):
        if value:
            stmt = stmt.where(col(column) == value)
    if before:
        stmt = stmt.where(col(AuditRecord.seq) < before)
    return list(session.scalars(stmt.order_by(col(AuditRecord.seq).desc()).limit(limit)).all())


def _append(session: Session, entry: AuditEntry, at: datetime | None) -> AuditRecord:
    seq, prev = _head(session)
    when = to_db(at or utcnow())
    assert when is not None
    # Microsecond precision is what every backend keeps.
    fields: dict[str, Any] = {
        "seq": seq + 1,
        "at": when,
        "subject": entry.subject,
        "channel": entry.channel,
        "action": entry.action,
        "target": entry.target,
        "domain": entry.domain,
        "decision": entry.decision,
        "policy": entry.policy,
        "reason": entry.reason,
        "outcome": entry.outcome,
        "request_id": entry.request_id,
        "details": json.loads(json.dumps(entry.details or {}, default=str)),
    }
    rec = AuditRecord(**fields, prev_hash=prev, hash=record_hash(prev, fields))
    session.add(rec)
    session.flush()
    return rec


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


def row_fields(rec: AuditRecord) -> dict[str, Any]:
    return {k: getattr(rec, k) for k in HASHED_FIELDS}


def verify(session: Session, *, batch: int = 5000) -> VerifyResult:
    """Walk the whole chain in order; name the first record that does not verify."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    last = 0
    total = session.execute(select(func.count()).select_from(AuditRecord)).scalar_one()
    while True:
        rows = (
            session.execute(
                select(AuditRecord)
                .where(col(AuditRecord.seq) > last)
                .order_by(col(AuditRecord.seq))
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for rec in rows:
            if rec.seq != expected_seq:
                return VerifyResult(
                    False, count, prev, expected_seq, f"record {expected_seq} is missing"
                )
            if rec.prev_hash != prev:
                return VerifyResult(
                    False, count, prev, rec.seq, "prev_hash does not match the previous record"
                )
            if record_hash(prev, row_fields(rec)) != rec.hash:
                return VerifyResult(False, count, prev, rec.seq, "content does not match its hash")
            prev = rec.hash
            expected_seq += 1
            count += 1
            last = rec.seq
        session.expunge_all()
    if count != total:  # pragma: no cover - would mean seq gaps above the last row
        return VerifyResult(False, count, prev, expected_seq, "record count mismatch")
    return VerifyResult(True, count, prev)


def record_fields(r: AuditRecord) -> dict[str, Any]:
    """An audit record's fields as plain data (as the API lists them and exports write
    them; the time stays a datetime for the caller's encoder)."""
    return {
        "seq": r.seq,
        "at": r.at,
        "subject": r.subject,
        "channel": r.channel,
        "action": r.action,
        "target": r.target,
        "domain": r.domain,
        "decision": r.decision,
        "policy": r.policy,
        "reason": r.reason,
        "outcome": r.outcome,
        "request_id": r.request_id,
        "details": r.details,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    }
