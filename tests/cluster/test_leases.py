"""Leases on PostgreSQL: hand-over, fencing, fair share, singletons, and the liveness
lock that hands a killed process's leases over before they expire (with a real process
that is killed or paused)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from gateway.cluster import LeaseLost, fair_share
from gateway.cluster.leases import SOURCE, LeaseStore
from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.tables import Source

from ..conftest import _fresh_pg_database, wait_until


@pytest.fixture
def pg(postgres_server: str) -> Iterator[Engine]:
    engine = create_db_engine(_fresh_pg_database(postgres_server))
    upgrade(engine)
    with session_scope(engine) as s:
        s.add(Source(name="a", type="demo", domain="d", runs_cursor="c1"))
    yield engine
    engine.dispose()


def test_a_replica_that_lost_its_lease_cannot_write(pg: Engine) -> None:
    a = LeaseStore(pg, replica="a", lease_seconds=1.0)
    b = LeaseStore(pg, replica="b", lease_seconds=1.0)
    a.ensure([SOURCE + "a"])
    got = a.acquire(prefix=SOURCE, limit=5)
    assert got == {SOURCE + "a": 1}
    assert b.acquire(prefix=SOURCE, limit=5) == {}  # held: nobody else gets it
    fence_a = _fence(pg, "a", 1)
    fence_a("c2")  # the holder writes
    time.sleep(1.2)  # a pauses past its lease
    assert b.acquire(prefix=SOURCE, limit=5) == {SOURCE + "a": 2}
    _fence(pg, "b", 2)("c3")  # the new holder writes newer data
    with pytest.raises(LeaseLost):
        fence_a("stale")  # a wakes up: refused, and nothing of the transaction stays
    with session_scope(pg, write=False) as s:
        assert s.get(Source, "a").runs_cursor == "c3"  # type: ignore[union-attr]
    assert a.renew({SOURCE + "a": 1}) == {}
    assert b.renew({SOURCE + "a": 2}) == {SOURCE + "a": 2}


def test_an_expired_lease_of_the_holder_itself_is_refused_until_taken_again(pg: Engine) -> None:
    a = LeaseStore(pg, replica="a", lease_seconds=1.0)
    a.ensure([SOURCE + "a"])
    assert a.acquire(prefix=SOURCE, limit=1) == {SOURCE + "a": 1}
    time.sleep(1.2)
    with pytest.raises(LeaseLost):
        _fence(pg, "a", 1)("late")
    assert a.acquire(prefix=SOURCE, limit=1) == {SOURCE + "a": 2}


# A replica's part in leases, alone in a process: liveness lock, heartbeat, one lease of
# ten minutes (far longer than any wait below: only the liveness lock can free it early).
_HOLDER = textwrap.dedent(
    """
    import sys, time
    from gateway.cluster.leases import SOURCE, LeaseStore, Liveness
    from gateway.store import create_db_engine
    engine = create_db_engine(sys.argv[1])
    live = Liveness(engine, replica="a")
    if sys.argv[2] == "lock":
        live.hold()
    store = LeaseStore(engine, replica="a", lease_seconds=600.0)
    store.heartbeat(url=None, host="h", pid=0, liveness=live.held)
    store.ensure([SOURCE + "a"])
    print(store.acquire(prefix=SOURCE, limit=1)[SOURCE + "a"], flush=True)
    time.sleep(600)
    """
)


def _holder(engine: Engine, *, lock: bool = True) -> subprocess.Popen[str]:
    url = engine.url.render_as_string(hide_password=False)
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url, "lock" if lock else "nolock"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "1"  # it holds the lease, token 1
    return proc


def _end(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()


def test_a_killed_replica_loses_its_leases_at_once_not_when_they_expire(pg: Engine) -> None:
    proc = _holder(pg)
    b = LeaseStore(pg, replica="b", lease_seconds=600.0)
    try:
        assert b.reap() == []  # alive: nothing to take
        assert b.acquire(prefix=SOURCE, limit=1) == {}
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        # PostgreSQL ends the killed process's session and frees its lock: the next look
        # finds it (well within the 600 s the lease still had to run).
        t0 = time.monotonic()
        assert wait_until(lambda: b.reap() == ["a"], timeout=20, interval=0.2)
        assert time.monotonic() - t0 < 20
        with session_scope(pg, write=False) as s:
            assert s.execute(text("SELECT count(*) FROM replica WHERE id = 'a'")).scalar() == 0
        assert b.acquire(prefix=SOURCE, limit=1, orphaned=True) == {SOURCE + "a": 2}
        with pytest.raises(LeaseLost):  # the fencing token still guards the old holder
            _fence(pg, "a", 1)("late")
        assert b.reap() == []  # reaped once
    finally:
        _end(proc)


def test_a_paused_replica_keeps_its_leases_until_they_expire(pg: Engine) -> None:
    proc = _holder(pg)
    b = LeaseStore(pg, replica="b", lease_seconds=600.0)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        # Its session (and liveness lock) lives on while it is paused: only expiry and
        # fencing hand its work over (tests/cluster/test_replicas.py pauses a real replica).
        for _ in range(5):
            assert b.reap() == []
            assert b.acquire(prefix=SOURCE, limit=1) == {}
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        _end(proc)


def test_a_replica_without_a_liveness_lock_is_left_to_expiry(pg: Engine) -> None:
    # An older replica (no liveness lock) during a rolling upgrade: its lock is free, but
    # it never said it holds one, so it is not taken for dead.
    proc = _holder(pg, lock=False)
    b = LeaseStore(pg, replica="b", lease_seconds=600.0)
    try:
        assert b.reap() == []
        assert b.acquire(prefix=SOURCE, limit=1) == {}
    finally:
        _end(proc)


def test_fair_share() -> None:
    assert fair_share(30, 3) == 11
    assert fair_share(30, 1) == 31
    assert fair_share(0, 3) == 1
    assert fair_share(31, 2) == 17


def _fence(engine: Engine, holder: str, token: int):  # type: ignore[no-untyped-def]
    from gateway.cluster.leases import fence

    def write(cursor: str) -> None:
        with session_scope(engine) as s:
            fence(s, lease=SOURCE + "a", holder=holder, token=token)
            s.execute(text("UPDATE source SET runs_cursor = :c WHERE name = 'a'"), {"c": cursor})

    return write
