from __future__ import annotations

from collections.abc import Iterable, Sequence

from fastapi import Request
from sqlmodel import Session, col, select

from gateway.actions import ActionOutcome, perform, permission
from gateway.capabilities import source_capabilities
from gateway.store.services import queries
from gateway.store.tables import Job, Run
from gateway.store.tables import Source as SourceRow

from ..convert import run_public
from ..deps import Principal, in_thread
from ..errors import ApiError, adapter_error_status
from ..events import Event
from ..schemas import ActionRequest, ActionResult


def allowed_actions(
    session: Session, principal: Principal, job: Job, actions: Sequence[str]
) -> list[str]:
    """Actions this subject may take on this job that its source (with its settings)
    supports."""
    src = session.get(SourceRow, job.source)
    if src is None:
        return []
    caps = {str(c) for c in source_capabilities(src)}
    return [
        a
        for a in actions
        if a in caps and principal.decide(job.domain, job.uid, permission(a)).allowed
    ]


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
            caps[src.name] = {str(c) for c in source_capabilities(src)}
    out: dict[str, list[str]] = {}
    for key, source, domain, uid in rows:
        have = caps.get(source, set())
        out[key] = [
            a for a in actions if a in have and principal.decide(domain, uid, permission(a)).allowed
        ]
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
    """The answer to an action (a read: call it in a worker thread)."""
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
    principal: Principal,
    action: str,
    uid: str,
    body: ActionRequest | None,
    *,
    on_run: bool,
) -> ActionResult:
    """Run one action through ``perform`` (authz, guardrails, adapter, audit) and answer it.

    Every database read happens in a worker thread; ``perform`` does the same for its
    writes, so the event loop only waits for the tool.
    """
    body = body or ActionRequest()

    def load(session: Session) -> tuple[Job, Run | None]:
        run: Run | None = None
        if on_run:
            run = queries.get_run(session, uid=uid, visible=principal.visible())
            if run is None:
                raise ApiError(404, "not_found", f"no run {uid!r}")
            job = queries.get_job(session, uid=run.job_uid, visible=principal.visible())
            if job is None:
                raise ApiError(409, "job_unknown", f"the job of run {uid!r} is not known")
        else:
            job = queries.get_job(session, uid=uid, visible=principal.visible())
            if job is None:
                raise ApiError(404, "not_found", f"no job {uid!r}")
        return job, run

    job, run = await in_thread(request, load)
    outcome = await perform(
        engine=request.app.state.engine,
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
        hold=body.hold,
        context=principal.context,
    )
    target = run.uid if run is not None else job.uid
    return await in_thread(
        request,
        lambda s: action_response(request, s, principal, action, target, outcome, job),
    )
