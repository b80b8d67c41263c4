"""Missed runs: the schedule said a job should have started, and no start was seen.

Pure: from each watched job's schedule, the time Accord started watching it, and the
starts observed, find every expected start older than the grace period with no observed
start near it. A missed run is a failed run with native state ``missed`` and the id
``<job id>@missed:<expected time, UTC>``, so reporting it again changes nothing.
Nothing is expected before a job was first seen (or resumed): Accord cannot know what
happened then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.model import RunRecord, RunState, Trigger

from .schedule import CronSchedule

__all__ = ["EARLY", "Watched", "missed_id", "missed_runs"]

EARLY = timedelta(minutes=1)  # a start this much before the expected time still counts
_MAX_PER_JOB = 100


@dataclass(frozen=True)
class Watched:
    """A job whose starts Accord can see, since ``since``."""

    job_id: str
    schedule: CronSchedule
    timezone: str
    since: datetime


def missed_id(job_id: str, expected: datetime) -> str:
    return f"{job_id}@missed:{expected.astimezone(UTC):%Y-%m-%dT%H:%MZ}"


def missed_runs(
    jobs: Iterable[Watched],
    starts: Mapping[str, Sequence[datetime]],
    *,
    now: datetime,
    grace: timedelta,
    lookback: timedelta = timedelta(days=1),
    after: Mapping[str, datetime] | None = None,
) -> list[RunRecord]:
    """Expected starts in ``(max(since, now - lookback, after[job]), now - grace]`` without
    an observed start in ``[expected - EARLY, expected + grace]``, oldest first."""
    out: list[RunRecord] = []
    deadline = now - grace
    for job in jobs:
        if job.schedule.reboot:
            continue
        begin = max(job.since, now - lookback)
        if after and job.job_id in after:
            begin = max(begin, after[job.job_id])
        if begin >= deadline:
            continue
        zone = ZoneInfo(job.timezone)
        expected = job.schedule.between(
            begin.astimezone(zone), deadline.astimezone(zone), limit=_MAX_PER_JOB
        )
        seen = sorted(starts.get(job.job_id, ()))
        for t in expected:
            if any(t - EARLY <= s <= t + grace for s in seen):
                continue
            seconds = int(grace.total_seconds())
            within = f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"
            out.append(
                RunRecord(
                    native_id=missed_id(job.job_id, t),
                    job_native_id=job.job_id,
                    state=RunState.FAILED,
                    native_state="missed",
                    trigger=Trigger.SCHEDULE,
                    queued_at=t.astimezone(UTC),
                    ended_at=(t + grace).astimezone(UTC),
                    message=(
                        f"expected to start at {t:%Y-%m-%d %H:%M %Z}; no start was seen "
                        f"within {within}"
                    ),
                )
            )
    out.sort(key=lambda r: (r.queued_at or now, r.native_id))
    return out
