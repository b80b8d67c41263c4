"""Compliance violations, filtered by what the subject may read."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from sqlmodel import col, select

from gateway.store.tables import Violation

from ..deps import Principal, SessionDep, require

router = APIRouter(prefix="/api/v1/violations", tags=["compliance"])


class ViolationPublic(BaseModel):
    id: int
    rule: str
    severity: str
    job_uid: str
    domain: str
    message: str
    evidence: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None
    resolution: str | None


@router.get("", response_model=list[ViolationPublic])
def list_violations(
    session: SessionDep,
    status: Literal["open", "resolved", "all"] = "open",
    rule: str | None = None,
    severity: Literal["low", "medium", "high", "critical"] | None = None,
    domain: str | None = None,
    principal: Principal = Depends(require("read")),
) -> list[ViolationPublic]:
    stmt = select(Violation).where(
        principal.visible()(col(Violation.domain), col(Violation.job_uid))
    )
    if status == "open":
        stmt = stmt.where(col(Violation.resolved_at).is_(None))
    elif status == "resolved":
        stmt = stmt.where(col(Violation.resolved_at).is_not(None))
    for column, value in (
        (Violation.rule, rule),
        (Violation.severity, severity),
        (Violation.domain, domain),
    ):
        if value:
            stmt = stmt.where(col(column) == value)
    rows = session.exec(stmt.order_by(col(Violation.id)).limit(5000)).all()
    return [ViolationPublic.model_validate(r, from_attributes=True) for r in rows]
