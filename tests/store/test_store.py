"""Store behaviour, on SQLite and on PostgreSQL (the same tests, both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text, true
from sqlmodel import Session, col, select

from gateway.audit import AuditEntry, append, verify
from gateway.model import (
    EdgeKind,
    EdgeRecord,
    JobRecord,
    NodeKind,
    NodeRef,
    RunRecord,
    RunState,
    StepRecord,
)
from gateway.store import session_scope
from gateway.store.services import ingest, queries
from gateway.store.services.tokens import AuthFailure, authenticate, create_token, revoke_token
from gateway.store.tables import AuditRecord, Job, Run, RunEvent, Step

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def everything(_d: object, _u: object) -> object:
    return true()


def job(nid: str, **kw: object) -> JobRecord:
    return JobRecord(native_id=nid, name=nid, native_type="t", **kw)  # type: ignore[arg-type]


def run(
    nid: str,
    state: RunState,
    *,
    job_id: str = "a",
    minutes: int = 0,
    attempt: int = 1,
    ended: bool = False,
) -> RunRecord:
    start = T0 + timedelta(minutes=minutes)
    return RunRecord(
        native_id=nid,
        job_native_id=job_id,
        state=state,
        native_state=state.value.upper(),
        started_at=start,
        ended_at=start + timedelta(minutes=1) if ended else None,
        attempt=attempt,
    )


def test_inventory_create_change_tombstone_revive(any_engine: Engine) -> None:
    with session_scope(any_engine) as s:
        c = ingest.apply_inventory(s, source="src", domain="d", records=[job("a"), job("b")])
    assert (c.created, c.tombstoned) == (2, 0)
    with session_scope(any_engine) as s:
        c = ingest.apply_inventory(
            s, source="src", domain="d", records=[job("a", description="new")]
        )
    assert (c.updated, c.tombstoned, c.created) == (1, 1, 0)
    with Session(any_engine) as s:
        rows = {j.native_id: j for j in s.exec(select(Job)).all()}
    assert rows["a"].description == "new" and rows["a"].tombstoned_at is None
    assert rows["b"].tombstoned_at is not None
    with session_scope(any_engine) as s:
        c = ingest.apply_inventory(s, source="src", domain="d", records=[job("a"), job("b")])
    assert c.revived == 1
    with Session(any_engine) as s:
        assert s.exec(select(Job).where(Job.native_id == "b")).one().tombstoned_at is None


def test_relisting_unchanged_inventory_changes_nothing(any_engine: Engine) -> None:
    for _ in range(2):
        with session_scope(any_engine) as s:
            c = ingest.apply_inventory(s, source="src", domain="d", records=[job("a")])
    assert (c.created, c.updated, c.unchanged) == (0, 0, 1)


def test_runs_move_forward_only_and_events_record_each_change(any_engine: Engine) -> None:
    def up(*records: RunRecord) -> ingest.RunIngest:
        with session_scope(any_engine) as s:
            return ingest.upsert_runs(s, source="src", domain="d", records=records)

    assert up(run("r1", RunState.QUEUED)).created == 1
    assert up(run("r1", RunState.RUNNING)).changed == 1
    # duplicate delivery: nothing changes
    dup = up(run("r1", RunState.RUNNING))
    assert (dup.changed, dup.created, dup.refreshed, dup.ignored) == (0, 0, 0, 1)
    assert up(run("r1", RunState.SUCCESS, ended=True)).changed == 1
    # out of order: a late "running" after success is ignored
    late = up(run("r1", RunState.RUNNING))
    assert late.ignored == 1
    # a new attempt starts over
    assert up(run("r1", RunState.RUNNING, attempt=2)).changed == 1
    with Session(any_engine) as s:
        r = s.exec(select(Run).where(Run.uid == "src/r1")).one()
        events = s.exec(select(RunEvent).order_by(col(RunEvent.seq))).all()
    assert r.state == "running" and r.attempt == 2
    assert [(e.from_state, e.to_state) for e in events] == [
        (None, "queued"),
        ("queued", "running"),
        ("running", "success"),
        ("success", "running"),
    ]
    assert [e.seq for e in events] == [1, 2, 3, 4]


def test_batch_with_the_same_run_twice_keeps_the_later_state(any_engine: Engine) -> None:
    with session_scope(any_engine) as s:
        res = ingest.upsert_runs(
            s,
            source="src",
            domain="d",
            records=[run("r", RunState.RUNNING), run("r", RunState.FAILED, ended=True)],
        )
    assert res.created == 1
    with Session(any_engine) as s:
        assert s.exec(select(Run)).one().state == "failed"


def test_steps_replace_and_job_last_run(any_engine: Engine) -> None:
    with session_scope(any_engine) as s:
        ingest.apply_inventory(s, source="src", domain="d", records=[job("a")])
        steps = (
            StepRecord(name="extract", state=RunState.SUCCESS),
            StepRecord(name="load", state=RunState.RUNNING),
        )
        r = run("r", RunState.RUNNING).model_copy(update={"steps": steps})
        ingest.upsert_runs(s, source="src", domain="d", records=[r])
    with session_scope(any_engine) as s:
        steps2 = (
            StepRecord(name="extract", state=RunState.SUCCESS),
            StepRecord(name="load", state=RunState.FAILED),
        )
        r = run("r", RunState.FAILED, ended=True).model_copy(update={"steps": steps2})
        ingest.upsert_runs(s, source="src", domain="d", records=[r])
    with Session(any_engine) as s:
        got = {st.name: st.state for st in s.exec(select(Step)).all()}
        j = s.exec(select(Job)).one()
    assert got == {"extract": "success", "load": "failed"}
    assert j.last_run_state == "failed"


def test_list_runs_filters_and_cursor_pagination(any_engine: Engine) -> None:
    records = [
        run(f"r{i}", RunState.FAILED if i % 3 == 0 else RunState.SUCCESS, minutes=i, ended=True)
        for i in range(25)
    ]
    with session_scope(any_engine) as s:
        ingest.upsert_runs(s, source="src", domain="d", records=records)
        ingest.upsert_runs(s, source="other", domain="e", records=[run("x", RunState.FAILED)])
    seen: list[str] = []
    cursor = None
    with Session(any_engine) as s:
        for _ in range(10):
            page = queries.list_runs(
                s, visible=everything, filt=queries.RunFilter(domain="d"), limit=7, cursor=cursor
            )
            seen += [r.uid for r in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        failed = queries.list_runs(
            s,
            visible=everything,
            filt=queries.RunFilter(state=["failed"], domain="d", since=T0 + timedelta(minutes=10)),
        )
    assert seen == [f"src/r{i}" for i in range(24, -1, -1)], "newest first, no gaps or repeats"
    assert [r.uid for r in failed.items] == ["src/r24", "src/r21", "src/r18", "src/r15", "src/r12"]


def test_invalid_cursor_is_a_clear_error(any_engine: Engine) -> None:
    with Session(any_engine) as s, pytest.raises(queries.InvalidCursor):
        queries.list_runs(s, visible=everything, filt=queries.RunFilter(), cursor="garbage!")


def test_edges_are_idempotent_and_lineage_walks_them(any_engine: Engine) -> None:
    def e(kind: EdgeKind, a: NodeRef, b: NodeRef) -> EdgeRecord:
        return EdgeRecord(kind=kind, src=a, dst=b, evidence="test")

    j = lambda n: NodeRef(kind=NodeKind.JOB, id=n)  # noqa: E731
    ds = NodeRef(kind=NodeKind.DATASET, id="orders", namespace="wh")
    edges = [
        e(EdgeKind.DEPENDS_ON, j("extract"), j("transform")),
        e(EdgeKind.PRODUCES, j("transform"), ds),
        e(EdgeKind.CONSUMES, ds, NodeRef(kind=NodeKind.JOB, id="report", source="other")),
    ]
    with session_scope(any_engine) as s:
        ingest.apply_inventory(
            s, source="src", domain="d", records=[job("extract"), job("transform")]
        )
        ingest.apply_inventory(s, source="other", domain="d", records=[job("report")])
        assert ingest.record_edges(s, source="src", edges=edges) == 3
        assert ingest.record_edges(s, source="src", edges=edges) == 0
    with Session(any_engine) as s:
        down = queries.lineage(s, visible=everything, root="src/extract", direction="down", depth=5)
        up = queries.lineage(s, visible=everything, root="other/report", direction="up", depth=1)
    assert down is not None and up is not None
    assert set(down.nodes) == {"src/extract", "src/transform", "wh/orders", "other/report"}
    assert set(up.nodes) == {"other/report", "wh/orders"}


def test_audit_chain_verifies_and_detects_tampering(any_engine: Engine) -> None:
    with session_scope(any_engine) as s:
        for i in range(5):
            append(
                s,
                AuditEntry(
                    subject="alice",
                    channel="api",
                    action="trigger",
                    target=f"src/j{i}",
                    domain="d",
                    decision="allow",
                    outcome="ok",
                    details={"n": i},
                ),
            )
    with Session(any_engine) as s:
        ok = verify(s)
    assert ok.ok and ok.count == 5
    with any_engine.begin() as c:
        c.execute(text("UPDATE audit_record SET subject = 'mallory' WHERE seq = 3"))
    with Session(any_engine) as s:
        bad = verify(s)
    assert not bad.ok and bad.first_bad_seq == 3


def test_audit_chain_cannot_fork(any_engine: Engine) -> None:
    with session_scope(any_engine) as s:
        first = append(
            s,
            AuditEntry(
                subject="a",
                channel="api",
                action="x",
                target="t",
                domain="d",
                decision="allow",
                outcome="ok",
            ),
        )
    with Session(any_engine) as s:
        dup = AuditRecord(
            seq=99,
            at=T0,
            subject="b",
            channel="api",
            action="x",
            target="t",
            domain="d",
            decision="allow",
            outcome="ok",
            details={},
            prev_hash=first.prev_hash,
            hash="f" * 64,
        )
        s.add(dup)
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            s.commit()


def test_tokens_hash_only_revoke_and_expiry(any_engine: Engine) -> None:
    with session_scope(any_engine) as s:
        new = create_token(s, subject="bob", role="viewer")
        old = create_token(
            s, subject="eve", role="viewer", expires_at=datetime.now(UTC) - timedelta(seconds=1)
        )
    with Session(any_engine) as s:
        stored = [r[0] for r in s.execute(text("SELECT token_hash FROM api_token"))]
        assert new.token not in stored and all(len(h) == 64 for h in stored)
        assert authenticate(s, token=new.token).subject == "bob"
        with pytest.raises(AuthFailure, match="expired"):
            authenticate(s, token=old.token)
        with pytest.raises(AuthFailure, match="unknown"):
            authenticate(s, token="acd_nope")
    with session_scope(any_engine) as s:
        assert new.record.id is not None
        revoke_token(s, token_id=new.record.id)
    with Session(any_engine) as s, pytest.raises(AuthFailure, match="revoked"):
        authenticate(s, token=new.token)


def test_times_round_trip_as_utc(any_engine: Engine) -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 6, 1, 14, 0, tzinfo=ZoneInfo("Europe/Paris"))
    rec = RunRecord(native_id="r", job_native_id="a", state=RunState.RUNNING, started_at=local)
    with session_scope(any_engine) as s:
        ingest.upsert_runs(s, source="src", domain="d", records=[rec])
    with Session(any_engine) as s:
        got = s.exec(select(Run)).one().started_at
    assert got == local and got is not None and got.tzinfo is not None
