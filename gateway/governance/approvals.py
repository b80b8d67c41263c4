"""Four-eyes approvals: a held action runs only after other people approve it.

Rules: the requester can never approve their own request; an approver needs the
``approve`` permission on the job; a request expires after the guardrail's
``expiresAfter``; every request, approval, rejection and expiry is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.model.resources import Guardrail
from gateway.store.engine import session_scope
from gateway.store.tables import ApprovalRequest, Job, Run
from gateway.store.types import utcnow

__all__ = ["ApprovalError", "create_request", "expire_due", "list_requests", "record_decision"]


class ApprovalError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def create_request(
    engine: Engine,
    *,
    guardrail: Guardrail,
    action: str,
    job: Job,
    run: Run | None,
    params: dict[str, Any],
    reason: str | None,
    subject: str,
    channel: str,
) -> ApprovalRequest:
    now = utcnow()
    with session_scope(engine) as s:
        req = ApprovalRequest(
            action=action,
            job_uid=job.uid,
            run_uid=run.uid if run else None,
            domain=job.domain,
            guardrail=guardrail.metadata.name,
            params=params,
            reason=reason,
            requested_by=subject,
            channel=channel,
            approvals_needed=guardrail.spec.approvers,
            created_at=now,
            expires_at=now + guardrail.spec.expires_after,
        )
        s.add(req)
        s.flush()
        s.refresh(req)
        return req


def expire_due(session: Session, now: datetime | None = None) -> list[ApprovalRequest]:
    """Mark pending requests past their expiry as expired (the caller audits and commits)."""
    now = now or datetime.now(UTC)
    due = session.exec(
        select(ApprovalRequest).where(
            col(ApprovalRequest.status) == "pending", col(ApprovalRequest.expires_at) <= now
        )
    ).all()
    for req in due:
        req.status = "expired"
        req.decided_at = now
        session.add(req)
    return list(due)


def list_requests(
    session: Session, *, visible: Any, status: str | None = None, limit: int = 200
) -> list[ApprovalRequest]:
    stmt = select(ApprovalRequest).where(
        visible(col(ApprovalRequest.domain), col(ApprovalRequest.job_uid))
    )
    if status:
        stmt = stmt.where(col(ApprovalRequest.status) == status)
    return list(session.exec(stmt.order_by(col(ApprovalRequest.id).desc()).limit(limit)).all())


def record_decision(
    session: Session,
    *,
    request_id: int,
    subject: str,
    approve: bool,
    can_approve: bool,
    reason: str | None,
    now: datetime | None = None,
) -> tuple[ApprovalRequest, bool]:
    """Apply one person's decision. Returns the request and whether it is now approved
    (enough approvals: the caller runs the action)."""
    now = now or datetime.now(UTC)
    req = session.get(ApprovalRequest, request_id)
    if req is None:
        raise ApprovalError(404, "not_found", f"no approval request {request_id}")
    if req.status == "pending" and req.expires_at <= now:
        req.status = "expired"
        req.decided_at = now
        session.add(req)
        session.flush()
        raise ApprovalError(409, "expired", f"approval request {request_id} has expired")
    if req.status == "expired":
        raise ApprovalError(409, "expired", f"approval request {request_id} has expired")
    if req.status != "pending":
        raise ApprovalError(409, "not_pending", f"approval request {request_id} is {req.status}")
    if subject == req.requested_by:
        raise ApprovalError(
            403, "self_approval", "four-eyes: you cannot decide on your own request"
        )
    if not can_approve:
        raise ApprovalError(
            403, "forbidden", f"{subject!r} may not approve actions on {req.job_uid}"
        )
    if subject in req.approved_by:
        raise ApprovalError(409, "already_approved", f"{subject!r} already approved this request")
    if not approve:
        req.status = "rejected"
        req.decided_by = subject
        req.decided_at = now
        req.decision_reason = reason
        session.add(req)
        session.flush()
        return req, False
    req.approved_by = [*req.approved_by, subject]
    done = len(req.approved_by) >= req.approvals_needed
    if done:
        req.status = "approved"
        req.decided_by = subject
        req.decided_at = now
        req.decision_reason = reason
    session.add(req)
    session.flush()
    return req, done
