"""SQLite WAL checkpoints in their own thread: the writers do not wait for them."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from gateway.api.app import create_app
from gateway.settings import Settings
from gateway.store import create_db_engine, session_scope
from gateway.store.checkpoint import SAFETY_PAGES, Checkpointer, sqlite_file

from ..conftest import wait_until


def test_the_checkpointer_copies_the_wal_so_writers_need_not(tmp_path: Path) -> None:
    path = tmp_path / "accord.db"
    engine = create_db_engine(f"sqlite:///{path}")
    with session_scope(engine) as s:
        s.execute(text("CREATE TABLE t (v TEXT)"))
    checkpointer = Checkpointer(path, every=0.1).start()
    try:
        start = path.stat().st_size
        # About 400 KB in 200 commits: far below the writers' own threshold, so without
        # the thread none of it would reach the database file while the engine is open.
        assert SAFETY_PAGES * 4096 / 10 > 200 * 2000
        for i in range(200):
            with session_scope(engine) as s:
                s.execute(text("INSERT INTO t VALUES (:v)"), {"v": f"{i:04d}" + "x" * 2000})
        assert wait_until(lambda: path.stat().st_size > start + 200 * 2000, timeout=10), (
            start,
            path.stat().st_size,
        )
        assert checkpointer.runs > 0 and checkpointer.last_error is None
        with session_scope(engine, write=False) as s:
            assert s.execute(text("SELECT count(*) FROM t")).scalar() == 200
    finally:
        checkpointer.stop()
        engine.dispose()


def test_without_it_the_writers_leave_the_wal_for_later(tmp_path: Path) -> None:
    # The counterpart: the same writes with no checkpointer stay in the WAL.
    path = tmp_path / "accord.db"
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        with session_scope(engine) as s:
            s.execute(text("CREATE TABLE t (v TEXT)"))
        start = path.stat().st_size
        for i in range(200):
            with session_scope(engine) as s:
                s.execute(text("INSERT INTO t VALUES (:v)"), {"v": f"{i:04d}" + "x" * 2000})
        assert path.stat().st_size < start + 200 * 2000
    finally:
        engine.dispose()


def test_sqlite_file() -> None:
    assert sqlite_file("sqlite:////var/lib/accord/accord.db") == Path("/var/lib/accord/accord.db")
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("postgresql+psycopg://u@h/db") is None


def test_a_gateway_on_sqlite_runs_one_while_it_serves(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'accord.db'}")
    app = create_app(Settings(data_dir=tmp_path / "data"), engine=engine, start_sync=False)
    with TestClient(app):
        checkpointer = app.state.checkpointer
        assert isinstance(checkpointer, Checkpointer)
        assert wait_until(lambda: checkpointer.runs > 0, timeout=10)
    assert checkpointer._thread is None  # stopped with the gateway
    engine.dispose()
