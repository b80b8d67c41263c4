"""Four-eyes approvals: a held action runs only after other people approve it.

Rules: the requester can never approve their own request; an approver needs the
``approve`` permission on the job; a request expires after the guardrail's
``expiresAfter``; every request, approval, rejection and expiry is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from gateway.audit import AuditEntry, append
from gateway.model.resources import Guardrail
from gateway.store.engine import session_scope
from gateway.store.tables import ApprovalRequest, Job, Run
from gateway.store.types import utcnow

from .notify import NotificationEvent, enqueue

__all__ = [
    "INTERRUPTED",
    "RUNNING",
    "ApprovalError",
    "DecisionOutcome",
    "create_request",
    "decide",
    "expire_all_due",
    "expire_due",
    "list_requests",
    "record_decision",
    "set_outcome",
    "settle_interrupted",
]

# The outcome of an approved request whose action is under way, naming the process that
# runs it: a request still marked so after that process died was interrupted mid-action.
RUNNING = "running on "
INTERRUPTED = (
    "interrupted: the gateway stopped while the action was running; what the tool did is "
    "unknown (check the job at its source, then request the action again if it is needed)"
)


class ApprovalError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def create_request(
    session: Session,
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
    """Hold an action as a pending request (in the caller's transaction)."""
    now = utcnow()
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
    session.add(req)
    session.flush()
    session.refresh(req)
    enqueue(
        session,
        NotificationEvent(
            type="approval.requested",
            severity="warning",
            domain=job.domain,
            title=f"Approval requested: {action} {job.uid}",
            text=(
                f"{subject} asks to {action} {job.uid} (guardrail {guardrail.metadata.name}, "
                f"{guardrail.spec.approvers} approval(s) needed, expires "
                f"{req.expires_at:%Y-%m-%d %H:%M} UTC)" + (f": {reason}" if reason else "")
            ),
            incident=f"approval.requested:{req.id}",
            job_uid=job.uid,
            labels=dict(job.labels or {}),
            data={
                "request": req.id,
                "action": action,
                "guardrail": guardrail.metadata.name,
                "requested_by": subject,
                "run": req.run_uid,
            },
        ),
        now=now,
    )
    return req


def expire_due(session: Session, now: datetime | None = None) -> list[ApprovalRequest]:
    """Mark pending requests past their expiry as expired and audit each (caller commits).

    The update is a compare-and-set on ``status = 'pending'``: a request an approver
    completed meanwhile is never marked expired, and each expiry is recorded once.
    """
    now = now or datetime.now(UTC)
    due = session.exec(
        select(ApprovalRequest)
        .where(col(ApprovalRequest.status) == "pending", col(ApprovalRequest.expires_at) <= now)
        .with_for_update(skip_locked=True)
    ).all()
    expired: list[ApprovalRequest] = []
    for req in due:
        moved = session.execute(
            update(ApprovalRequest)
            .where(col(ApprovalRequest.id) == req.id, col(ApprovalRequest.status) == "pending")
            .values(status="expired", decided_at=now)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            continue
        session.refresh(req)
        _audit_expiry(session, req)
        expired.append(req)
    return expired


def _audit_expiry(session: Session, req: ApprovalRequest) -> None:
    append(
        session,
        AuditEntry(
            subject="accord",
            channel="system",
            action="approval-expired",
            target=f"approval:{req.id}",
            domain=req.domain,
            decision="deny",
            outcome="expired",
            reason=f"not approved within its time ({req.guardrail})",
            details={"job": req.job_uid, "action": req.action, "requested_by": req.requested_by},
        ),
    )


def expire_all_due(engine: Engine) -> int:
    """One pass of the expiry housekeeping (its own write transaction)."""
    with session_scope(engine) as s:
        return len(expire_due(s))


@dataclass(frozen=True)
class DecisionOutcome:
    request: ApprovalRequest
    done: bool  # enough approvals: the caller runs the action now, exactly once


def decide(
    engine: Engine,
    *,
    request_id: int,
    subject: str,
    channel: str,
    approve: bool,
    can_approve: bool,
    policy: str | None,
    reason: str | None,
    audit_request_id: str | None,
    performer: str = "this gateway",
) -> DecisionOutcome:
    """One approver's decision, audited, in one write transaction.

    A refused decision is audited and committed too (then ``ApprovalError`` is raised);
    a request found expired is marked so and its expiry audited. The decision that
    completes a request marks it ``running on <performer>`` (the process that runs the
    action) in the same transaction, so a process killed before the action's outcome is
    recorded leaves a mark :func:`settle_interrupted` finds.
    """
    verb = "approve" if approve else "reject"
    with session_scope(engine) as s:
        try:
            req, done = record_decision(
                s,
                request_id=request_id,
                subject=subject,
                approve=approve,
                can_approve=can_approve,
                reason=reason,
            )
        except ApprovalError as exc:
            row = s.get(ApprovalRequest, request_id)
            append(
                s,
                AuditEntry(
                    subject=subject,
                    channel=channel,
                    action=verb,
                    target=f"approval:{request_id}",
                    domain=row.domain if row else "",
                    decision="deny" if exc.status == 403 else "allow",
                    policy=policy,
                    reason=str(exc),
                    outcome=exc.code,
                    request_id=audit_request_id,
                ),
            )
            s.commit()
            raise
        append(
            s,
            AuditEntry(
                subject=subject,
                channel=channel,
                action=verb,
                target=f"approval:{request_id}",
                domain=req.domain,
                decision="allow",
                policy=policy,
                reason=reason,
                outcome="ok",
                request_id=audit_request_id,
                details={"job": req.job_uid, "action": req.action, "status": req.status},
            ),
        )
        if done:
            req.outcome = RUNNING + performer
            s.add(req)
        s.flush()
        s.expunge(req)
        return DecisionOutcome(req, done)


def set_outcome(engine: Engine, *, request_id: int, outcome: str) -> ApprovalRequest | None:
    with session_scope(engine) as s:
        row = s.get(ApprovalRequest, request_id)
        if row is None:
            return None
        row.outcome = outcome
        s.add(row)
        s.flush()
        s.expunge(row)
        return row


def list_requests(
    session: Session, *, visible: Any, status: str | None = None, limit: int = 200
) -> list[ApprovalRequest]:
    stmt = select(ApprovalRequest).where(
        visible(col(ApprovalRequest.domain), col(ApprovalRequest.job_uid))
    )
    now = datetime.now(UTC)
    status_col, expires = col(ApprovalRequest.status), col(ApprovalRequest.expires_at)
    if status == "expired":  # overdue requests count as expired before housekeeping runs
        stmt = stmt.where(
            (status_col == "expired") | ((status_col == "pending") & (expires <= now))
        )
    elif status == "pending":
        stmt = stmt.where(status_col == "pending", expires > now)
    elif status:
        stmt = stmt.where(status_col == status)
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
    # The row is locked until the caller commits (PostgreSQL; on SQLite the write
    # transaction holds the database lock), so two approvers deciding at once are
    # serialized: exactly one of them completes the request and runs the action.
    req = session.get(ApprovalRequest, request_id, with_for_update=True)
    if req is None:
        raise ApprovalError(404, "not_found", f"no approval request {request_id}")
    if req.status == "pending" and req.expires_at <= now:
        req.status = "expired"
        req.decided_at = now
        session.add(req)
        session.flush()
        _audit_expiry(session, req)
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


def settle_interrupted(engine: Engine, *, me: str, alive: set[str]) -> int:
    """Approved requests whose action was running in a process that is gone (neither
    ``me`` nor one of the ``alive`` replicas) get the outcome ``interrupted`` and an
    audit record closing their action's intent. A compare-and-set on the outcome: each
    is settled once, and never one whose action ends meanwhile. Its own transaction."""
    settled = 0
    with session_scope(engine) as s:
        rows = s.exec(
            select(ApprovalRequest)
            .where(
                col(ApprovalRequest.status) == "approved",
                col(ApprovalRequest.outcome).startswith(RUNNING),
            )
            .with_for_update(skip_locked=True)
        ).all()
        for req in rows:
            marked = req.outcome or ""
            holder = marked.removeprefix(RUNNING)
            if holder == me or holder in alive:
                continue
            moved = s.execute(
                update(ApprovalRequest)
                .where(col(ApprovalRequest.id) == req.id, col(ApprovalRequest.outcome) == marked)
                .values(outcome=INTERRUPTED)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                continue
            append(
                s,
                AuditEntry(
                    subject=req.requested_by,
                    channel=req.channel,
                    action=req.action,
                    target=req.run_uid or req.job_uid,
                    domain=req.domain,
                    decision="allow",
                    outcome="error",
                    reason=INTERRUPTED,
                    details={
                        "approval_id": req.id,
                        "approved_by": list(req.approved_by),
                        "interrupted_on": holder,
                    },
                ),
            )
            settled += 1
    return settled
