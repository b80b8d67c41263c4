"""SLA states with a critical path across tools, and missed runs for a non-cron tool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
from sqlalchemy import Engine, select
from sqlmodel import col

from gateway.governance.evaluator import Evaluator
from gateway.governance.missed import detect_missed
from gateway.model import RunState, SecretRef
from gateway.store import session_scope
from gateway.store.tables import AuditRecord, Notification, Run, SlaState
from tests.api.conftest import apply_yaml

from .helpers import job, jobs, run, runs, source


def _no_secrets(ref: SecretRef) -> object:
    raise LookupError("no secrets here")


def _estate(engine: Engine, now: datetime) -> None:
    """jenkins/build-warehouse (daily 05:00 UTC, ~20 min) → k8s report (daily 05:30 UTC,
    ~10 min), with a finishBy 06:00 UTC SLA on the report."""
    source(engine, "jenkins", "jenkins")
    source(engine, "k8s", "kubernetes")
    jobs(engine, "jenkins", [job("build-warehouse", "0 5 * * *", "UTC")])
    jobs(engine, "k8s", [job("reports/daily@1", "30 5 * * *", "UTC", labels={"tier": "gold"})])
    day0 = now.replace(hour=5, minute=0) - timedelta(days=10)
    hist_up = [
        run(
            f"build-warehouse#{i}",
            "build-warehouse",
            RunState.SUCCESS,
            day0 + timedelta(days=i),
            day0 + timedelta(days=i, minutes=20 + i % 3),
        )
        for i in range(7)
    ]
    hist_down = [
        run(
            f"reports/daily@1/j{i}",
            "reports/daily@1",
            RunState.SUCCESS,
            day0 + timedelta(days=i, minutes=30),
            day0 + timedelta(days=i, minutes=40),
        )
        for i in range(7)
    ]
    runs(engine, "jenkins", hist_up)
    runs(engine, "k8s", hist_down)
    apply_yaml(
        engine,
        """
apiVersion: accord.dev/v1
kind: Dependency
metadata: {name: warehouse-before-report, domain: data}
spec: {upstream: jenkins/build-warehouse, downstream: k8s/reports/daily@1}
---
apiVersion: accord.dev/v1
kind: SLA
metadata: {name: report-by-six, domain: data}
spec:
  selector: {labels: {tier: gold}}
  finishBy: "06:00"
  timezone: UTC
""",
    )


def test_sla_at_risk_names_the_upstream_on_the_critical_path(engine: Engine) -> None:
    now = datetime.now(UTC).replace(hour=5, minute=50, second=0, microsecond=0)
    _estate(engine, now)
    # Today the warehouse build started at 05:00 and is still running at 05:50.
    runs(
        engine,
        "jenkins",
        [run("build-warehouse#99", "build-warehouse", RunState.RUNNING, now.replace(minute=0))],
    )
    published: list[tuple[str, dict[str, object]]] = []
    ev = Evaluator(
        engine,
        secrets=_no_secrets,
        publish=lambda k, d, j, data: published.append((k, data)),
        clock=lambda: now,
    )  # type: ignore[arg-type]
    report = anyio.run(ev.run_once)
    assert report.slas == 1
    with session_scope(engine, write=False) as s:
        st = s.execute(select(SlaState)).scalar_one()
    assert st.state == "at_risk", st.reason
    assert st.job_uid == "k8s/reports/daily@1"
    assert st.details["critical_path"] == ["jenkins/build-warehouse"]
    assert st.reason.startswith("waiting on jenkins/build-warehouse, running 28 min over its p90")
    assert "after the 06:00 UTC deadline" in st.reason
    assert (
        "sla.changed",
        {
            "sla": "report-by-six",
            "job_uid": "k8s/reports/daily@1",
            "from": None,
            "to": "at_risk",
            "reason": st.reason,
        },
    ) in published
    with session_scope(engine, write=False) as s:
        audit = (
            s.execute(select(AuditRecord).where(col(AuditRecord.action) == "sla.state"))
            .scalars()
            .all()
        )
    assert [a.outcome for a in audit] == ["at_risk"]
    # A second cycle with nothing new changes nothing (no new audit record, no event).
    published.clear()
    anyio.run(ev.run_once)
    assert not [p for p in published if p[0] == "sla.changed"]

    # Past the deadline without a success: breached.
    later = now.replace(hour=6, minute=5)
    ev.clock = lambda: later
    anyio.run(ev.run_once)
    with session_scope(engine, write=False) as s:
        st = s.execute(select(SlaState)).scalar_one()
    assert st.state == "breached"
    assert st.reason.startswith("did not succeed by 06:00 UTC")


def test_sla_ok_when_upstream_is_on_time(engine: Engine) -> None:
    now = datetime.now(UTC).replace(hour=5, minute=10, second=0, microsecond=0)
    _estate(engine, now)
    runs(
        engine,
        "jenkins",
        [run("build-warehouse#99", "build-warehouse", RunState.RUNNING, now.replace(minute=0))],
    )
    ev = Evaluator(engine, secrets=_no_secrets, clock=lambda: now)  # type: ignore[arg-type]
    anyio.run(ev.run_once)
    with session_scope(engine, write=False) as s:
        st = s.execute(select(SlaState)).scalar_one()
    assert st.state == "ok", st.reason
    assert st.reason.startswith("predicted to succeed at 05:")


def test_missed_runs_for_a_non_cron_tool(engine: Engine) -> None:
    real_now = datetime.now(UTC)
    source(engine, "jk", "jenkins")
    source(engine, "fk", "fake")
    jobs(
        engine,
        "jk",
        [job("nightly", "H/15 * * * *", "UTC"), job("held", "*/15 * * * *", "UTC", paused=True)],
    )
    jobs(engine, "fk", [job("every15", "*/15 * * * *")])
    ev = Evaluator(engine, secrets=_no_secrets)  # type: ignore[arg-type]
    ev.forecaster.refresh(real_now)
    now = real_now + timedelta(minutes=50)
    # every15 ran on time for its first expected start only.
    first = ev.forecaster.expected("fk/every15", real_now, now)[0].at
    runs(
        engine,
        "fk",
        [
            run(
                "every15-1",
                "every15",
                RunState.SUCCESS,
                first + timedelta(seconds=20),
                first + timedelta(minutes=2),
            )
        ],
    )
    res = detect_missed(engine, ev.forecaster, grace=timedelta(minutes=10), now=now)
    with session_scope(engine, write=False) as s:
        missed = (
            s.execute(select(Run).where(col(Run.native_state) == "missed").order_by(col(Run.uid)))
            .scalars()
            .all()
        )
    uids = [m.uid for m in missed]
    assert all(
        m.state == "failed" and m.message and m.message.startswith("missed:") for m in missed
    )
    assert not [u for u in uids if u.startswith("jk/held")]  # never for a paused job
    fk = [u for u in uids if u.startswith("fk/")]
    assert len(fk) >= 1 and f"fk/every15@missed:{first:%Y-%m-%dT%H:%MZ}" not in fk
    assert [u for u in uids if u.startswith("jk/nightly@missed:")]
    assert len(res.recorded) == len(uids)
    # Idempotent: judging again records nothing new for the starts already judged. (30 s
    # later a new expected start may have come past its grace period — one in about 15
    # runs of this test — and only such a start may be recorded.)
    later = now + timedelta(seconds=30)
    again = detect_missed(engine, ev.forecaster, grace=timedelta(minutes=10), now=later)
    assert not {c.uid for c in again.recorded} & set(uids)
    with session_scope(engine, write=False) as s:
        for c in again.recorded:
            expected = s.execute(
                select(col(Run.queued_at)).where(col(Run.uid) == c.uid)
            ).scalar_one()
            assert (
                now - timedelta(minutes=10)
                < expected.replace(tzinfo=UTC)
                <= later - timedelta(minutes=10)
            )
    # A late start cancels the missed run out.
    late_for = missed[0]
    assert late_for.queued_at is not None
    late = late_for.queued_at + timedelta(minutes=12)
    src, _, rest = late_for.uid.partition("/")
    runs(engine, src, [run("late-1", rest.split("@missed:")[0], RunState.RUNNING, late)])
    third = detect_missed(
        engine, ev.forecaster, grace=timedelta(minutes=10), now=now + timedelta(minutes=1)
    )
    assert third.withdrawn == [late_for.uid]
    with session_scope(engine, write=False) as s:
        assert s.execute(select(Run).where(col(Run.uid) == late_for.uid)).first() is None
        assert (
            s.execute(
                select(AuditRecord).where(col(AuditRecord.action) == "missed-run.withdrawn")
            ).first()
            is not None
        )
    _ = Notification
