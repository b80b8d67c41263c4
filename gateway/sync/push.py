"""What an agent pushes (inventory, runs, health), stored in one write transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from gateway.audit import AuditEntry, append
from gateway.authz import Decision
from gateway.capabilities import source_capabilities
from gateway.governance.compliance import evaluate_jobs
from gateway.model import Capability, JobRecord, RunRecord, SourceHealth
from gateway.store.engine import session_scope
from gateway.store.services import ingest
from gateway.store.tables import Source as SourceRow
from gateway.store.types import utcnow

__all__ = ["PushRefused", "PushStored", "accept_push", "authorize_push"]


class PushRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class PushStored:
    domain: str
    jobs: dict[str, int] | None
    runs: dict[str, int]
    changes: list[ingest.RunChange] = field(default_factory=list)


def authorize_push(
    session: Session, *, name: str, decide: Callable[[str, str, str], Decision], subject: str
) -> tuple[SourceRow, Decision]:
    """The source ``name`` if ``subject`` may push to it (404 / 403 otherwise)."""
    src = session.get(SourceRow, name)
    if src is None:
        raise PushRefused(404, "not_found", f"no source named {name!r}")
    decision = decide(src.domain, f"{name}/*", "push")
    if not decision.allowed:
        raise PushRefused(403, "forbidden", f"{subject!r} may not push to {name!r}")
    return src, decision


SKEW_NOTED = 60.0  # seconds of clock difference worth telling a person about
_SKEW_IGNORED = 2.0  # the Date header's resolution plus the push's own latency


def clock_offset(sent_at: datetime, received_at: datetime) -> float:
    """How far the sender's clock is ahead of ours (seconds); 0 within the resolution."""
    offset = (sent_at - received_at).total_seconds()
    return 0.0 if abs(offset) <= _SKEW_IGNORED else round(offset, 1)


def skew_problem(offset: float | None) -> str | None:
    if offset is None or abs(offset) < SKEW_NOTED:
        return None
    minutes = abs(offset) / 60
    way = "ahead of" if offset > 0 else "behind"
    return (
        f"the clock of this source's host is {minutes:.0f} min {way} the gateway's: run "
        "times are shown as the host recorded them, SLAs allow for the difference "
        "(synchronise the host's clock, e.g. with NTP)"
    )


def accept_push(
    engine: Engine,
    *,
    name: str,
    decide: Callable[[str, str, str], Decision],
    subject: str,
    agent_id: str,
    inventory: Sequence[JobRecord] | None,
    runs: Sequence[RunRecord],
    health: SourceHealth | None,
    request_id: str | None,
    sent_at: datetime | None = None,
) -> PushStored:
    """Authorize and store one push (blocking: call it in a worker thread).

    Runs go through the same upsert as every sync, so a push racing a sync or an action on
    the same run can only move it forward.
    """
    with session_scope(engine) as session:
        src, decision = authorize_push(session, name=name, decide=decide, subject=subject)
        if Capability.PUSH not in source_capabilities(src):
            raise PushRefused(
                409,
                "not_a_push_source",
                f"source {name!r} is of type {src.type!r}, which does not accept pushed data",
            )
        jobs = None
        if inventory is not None:
            counts = ingest.apply_inventory(
                session, source=name, domain=src.domain, records=inventory
            )
            if counts.touched or counts.gone:
                evaluate_jobs(session, uids=[*counts.touched, *counts.gone])
            jobs = counts.as_dict()
        result = ingest.upsert_runs(session, source=name, domain=src.domain, records=runs)
        now = utcnow()
        src.last_sync_at = now
        src.last_success_at = now
        if sent_at is not None:
            src.clock_offset_s = clock_offset(sent_at, now)
        if health is not None:
            src.health = health.status.value
            src.health_message = health.message
            src.problems = [p.model_dump(exclude_none=True) for p in health.problems]
            skew = skew_problem(src.clock_offset_s)
            if skew:
                src.problems = [*src.problems, {"message": skew}]
            src.checked_at = now
        elif src.health in ("unknown", "stale"):
            # A push without health (the later batches of an agent's round) says nothing
            # new about it: what the round's first batch said stands.
            src.health = "ok"
            src.health_message = ""
            src.problems = []
        src.last_error = None
        session.add(src)
        if inventory is not None:
            # Inventory pushes are rare (on change); record who sent them.
            append(
                session,
                AuditEntry(
                    subject=subject,
                    channel="agent",
                    action="push",
                    target=name,
                    domain=src.domain,
                    decision="allow",
                    outcome="ok",
                    policy=decision.policy,
                    request_id=request_id,
                    details={"agent": agent_id, "jobs": jobs, "runs": result.as_dict()},
                ),
            )
        return PushStored(src.domain, jobs, result.as_dict(), result.changes)
