"""What happens next: expected runs across every tool, and SLA states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import and_, case, select
from sqlmodel import Session, col

from gateway.governance.evaluator import Evaluator
from gateway.store.services import queries
from gateway.store.tables import SlaState

from ..deps import Principal, in_thread, require
from ..errors import ApiError
from ..routing import Router

router = Router(prefix="/api/v1", tags=["forecast"])
Reader = Depends(require("read"))
_AHEAD = timedelta(hours=48)  # the forecaster keeps 48 h ahead (and 26 h behind)


class ForecastRun(BaseModel):
    job_uid: str
    job_name: str
    source: str
    source_type: str
    domain: str
    expected_at: datetime
    predicted_end: datetime | None
    duration_median_s: float | None
    duration_p90_s: float | None
    samples: int
    basis: str  # schedule | reported | upstream <job uid>


class ForecastPublic(BaseModel):
    start: datetime
    end: datetime
    computed_at: datetime | None
    total: int
    items: list[ForecastRun]
    truncated: bool


def _utc(v: datetime) -> datetime:
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _visible_uids(session: Session, principal: Principal, filt: queries.JobFilter) -> set[str]:
    return queries.job_uids(session, visible=principal.visible(), filt=filt)


@router.get("/forecast", response_model=ForecastPublic)
async def forecast(
    request: Request,
    principal: Principal = Reader,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    source: str | None = None,
    domain: str | None = None,
    label: str | None = None,
    q: str | None = Query(default=None, max_length=200),
    limit: Annotated[int, Query(ge=1, le=20_000)] = 5_000,
) -> ForecastPublic:
    """Expected runs starting in ``[from, to)`` (default: the next 24 hours)."""
    lo = _utc(start) if start else datetime.now(UTC)
    hi = _utc(end) if end else lo + timedelta(hours=24)
    if hi <= lo:
        raise ApiError(422, "invalid_window", "'to' must be after 'from'")
    if hi > datetime.now(UTC) + _AHEAD:
        raise ApiError(422, "invalid_window", "the forecast reaches 48 hours ahead")
    evaluator: Evaluator = request.app.state.evaluator
    fc = evaluator.forecaster
    if fc.refreshed_at is None:
        await in_thread(request, lambda _s: fc.refresh())
    filt = queries.JobFilter(source=source, domain=domain, label=label, q=q)
    uids = await in_thread(request, lambda s: _visible_uids(s, principal, filt))
    total, rows = fc.window_page(lo, hi, uids, limit=limit)
    items = []
    for e in rows:
        job = fc.job(e.job_uid)
        if job is None:
            continue
        d = fc.durations(e.job_uid)
        items.append(
            ForecastRun(
                job_uid=e.job_uid,
                job_name=job.name,
                source=job.source,
                source_type=job.source_type,
                domain=job.domain,
                expected_at=e.at,
                predicted_end=e.end,
                duration_median_s=d.median_s,
                duration_p90_s=d.p90_s,
                samples=d.samples,
                basis=e.basis,
            )
        )
    return ForecastPublic(
        start=lo,
        end=hi,
        total=total,
        computed_at=fc.refreshed_at,
        items=items,
        truncated=total > len(rows),
    )


class SlaPublic(BaseModel):
    sla: str
    job_uid: str
    domain: str
    state: str
    reason: str
    objective: str
    deadline: datetime | None
    predicted_end: datetime | None
    critical_path: list[str]
    since: datetime
    evaluated_at: datetime


def _slas(
    session: Session, principal: Principal, state: str | None, sla: str | None, job: str | None
) -> list[SlaPublic]:
    conds: list[Any] = [principal.visible()(col(SlaState.domain), col(SlaState.job_uid))]
    if state:
        conds.append(col(SlaState.state) == state)
    if sla:
        conds.append(col(SlaState.sla) == sla)
    if job:
        conds.append(col(SlaState.job_uid) == job)
    order = case({"at_risk": 0, "breached": 1}, value=col(SlaState.state), else_=2)
    rows = session.execute(
        select(SlaState).where(and_(*conds)).order_by(order, col(SlaState.since).desc()).limit(5000)
    ).scalars()
    return [
        SlaPublic(
            sla=r.sla,
            job_uid=r.job_uid,
            domain=r.domain,
            state=r.state,
            reason=r.reason,
            objective=str(r.details.get("objective", "")),
            deadline=r.deadline,
            predicted_end=r.predicted_end,
            critical_path=list(r.details.get("critical_path") or []),
            since=r.since,
            evaluated_at=r.evaluated_at,
        )
        for r in rows
    ]


@router.get("/slas", response_model=list[SlaPublic])
async def list_slas(
    request: Request,
    principal: Principal = Reader,
    state: str | None = Query(default=None, pattern="^(ok|at_risk|breached)$"),
    sla: str | None = None,
    job: str | None = Query(default=None, description="job uid"),
) -> list[SlaPublic]:
    """SLA instances: at risk first, then breached, then ok."""
    return await in_thread(request, lambda s: _slas(s, principal, state, sla, job))
