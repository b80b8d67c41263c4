"""Forecasts: expected starts per tool dialect and robust expected durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from adapters.cron.adapter import CronAdapter
from adapters.cron.schedule import parse_schedule
from adapters.jenkins.adapter import JenkinsAdapter
from adapters.jenkins.cron import next_fire, parse_spec
from adapters.kubernetes.adapter import KubernetesAdapter
from gateway.governance.forecast import Forecaster, JobInfo, durations_of
from gateway.model import RunState
from gateway.model.calendar import calendar_from_cron

from .helpers import job, jobs, run, runs, source

T0 = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)  # DST starts in New York on 2026-03-08


def _cal(cls: type, expr: str, tz: str | None, job_id: str = "x") -> object:
    cal = cls.schedule_calendar(job_id=job_id, expression=expr, timezone=tz, next_run_at=None)
    assert cal is not None
    return cal


def test_cron_tz_calendar_matches_cron_across_a_dst_change() -> None:
    cal = _cal(CronAdapter, "30 1 * * *", "America/New_York")
    got = cal.between(T0, T0 + timedelta(days=3))  # type: ignore[attr-defined]
    # 01:30 EST = 06:30Z before the change, 01:30 EDT = 05:30Z after it.
    assert got == [
        datetime(2026, 3, 8, 6, 30, tzinfo=UTC),
        datetime(2026, 3, 9, 5, 30, tzinfo=UTC),
        datetime(2026, 3, 10, 5, 30, tzinfo=UTC),
    ]


def test_cron_calendar_agrees_with_the_cron_adapter_schedule() -> None:
    zone = ZoneInfo("Europe/Berlin")
    for expr in ("*/7 * * * *", "0 9-17/2 * * mon-fri", "15 3 1,15 * 5", "@hourly", "0 0 29 2 *"):
        cal = _cal(CronAdapter, expr, "Europe/Berlin")
        ours = cal.between(T0, T0 + timedelta(days=2))  # type: ignore[attr-defined]
        theirs = parse_schedule(expr).between(
            T0.astimezone(zone), (T0 + timedelta(days=2)).astimezone(zone)
        )
        assert ours == [t.astimezone(UTC) for t in theirs], expr


def test_jenkins_h_spec_resolves_per_job_like_jenkins() -> None:
    spec = "TZ=Europe/Paris\nH 2 * * *\nH/30 9-10 * * 1-5"
    for name in ("team/build-warehouse", "other/job"):
        cal = _cal(JenkinsAdapter, "H 2 * * *\nH/30 9-10 * * 1-5", "Europe/Paris", name)
        ours = cal.between(T0, T0 + timedelta(days=4))  # type: ignore[attr-defined]
        timer = parse_spec(spec, name)
        expected, t = [], T0
        while True:
            nxt = next_fire(timer, t)
            assert nxt is not None
            if nxt > T0 + timedelta(days=4):
                break
            expected.append(nxt)
            t = nxt
        assert ours == expected, name
    a = _cal(JenkinsAdapter, "H 2 * * *", "UTC", "team/build-warehouse")
    b = _cal(JenkinsAdapter, "H 2 * * *", "UTC", "other/job")
    assert a != b  # H spreads jobs by name


def test_jenkins_jobs_sharing_a_spec_keep_their_own_h_values() -> None:
    # One spec is checked once and shared; each job still draws its own H values, in
    # Jenkins' order, whatever job was resolved before it.
    spec = "H H(0-6) * * *\nH/15 * * * 1-5\n@weekly"
    names = [f"team-{i}/job-{i}" for i in range(40)]
    first = [parse_spec(spec, n).resolved for n in names]
    again = [parse_spec(spec, n).resolved for n in reversed(names)][::-1]
    assert first == again
    assert len(set(first)) > 30  # spread by name, not one shared draw
    assert parse_spec("H 2 * * *", "a").resolved == parse_spec("H 2 * * *", "a").resolved


def _jenkins_job(spec: str, definition_hash: str) -> JobInfo:
    return JobInfo(
        uid="jenkins-a/team/nightly",
        native_id="team/nightly",
        source="jenkins-a",
        source_type="jenkins",
        domain="data",
        name="nightly",
        labels={},
        expression=spec,
        timezone="UTC",
        next_run_at=None,
        paused=False,
        definition_hash=definition_hash,
        last_run_at=None,
    )


def test_a_job_whose_schedule_changes_gets_the_new_calendar() -> None:
    # Calendars are shared between jobs and refreshes; a changed spec must not keep the old.
    f = Forecaster(None)
    f.update([_jenkins_job("H 2 * * *", "v1")], {}, {}, [], now=T0)
    daily = f.expected("jenkins-a/team/nightly", T0, T0 + timedelta(days=1))
    assert len(daily) == 1 and daily[0].at.hour == 2
    f.update([_jenkins_job("H/30 * * * *", "v2")], {}, {}, [], now=T0)
    got = f.expected("jenkins-a/team/nightly", T0, T0 + timedelta(days=1))
    assert len(got) == 48
    assert len({t.at.minute for t in got}) == 2  # H/30: two minutes, 30 apart
    assert (got[1].at - got[0].at) == timedelta(minutes=30)


def test_new_durations_replace_a_summary_already_read() -> None:
    # Durations are summarised on first read; newer runs must replace that summary.
    f = Forecaster(None)
    uid = "jenkins-a/team/nightly"
    f.update([_jenkins_job("H 2 * * *", "v1")], {}, {uid: [600, 600, 660]}, [uid], now=T0)
    assert f.durations(uid).median_s == 600
    assert f.expected(uid, T0, T0 + timedelta(days=1))[0].end is not None
    f.update([_jenkins_job("H 2 * * *", "v1")], {}, {uid: [60, 60, 120]}, [uid], now=T0)
    assert f.durations(uid).median_s == 60
    (run_,) = f.expected(uid, T0, T0 + timedelta(days=1))
    assert run_.end == run_.at + timedelta(seconds=60)
    f.update([_jenkins_job("H 2 * * *", "v1")], {}, {}, [uid], now=T0)
    assert f.durations(uid).median_s is None  # no successful run left to learn from


def test_kubernetes_time_zone_and_every() -> None:
    cal = _cal(KubernetesAdapter, "0 9 * * 1-5", "Asia/Tokyo")
    got = cal.between(T0, T0 + timedelta(days=4))  # type: ignore[attr-defined]
    # Saturday 7 March: next weekday 09:00 JST is Monday 9 March 00:00Z.
    assert got[:2] == [
        datetime(2026, 3, 9, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 10, 0, 0, tzinfo=UTC),
    ]
    none = KubernetesAdapter.schedule_calendar(
        job_id="x", expression="@every 5m", timezone="UTC", next_run_at=None
    )
    assert none is None


def test_vixie_day_or_rule() -> None:
    # Both day fields restricted: the 13th OR a Friday.
    cal = calendar_from_cron("0 0 13 * 5")
    days = {
        t.day
        for t in cal.between(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC))
    }
    assert days == {6, 13, 20, 27}


def test_durations_drop_outliers() -> None:
    d = durations_of([600, 610, 590, 605, 620, 598, 7200])
    assert d.outliers == 1
    assert 595 <= (d.median_s or 0) <= 610
    assert (d.p90_s or 0) <= 620
    assert durations_of([]).median_s is None


def test_forecaster_from_stored_jobs_is_incremental(engine: Engine) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    source(engine, "cron-a", "cron")
    source(engine, "k8s-a", "kubernetes")
    jobs(
        engine,
        "cron-a",
        [
            job("h1:/etc/crontab:3", "0 * * * *", "UTC"),
            job("paused", "0 * * * *", "UTC", paused=True),
        ],
    )
    jobs(engine, "k8s-a", [job("ns/report@abc", "30 * * * *", "UTC")])
    base = now - timedelta(days=1)
    runs(
        engine,
        "k8s-a",
        [
            run(
                f"r{i}",
                "ns/report@abc",
                RunState.SUCCESS,
                base + timedelta(hours=i),
                base + timedelta(hours=i, minutes=10 + i % 2),
            )
            for i in range(8)
        ],
    )
    f = Forecaster(engine)
    first = f.refresh(now)
    assert first.recomputed == 3
    window = f.window(now, now + timedelta(hours=24))
    by_job: dict[str, list[datetime]] = {}
    for e in window:
        by_job.setdefault(e.job_uid, []).append(e.at)
    assert len(by_job["cron-a/h1:/etc/crontab:3"]) == 24
    assert "cron-a/paused" not in by_job  # a paused job has no expected runs
    report = [e for e in window if e.job_uid == "k8s-a/ns/report@abc"]
    assert report[0].end is not None and report[0].end - report[0].at == timedelta(
        minutes=10, seconds=30
    )
    second = f.refresh(now + timedelta(minutes=5))
    assert second.recomputed == 0  # nothing changed, the window still covers the horizon
    jobs(
        engine,
        "cron-a",
        [
            job("h1:/etc/crontab:3", "0 */2 * * *", "UTC"),
            job("paused", "0 * * * *", "UTC", paused=True),
        ],
    )
    third = f.refresh(now + timedelta(minutes=6))
    assert third.recomputed == 1
    assert (
        len(
            [
                e
                for e in f.window(now, now + timedelta(hours=24))
                if e.job_uid.startswith("cron-a/h1")
            ]
        )
        == 12
    )


def test_airflow_cron_timetable_aligned_with_the_reported_next_run() -> None:
    from adapters.airflow.adapter import AirflowAdapter

    # A DAG at 02:00 Europe/Paris (CET, UTC+1): Airflow reports 01:00Z as its next run.
    reported = datetime(2026, 1, 10, 1, 0, tzinfo=UTC)
    cal = AirflowAdapter.schedule_calendar(
        job_id="etl", expression="0 2 * * *", timezone=None, next_run_at=reported
    )
    assert cal is not None
    got = cal.between(reported - timedelta(minutes=1), reported + timedelta(days=2))
    assert got == [reported, reported + timedelta(days=1), reported + timedelta(days=2)]
    for summary in ("Asset", "None", "@once"):
        assert (
            AirflowAdapter.schedule_calendar(
                job_id="etl", expression=summary, timezone=None, next_run_at=reported
            )
            is None
        )
