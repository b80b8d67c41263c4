"""Missed runs for every tool whose adapter does not record them itself.

cron and Kubernetes adapters see their scheduler's own evidence and record missed runs
(``reports_missed_runs``). For the others (Airflow, Jenkins, the fake and demo adapters)
the gateway judges from each job's calendar, the same way and in the same shape as cron:
an expected start older than the grace period with no run of the job started within
``[expected - 1 min, expected + grace]`` becomes a run in state ``failed`` with native
state ``missed``, trigger ``schedule`` and the native id ``<job id>@missed:<expected time,
UTC>`` — so judging again changes nothing (idempotent by uid).

Never for a paused job: while a job is paused its watermark moves with the clock, so the
time it was paused is never judged. Nothing before the job was first seen is judged, and
at most ``lookback`` back.

A run that shows up late (it started after the grace period but before the next expected
start) cancels the missed run out: the missed record is withdrawn (deleted with its run
events) and the withdrawal audited, so lists and SLAs then show the real, late run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select
from sqlmodel import col

from adapters.base import UnknownAdapterType, registry
from gateway.audit import AuditEntry, append
from gateway.model import RunRecord, RunState, Trigger
from gateway.store.engine import session_scope
from gateway.store.services.ingest import RunChange, upsert_runs
from gateway.store.tables import Job, Run, RunEvent, ScheduleWatch, Step
from gateway.store.types import to_db, utcnow

from .forecast import Forecaster, JobInfo, calendar_for
from .notify import withdraw

__all__ = ["EARLY", "MISSED_ACTOR", "MissedResult", "detect_missed", "missed_id"]

EARLY = timedelta(minutes=1)
MISSED_ACTOR = "accord:missed-runs"
_MAX_PER_JOB = 100


def missed_id(job_native_id: str, expected: datetime) -> str:
    return f"{job_native_id}@missed:{to_db(expected):%Y-%m-%dT%H:%MZ}"


@dataclass
class MissedResult:
    judged_jobs: int = 0
    recorded: list[RunChange] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)


def _gateway_judges(source_type: str) -> bool:
    try:
        cls = registry.get(source_type)
    except UnknownAdapterType:
        return False
    return not bool(getattr(cls, "reports_missed_runs", False))


def detect_missed(
    engine: Engine,
    forecaster: Forecaster,
    *,
    grace: timedelta,
    lookback: timedelta = timedelta(days=1),
    now: datetime | None = None,
) -> MissedResult:
    """Record missed runs and withdraw those a late run cancelled (blocking: a thread)."""
    now = now or utcnow()
    deadline = now - grace
    result = MissedResult()
    jobs = [j for j in forecaster.jobs() if _gateway_judges(j.source_type)]
    if not jobs:
        return result
    with session_scope(engine) as session:
        uids = [j.uid for j in jobs]
        watch: dict[str, datetime] = {}
        first_seen: dict[str, datetime] = {}
        for i in range(0, len(uids), 500):
            chunk = uids[i : i + 500]
            for uid, until in session.execute(
                select(col(ScheduleWatch.job_uid), col(ScheduleWatch.judged_until)).where(
                    col(ScheduleWatch.job_uid).in_(chunk)
                )
            ).all():
                watch[uid] = until
            for uid, seen in session.execute(
                select(col(Job.uid), col(Job.first_seen)).where(col(Job.uid).in_(chunk))
            ).all():
                first_seen[uid] = seen
        plans: list[tuple[JobInfo, list[datetime]]] = []
        new_marks: dict[str, datetime] = {}
        for job in jobs:
            if job.paused:
                new_marks[job.uid] = now  # the paused time is never judged
                continue
            cal = calendar_for(job)
            if cal is None:
                continue
            begin = max(
                first_seen.get(job.uid, now), now - lookback, watch.get(job.uid, now - lookback)
            )
            new_marks[job.uid] = max(deadline, watch.get(job.uid, deadline))
            if begin >= deadline:
                continue
            expected = cal.between(begin, deadline, limit=_MAX_PER_JOB)
            if expected:
                plans.append((job, expected))
        result.judged_jobs = len(plans)
        starts = _starts(session, [j.uid for j, _ in plans], now - lookback - grace)
        by_source: dict[tuple[str, str], list[RunRecord]] = {}
        for job, expected in plans:
            seen = starts.get(job.uid, [])
            for t in expected:
                if any(t - EARLY <= s <= t + grace for s in seen):
                    continue
                within = int(grace.total_seconds() // 60)
                by_source.setdefault((job.source, job.domain), []).append(
                    RunRecord(
                        native_id=missed_id(job.native_id, t),
                        job_native_id=job.native_id,
                        state=RunState.FAILED,
                        native_state="missed",
                        trigger=Trigger.SCHEDULE,
                        actor=MISSED_ACTOR,
                        queued_at=t,
                        ended_at=t + grace,
                        message=(
                            f"missed: expected to start at {t:%Y-%m-%d %H:%M} UTC from the "
                            f"schedule; no start was seen within {within} min"
                        ),
                    )
                )
        for (source, domain), records in by_source.items():
            ingest = upsert_runs(
                session, source=source, domain=domain, records=records, observed_at=now
            )
            result.recorded.extend(c for c in ingest.changes if c.from_state is None)
        result.withdrawn.extend(_withdraw_cancelled(session, jobs, now, lookback))
        # Their messages, if not yet sent, are not sent.
        withdraw(session, [f"run.missed:{uid}" for uid in result.withdrawn])
        for uid, mark in new_marks.items():
            row = session.get(ScheduleWatch, uid)
            if row is None:
                session.add(ScheduleWatch(job_uid=uid, judged_until=mark))
            elif to_db(row.judged_until) != to_db(mark):
                row.judged_until = mark
                session.add(row)
    return result


def _starts(session: object, uids: Sequence[str], since: datetime) -> dict[str, list[datetime]]:
    out: dict[str, list[datetime]] = {}
    for i in range(0, len(uids), 500):
        chunk = list(uids[i : i + 500])
        rows = session.execute(  # type: ignore[attr-defined]
            select(
                col(Run.job_uid), col(Run.started_at), col(Run.queued_at), col(Run.sort_at)
            ).where(
                col(Run.job_uid).in_(chunk),
                col(Run.sort_at) >= to_db(since),
                (col(Run.native_state).is_(None)) | (col(Run.native_state) != "missed"),
            )
        ).all()
        for uid, started, queued, sort_at in rows:
            out.setdefault(uid, []).append(started or queued or sort_at)
    return out


def _withdraw_cancelled(
    session: object, jobs: Sequence[JobInfo], now: datetime, lookback: timedelta
) -> list[str]:
    """Missed runs (ours) cancelled out by a real run that started late."""
    by_uid = {j.uid: j for j in jobs}
    s = session
    missed = s.execute(  # type: ignore[attr-defined]
        select(col(Run.uid), col(Run.job_uid), col(Run.queued_at), col(Run.domain)).where(
            col(Run.actor) == MISSED_ACTOR,
            col(Run.native_state) == "missed",
            col(Run.sort_at) >= to_db(now - lookback),
        )
    ).all()
    if not missed:
        return []
    starts = _starts(s, sorted({m[1] for m in missed}), now - lookback - timedelta(hours=1))
    withdrawn: list[str] = []
    for uid, job_uid, expected, domain in missed:
        job = by_uid.get(job_uid)
        if job is None or expected is None:
            continue
        cal = calendar_for(job)
        following = cal.next_after(expected) if cal is not None else None
        late = [
            t
            for t in starts.get(job_uid, [])
            if t > expected and (following is None or t < following - EARLY)
        ]
        if not late:
            continue
        s.execute(delete(RunEvent).where(col(RunEvent.run_uid) == uid))  # type: ignore[attr-defined]
        s.execute(delete(Step).where(col(Step.run_uid) == uid))  # type: ignore[attr-defined]
        s.execute(delete(Run).where(col(Run.uid) == uid))  # type: ignore[attr-defined]
        append(
            s,  # type: ignore[arg-type]
            AuditEntry(
                subject=MISSED_ACTOR,
                channel="system",
                action="missed-run.withdrawn",
                target=uid,
                domain=domain,
                decision="allow",
                outcome="ok",
                reason=f"the run started late, at {min(late):%Y-%m-%d %H:%M} UTC",
            ),
        )
        withdrawn.append(uid)
    return withdrawn
