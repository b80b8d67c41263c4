from __future__ import annotations

from collections.abc import Iterable, Sequence

from fastapi import Request
from sqlmodel import Session, col, select

from adapters.base import registry
from gateway.actions import ActionOutcome, perform
from gateway.store.services import queries
from gateway.store.tables import Job, Run
from gateway.store.tables import Source as SourceRow

from ..convert import run_public
from ..deps import Principal
from ..errors import ApiError, adapter_error_status
from ..events import Event
from ..schemas import ActionRequest, ActionResult


def allowed_actions(
    session: Session, principal: Principal, job: Job, actions: Sequence[str]
) -> list[str]:
    """Actions this subject may take on this job that its source supports."""
    src = session.get(SourceRow, job.source)
    if src is None:
        return []
    try:
        caps = {str(c) for c in registry.get(src.type).info.capabilities}
    except LookupError:
        return []
    return [a for a in actions if a in caps and principal.decide(job.domain, job.uid, a).allowed]


def allowed_actions_by_target(
    session: Session,
    principal: Principal,
    targets: Iterable[tuple[str, str, str, str]],
    actions: Sequence[str],
) -> dict[str, list[str]]:
    """``allowed_actions`` for a whole list page: ``targets`` are (key, source, domain,
    job uid). One query reads the page's sources; decisions come from the subject's
    compiled grants (in memory), so a page costs the same as one detail view."""
    rows = list(targets)
    names = {source for _key, source, _dom, _uid in rows}
    caps: dict[str, set[str]] = {}
    if names:
        for src in session.exec(select(SourceRow).where(col(SourceRow.name).in_(names))).all():
            try:
                caps[src.name] = {str(c) for c in registry.get(src.type).info.capabilities}
            except LookupError:
                caps[src.name] = set()
    out: dict[str, list[str]] = {}
    for key, source, domain, uid in rows:
        have = caps.get(source, set())
        out[key] = [a for a in actions if a in have and principal.decide(domain, uid, a).allowed]
    return out


def action_response(
    request: Request,
    session: Session,
    principal: Principal,
    action: str,
    target: str,
    outcome: ActionOutcome,
    job: Job,
) -> ActionResult:
    if outcome.status == "denied":
        raise ApiError(403, "forbidden", outcome.message, details={"audit_seq": outcome.audit_seq})
    if outcome.status == "blocked":
        raise ApiError(
            423, "blocked_by_guardrail", outcome.message, details={"audit_seq": outcome.audit_seq}
        )
    if outcome.status == "pending":
        return ActionResult(
            action=action,
            target=target,
            outcome="pending",
            message=outcome.message,
            audit_seq=outcome.audit_seq,
            approval_id=outcome.approval_id,
        )
    if outcome.status == "error":
        if outcome.error is not None:
            status, code, headers = adapter_error_status(outcome.error)
        else:
            status, code, headers = 409, "action_failed", {}
        raise ApiError(
            status, code, outcome.message, details={"audit_seq": outcome.audit_seq}, headers=headers
        )
    run = None
    if outcome.run_uid:
        row = queries.get_run(session, uid=outcome.run_uid, visible=principal.visible())
        run = run_public(row) if row else None
    broadcaster = request.app.state.events
    broadcaster.publish(
        Event(
            "action",
            job.domain,
            job.uid,
            {"action": action, "target": target, "subject": principal.subject},
        )
    )
    return ActionResult(
        action=action,
        target=target,
        outcome="ok",
        message=outcome.message,
        run=run,
        audit_seq=outcome.audit_seq,
    )


async def take_action(
    request: Request,
    session: Session,
    principal: Principal,
    action: str,
    job: Job,
    body: ActionRequest | None,
    run: Run | None = None,
) -> ActionResult:
    """Run one action through ``perform`` (authz, guardrails, adapter, audit) and answer it."""
    body = body or ActionRequest()
    outcome = await perform(
        engine=request.app.state.engine,
        session=session,
        manager=request.app.state.manager,
        decide=principal.decide,
        subject=principal.subject,
        channel=principal.channel,
        action=action,
        job=job,
        run=run,
        params=body.params,
        reason=body.reason,
        emergency=body.emergency,
        request_id=request.state.request_id,
    )
    target = run.uid if run is not None else job.uid
    return action_response(request, session, principal, action, target, outcome, job)
