"""Missed runs from schedules and observed starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.cron.missed import Watched, missed_id, missed_runs
from adapters.cron.schedule import parse_schedule
from gateway.model import RunState, Trigger

GRACE = timedelta(minutes=5)


def watched(expr: str, since: datetime, job: str = "job-1", tz: str = "UTC") -> Watched:
    return Watched(job, parse_schedule(expr), tz, since)


def test_a_start_that_did_not_happen_is_missed_once_grace_is_over() -> None:
    job = watched("0 * * * *", datetime(2026, 3, 2, 8, 30, tzinfo=UTC))
    starts = {"job-1": [datetime(2026, 3, 2, 9, 0, 2, tzinfo=UTC)]}  # 09:00 ran, 10:00 not
    early = missed_runs([job], starts, now=datetime(2026, 3, 2, 10, 4, tzinfo=UTC), grace=GRACE)
    assert early == []  # 10:00 is still within its grace period
    late = missed_runs([job], starts, now=datetime(2026, 3, 2, 10, 6, tzinfo=UTC), grace=GRACE)
    (run,) = late
    assert run.native_id == "job-1@missed:2026-03-02T10:00Z"
    assert run.job_native_id == "job-1"
    assert (run.state, run.native_state, run.trigger) == (
        RunState.FAILED,
        "missed",
        Trigger.SCHEDULE,
    )
    assert run.queued_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert run.started_at is None
    assert "no start was seen within 5 min" in (run.message or "")


def test_same_input_gives_the_same_ids() -> None:
    job = watched("*/15 * * * *", datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    a = missed_runs([job], {}, now=now, grace=GRACE)
    b = missed_runs([job], {}, now=now + timedelta(seconds=30), grace=GRACE)
    assert [r.native_id for r in a] == [r.native_id for r in b]
    assert [r.queued_at for r in a] == [
        datetime(2026, 3, 2, 9, 15, tzinfo=UTC),
        datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        datetime(2026, 3, 2, 9, 45, tzinfo=UTC),
    ]  # 09:00 is when watching began: not before the job was first seen


def test_nothing_is_expected_before_the_job_was_first_seen() -> None:
    job = watched("* * * * *", datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC))
    assert missed_runs([job], {}, now=datetime(2026, 3, 2, 10, 5, 0, tzinfo=UTC), grace=GRACE) == []
    (first,) = missed_runs([job], {}, now=datetime(2026, 3, 2, 10, 6, 0, tzinfo=UTC), grace=GRACE)
    assert first.queued_at == datetime(2026, 3, 2, 10, 1, tzinfo=UTC)


def test_late_and_slightly_early_starts_count() -> None:
    job = watched("0 3 * * *", datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    now = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    starts = {
        "job-1": [
            datetime(2026, 3, 2, 3, 4, 59, tzinfo=UTC),  # 5 min late: still in grace
            datetime(2026, 3, 3, 2, 59, 30, tzinfo=UTC),  # clock skew: 30 s early
        ]
    }
    days = timedelta(days=3)
    assert missed_runs([job], starts, now=now, grace=GRACE, lookback=days) == []
    too_late = {"job-1": [datetime(2026, 3, 2, 3, 6, tzinfo=UTC), starts["job-1"][1]]}
    (run,) = missed_runs([job], too_late, now=now, grace=GRACE, lookback=days)
    assert run.queued_at == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


def test_schedules_in_their_time_zone_and_reboot_jobs() -> None:
    ny = watched("0 9 * * *", datetime(2026, 3, 2, tzinfo=UTC), tz="America/New_York")
    boot = watched("@reboot", datetime(2026, 3, 1, tzinfo=UTC), job="boot")
    (run,) = missed_runs([ny, boot], {}, now=datetime(2026, 3, 2, 20, 0, tzinfo=UTC), grace=GRACE)
    assert run.queued_at == datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert run.native_id == missed_id("job-1", datetime(2026, 3, 2, 14, 0, tzinfo=UTC))


def test_after_and_lookback_bound_the_search() -> None:
    job = watched("0 * * * *", datetime(2026, 1, 1, tzinfo=UTC))
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    runs = missed_runs([job], {}, now=now, grace=GRACE, lookback=timedelta(hours=3))
    # (09:00, 11:55]: the start of the lookback window itself is excluded
    assert [r.queued_at for r in runs] == [datetime(2026, 3, 2, h, 0, tzinfo=UTC) for h in (10, 11)]
    after = {"job-1": datetime(2026, 3, 2, 10, 30, tzinfo=UTC)}
    runs = missed_runs([job], {}, now=now, grace=GRACE, lookback=timedelta(hours=3), after=after)
    assert [r.queued_at for r in runs] == [datetime(2026, 3, 2, 11, 0, tzinfo=UTC)]
