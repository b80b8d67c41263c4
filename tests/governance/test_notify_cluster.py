"""Run notifications in a cluster: the message for a failed or missed run is written to the
shared outbox in the transaction that stores the run, by whichever replica saw it, and
senders claim each message by compare-and-set, so racing senders send it exactly once.

Each "replica" is its own engine (its own connection pool) on one database, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from sqlalchemy import Engine, select
from sqlmodel import col

from gateway.governance.evaluator import Evaluator
from gateway.governance.missed import detect_missed
from gateway.governance.notify import _claim, _due, deliver_due
from gateway.model import RunState, SecretRef
from gateway.store import create_db_engine, session_scope
from gateway.store.tables import Notification, Run
from tests.api.conftest import apply_yaml

from .helpers import job, jobs, run, runs, source
from .test_notify import Receiver


def _no_secrets(ref: SecretRef) -> object:
    raise LookupError("no secrets here")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def replica(any_engine: Engine) -> Iterator[Engine]:
    """A second gateway's engine on the same database."""
    other = create_db_engine(any_engine.url.render_as_string(hide_password=False))
    yield other
    other.dispose()


def _notifier(engine: Engine, url: str, rate: int = 1000) -> None:
    apply_yaml(
        engine,
        f"""
apiVersion: accord.dev/v1
kind: Notifier
metadata: {{name: oncall, domain: data}}
spec:
  type: webhook
  url: {url}
  ratePerHour: {rate}
  route: {{events: [run.failed, run.missed]}}
""",
    )


def _incidents(r: Receiver) -> Counter[str]:
    return Counter(json.loads(body)["incident"] for _, body in r.bodies)


def test_a_failure_stored_by_one_replica_is_sent_by_another(
    any_engine: Engine, replica: Engine, receiver: Receiver
) -> None:
    _notifier(any_engine, receiver.url)
    now = datetime.now(UTC)
    source(any_engine, "fk", "fake")
    jobs(any_engine, "fk", [job("etl", labels={"team": "data"})])
    # Replica A's sync stores the failure (the real ingest path); nothing is kept in
    # A's memory: replica B's cycle, which never saw the run, sends the message.
    runs(
        any_engine,
        "fk",
        [run("etl-7", "etl", RunState.FAILED, now - timedelta(minutes=3), now)],
    )
    b = Evaluator(replica, secrets=_no_secrets)  # type: ignore[arg-type]
    report = anyio.run(b.run_once)
    assert report.delivery is not None and report.delivery.sent == 1
    assert _incidents(receiver) == {"run.failed:fk/etl-7": 1}
    body = json.loads(receiver.bodies[0][1])
    assert body["title"] == "Run failed: fk/etl" and body["data"]["run"] == "fk/etl-7"
    # Seen again on the next poll (same state): no second message.
    runs(any_engine, "fk", [run("etl-7", "etl", RunState.FAILED, now - timedelta(minutes=3), now)])
    assert anyio.run(b.run_once).delivery.sent == 0  # type: ignore[union-attr]
    assert len(receiver.bodies) == 1


def test_a_missed_run_recorded_by_one_replica_is_sent_by_another(
    any_engine: Engine, replica: Engine, receiver: Receiver
) -> None:
    _notifier(any_engine, receiver.url)
    real_now = datetime.now(UTC)
    source(any_engine, "jk", "jenkins")
    jobs(any_engine, "jk", [job("nightly", "*/15 * * * *", "UTC")])
    a = Evaluator(any_engine, secrets=_no_secrets)  # type: ignore[arg-type]
    a.forecaster.refresh(real_now)
    later = real_now + timedelta(hours=1)
    res = detect_missed(any_engine, a.forecaster, grace=timedelta(minutes=10), now=later)
    assert res.recorded
    # A stops here (as if it crashed right after the commit); B sends.
    sent = anyio.run(lambda: deliver_due(replica, secrets=_no_secrets, now=later))  # type: ignore[arg-type]
    assert sent.sent == len(res.recorded)
    assert _incidents(receiver) == {f"run.missed:{c.uid}": 1 for c in res.recorded}
    assert all(json.loads(b)["type"] == "run.missed" for _, b in receiver.bodies)


def test_racing_senders_send_each_message_exactly_once(
    any_engine: Engine, receiver: Receiver
) -> None:
    _notifier(any_engine, receiver.url)
    now = datetime.now(UTC)
    source(any_engine, "fk", "fake")
    jobs(any_engine, "fk", [job("etl")])
    runs(
        any_engine,
        "fk",
        [
            run(f"etl-{i}", "etl", RunState.FAILED, now - timedelta(minutes=5), now)
            for i in range(24)
        ],
    )
    url = any_engine.url.render_as_string(hide_password=False)
    engines = [any_engine, *(create_db_engine(url) for _ in range(3))]
    barrier = threading.Barrier(len(engines))
    results: list[int] = []
    errors: list[BaseException] = []

    def sender(engine: Engine) -> None:
        try:
            barrier.wait(timeout=30)
            res = anyio.run(lambda: deliver_due(engine, secrets=_no_secrets))  # type: ignore[arg-type]
            results.append(res.sent)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for e in engines[1:]:
        e.dispose()
    assert not errors, errors
    with session_scope(any_engine, write=False) as s:
        rows = s.execute(select(Notification)).scalars().all()
    assert [(r.status, r.deliveries) for r in rows if r.status != "sent"] == []
    counts = _incidents(receiver)
    assert counts == {f"run.failed:fk/etl-{i}": 1 for i in range(24)}
    assert sum(results) == 24
    with session_scope(any_engine, write=False) as s:
        rows = s.execute(select(Notification)).scalars().all()
    assert len(rows) == 24
    assert all(r.status == "sent" and r.attempts == 1 and len(r.deliveries) == 1 for r in rows)


def test_a_claim_whose_sender_died_is_sent_after_its_lease(
    any_engine: Engine, receiver: Receiver
) -> None:
    _notifier(any_engine, receiver.url)
    now = datetime.now(UTC)
    source(any_engine, "fk", "fake")
    jobs(any_engine, "fk", [job("etl")])
    runs(any_engine, "fk", [run("etl-1", "etl", RunState.FAILED, now - timedelta(minutes=2), now)])
    # A sender claims the message and dies before sending it.
    now = datetime.now(UTC)
    _, due, _ = _due(any_engine, now)
    assert _claim(any_engine, due["oncall"], "dead-sender", now)
    assert anyio.run(lambda: deliver_due(any_engine, secrets=_no_secrets)).sent == 0  # type: ignore[arg-type]
    assert receiver.bodies == []
    # After the lease the message is due again and goes out once.
    later = now + timedelta(minutes=6)
    res = anyio.run(lambda: deliver_due(any_engine, secrets=_no_secrets, now=later))  # type: ignore[arg-type]
    assert res.sent == 1 and _incidents(receiver) == {"run.failed:fk/etl-1": 1}
    with session_scope(any_engine, write=False) as s:
        row = s.execute(select(Notification)).scalar_one()
        assert row.status == "sent" and row.claimed_by != "dead-sender"


def test_a_withdrawn_missed_run_is_not_notified(engine: Engine, receiver: Receiver) -> None:
    _notifier(engine, receiver.url)
    real_now = datetime.now(UTC)
    source(engine, "jk", "jenkins")
    jobs(engine, "jk", [job("nightly", "*/15 * * * *", "UTC")])
    ev = Evaluator(engine, secrets=_no_secrets)  # type: ignore[arg-type]
    ev.forecaster.refresh(real_now)
    now = real_now + timedelta(minutes=50)
    res = detect_missed(engine, ev.forecaster, grace=timedelta(minutes=10), now=now)
    first = min(res.recorded, key=lambda c: c.uid)
    with session_scope(engine, write=False) as s:
        expected = s.execute(
            select(col(Run.queued_at)).where(col(Run.uid) == first.uid)
        ).scalar_one()
    runs(engine, "jk", [run("late", "nightly", RunState.RUNNING, expected + timedelta(minutes=12))])
    third = detect_missed(engine, ev.forecaster, grace=timedelta(minutes=10), now=now)
    assert third.withdrawn == [first.uid]
    anyio.run(lambda: deliver_due(engine, secrets=_no_secrets, now=now))  # type: ignore[arg-type]
    got = _incidents(receiver)
    assert f"run.missed:{first.uid}" not in got
    assert got == {f"run.missed:{c.uid}": 1 for c in res.recorded if c.uid != first.uid}
    with session_scope(engine, write=False) as s:
        st = s.execute(
            select(col(Notification.status)).where(
                col(Notification.incident) == f"run.missed:{first.uid}"
            )
        ).scalar_one()
    assert st == "suppressed"


def test_history_of_a_new_source_is_not_notified(any_engine: Engine, receiver: Receiver) -> None:
    _notifier(any_engine, receiver.url)
    now = datetime.now(UTC)
    source(any_engine, "fk", "fake")
    jobs(any_engine, "fk", [job("etl")])
    # A source added today reports a failure of three days ago and one of an hour ago.
    runs(
        any_engine,
        "fk",
        [
            run("old", "etl", RunState.FAILED, now - timedelta(days=3), now - timedelta(days=3)),
            run("new", "etl", RunState.FAILED, now - timedelta(hours=1), now - timedelta(hours=1)),
        ],
    )
    anyio.run(lambda: deliver_due(any_engine, secrets=_no_secrets))  # type: ignore[arg-type]
    assert _incidents(receiver) == {"run.failed:fk/new": 1}
