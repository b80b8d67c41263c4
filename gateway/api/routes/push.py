"""Agents (e.g. ``accord agent`` on a cron host) push inventory and runs here."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

from fastapi import Depends, Request

from gateway.sync.push import PushRefused, accept_push

from ..deps import Principal, require
from ..errors import ApiError
from ..events import Event
from ..routing import Router
from ..schemas import PushRequest, PushResult

router = Router(prefix="/api/v1/sources", tags=["agents"])


def _sent_at(value: str | None) -> datetime | None:
    """The agent's clock when it sent the push (its HTTP Date header), if it said."""
    if not value:
        return None
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return at if at.tzinfo is not None else None


@router.post("/{name}/push", response_model=PushResult)
def push(
    name: str,
    body: PushRequest,
    request: Request,
    principal: Principal = Depends(require("push")),
) -> PushResult:
    try:
        stored = accept_push(
            request.app.state.engine,
            name=name,
            decide=principal.decide,
            subject=principal.subject,
            agent_id=body.agent.id,
            inventory=body.inventory,
            runs=body.runs,
            health=body.health,
            request_id=request.state.request_id,
            sent_at=_sent_at(request.headers.get("Date")),
        )
    except PushRefused as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    events = request.app.state.events
    for ch in stored.changes:
        events.publish(
            Event(
                "run.changed",
                stored.domain,
                ch.job_uid,
                {"uid": ch.uid, "job_uid": ch.job_uid, "from": ch.from_state, "to": ch.to_state},
            )
        )
    return PushResult(jobs=stored.jobs, runs=stored.runs)
