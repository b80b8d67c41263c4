"""Agents (e.g. ``accord agent`` on a cron host) push inventory and runs here."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from adapters.base import registry
from gateway.audit import AuditEntry, append
from gateway.governance.compliance import evaluate_jobs
from gateway.model import Capability
from gateway.store.services import ingest
from gateway.store.tables import Source as SourceRow
from gateway.store.types import utcnow

from ..deps import Principal, SessionDep, require
from ..errors import ApiError
from ..events import Event
from ..schemas import PushRequest, PushResult

router = APIRouter(prefix="/api/v1/sources", tags=["agents"])


@router.post("/{name}/push", response_model=PushResult)
def push(
    name: str,
    body: PushRequest,
    request: Request,
    session: SessionDep,
    principal: Principal = Depends(require("push")),
) -> PushResult:
    src = session.get(SourceRow, name)
    if src is None:
        raise ApiError(404, "not_found", f"no source named {name!r}")
    decision = principal.decide(src.domain, f"{name}/*", "push")
    if not decision.allowed:
        raise ApiError(403, "forbidden", f"{principal.subject!r} may not push to {name!r}")
    try:
        caps = registry.get(src.type).info.capabilities
    except LookupError:
        caps = frozenset()
    if Capability.PUSH not in caps:
        raise ApiError(
            409,
            "not_a_push_source",
            f"source {name!r} is of type {src.type!r}, which does not accept pushed data",
        )
    jobs = None
    if body.inventory is not None:
        counts = ingest.apply_inventory(
            session, source=name, domain=src.domain, records=body.inventory
        )
        if counts.touched or counts.gone:
            evaluate_jobs(session, uids=[*counts.touched, *counts.gone])
        jobs = counts.as_dict()
    result = ingest.upsert_runs(session, source=name, domain=src.domain, records=body.runs)
    now = utcnow()
    src.last_sync_at = now
    src.last_success_at = now
    if body.health is not None:
        src.health = body.health.status.value
        src.health_message = body.health.message
    else:
        src.health = "ok"
        src.health_message = ""
    src.last_error = None
    session.add(src)
    if body.inventory is not None:
        # Inventory pushes are rare (on change); record who sent them.
        append(
            session,
            AuditEntry(
                subject=principal.subject,
                channel="agent",
                action="push",
                target=name,
                domain=src.domain,
                decision="allow",
                outcome="ok",
                policy=decision.policy,
                request_id=request.state.request_id,
                details={"agent": body.agent.id, "jobs": jobs, "runs": result.as_dict()},
            ),
        )
    session.commit()
    events = request.app.state.events
    for ch in result.changes:
        events.publish(
            Event(
                "run.changed",
                src.domain,
                ch.job_uid,
                {"uid": ch.uid, "from": ch.from_state, "to": ch.to_state},
            )
        )
    return PushResult(jobs=jobs, runs=result.as_dict())
