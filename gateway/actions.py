"""Every action on a job or run goes through here:

authorize (Casbin, compiled) → guardrails → adapter call → audit (decision + outcome)
→ targeted re-sync. Denials and failures are audited too. The audit record is committed
before the caller sees the answer, so nothing a user did goes unrecorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.audit import AuditEntry, append
from gateway.authz import Decision
from gateway.governance import check_action
from gateway.governance.approvals import create_request
from gateway.model import AdapterError, Conflict, RunRecord, RunState, SyncHint
from gateway.store.engine import session_scope
from gateway.store.services import ingest
from gateway.store.tables import ApprovalRequest, Job, Run
from gateway.store.tables import Source as SourceRow
from gateway.store.types import utcnow
from gateway.sync.manager import SyncManager, build_adapter

__all__ = ["JOB_ACTIONS", "RUN_ACTIONS", "ActionOutcome", "perform"]

_log = logging.getLogger(__name__)
JOB_ACTIONS = ("trigger", "pause", "resume")
RUN_ACTIONS = ("cancel", "retry")


@dataclass
class ActionOutcome:
    status: str  # ok | denied | blocked | pending | error
    message: str
    audit_seq: int
    run_uid: str | None = None
    approval_id: int | None = None
    error: AdapterError | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _audit(
    engine: Engine,
    *,
    subject: str,
    channel: str,
    action: str,
    target: str,
    domain: str,
    decision: str,
    outcome: str,
    policy: str | None,
    reason: str | None,
    request_id: str | None,
    details: dict[str, Any],
) -> int:
    with session_scope(engine) as s:
        rec = append(
            s,
            AuditEntry(
                subject=subject,
                channel=channel,
                action=action,
                target=target,
                domain=domain,
                decision=decision,
                outcome=outcome,
                policy=policy,
                reason=reason,
                request_id=request_id,
                details=details,
            ),
        )
        return rec.seq


async def perform(
    *,
    engine: Engine,
    session: Session,
    manager: SyncManager | None,
    decide: Callable[[str, str, str], Decision],
    subject: str,
    channel: str,
    action: str,
    job: Job,
    run: Run | None = None,
    params: dict[str, Any] | None = None,
    reason: str | None = None,
    emergency: bool = False,
    request_id: str | None = None,
    approved: ApprovalRequest | None = None,
) -> ActionOutcome:
    target = run.uid if run is not None else job.uid

    def audit(
        *,
        decision: str,
        outcome: str,
        policy: str | None,
        reason: str | None,
        details: dict[str, Any],
    ) -> int:
        return _audit(
            engine,
            subject=subject,
            channel=channel,
            action=action,
            target=target,
            domain=job.domain,
            request_id=request_id,
            decision=decision,
            outcome=outcome,
            policy=policy,
            reason=reason,
            details=details,
        )

    decision = decide(job.domain, job.uid, action)
    if not decision.allowed:
        seq = audit(
            decision="deny",
            outcome="denied",
            policy=decision.policy,
            reason=decision.reason,
            details={},
        )
        return ActionOutcome("denied", decision.reason, seq)
    verdict = check_action(
        session,
        action=action,
        domain=job.domain,
        uid=job.uid,
        labels=job.labels,
        subject=subject,
        params=params,
        emergency=emergency,
        reason=reason,
    )
    if not verdict.allowed:
        seq = audit(
            decision="deny",
            outcome="blocked",
            policy=f"guardrail:{verdict.guardrail}",
            reason=verdict.reason,
            details={},
        )
        return ActionOutcome("blocked", verdict.reason, seq)
    details: dict[str, Any] = {}
    if verdict.approval is not None and approved is None:
        req = create_request(
            engine,
            guardrail=verdict.approval,
            action=action,
            job=job,
            run=run,
            params=params or {},
            reason=reason,
            subject=subject,
            channel=channel,
        )
        seq = audit(
            decision="allow",
            outcome="pending",
            policy=f"guardrail:{verdict.guardrail}",
            reason=f"held for approval (request {req.id})",
            details={"approval_id": req.id},
        )
        return ActionOutcome(
            "pending",
            f"{verdict.reason}: request {req.id} is waiting for approval",
            seq,
            approval_id=req.id,
        )
    if approved is not None:
        details["approval_id"] = approved.id
        details["approved_by"] = list(approved.approved_by)
    if verdict.overridden:
        details["emergency_override"] = verdict.guardrail
        details["override_reason"] = reason
    if params:
        details["param_names"] = sorted(params)  # names only: values may be secret
    src = session.get(SourceRow, job.source)
    if src is None:
        seq = audit(
            decision="allow",
            outcome="error",
            policy=decision.policy,
            reason="the job's source is no longer configured",
            details=details,
        )
        return ActionOutcome("error", "the job's source is no longer configured", seq)
    if manager is not None:
        adapter, close = manager.adapter_for(src)
    else:
        adapter, close = build_adapter(src), True
    run_record: RunRecord | None = None
    try:
        if action == "cancel" and run is not None and RunState(run.state).terminal:
            # Nothing to stop; the source would refuse too (Airflow by marking it again).
            raise Conflict(f"run {run.uid} has already finished ({run.state})")
        if action == "trigger":
            run_record = await adapter.trigger(job.native_id, params or {})
        elif action == "pause":
            await adapter.pause(job.native_id)
        elif action == "resume":
            await adapter.resume(job.native_id)
        elif action == "cancel":
            assert run is not None
            await adapter.cancel(run.uid.removeprefix(f"{job.source}/"))
        elif action == "retry":
            assert run is not None
            run_record = await adapter.retry(run.uid.removeprefix(f"{job.source}/"))
        else:  # pragma: no cover - routes only pass known actions
            raise ValueError(action)
    except AdapterError as exc:
        msg = f"{type(exc).__name__}: {exc}"
        seq = audit(
            decision="allow",
            outcome="error",
            policy=decision.policy,
            reason=msg,
            details=details,
        )
        return ActionOutcome("error", str(exc), seq, error=exc)
    finally:
        if close:
            await adapter.aclose()
    run_uid = None
    if run_record is not None:
        with session_scope(engine) as s:
            ingest.upsert_runs(s, source=job.source, domain=job.domain, records=[run_record])
        run_uid = ingest.run_uid(job.source, run_record.native_id)
        details["run"] = run_uid
    if action == "cancel" and run is not None:
        with session_scope(engine) as s:
            ingest.mark_cancel_requested(s, uid=run.uid, subject=subject)
    if action in ("pause", "resume"):
        with session_scope(engine) as s:
            row = s.get(Job, job.id)
            if row is not None:
                row.paused = action == "pause"
                row.paused_since = utcnow() if row.paused else None
                s.add(row)
    seq = audit(
        decision="allow",
        outcome="ok",
        policy=decision.policy,
        reason=reason if not verdict.overridden else verdict.reason,
        details=details,
    )
    if manager is not None:
        manager.hint(
            job.source, [SyncHint(scope="inventory" if action in ("pause", "resume") else "runs")]
        )
    verb = {
        "trigger": "triggered",
        "pause": "paused",
        "resume": "resumed",
        "cancel": "cancel requested",
        "retry": "retry requested",
    }[action]
    message = f"{target}: {verb}"
    if run_record is not None and run_record.state == RunState.QUEUED:
        message += " (queued)"
    return ActionOutcome("ok", message, seq, run_uid=run_uid, details=details)
