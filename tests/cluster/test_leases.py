"""Leases on PostgreSQL, without processes: hand-over, fencing, fair share, singletons."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from gateway.cluster import LeaseLost, fair_share
from gateway.cluster.leases import SOURCE, LeaseStore
from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.tables import Source

from ..conftest import _fresh_pg_database


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
