"""Compliance violations, filtered by what the subject may read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from pydantic import BaseModel

from gateway.store.services import violations as service

from ..deps import Principal, SessionDep, require
from ..routing import Router
from ..schemas import Paged

router = Router(prefix="/api/v1/violations", tags=["compliance"])


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


@router.get("", response_model=Paged[ViolationPublic])
def list_violations(
    session: SessionDep,
    status: Literal["open", "resolved", "all"] = "open",
    rule: str | None = None,
    severity: Literal["low", "medium", "high", "critical"] | None = None,
    domain: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    total: bool = False,
    principal: Principal = Depends(require("read")),
) -> Paged[ViolationPublic]:
    """Oldest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    filt = service.ViolationFilter(status=status, rule=rule, severity=severity, domain=domain)
    visible = principal.visible()
    page = service.list_violations(session, visible=visible, filt=filt, limit=limit, cursor=cursor)
    count = service.count_violations(session, visible=visible, filt=filt) if total else None
    return Paged[ViolationPublic](
        items=[ViolationPublic.model_validate(r, from_attributes=True) for r in page.items],
        next_cursor=page.next_cursor,
        total=count,
    )
