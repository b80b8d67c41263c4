"""Every action on a job or run goes through here:

authorize (Casbin, compiled) → guardrails → intent audited → adapter call → outcome
audited → targeted re-sync. Denials and failures are audited too. The intent record is
committed before the tool is called and the outcome record after it, so an action is on
the record whatever happens (a crash between the two leaves the intent, with no outcome).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
from sqlalchemy import Engine

from adapters.base import Adapter
from gateway.audit import AuditEntry, append, lock_chain
from gateway.authz import Decision
from gateway.capabilities import unsupported_action
from gateway.governance import check_action
from gateway.governance.approvals import create_request
from gateway.model import (
    ActionNotSupported,
    AdapterError,
    AdapterUnavailable,
    Conflict,
    RunRecord,
    RunState,
    SyncHint,
)
from gateway.model.resources import Guardrail
from gateway.store.engine import session_scope
from gateway.store.services import ingest
from gateway.store.services.jobs import set_paused
from gateway.store.tables import ApprovalRequest, Job, Run
from gateway.store.tables import Source as SourceRow
from gateway.sync.manager import SyncManager, build_adapter

__all__ = ["JOB_ACTIONS", "RUN_ACTIONS", "ActionOutcome", "perform", "permission"]

_log = logging.getLogger(__name__)
JOB_ACTIONS = ("trigger", "pause", "resume")
RUN_ACTIONS = ("cancel", "retry", "apply", "discard")

# The approval an actor asks for itself (``hold``) where no guardrail requires one: one
# other person with the approve permission, within a day.
ON_REQUEST = Guardrail.model_validate(
    {
        "apiVersion": "accord.dev/v1",
        "kind": "Guardrail",
        "metadata": {"name": "on-request"},
        "spec": {"type": "approval", "approvers": 1, "expiresAfter": "24h"},
    }
)


def permission(action: str, params: dict[str, Any] | None = None) -> str:
    """The permission an action takes. Applying or discarding a run that waits for approval
    (a Terraform plan) is an approval; a trigger that destroys (``destroy`` parameter, as
    the agent-limit guardrail reads it) takes the ``destroy`` permission of its own."""
    if action in ("apply", "discard"):
        return "approve"
    if action == "trigger" and (params or {}).get("destroy") not in (None, False, "false"):
        return "destroy"
    return action


@dataclass
class ActionOutcome:
    status: str  # ok | denied | blocked | pending | error
    message: str
    audit_seq: int
    run_uid: str | None = None
    approval_id: int | None = None
    error: AdapterError | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Prepared:
    """What the first transaction of an action decided."""

    outcome: ActionOutcome | None  # the answer when the action does not go ahead
    intent_seq: int = 0
    policy: str | None = None
    reason: str | None = None
    source: SourceRow | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Call:
    subject: str
    channel: str
    action: str
    job: Job
    run: Run | None
    params: dict[str, Any] | None
    reason: str | None
    emergency: bool
    request_id: str | None
    approved: ApprovalRequest | None
    hold: bool = False
    # What the caller says about the call (an agent's tool, the person it acts for): in
    # every record's details, never used to decide.
    context: dict[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.run.uid if self.run is not None else self.job.uid

    def entry(
        self,
        *,
        decision: str,
        outcome: str,
        policy: str | None,
        reason: str | None,
        details: dict[str, Any],
    ) -> AuditEntry:
        return AuditEntry(
            subject=self.subject,
            channel=self.channel,
            action=self.action,
            target=self.target,
            domain=self.job.domain,
            decision=decision,
            outcome=outcome,
            policy=policy,
            reason=reason,
            request_id=self.request_id,
            details={**self.context, **details},
        )


def _prepare(engine: Engine, call: _Call, decision: Decision) -> _Prepared:
    """One write transaction: guardrails, then either the refusal, the approval request or
    the intent record — all audited before anything reaches the tool.

    The audit chain is locked first, so guardrails that count earlier actions (agent rate
    limits) see every concurrent action that got past them: N parallel requests cannot all
    pass a limit of one.
    """
    with session_scope(engine) as s:
        lock_chain(s)
        if not decision.allowed:
            rec = append(
                s,
                call.entry(
                    decision="deny",
                    outcome="denied",
                    policy=decision.policy,
                    reason=decision.reason,
                    details={},
                ),
            )
            return _Prepared(ActionOutcome("denied", decision.reason, rec.seq))
        # What this source cannot do (its type, or its settings: a cron source fed by an
        # agent) is refused before any guardrail, approval request or adapter call.
        src = s.get(SourceRow, call.job.source)
        refusal = unsupported_action(src, call.action) if src is not None else None
        if refusal is not None:
            rec = append(
                s,
                call.entry(
                    decision="allow",
                    outcome="error",
                    policy=decision.policy,
                    reason=refusal,
                    details={},
                ),
            )
            return _Prepared(
                ActionOutcome("error", refusal, rec.seq, error=ActionNotSupported(refusal))
            )
        verdict = check_action(
            s,
            action=call.action,
            domain=call.job.domain,
            uid=call.job.uid,
            labels=call.job.labels,
            subject=call.subject,
            params=call.params,
            emergency=call.emergency,
            reason=call.reason,
            count_rate=call.approved is None,
        )
        if not verdict.allowed:
            rec = append(
                s,
                call.entry(
                    decision="deny",
                    outcome="blocked",
                    policy=f"guardrail:{verdict.guardrail}",
                    reason=verdict.reason,
                    details={},
                ),
            )
            return _Prepared(ActionOutcome("blocked", verdict.reason, rec.seq))
        if (verdict.approval is not None or call.hold) and call.approved is None:
            guardrail = verdict.approval or ON_REQUEST
            req = create_request(
                s,
                guardrail=guardrail,
                action=call.action,
                job=call.job,
                run=call.run,
                params=call.params or {},
                reason=call.reason,
                subject=call.subject,
                channel=call.channel,
            )
            rec = append(
                s,
                call.entry(
                    decision="allow",
                    outcome="pending",
                    policy=f"guardrail:{guardrail.metadata.name}",
                    reason=f"held for approval (request {req.id})",
                    details={"approval_id": req.id},
                ),
            )
            why = verdict.reason if verdict.approval is not None else "approval requested"
            return _Prepared(
                ActionOutcome(
                    "pending",
                    f"{why}: request {req.id} is waiting for approval",
                    rec.seq,
                    approval_id=req.id,
                )
            )
        details: dict[str, Any] = {}
        if call.approved is not None:
            details["approval_id"] = call.approved.id
            details["approved_by"] = list(call.approved.approved_by)
        if verdict.overridden:
            details["emergency_override"] = verdict.guardrail
            details["override_reason"] = call.reason
        if call.params:
            details["param_names"] = sorted(call.params)  # names only: values may be secret
        reason = call.reason if not verdict.overridden else verdict.reason
        if src is None:
            msg = "the job's source is no longer configured"
            rec = append(
                s,
                call.entry(
                    decision="allow",
                    outcome="error",
                    policy=decision.policy,
                    reason=msg,
                    details=details,
                ),
            )
            return _Prepared(ActionOutcome("error", msg, rec.seq))
        # The intent: recorded (and committed) before the tool is called, so the action
        # is on the record whatever happens next.
        rec = append(
            s,
            call.entry(
                decision="allow",
                outcome="started",
                policy=decision.policy,
                reason=reason,
                details=details,
            ),
        )
        s.expunge(src)
        return _Prepared(
            None,
            intent_seq=rec.seq,
            policy=decision.policy,
            reason=reason,
            source=src,
            details=details,
        )


def _finish(
    engine: Engine,
    call: _Call,
    prep: _Prepared,
    *,
    run_record: RunRecord | None,
    error: AdapterError | None,
) -> ActionOutcome:
    """The second write transaction: what the tool answered, and the outcome record."""
    details = {**prep.details, "intent_seq": prep.intent_seq}
    job = call.job
    with session_scope(engine) as s:
        if error is not None:
            msg = f"{type(error).__name__}: {error}"
            rec = append(
                s,
                call.entry(
                    decision="allow",
                    outcome="error",
                    policy=prep.policy,
                    reason=msg,
                    details=details,
                ),
            )
            return ActionOutcome("error", str(error), rec.seq, error=error)
        run_uid = None
        if run_record is not None:
            ingest.upsert_runs(s, source=job.source, domain=job.domain, records=[run_record])
            run_uid = ingest.run_uid(job.source, run_record.native_id)
            details["run"] = run_uid
        if call.action == "cancel" and call.run is not None:
            ingest.mark_cancel_requested(s, uid=call.run.uid, subject=call.subject)
        if call.action in ("pause", "resume"):
            set_paused(s, job_id=job.id, paused=call.action == "pause")
        rec = append(
            s,
            call.entry(
                decision="allow",
                outcome="ok",
                policy=prep.policy,
                reason=prep.reason,
                details=details,
            ),
        )
    verb = {
        "trigger": "triggered",
        "pause": "paused",
        "resume": "resumed",
        "cancel": "cancel requested",
        "retry": "retry requested",
        "apply": "apply confirmed",
        "discard": "discarded",
    }[call.action]
    message = f"{call.target}: {verb}"
    if run_record is not None and run_record.state == RunState.QUEUED:
        message += " (queued)"
    return ActionOutcome("ok", message, rec.seq, run_uid=run_uid, details=details)


async def _call_tool(adapter: Adapter, call: _Call) -> RunRecord | None:
    job, run = call.job, call.run
    if call.action == "cancel" and run is not None and RunState(run.state).terminal:
        # Nothing to stop; the source would refuse too (Airflow by marking it again).
        raise Conflict(f"run {run.uid} has already finished ({run.state})")
    if call.action == "trigger":
        return await adapter.trigger(job.native_id, call.params or {})
    if call.action == "pause":
        await adapter.pause(job.native_id)
    elif call.action == "resume":
        await adapter.resume(job.native_id)
    elif call.action == "cancel":
        assert run is not None
        await adapter.cancel(run.uid.removeprefix(f"{job.source}/"))
    elif call.action == "retry":
        assert run is not None
        return await adapter.retry(run.uid.removeprefix(f"{job.source}/"))
    elif call.action in ("apply", "discard"):
        assert run is not None
        act = adapter.apply if call.action == "apply" else adapter.discard
        await act(run.uid.removeprefix(f"{job.source}/"))
    else:  # pragma: no cover - routes only pass known actions
        raise ValueError(call.action)
    return None


async def perform(
    *,
    engine: Engine,
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
    hold: bool = False,
    context: dict[str, str] | None = None,
) -> ActionOutcome:
    """Take one action. Database work runs in worker threads, never on the event loop.

    ``hold`` asks for approval even where no guardrail requires it (the request waits for
    one other person with the approve permission). ``context`` (an agent's tool and the
    person it acts for) goes into every audit record's details; it never decides anything.

    When the intent cannot be recorded the error propagates and the tool is not called.
    """
    call = _Call(
        subject,
        channel,
        action,
        job,
        run,
        params,
        reason,
        emergency,
        request_id,
        approved,
        hold,
        dict(context or {}),
    )
    decision = decide(job.domain, job.uid, permission(action, params))
    prep = await anyio.to_thread.run_sync(_prepare, engine, call, decision)
    if prep.outcome is not None:
        return prep.outcome
    assert prep.source is not None
    if manager is not None:
        adapter, close = manager.adapter_for(prep.source)
    else:
        adapter, close = build_adapter(prep.source), True
    run_record: RunRecord | None = None
    error: AdapterError | None = None
    try:
        run_record = await _call_tool(adapter, call)
    except AdapterError as exc:
        error = exc
    except BaseException:
        # Cancelled (client gone, shutdown) while the tool was acting: what it did is
        # unknown, and the record says so.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                partial(
                    _finish,
                    engine,
                    call,
                    prep,
                    run_record=None,
                    error=AdapterUnavailable("interrupted before the tool answered"),
                )
            )
            if close:
                await adapter.aclose()
        raise
    if close:
        await adapter.aclose()
    # The tool has acted: record that even if this request is cancelled meanwhile.
    outcome = await anyio.to_thread.run_sync(
        partial(_finish, engine, call, prep, run_record=run_record, error=error),
        abandon_on_cancel=False,
    )
    if outcome.status == "ok" and manager is not None:
        manager.hint(
            job.source, [SyncHint(scope="inventory" if action in ("pause", "resume") else "runs")]
        )
    return outcome
