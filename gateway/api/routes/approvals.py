"""Pending approvals (four-eyes): list, approve, reject."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from sqlmodel import select

from gateway.actions import perform
from gateway.audit import AuditEntry, append
from gateway.governance.approvals import (
    ApprovalError,
    expire_due,
    list_requests,
    record_decision,
)
from gateway.store.engine import session_scope
from gateway.store.services import queries
from gateway.store.tables import ApprovalRequest, Job, Run

from ..deps import Principal, SessionDep, require
from ..errors import ApiError
from ..params import INT64_MAX
from ..schemas import ApprovalPublic, DecisionRequest
from .common import action_response

router = APIRouter(prefix="/api/v1/approvals", tags=["approvals"])
RequestId = Annotated[int, Path(ge=1, le=INT64_MAX, description="approval request id")]


def approval_public(r: ApprovalRequest) -> ApprovalPublic:
    assert r.id is not None
    return ApprovalPublic(
        id=r.id,
        action=r.action,
        job_uid=r.job_uid,
        run_uid=r.run_uid,
        domain=r.domain,
        guardrail=r.guardrail,
        param_names=sorted(r.params),
        reason=r.reason,
        requested_by=r.requested_by,
        status=r.status,
        approvals_needed=r.approvals_needed,
        approved_by=r.approved_by,
        decided_by=r.decided_by,
        decision_reason=r.decision_reason,
        outcome=r.outcome,
        created_at=r.created_at,
        expires_at=r.expires_at,
        decided_at=r.decided_at,
    )


@router.get("", response_model=list[ApprovalPublic])
def list_approvals(
    session: SessionDep,
    status: Literal["pending", "approved", "rejected", "expired"] | None = None,
    principal: Principal = Depends(require("read")),
) -> list[ApprovalPublic]:
    # Record (and audit) every request whose time ran out, whoever looks first.
    for gone in expire_due(session):
        append(
            session,
            AuditEntry(
                subject="accord",
                channel="system",
                action="approval-expired",
                target=f"approval:{gone.id}",
                domain=gone.domain,
                decision="deny",
                outcome="expired",
                reason=f"not approved within its time ({gone.guardrail})",
                details={
                    "job": gone.job_uid,
                    "action": gone.action,
                    "requested_by": gone.requested_by,
                },
            ),
        )
    session.commit()
    rows = list_requests(session, visible=principal.visible(), status=status)
    return [approval_public(r) for r in rows]


async def _decide(
    request: Request,
    session: SessionDep,
    principal: Principal,
    request_id: int,
    approve: bool,
    body: DecisionRequest | None,
) -> JSONResponse:
    engine = request.app.state.engine
    req = session.get(ApprovalRequest, request_id)
    if (
        req is None
        or queries.get_job(session, uid=req.job_uid, visible=principal.visible()) is None
    ):
        raise ApiError(404, "not_found", f"no approval request {request_id}")
    decision = principal.decide(req.domain, req.job_uid, "approve")
    verb = "approve" if approve else "reject"
    reason = body.reason if body else None
    try:
        with session_scope(engine) as s:
            updated, done = record_decision(
                s,
                request_id=request_id,
                subject=principal.subject,
                approve=approve,
                can_approve=decision.allowed,
                reason=reason,
            )
            append(
                s,
                AuditEntry(
                    subject=principal.subject,
                    channel=principal.channel,
                    action=verb,
                    target=f"approval:{request_id}",
                    domain=req.domain,
                    decision="allow",
                    policy=decision.policy,
                    reason=reason,
                    outcome="ok",
                    request_id=request.state.request_id,
                    details={"job": req.job_uid, "action": req.action, "status": updated.status},
                ),
            )
    except ApprovalError as exc:
        with session_scope(engine) as s:
            append(
                s,
                AuditEntry(
                    subject=principal.subject,
                    channel=principal.channel,
                    action=verb,
                    target=f"approval:{request_id}",
                    domain=req.domain,
                    decision="deny" if exc.status == 403 else "allow",
                    policy=decision.policy,
                    reason=str(exc),
                    outcome=exc.code,
                    request_id=request.state.request_id,
                ),
            )
        raise ApiError(exc.status, exc.code, str(exc)) from None
    if not done:
        session.expire_all()
        fresh = session.get(ApprovalRequest, request_id)
        assert fresh is not None
        return JSONResponse(
            {"approval": approval_public(fresh).model_dump(mode="json"), "result": None}
        )
    # Enough approvals: run the action as the requester, through every other check.
    job_row = session.exec(select(Job).where(Job.uid == updated.job_uid)).first()
    run_row = (
        session.exec(select(Run).where(Run.uid == updated.run_uid)).first()
        if updated.run_uid
        else None
    )
    if job_row is None:
        raise ApiError(409, "job_unknown", f"job {updated.job_uid} no longer exists")
    policy = request.app.state.policy.current(session)
    outcome = await perform(
        engine=engine,
        session=session,
        manager=request.app.state.manager,
        decide=lambda d, o, a: policy.decide(updated.requested_by, d, o, a),
        subject=updated.requested_by,
        channel=updated.channel,
        action=updated.action,
        job=job_row,
        run=run_row,
        params=updated.params,
        reason=updated.reason,
        request_id=request.state.request_id,
        approved=updated,
    )
    with session_scope(engine) as s:
        row = s.get(ApprovalRequest, request_id)
        assert row is not None
        row.outcome = f"{outcome.status}: {outcome.message}"
        s.add(row)
    session.expire_all()
    fresh = session.get(ApprovalRequest, request_id)
    assert fresh is not None
    try:
        result = action_response(
            request,
            session,
            principal,
            updated.action,
            updated.run_uid or updated.job_uid,
            outcome,
            job_row,
        )
        result_json = result.model_dump(mode="json")
    except ApiError as exc:
        result_json = {"outcome": outcome.status, "message": exc.message}
    return JSONResponse(
        {"approval": approval_public(fresh).model_dump(mode="json"), "result": result_json}
    )


@router.post("/{request_id}/approve")
async def approve(
    request_id: RequestId,
    request: Request,
    session: SessionDep,
    body: DecisionRequest | None = None,
    principal: Principal = Depends(require("approve")),
) -> JSONResponse:
    return await _decide(request, session, principal, request_id, True, body)


@router.post("/{request_id}/reject")
async def reject(
    request_id: RequestId,
    request: Request,
    session: SessionDep,
    body: DecisionRequest | None = None,
    principal: Principal = Depends(require("approve")),
) -> JSONResponse:
    return await _decide(request, session, principal, request_id, False, body)
