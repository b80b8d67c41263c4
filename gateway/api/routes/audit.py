from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlmodel import col, select

from gateway.audit import verify
from gateway.store.tables import AuditRecord
from gateway.store.types import to_db

from ..convert import audit_public
from ..deps import Principal, SessionDep, require
from ..schemas import AuditRecordPublic, Paged

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=Paged[AuditRecordPublic])
def list_audit(
    session: SessionDep,
    principal: Principal = Depends(require("read")),
    since: datetime | None = None,
    until: datetime | None = None,
    subject: str | None = None,
    action: str | None = None,
    target: str | None = None,
    decision: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: int | None = Query(default=None, description="cursor: records with seq below"),
) -> Paged[AuditRecordPublic]:
    # Records are visible by domain; configuration changes ("*") need export-audit.
    read_pred = principal.grants.predicate("read", col(AuditRecord.domain), None)
    audit_pred = principal.grants.predicate("export-audit", col(AuditRecord.domain), None)
    stmt = select(AuditRecord).where((read_pred & (col(AuditRecord.domain) != "*")) | audit_pred)
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
    rows = list(session.exec(stmt.order_by(col(AuditRecord.seq).desc()).limit(limit + 1)).all())
    nxt = str(rows[limit - 1].seq) if len(rows) > limit else None
    return Paged[AuditRecordPublic](items=[audit_public(r) for r in rows[:limit]], next_cursor=nxt)


@router.get("/verify")
def verify_chain(
    session: SessionDep, principal: Principal = Depends(require("export-audit"))
) -> dict[str, object]:
    result = verify(session)
    return {
        "ok": result.ok,
        "count": result.count,
        "head_hash": result.head_hash,
        "first_bad_seq": result.first_bad_seq,
        "problem": result.problem,
    }
