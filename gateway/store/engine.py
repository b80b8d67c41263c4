"""Engine and sessions. SQLite (WAL) is the default; PostgreSQL by URL."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, inspect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlmodel import Session, create_engine

from .checkpoint import SAFETY_PAGES

__all__ = [
    "SQLITE_PRAGMAS",
    "DatabaseUnavailable",
    "analyze",
    "create_db_engine",
    "database_error",
    "is_postgres",
    "is_sqlite",
    "lock_config",
    "session_scope",
    "upgrade",
    "write_engine",
]

_log = logging.getLogger(__name__)
_MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or opened."""


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


# Every SQLite connection the store opens runs these, and ``sqlite_cache_pragma()``
# (bench/ingest.py gives its raw baselines the same settings).
SQLITE_PRAGMAS: tuple[str, ...] = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA case_sensitive_like=ON",
    "PRAGMA temp_store=MEMORY",
    # Checkpoints run in a thread of their own (``gateway.store.checkpoint``); a writer
    # checkpoints itself only past this many WAL pages, and the file is cut back after.
    f"PRAGMA wal_autocheckpoint={SAFETY_PAGES}",
    "PRAGMA journal_size_limit=67108864",
)


# A cap on the SQLite database's size, in pages (``PRAGMA max_page_count``), for an
# installation that must never fill its disk: writes past it fail like a full disk does.
ENV_SQLITE_MAX_PAGES = "ACCORD_SQLITE_MAX_PAGES"
# Each connection's page cache in MiB: memory is at most this times the pooled
# connections, reached as the database grows past it. 16 by default: SQLite's own 2 MiB
# thrashes on ingest; 64 was no faster (bench/ingest.py at 1M runs: 27,191 runs/s against
# 23,625) and each pooled connection fills its own cache.
ENV_SQLITE_CACHE_MIB = "ACCORD_SQLITE_CACHE_MIB"
SQLITE_CACHE_MIB = 16


def sqlite_cache_pragma() -> str:
    """``PRAGMA cache_size`` for ``ACCORD_SQLITE_CACHE_MIB`` (16 MiB unless set)."""
    raw = os.environ.get(ENV_SQLITE_CACHE_MIB, "")
    mib = int(raw) if raw.isdigit() and int(raw) > 0 else SQLITE_CACHE_MIB
    return f"PRAGMA cache_size=-{mib * 1024}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see ``_sqlite_begin``): the driver's own implicit
    # transactions start only at the first write, which turns read-then-write into a race.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    for pragma in SQLITE_PRAGMAS:
        cur.execute(pragma)
    cur.execute(sqlite_cache_pragma())
    cap = os.environ.get(ENV_SQLITE_MAX_PAGES, "")
    if cap.isdigit() and int(cap) > 0:
        cur.execute(f"PRAGMA max_page_count={int(cap)}")
    cur.close()


_WRITE = "accord_write"


def _sqlite_begin(conn: Any) -> None:
    """Write transactions take SQLite's write lock up front (``BEGIN IMMEDIATE``).

    SQLite has one writer at a time. A deferred transaction that reads and then writes
    fails with "database is locked" if another writer committed in between (WAL snapshot
    upgrade), and what it read may be stale. Taking the lock at BEGIN makes every
    read-then-write in a write session serialized by construction; read sessions stay
    deferred and never block writers.
    """
    immediate = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_db_engine(url: str) -> Engine:
    """Create an engine; for a SQLite file, make its directory and enable WAL."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_pre_ping=False,
            # The most recently used connection first: a quiet gateway keeps reusing one
            # warm page cache (each connection has its own) instead of warming them all.
            pool_use_lifo=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    # A replica that stalls inside a transaction (a pause, a frozen VM) would keep its row
    # locks, and the others take leases with SKIP LOCKED: its sources would stay orphaned
    # for as long as it stalls. PostgreSQL ends such a session after two lease periods,
    # releasing the locks (no write transaction of Accord idles that long between two
    # statements; one that did would have outlived its lease anyway).
    idle_ms = int(2 * _lease_seconds() * 1000)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_use_lifo=True,
        pool_size=10,
        max_overflow=10,
        connect_args={"options": f"-c idle_in_transaction_session_timeout={idle_ms}"},
    )


def _lease_seconds() -> float:
    """``ACCORD_LEASE_SECONDS`` as the settings read it (15 s unless set)."""
    try:
        return max(float(os.environ.get("ACCORD_LEASE_SECONDS", "15")), 1.0)
    except ValueError:
        return 15.0


def analyze(engine: Engine) -> None:
    """Give SQLite's planner statistics (sampled, so it takes milliseconds at any size).

    Without them SQLite guesses, and for "one job's runs, newest first" it walks a whole
    domain's runs through the wrong index. PostgreSQL's autovacuum keeps its own."""
    if not is_sqlite(engine):
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


_MIGRATION_LOCK = 0x4163636F7264  # "Accord": the advisory lock key of migrations


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent).

    On PostgreSQL, replicas that start together (or ``accord db upgrade`` beside them)
    take turns under an advisory lock: the first migrates, the others find the schema
    current."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot reach the database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.orig}"
        ) from None
    if not is_postgres(engine):
        command.upgrade(alembic_config(engine), revision)
        return
    with engine.connect() as lock:
        lock.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
        try:
            command.upgrade(alembic_config(engine), revision)
        finally:
            lock.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
            lock.commit()


@cache
def head_revision() -> str | None:
    """The schema revision this version of Accord migrates to."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config_plain()).get_current_head()


def alembic_config_plain() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


_CONFIG_LOCK = _MIGRATION_LOCK + 1


def lock_config(session: Session) -> None:
    """Serialize applying configuration across processes (replicas that all start with
    ``-f``): on PostgreSQL a transaction lock taken before the plan is read, so the next
    replica plans against what the first applied. SQLite write transactions already are."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.connection().exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CONFIG_LOCK})")


def current_tables(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())


def write_engine(engine: Engine) -> Engine:
    """The same engine, whose transactions are write transactions (see ``_sqlite_begin``)."""
    return engine.execution_options(**{_WRITE: True})


@contextmanager
def session_scope(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error.

    By default it is a write transaction: on SQLite it holds the database's write lock
    from its first statement, so whatever it reads stays true until it commits (one
    writer by construction). Pass ``write=False`` for read-only work.
    """
    bind = write_engine(engine) if write else engine
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def database_error(exc: DBAPIError) -> tuple[int, str, str]:
    """What to answer for a database failure: the database gone (PostgreSQL restarted,
    network) is 503 and passes; a full disk (SQLite) is 507 until space returns; the rest
    is a bug (500). The driver's own text is logged, never sent (it may name hosts)."""
    text = str(exc.orig).lower()
    if "disk is full" in text or "no space left" in text or "database or disk is full" in text:
        return (
            507,
            "database_full",
            "the database cannot grow: its disk (or its size limit) is full; nothing was "
            "changed by this request — free space and try again",
        )
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return (
            503,
            "database_unavailable",
            "the database cannot be reached right now (restarting, or the network); "
            "nothing was changed by this request — try again shortly",
        )
    return 500, "internal_error", "internal error"
