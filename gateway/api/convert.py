"""Table rows → API schemas."""

from __future__ import annotations

from typing import Any

from adapters.base import registry
from gateway.capabilities import source_capabilities
from gateway.store.tables import AuditRecord, Edge, Job, Run, Source, Step
from gateway.sync.worker import health_of, lag_seconds

from .schemas import (
    AuditRecordPublic,
    JobPublic,
    ProblemPublic,
    RunLink,
    RunPublic,
    ScheduleInfo,
    SourcePublic,
    StepPublic,
)

__all__ = [
    "audit_public",
    "job_public",
    "no_next_run_reason",
    "run_link",
    "run_public",
    "source_public",
    "step_public",
]


def source_public(row: Source, jobs: int = 0) -> SourcePublic:
    try:
        info = registry.get(row.type).info
        display, simulator = info.display_name, info.simulator
    except LookupError:
        display, simulator = f"{row.type} (adapter not installed)", False
    caps = sorted(source_capabilities(row))  # this source's, not its type's
    return SourcePublic(
        name=row.name,
        type=row.type,
        display_name=display,
        domain=row.domain,
        labels=row.labels,
        demo=row.demo,
        simulator=simulator or row.labels.get("accord.dev/simulator") == "true",
        enabled=row.enabled,
        health=health_of(row),
        health_message=row.health_message,
        last_sync_at=row.last_sync_at,
        last_success_at=row.last_success_at,
        lag_seconds=lag_seconds(row),
        last_error=row.last_error,
        capabilities=[str(c) for c in caps],
        jobs=jobs,
        problems=[ProblemPublic.model_validate(p) for p in row.problems or []],
        checked_at=row.checked_at,
    )


def job_public(row: Job, allowed: list[str] | None = None) -> JobPublic:
    schedule = None
    if row.schedule_expr or row.schedule_text:
        schedule = ScheduleInfo(
            expression=row.schedule_expr, timezone=row.schedule_tz, text=row.schedule_text
        )
    return JobPublic(
        uid=row.uid,
        source=row.source,
        native_id=row.native_id,
        domain=row.domain,
        name=row.name,
        native_type=row.native_type,
        schedule=schedule,
        next_run_at=row.next_run_at,
        paused=row.paused,
        owners=row.owners,
        labels=row.labels,
        url=row.url,
        description=row.description,
        attributes=row.attributes,
        problems=row.problems,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        tombstoned_at=row.tombstoned_at,
        last_run_state=row.last_run_state,
        last_run_at=row.last_run_at,
        allowed_actions=allowed or [],
        no_next_run_reason=no_next_run_reason(row),
    )


def job_item(row: Job, allowed: list[str]) -> dict[str, Any]:
    """A job as ``job_public`` gives it, as plain data for the list's JSON encoder (no
    model per item; tests compare both forms field by field)."""
    schedule = None
    if row.schedule_expr or row.schedule_text:
        schedule = {
            "expression": row.schedule_expr,
            "timezone": row.schedule_tz,
            "text": row.schedule_text,
        }
    return {
        "uid": row.uid,
        "source": row.source,
        "native_id": row.native_id,
        "domain": row.domain,
        "name": row.name,
        "native_type": row.native_type,
        "schedule": schedule,
        "next_run_at": row.next_run_at,
        "paused": row.paused,
        "owners": row.owners,
        "labels": row.labels,
        "url": row.url,
        "description": row.description,
        "attributes": row.attributes,
        "problems": row.problems,
        "first_seen": row.first_seen,
        "last_seen": row.last_seen,
        "tombstoned_at": row.tombstoned_at,
        "last_run_state": row.last_run_state,
        "last_run_at": row.last_run_at,
        "allowed_actions": allowed,
        "no_next_run_reason": no_next_run_reason(row),
    }


def no_next_run_reason(row: Job) -> str | None:
    """Why a job has no next run, in words, or None when it has one (or needs none)."""
    if row.next_run_at is not None:
        return None
    if row.tombstoned_at is not None:
        return "the job is gone from its source"
    if row.paused:
        return "the job is paused"
    if row.problems:
        return row.problems[0]
    if not row.schedule_expr and not row.schedule_text:
        return "the job has no schedule (it runs when triggered)"
    return None


def step_public(s: Step) -> StepPublic:
    return StepPublic(
        name=s.name,
        state=s.state,
        native_state=s.native_state,
        started_at=s.started_at,
        ended_at=s.ended_at,
        attempt=s.attempt,
    )


def run_public(
    row: Run, steps: list[Step] | None = None, allowed: list[str] | None = None
) -> RunPublic:
    duration = None
    if row.started_at and row.ended_at:
        duration = max(0.0, (row.ended_at - row.started_at).total_seconds())
    return RunPublic(
        uid=row.uid,
        source=row.source,
        job_uid=row.job_uid,
        domain=row.domain,
        state=row.state,
        native_state=row.native_state,
        trigger=row.trigger,
        actor=row.actor,
        queued_at=row.queued_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_s=duration,
        attempt=row.attempt,
        url=row.url,
        message=row.message,
        observed_at=row.observed_at,
        steps=[step_public(s) for s in steps] if steps is not None else None,
        allowed_actions=allowed or [],
        cancelled_through_accord=row.cancel_requested_at is not None and row.state == "cancelled",
        cancel_requested_by=row.cancel_requested_by,
    )


def run_link(row: Run, edge: Edge) -> RunLink:
    return RunLink(
        uid=row.uid,
        job_uid=row.job_uid,
        source=row.source,
        state=row.state,
        native_state=row.native_state,
        trigger=row.trigger,
        started_at=row.started_at,
        ended_at=row.ended_at,
        evidence=edge.evidence,
        reported_by=edge.reported_by,
    )


def audit_public(r: AuditRecord) -> AuditRecordPublic:
    return AuditRecordPublic(
        seq=r.seq,
        at=r.at,
        subject=r.subject,
        channel=r.channel,
        action=r.action,
        target=r.target,
        domain=r.domain,
        decision=r.decision,
        policy=r.policy,
        reason=r.reason,
        outcome=r.outcome,
        request_id=r.request_id,
        details=r.details,
        prev_hash=r.prev_hash,
        hash=r.hash,
    )
