"""The core's invariants under real interleavings, on SQLite and PostgreSQL.

Each test starts many writers at once (threads behind a barrier, or processes) on the
same rows and then checks what a user relies on: a run's state only moves forward and
its RunEvents form one gap-free sequence; every audit append lands and the chain
verifies; an approval runs its action exactly once; an agent limit admits exactly as
many actions as it allows.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import anyio
import httpx
from sqlalchemy import Engine, select, update
from sqlmodel import Session, col

from gateway.audit import AuditEntry, record, verify
from gateway.governance.approvals import expire_all_due
from gateway.model import RunRecord, RunState, Trigger, accept_transition
from gateway.store import create_db_engine, session_scope
from gateway.store.services import ingest
from gateway.store.tables import ApprovalRequest, AuditRecord, Run, RunEvent
from gateway.sync import SyncManager

from ..api.conftest import apply_yaml
from .conftest import Live

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LADDER = [RunState.QUEUED, RunState.RUNNING, RunState.WAITING, RunState.RUNNING]


def _record(state: RunState, *, message: str = "", run: str = "r1") -> RunRecord:
    return RunRecord(
        native_id=run,
        job_native_id="job",
        state=state,
        native_state=f"{state.value}:{message}",
        trigger=Trigger.SCHEDULE,
        queued_at=T0,
        started_at=T0 + timedelta(seconds=1) if state != RunState.QUEUED else None,
        ended_at=T0 + timedelta(seconds=9) if state.terminal else None,
        message=message or None,
    )


def _together(n: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(i)`` for i in range(n) in n threads released at the same instant."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def go(i: int) -> None:
        barrier.wait()
        try:
            work(i)
        except BaseException as exc:  # collected and asserted on by the caller
            errors.append(exc)

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(go, range(n)))
    return errors


def _assert_run_history(engine: Engine, uid: str) -> list[RunEvent]:
    with Session(engine) as s:
        run = s.exec(select(Run).where(col(Run.uid) == uid)).scalars().one()  # type: ignore[call-overload]
        events = list(
            s.exec(select(RunEvent).where(col(RunEvent.run_uid) == uid).order_by(col(RunEvent.seq)))
            .scalars()  # type: ignore[attr-defined]
            .all()
        )
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "one gap-free sequence"
    assert run.event_seq == len(events), "the run points at its last event"
    assert events[-1].to_state == run.state, "the stored state is the last event's"
    prev: str | None = None
    for e in events:
        assert e.from_state == prev, f"event {e.seq} starts where {e.seq - 1} ended"
        if prev is not None:
            assert accept_transition(RunState(prev), RunState(e.to_state)), (prev, e.to_state)
        prev = e.to_state
    return events


def test_concurrent_writers_of_one_run_keep_it_forward_only(any_engine: Engine) -> None:
    """Sync passes, re-polls, pushes and actions all upsert runs; 16 of them at once on
    one run (each with its own view of the run's progress) never move it backwards."""
    with session_scope(any_engine) as s:
        ingest.upsert_runs(s, source="src", domain="d", records=[_record(RunState.QUEUED)])
    rng = random.Random(7)
    plans = [[rng.choice(LADDER) for _ in range(6)] for _ in range(16)]
    plans[3].append(RunState.SUCCESS)  # one writer sees the end; afterwards nothing moves

    def work(i: int) -> None:
        for k, state in enumerate(plans[i]):
            with session_scope(any_engine) as s:
                ingest.upsert_runs(
                    s, source="src", domain="d", records=[_record(state, message=f"w{i}-{k}")]
                )

    assert _together(16, work) == []
    events = _assert_run_history(any_engine, "src/r1")
    assert events[-1].to_state == "success"
    # and the run still accepts writes (the store is not wedged)
    with session_scope(any_engine) as s:
        res = ingest.upsert_runs(
            s, source="src", domain="d", records=[_record(RunState.SUCCESS, message="late")]
        )
    assert res.refreshed == 1


def _upsert_in_process(url: str, worker: int) -> None:
    engine = create_db_engine(url)
    rng = random.Random(worker)
    for k in range(15):
        state = rng.choice(LADDER)
        with session_scope(engine) as s:
            ingest.upsert_runs(
                s,
                source="src",
                domain="d",
                records=[_record(state, message=f"p{worker}-{k}"), _record(state, run=f"p{k}")],
            )
    engine.dispose()


def test_writer_processes_keep_runs_forward_only(any_engine: Engine) -> None:
    """The same invariant across processes (gateway replicas, the CLI, agents)."""
    url = any_engine.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_upsert_in_process, args=(url, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    _assert_run_history(any_engine, "src/r1")
    for k in range(15):
        _assert_run_history(any_engine, f"src/p{k}")


def test_audit_appends_from_many_writers_all_land_and_verify(any_engine: Engine) -> None:
    def work(i: int) -> None:
        for k in range(15):
            record(
                any_engine,
                AuditEntry(
                    subject=f"writer-{i}",
                    channel="api",
                    action="trigger",
                    target=f"job-{k}",
                    domain="d",
                    decision="allow",
                    outcome="ok",
                ),
            )

    assert _together(12, work) == []
    with session_scope(any_engine, write=False) as s:
        result = verify(s)
        subjects = s.execute(select(AuditRecord.subject)).scalars().all()  # type: ignore[call-overload]
    assert result.ok, result.problem
    assert result.count == 12 * 15
    assert sorted(set(subjects)) == sorted(f"writer-{i}" for i in range(12))


APPROVE_ONE = """
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {name: four-eyes}
spec:
  type: approval
  selector: {domains: [data]}
  actions: [trigger]
  approvers: %d
  expiresAfter: 1h
"""


def test_concurrent_approvers_run_the_action_exactly_once(live: Live) -> None:
    apply_yaml(live.engine, APPROVE_ONE % 2)
    live.token("requester", "operator", "data")
    approvers = [f"approver-{i}" for i in range(6)]
    for a in approvers:
        live.token(a, "approver", "data")
    live.data.delay = 0.2  # the tool takes a while, so decisions overlap with the action
    r = live.post("requester", "/api/v1/jobs/fake-data/etl_orders/trigger")
    assert r.status_code == 200 and r.json()["outcome"] == "pending", r.text
    rid = r.json()["approval_id"]
    answers: dict[str, httpx.Response] = {}

    def work(i: int) -> None:
        answers[approvers[i]] = live.post(
            approvers[i], f"/api/v1/approvals/{rid}/approve", replica=i
        )

    assert _together(len(approvers), work) == []
    codes = sorted(a.status_code for a in answers.values())
    assert 500 not in codes, [a.text for a in answers.values()]
    completed = [a for a in answers.values() if a.status_code == 200 and a.json()["result"]]
    assert len(completed) == 1, "exactly one decision completes the request and acts"
    assert completed[0].json()["result"]["outcome"] == "ok"
    assert live.data.calls.count("trigger") == 1, "the tool was asked exactly once"
    assert codes.count(200) == 2, "two approvals were needed, two were recorded"
    assert all(
        a.json()["error"]["code"] == "not_pending" for a in answers.values() if a.status_code == 409
    )
    with session_scope(live.engine, write=False) as s:
        assert verify(s).ok


def test_parallel_agent_actions_respect_the_rate_limit(live: Live) -> None:
    apply_yaml(
        live.engine,
        """
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {name: ai-agents}
spec:
  type: agent-limit
  subjects: ["agent:*"]
  actions: [trigger]
  ratePerHour: 3
""",
    )
    live.token("agent:copilot", "operator", "*")
    live.data.delay = 0.3  # slow tool: every request is in flight at once
    answers: list[httpx.Response] = []

    def work(i: int) -> None:
        answers.append(
            live.post("agent:copilot", "/api/v1/jobs/fake-data/etl_orders/trigger", replica=i)
        )

    assert _together(12, work) == []
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 3 + [423] * 9, [
        a.text for a in answers if a.status_code not in (200, 423)
    ]
    assert live.data.calls.count("trigger") == 3
    with session_scope(live.engine, write=False) as s:
        assert verify(s).ok
        started = s.execute(
            select(AuditRecord).where(
                col(AuditRecord.action) == "trigger", col(AuditRecord.outcome) == "started"
            )
        ).all()
    assert len(started) == 3


def test_concurrent_syncs_of_one_source_keep_every_run_consistent(live: Live) -> None:
    """Several managers (as on several replicas, or an on-demand sync beside the worker)
    sync the same source while its runs progress."""
    for _ in range(20):
        live.data.start_run("etl_orders")
    live.data.page_size = 7
    run_ids = list(live.data.runs)

    def work(i: int) -> None:
        mgr = SyncManager(live.engine)
        for k in range(4):
            if i == 0:  # one thread plays the tool: runs finish while others sync
                for rid in run_ids[k * 5 : (k + 1) * 5]:
                    live.data.finish(rid, RunState.SUCCESS)
            report = anyio.run(mgr.sync_now, "fake-data")
            assert report.error is None, report.error

    assert _together(6, work) == []
    mgr = SyncManager(live.engine)
    assert anyio.run(mgr.sync_now, "fake-data").error is None
    for rid in run_ids:
        events = _assert_run_history(live.engine, f"fake-data/{rid}")
        assert events[-1].to_state == "success"


def test_concurrent_expiry_passes_expire_and_audit_each_request_once(live: Live) -> None:
    """Approval expiry runs on every gateway's housekeeping (a singleton only on a
    PostgreSQL cluster): passes racing on the same overdue requests record each expiry
    once, and a request an approver completed is never marked expired."""
    apply_yaml(live.engine, APPROVE_ONE % 1)
    live.token("requester", "operator", "data")
    live.token("approver", "approver", "data")
    ids = []
    for _ in range(6):
        r = live.post("requester", "/api/v1/jobs/fake-data/etl_orders/trigger")
        assert r.status_code == 200 and r.json()["outcome"] == "pending", r.text
        ids.append(r.json()["approval_id"])
    assert live.post("approver", f"/api/v1/approvals/{ids[0]}/approve").status_code == 200
    with session_scope(live.engine) as s:
        s.execute(
            update(ApprovalRequest)
            .where(col(ApprovalRequest.id).in_(ids))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    counts: list[int] = []

    def work(_i: int) -> None:
        counts.append(expire_all_due(live.engine))

    assert _together(8, work) == []
    assert sum(counts) == 5, counts
    with session_scope(live.engine, write=False) as s:
        statuses = dict(
            s.execute(select(ApprovalRequest.id, ApprovalRequest.status)).all()  # type: ignore[call-overload]
        )
        expired = s.execute(
            select(AuditRecord).where(col(AuditRecord.action) == "approval-expired")
        ).all()
        assert verify(s).ok
    assert statuses[ids[0]] == "approved"
    assert all(statuses[i] == "expired" for i in ids[1:])
    assert len(expired) == 5
