"""Compliance cost follows the change: an inventory pass evaluates the jobs it changed,
and the result is the one a full evaluation gives; violations page past any size."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event
from sqlmodel import Session, SQLModel, select

from adapters.testing.fake import FakeSystem, systems
from gateway.governance import compliance
from gateway.governance.compliance import evaluate_all, evaluate_jobs
from gateway.model import JobRecord, Schedule
from gateway.store import create_db_engine, session_scope
from gateway.store.services.ingest import apply_inventory
from gateway.store.tables import Violation
from gateway.sync import SyncManager

from .conftest import Api, apply_yaml

RULES = """
apiVersion: accord.dev/v1
kind: ComplianceRule
metadata: {name: has-owner}
spec: {severity: medium, expression: size(job.owners) > 0}
---
apiVersion: accord.dev/v1
kind: ComplianceRule
metadata: {name: prod-alerting}
spec:
  severity: high
  selector: {labels: {env: prod}}
  expression: '"alerting" in job.labels'
---
apiVersion: accord.dev/v1
kind: ComplianceRule
metadata: {name: team-label}
spec: {expression: 'job.labels.team != ""'}
---
apiVersion: accord.dev/v1
kind: ComplianceRule
metadata: {name: not-paused}
spec: {selector: {domains: [d1]}, expression: '!job.paused'}
"""


def _state(engine: Engine) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Everything a reader of violations sees, except when it was last seen."""
    with Session(engine) as s:
        return {
            (v.rule, v.job_uid): (
                v.resolved_at,
                v.resolution,
                v.first_seen,
                v.severity,
                v.domain,
                v.message,
                v.evidence,
            )
            for v in s.exec(select(Violation)).all()
        }


# -- one changed job among 5,000 ----------------------------------------------------------------
@pytest.fixture
def big(engine: Engine) -> Iterator[FakeSystem]:
    sys = FakeSystem("big")
    for i in range(5000):
        sys.add_job(f"job{i:04d}")  # no owner: every job fails has-owner
    systems["big"] = sys
    apply_yaml(engine, RULES.split("---")[0])
    apply_yaml(
        engine,
        "apiVersion: accord.dev/v1\nkind: Source\nmetadata: {name: big, domain: d}\n"
        "spec: {type: fake, system: big}\n",
    )
    yield sys
    systems.pop("big", None)


def test_a_pass_that_changes_one_job_of_5000_evaluates_one(
    engine: Engine, big: FakeSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr = SyncManager(engine, compliance_every=None)
    assert anyio.run(mgr.sync_now, "big").error is None
    before = _lastseen(engine)
    assert len(before) == 5000, "every job without an owner has a violation"

    evaluated: list[str] = []
    real = compliance._failures

    def counting(ctx: Any, job: Any) -> Any:
        evaluated.append(job.uid)
        return real(ctx, job)

    monkeypatch.setattr(compliance, "_failures", counting)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    big.jobs["job0042"]["owners"] = ["sre"]  # fixes its violation
    big.jobs["job0043"]["labels"] = {"x": "y"}  # still fails, with new evidence
    del big.jobs["job0044"]  # gone
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert anyio.run(mgr.sync_now, "big").error is None
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert sorted(evaluated) == ["big/job0042", "big/job0043"], "only the changed jobs"
    after = _lastseen(engine)
    moved = {k for k in after if after[k] != before[k]}
    assert moved == {
        ("has-owner", "big/job0042"),
        ("has-owner", "big/job0043"),
        ("has-owner", "big/job0044"),
    }, "no other violation was touched"
    state = _state(engine)
    assert state[("has-owner", "big/job0042")][1] == "fixed"
    assert state[("has-owner", "big/job0044")][1] == "job-gone"
    assert state[("has-owner", "big/job0043")][0] is None
    assert state[("has-owner", "big/job0043")][6]["job"]["labels"] == {"x": "y"}
    # Nothing read the whole violation table or every job: each statement on them is
    # bounded by the uids of this pass.
    reads = [s for s in statements if "FROM violation" in s and "job_uid IN" not in s]
    assert reads == [], reads
    # A full evaluation afterwards finds nothing to change.
    with session_scope(engine) as s:
        full = evaluate_all(s)
    assert (full.opened, full.resolved, full.jobs) == (0, 0, 4999)


def _lastseen(engine: Engine) -> dict[tuple[str, str], Any]:
    with Session(engine) as s:
        return {
            (v.rule, v.job_uid): (v.last_seen, v.resolved_at) for v in s.exec(select(Violation))
        }


# -- incremental equals full -----------------------------------------------------------------
_IDS = [f"j{i}" for i in range(8)]
_job = st.fixed_dictionaries(
    {
        "owners": st.sampled_from([(), ("a",), ("a", "b")]),
        "labels": st.sampled_from(
            [{}, {"env": "prod"}, {"env": "prod", "alerting": "pager"}, {"team": "t"}, {"team": ""}]
        ),
        "paused": st.booleans(),
        "schedule": st.sampled_from([None, "*/5 * * * *"]),
        "name": st.sampled_from(["x", "y"]),
    }
)
# A step: one source lists these jobs (a full listing; the ones it leaves out are gone).
_step = st.tuples(
    st.sampled_from(["s1", "s2"]), st.dictionaries(st.sampled_from(_IDS), _job, max_size=6)
)


def _records(jobs: dict[str, dict[str, Any]]) -> list[JobRecord]:
    return [
        JobRecord(
            native_id=nid,
            name=a["name"],
            native_type="t",
            schedule=Schedule(expression=a["schedule"]) if a["schedule"] else None,
            paused=a["paused"],
            owners=a["owners"],
            labels=a["labels"],
        )
        for nid, a in jobs.items()
    ]


def _fresh(path: Path) -> Engine:
    engine = create_db_engine(f"sqlite:///{path}")
    SQLModel.metadata.create_all(engine)
    apply_yaml(engine, RULES)
    return engine


_NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
_DOMAINS = {"s1": "d1", "s2": "d2"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_step, min_size=1, max_size=8))
def test_incremental_evaluation_equals_full_evaluation(
    steps: list[tuple[str, dict[str, dict[str, Any]]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        inc, full = _fresh(Path(tmp) / "inc.db"), _fresh(Path(tmp) / "full.db")
        try:
            for i, (source, jobs) in enumerate(steps):
                now = _NOW + timedelta(minutes=i)
                records = _records(jobs)
                domain = _DOMAINS[source]
                with session_scope(inc) as s:
                    counts = apply_inventory(
                        s, source=source, domain=domain, records=records, now=now
                    )
                    evaluate_jobs(s, uids=[*counts.touched, *counts.gone], now=now)
                with session_scope(full) as s:
                    apply_inventory(s, source=source, domain=domain, records=records, now=now)
                    evaluate_all(s, now=now, page_size=3)  # small pages: paging is exercised
                assert _state(inc) == _state(full), f"after step {i}"
        finally:
            inc.dispose()
            full.dispose()


@pytest.mark.parametrize("page_size", [1, 500])
def test_paged_full_evaluation_on_every_backend(any_engine: Engine, page_size: int) -> None:
    """The same story on SQLite and PostgreSQL: open, keep, fix, lose and revive jobs."""
    apply_yaml(any_engine, RULES)
    t0 = _NOW

    def listing(*jobs: tuple[str, tuple[str, ...], dict[str, str]]) -> list[JobRecord]:
        return [
            JobRecord(native_id=n, name=n, native_type="t", owners=o, labels=lab)
            for n, o, lab in jobs
        ]

    def step(records: list[JobRecord], at: datetime) -> None:
        with session_scope(any_engine) as s:
            c = apply_inventory(s, source="s1", domain="d1", records=records, now=at)
            evaluate_jobs(s, uids=[*c.touched, *c.gone], now=at)

    step(listing(("a", (), {"team": "t"}), ("b", ("o",), {}), ("c", ("o",), {"team": "t"})), t0)
    open_now = {k for k, v in _state(any_engine).items() if v[0] is None}
    assert open_now == {("has-owner", "s1/a"), ("team-label", "s1/b")}
    # a fixed, b gone, c unchanged
    step(listing(("a", ("o",), {"team": "t"}), ("c", ("o",), {"team": "t"})), t0 + timedelta(1))
    state = _state(any_engine)
    assert state[("has-owner", "s1/a")][1] == "fixed"
    assert state[("team-label", "s1/b")][1] == "job-gone"
    # b comes back, still without a team label: its violation reopens, first seen anew
    t2 = t0 + timedelta(2)
    step(listing(("a", ("o",), {"team": "t"}), ("b", ("o",), {}), ("c", ("o",), {})), t2)
    state = _state(any_engine)
    assert state[("team-label", "s1/b")][:3] == (None, None, t2)
    assert state[("team-label", "s1/c")][0] is None
    with session_scope(any_engine) as s:
        summary = evaluate_all(s, now=t2, page_size=page_size)
    assert (summary.opened, summary.resolved, summary.jobs) == (0, 0, 3)
    assert _state(any_engine) == state, "a full evaluation agrees with the incremental ones"


# -- paging violations through the API -----------------------------------------------------------
def test_violations_page_past_5000(api: Api) -> None:
    data = api.systems["data"]
    for i in range(5100):
        data.add_job(f"bulk{i:04d}")
    apply_yaml(api.engine, RULES.split("---")[0])  # has-owner: the bulk jobs have none
    api.sync("fake-data")
    seen: list[int] = []
    cursor = None
    pages = 0
    total = None
    while True:
        params: dict[str, Any] = {"limit": 1000, "total": "true"}
        if cursor:
            params["cursor"] = cursor
        r = api.get("admin", "/api/v1/violations", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        total = body["total"]
        seen.extend(v["id"] for v in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 20
    assert len(seen) == total and total > 5100, "every open violation, past 5,000"
    assert seen == sorted(set(seen)), "each once, oldest first"
    assert pages == -(-total // 1000)
    # the ops viewer sees none of the data domain's
    r = api.get("viewer-ops", "/api/v1/violations", params={"limit": 1000, "total": "true"})
    assert r.json()["total"] == 1 and r.json()["items"][0]["job_uid"] == "fake-ops/db-backup"
    bad = api.get("admin", "/api/v1/violations", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
