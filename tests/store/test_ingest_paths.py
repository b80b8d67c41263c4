"""The run upsert's write paths give the same stored result on both backends.

``upsert_runs`` writes rows in the driver's stored form: an ``executemany`` per table on
SQLite, ``COPY`` for new runs and events and one ``UPDATE … FROM unnest(…)`` per table on
PostgreSQL. The same reports must leave the same runs, events, steps and job summaries on
either, read back through the store's ordinary (SQLAlchemy) types.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.model import JobRecord, RunRecord, RunState, StepRecord, Trigger
from gateway.store import session_scope
from gateway.store.services import ingest
from gateway.store.tables import Job, Run, RunEvent, Step

T0 = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))
SEEN_1 = datetime(2026, 11, 1, 13, 0, tzinfo=UTC)
SEEN_2 = datetime(2026, 11, 1, 14, 0, tzinfo=UTC)


def _rec(nid: str, state: RunState, **kw: Any) -> RunRecord:
    kw.setdefault("job_native_id", "etl")
    return RunRecord(native_id=nid, state=state, native_state=state.value.upper(), **kw)


def _up(engine: Engine, records: list[RunRecord], seen: datetime) -> dict[str, int]:
    with session_scope(engine) as s:
        return ingest.upsert_runs(
            s, source="src", domain="d", records=records, observed_at=seen
        ).as_dict()


def _snapshot(engine: Engine) -> dict[str, Any]:
    with Session(engine) as s:
        runs = {
            r.uid: (
                r.state,
                r.native_state,
                r.trigger,
                r.actor,
                r.queued_at,
                r.started_at,
                r.ended_at,
                r.sort_at,
                r.attempt,
                r.message,
                r.event_seq,
                r.observed_at,
                r.cancel_requested_by,
            )
            for r in s.exec(select(Run)).all()
        }
        events = [
            (e.run_uid, e.seq, e.from_state, e.to_state, e.at, e.observed_at)
            for e in s.exec(select(RunEvent).order_by(col(RunEvent.run_uid), col(RunEvent.seq)))
        ]
        steps = sorted((st.run_uid, st.name, st.state) for st in s.exec(select(Step)))
        jobs = {j.uid: (j.last_run_state, j.last_run_at) for j in s.exec(select(Job))}
    return {"runs": runs, "events": events, "steps": steps, "jobs": jobs}


def test_every_kind_of_report_is_stored_the_same_on_both_backends(any_engine: Engine) -> None:
    with session_scope(any_engine) as s:
        ingest.apply_inventory(
            s,
            source="src",
            domain="d",
            records=[JobRecord(native_id=n, name=n, native_type="t") for n in ("etl", "other")],
        )
    first = _up(
        any_engine,
        [
            # given in another zone, with microseconds: stored as the same UTC instant
            _rec("q", RunState.QUEUED, queued_at=T0.astimezone(CEST)),
            _rec("q", RunState.RUNNING, queued_at=T0, started_at=T0 + timedelta(seconds=5)),
            _rec(
                "late",
                RunState.SUCCESS,
                started_at=T0 + timedelta(minutes=1),
                ended_at=T0 + timedelta(minutes=2),
            ),
            _rec(
                "ok",
                RunState.SUCCESS,
                started_at=T0,
                ended_at=T0 + timedelta(minutes=3),
                trigger=Trigger.MANUAL,
                actor="ana@example.com",
                steps=(StepRecord(name="extract", state=RunState.SUCCESS),),
            ),
            _rec("retry", RunState.FAILED, started_at=T0, ended_at=T0 + timedelta(minutes=2)),
            _rec("cancel", RunState.RUNNING, started_at=T0, job_native_id="other"),
            # no times at all: sorted by when it was seen
            _rec("nothing", RunState.UNKNOWN, job_native_id="other"),
        ],
        SEEN_1,
    )
    assert first == {"received": 7, "created": 6, "changed": 0, "refreshed": 0, "ignored": 0}
    with session_scope(any_engine) as s:
        assert ingest.mark_cancel_requested(s, uid="src/cancel", subject="op")
    second = _up(
        any_engine,
        [
            _rec("q", RunState.SUCCESS, started_at=T0, ended_at=T0 + timedelta(minutes=9)),
            _rec("late", RunState.RUNNING, started_at=T0),  # after the end: ignored
            _rec(  # the same report again: nothing to do
                "ok",
                RunState.SUCCESS,
                started_at=T0,
                ended_at=T0 + timedelta(minutes=3),
                trigger=Trigger.MANUAL,
                actor="ana@example.com",
            ),
            _rec(  # a second attempt starts over
                "retry", RunState.RUNNING, started_at=T0 + timedelta(minutes=5), attempt=2
            ),
            # Accord cancelled it; the source can only say "failed"
            _rec(
                "cancel",
                RunState.FAILED,
                started_at=T0,
                ended_at=T0 + timedelta(minutes=4),
                job_native_id="other",
            ),
            # same state, a new message: refreshed (and sorted by when it was seen again)
            _rec("nothing", RunState.UNKNOWN, message="still no idea", job_native_id="other"),
            _rec(
                "ok",  # later in the same page: a refresh with a message and new steps
                RunState.SUCCESS,
                started_at=T0,
                ended_at=T0 + timedelta(minutes=3),
                trigger=Trigger.MANUAL,
                actor="ana@example.com",
                message="done",
                steps=(StepRecord(name="load", state=RunState.SUCCESS),),
            ),
        ],
        SEEN_2,
    )
    # "ok" appears twice: its later report wins within the page and is a refresh
    assert second == {"received": 7, "created": 0, "changed": 3, "refreshed": 2, "ignored": 1}

    got = _snapshot(any_engine)
    t = T0
    m = timedelta(minutes=1)
    assert got["runs"] == {
        "src/q": (
            "success", "SUCCESS", "unknown", None, None, t, t + 9 * m, t, 1, None, 2, SEEN_2, None,
        ),
        "src/late": (
            "success", "SUCCESS", "unknown", None, None, t + m, t + 2 * m, t + m, 1, None, 1,
            SEEN_1, None,
        ),
        "src/ok": (
            "success", "SUCCESS", "manual", "ana@example.com", None, t, t + 3 * m, t, 1, "done",
            1, SEEN_2, None,
        ),
        "src/retry": (
            "running", "RUNNING", "unknown", None, None, t + 5 * m, None, t + 5 * m, 2, None, 2,
            SEEN_2, None,
        ),
        "src/cancel": (
            "cancelled", "FAILED", "unknown", None, None, t, t + 4 * m, t, 1, None, 2, SEEN_2,
            "op",
        ),
        "src/nothing": (
            "unknown", "UNKNOWN", "unknown", None, None, None, None, SEEN_2, 1, "still no idea",
            1, SEEN_2, None,
        ),
    }  # fmt: skip
    assert got["events"] == [
        ("src/cancel", 1, None, "running", t, SEEN_1),
        ("src/cancel", 2, "running", "cancelled", t + 4 * m, SEEN_2),
        ("src/late", 1, None, "success", t + 2 * m, SEEN_1),
        ("src/nothing", 1, None, "unknown", SEEN_1, SEEN_1),
        ("src/ok", 1, None, "success", t + 3 * m, SEEN_1),
        ("src/q", 1, None, "running", t + timedelta(seconds=5), SEEN_1),
        ("src/q", 2, "running", "success", t + 9 * m, SEEN_2),
        ("src/retry", 1, None, "failed", t + 2 * m, SEEN_1),
        ("src/retry", 2, "failed", "running", t + 5 * m, SEEN_2),
    ]
    assert got["steps"] == [("src/ok", "load", "success")]
    # a job's last run is its latest by sort time
    assert got["jobs"] == {
        "src/etl": ("running", t + 5 * m),
        "src/other": ("unknown", SEEN_2),
    }
    # and never moves back to an older run reported later
    old = _rec("old", RunState.FAILED, started_at=t - 60 * m, ended_at=t - 59 * m)
    assert _up(any_engine, [old], SEEN_2)["created"] == 1
    assert _snapshot(any_engine)["jobs"]["src/etl"] == ("running", t + 5 * m)


def test_pages_larger_than_one_lookup_chunk(any_engine: Engine) -> None:
    """More runs than one lookup of stored uids takes, new and then all advanced."""
    n = 1234
    queued = [_rec(f"r{i}", RunState.QUEUED, queued_at=T0 + timedelta(seconds=i)) for i in range(n)]
    assert _up(any_engine, queued, SEEN_1)["created"] == n
    done = [
        _rec(
            f"r{i}",
            RunState.SUCCESS,
            queued_at=T0 + timedelta(seconds=i),
            started_at=T0 + timedelta(seconds=i, milliseconds=1),
            ended_at=T0 + timedelta(seconds=i + 60),
        )
        for i in range(n)
    ]
    again = _up(any_engine, [*done, *queued[:10]], SEEN_2)
    assert again == {"received": n + 10, "created": 0, "changed": n, "refreshed": 0, "ignored": 10}
    with Session(any_engine) as s:
        runs = {r.uid: r for r in s.exec(select(Run))}
        seqs: dict[str, list[int]] = {}
        for e in s.exec(select(RunEvent).order_by(col(RunEvent.seq))):
            seqs.setdefault(e.run_uid, []).append(e.seq)
    assert len(runs) == n
    assert all(r.state == "success" and r.event_seq == 2 for r in runs.values())
    assert runs["src/r7"].started_at == T0 + timedelta(seconds=7, milliseconds=1)
    assert seqs == {f"src/r{i}": [1, 2] for i in range(n)}
