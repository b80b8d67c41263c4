"""The append-only, hash-chained audit log.

Each record's hash is SHA-256 over the previous record's hash and the record's canonical
JSON (sorted keys, no whitespace). The first record chains to ``GENESIS``. ``prev_hash``
is unique in the table, so two writers can never fork the chain: the second one fails
and retries on the new head.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
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
    "record_hash",
    "verify",
]

GENESIS = "0" * 64
_sqlite_lock = threading.Lock()
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


def append(session: Session, entry: AuditEntry, *, at: datetime | None = None) -> AuditRecord:
    """Append a record in the caller's transaction and return it."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # Serialize writers of the chain for the rest of this transaction.
        session.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
        return _append(session, entry, at)
    with _sqlite_lock:
        return _append(session, entry, at)


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
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent writer took the head: never fork
        raise RuntimeError("audit chain head moved during append; retry the request") from exc
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
