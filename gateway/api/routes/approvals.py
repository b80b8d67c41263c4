"""Pending approvals (four-eyes): list, approve, reject."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

import anyio
from fastapi import Depends, Path, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session, select

from gateway.actions import perform
from gateway.authz import PolicySet
from gateway.governance.approvals import (
    INTERRUPTED,
    ApprovalError,
    decide,
    list_requests,
    set_outcome,
)
from gateway.store.services import queries
from gateway.store.tables import ApprovalRequest, Job, Run
from gateway.store.types import utcnow

from ..deps import Principal, SessionDep, in_thread, require
from ..errors import ApiError
from ..params import INT64_MAX
from ..routing import Router
from ..schemas import ApprovalPublic, DecisionRequest
from .common import action_response

router = Router(prefix="/api/v1/approvals", tags=["approvals"])
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
    # A read: expiry is recorded (and audited) by the gateway's housekeeping and when
    # someone decides on an expired request; here an overdue one just shows as expired.
    now = utcnow()
    rows = list_requests(session, visible=principal.visible(), status=status)
    out = [approval_public(r) for r in rows]
    for item in out:
        if item.status == "pending" and item.expires_at <= now:
            item.status = "expired"
    return out


async def _decide(
    request: Request,
    principal: Principal,
    request_id: int,
    approve: bool,
    body: DecisionRequest | None,
) -> JSONResponse:
    engine = request.app.state.engine

    def visible_request(session: Session) -> ApprovalRequest:
        req = session.get(ApprovalRequest, request_id)
        if (
            req is None
            or queries.get_job(session, uid=req.job_uid, visible=principal.visible()) is None
        ):
            raise ApiError(404, "not_found", f"no approval request {request_id}")
        return req

    req = await in_thread(request, visible_request)
    decision = principal.decide(req.domain, req.job_uid, "approve")
    try:
        decided = await anyio.to_thread.run_sync(
            partial(
                decide,
                engine,
                request_id=request_id,
                subject=principal.subject,
                channel=principal.channel,
                approve=approve,
                can_approve=decision.allowed,
                policy=decision.policy,
                reason=body.reason if body else None,
                audit_request_id=request.state.request_id,
                performer=request.app.state.replica_id,
            )
        )
    except ApprovalError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    updated = decided.request
    if not decided.done:
        return JSONResponse(
            {"approval": approval_public(updated).model_dump(mode="json"), "result": None}
        )

    # Enough approvals: run the action as the requester, through every other check. Only
    # the decision that completed the request gets here (the row lock serializes them).
    def load(session: Session) -> tuple[Job | None, Run | None, PolicySet]:
        job_row = session.exec(select(Job).where(Job.uid == updated.job_uid)).first()
        run_row = (
            session.exec(select(Run).where(Run.uid == updated.run_uid)).first()
            if updated.run_uid
            else None
        )
        return job_row, run_row, request.app.state.policy.current(session)

    async def settle(outcome: str) -> ApprovalRequest | None:
        return await anyio.to_thread.run_sync(
            partial(set_outcome, engine, request_id=request_id, outcome=outcome)
        )

    try:
        job_row, run_row, policy = await in_thread(request, load)
        if job_row is None:
            raise ApiError(409, "job_unknown", f"job {updated.job_uid} no longer exists")
        outcome = await perform(
            engine=engine,
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
    except BaseException as exc:
        # Refused, cancelled or failed here: the request must not stay marked as running
        # in this live process (housekeeping settles only those of dead processes).
        with anyio.CancelScope(shield=True):
            await settle(f"error: {exc.message}" if isinstance(exc, ApiError) else INTERRUPTED)
        raise
    fresh = await settle(f"{outcome.status}: {outcome.message}")
    assert fresh is not None
    try:
        result = await in_thread(
            request,
            lambda s: action_response(
                request,
                s,
                principal,
                updated.action,
                updated.run_uid or updated.job_uid,
                outcome,
                job_row,
            ),
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
    body: DecisionRequest | None = None,
    principal: Principal = Depends(require("approve")),
) -> JSONResponse:
    return await _decide(request, principal, request_id, True, body)


@router.post("/{request_id}/reject")
async def reject(
    request_id: RequestId,
    request: Request,
    body: DecisionRequest | None = None,
    principal: Principal = Depends(require("approve")),
) -> JSONResponse:
    return await _decide(request, principal, request_id, False, body)
