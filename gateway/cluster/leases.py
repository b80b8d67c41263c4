"""Leases in PostgreSQL: which replica syncs which source, and which runs a singleton.

Why a lease table with fencing tokens and not advisory locks: an advisory lock lives as
long as one database session, so a replica would have to keep one connection per held
source open forever, nobody else can see who holds what (``/api/v1/cluster`` needs that),
and a replica paused for a minute (GC, SIGSTOP, a frozen VM) still holds its session and
so its locks while it is useless, or loses them with its TCP connection without knowing.
A row per lease with a holder, an expiry and a token that grows on every hand-over is
visible, expires on its own after ``lease_seconds`` without renewal, and lets every write
prove it is still the holder's: the worker's write transaction first runs ``fence``,
which reads the lease row ``FOR SHARE`` and requires ``holder = me AND token = my token
AND not expired``. A takeover updates that row, so it waits for a write in flight to
commit, and every write after it is refused (``LeaseLost``): a replica that wakes after
its lease expired writes nothing.

A process that dies is noticed sooner than its leases expire: each replica also holds a
session advisory lock on its own id on one dedicated connection (``Liveness``; one
connection, not one per lease). PostgreSQL frees that lock when the connection ends,
which it does at once when the process is killed or crashes; the others then find the lock
free (``LeaseStore.reap``), expire that replica's leases and take its sources on their
next tick. Correctness never depends on it: a replica that is alive but lost that
connection (a PostgreSQL restart, a network cut) is treated as dead, and the fencing
token refuses whatever it still tries to write, as after any takeover; a paused process
keeps its connection, so its leases run their full period. Replicas that do not say they
hold the lock (``replica.liveness``, e.g. an older version during a rolling upgrade) are
only ever taken over by expiry.

All times are the database's clock (``clock_timestamp()``), so replicas with skewed
clocks agree on who holds what. Everything here runs in a worker thread.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from sqlalchemy import Engine, text
from sqlmodel import Session

from gateway.store.engine import session_scope
from gateway.store.types import to_db

from .notify import conninfo

__all__ = [
    "SINGLETON",
    "SOURCE",
    "LeaseLost",
    "LeaseRow",
    "LeaseStore",
    "Liveness",
    "fair_share",
]

SOURCE = "source:"
SINGLETON = "singleton:"
_NOW = "(clock_timestamp() AT TIME ZONE 'UTC')"
_LIVENESS = 4242007  # advisory lock namespace of the replicas' liveness locks


class LeaseLost(Exception):
    """This replica no longer holds the lease it wrote under; the write was refused."""

    def __init__(self, lease: str) -> None:
        super().__init__(f"this replica no longer holds the lease {lease!r}; write refused")
        self.lease = lease


@dataclass(frozen=True)
class LeaseRow:
    name: str
    holder: str | None
    token: int
    acquired_at: datetime | None
    renewed_at: datetime | None
    expires_at: datetime | None


def fair_share(sources: int, replicas: int, slack: int = 1) -> int:
    """How many source leases one replica may hold: ceil(sources / replicas) + slack."""
    return math.ceil(sources / max(1, replicas)) + slack


def fence(session: Session, *, lease: str, holder: str, token: int) -> None:
    """Refuse this transaction unless ``holder`` still holds ``lease`` with ``token``.

    Call it first in a write transaction; the row lock (``FOR SHARE``) makes a takeover
    wait until the transaction ends, so what it wrote was written under the lease.
    """
    row = session.execute(
        text(
            "SELECT 1 FROM lease WHERE name = :n AND holder = :h AND token = :t"
            f" AND expires_at > {_NOW} FOR SHARE"
        ),
        {"n": lease, "h": holder, "t": token},
    ).first()
    if row is None:
        raise LeaseLost(lease)


class Liveness:
    """This replica's liveness lock: a session advisory lock on its id, on a dedicated
    autocommit connection that lives as long as the process (see the module's text).
    ``hold`` (each coordinator tick) checks the connection and takes the lock again on a
    new one when it was lost. Not thread-safe: one coordinator calls it."""

    def __init__(self, engine: Engine, *, replica: str) -> None:
        self._url = conninfo(engine)
        self.replica = replica
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def hold(self) -> None:
        """Make sure the lock is held; raise when it cannot be (the tick then fails, and
        this replica takes no new work until it can)."""
        if self._conn is not None:
            try:
                self._conn.execute("SELECT 1")
                return
            except psycopg.Error:
                self.close()
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        try:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LIVENESS, self.replica)
            ).fetchone()
        except psycopg.Error:
            conn.close()
            raise
        if not (row and row[0]):
            conn.close()
            raise RuntimeError(
                f"another session holds the liveness lock of replica {self.replica!r}"
            )
        self._conn = conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Already broken or not: either way the server frees the lock.
            with contextlib.suppress(psycopg.Error):
                conn.close()


class LeaseStore:
    """The SQL of replicas and leases (PostgreSQL only)."""

    def __init__(self, engine: Engine, *, replica: str, lease_seconds: float) -> None:
        self.engine = engine
        self.replica = replica
        self.lease_seconds = lease_seconds

    @property
    def _ttl(self) -> str:
        return f"make_interval(secs => {float(self.lease_seconds)!r})"

    def heartbeat(
        self, *, url: str | None, host: str, pid: int, liveness: bool = False
    ) -> tuple[int, int]:
        """Register or refresh this replica (``liveness``: it holds its liveness lock);
        forget replicas silent for 10 lease periods. Returns how many replicas have a
        heartbeat within two lease periods and within one (see ``Cluster._tick``)."""
        with session_scope(self.engine) as s:
            s.execute(
                text(
                    "INSERT INTO replica (id, url, host, pid, started_at, heartbeat_at, liveness)"
                    f" VALUES (:id, :url, :host, :pid, {_NOW}, {_NOW}, :live)"
                    f" ON CONFLICT (id) DO UPDATE SET heartbeat_at = {_NOW}, url = :url,"
                    " liveness = :live"
                ),
                {"id": self.replica, "url": url, "host": host, "pid": pid, "live": liveness},
            )
            s.execute(text(f"DELETE FROM replica WHERE heartbeat_at < {_NOW} - 10 * {self._ttl}"))
            two, one = s.execute(
                text(
                    f"SELECT count(*) FILTER (WHERE heartbeat_at > {_NOW} - 2 * {self._ttl}),"
                    f" count(*) FILTER (WHERE heartbeat_at > {_NOW} - {self._ttl})"
                    " FROM replica"
                )
            ).one()
        return int(two), max(1, int(one))

    def leave(self) -> None:
        """Release every lease and unregister (a graceful stop hands work over at once)."""
        with session_scope(self.engine) as s:
            s.execute(
                text(f"UPDATE lease SET holder = NULL, expires_at = {_NOW} WHERE holder = :me"),
                {"me": self.replica},
            )
            s.execute(text("DELETE FROM replica WHERE id = :me"), {"me": self.replica})

    def ensure(self, names: list[str]) -> None:
        """Make a lease row for each name; drop source leases of sources that are gone."""
        with session_scope(self.engine) as s:
            if names:
                s.execute(
                    text(
                        "INSERT INTO lease (name, holder, token)"
                        " SELECT unnest(CAST(:names AS text[])), NULL, 0"
                        " ON CONFLICT (name) DO NOTHING"
                    ),
                    {"names": names},
                )
            s.execute(
                text(
                    "DELETE FROM lease WHERE name LIKE 'source:%'"
                    " AND NOT (name = ANY(CAST(:names AS text[])))"
                ),
                {"names": [n for n in names if n.startswith(SOURCE)]},
            )

    def reap(self) -> list[str]:
        """Expire at once the leases of replicas whose process is gone: those that said
        they hold a liveness lock which is now free. Returns their ids (their replica
        rows are dropped, so the shares count only the living)."""
        with session_scope(self.engine) as s:
            others = (
                s.execute(
                    text("SELECT id FROM replica WHERE liveness AND id <> :me ORDER BY id"),
                    {"me": self.replica},
                )
                .scalars()
                .all()
            )
            # A transaction-scoped try: held until this transaction ends, so a replica
            # that comes back meanwhile cannot take its own lock and be reaped after.
            dead = [
                str(r)
                for r in others
                if s.execute(
                    text("SELECT pg_try_advisory_xact_lock(:ns, hashtext(:id))"),
                    {"ns": _LIVENESS, "id": r},
                ).scalar_one()
            ]
            if dead:
                s.execute(
                    text(
                        f"UPDATE lease SET expires_at = {_NOW}"
                        f" WHERE holder = ANY(CAST(:dead AS text[])) AND expires_at > {_NOW}"
                    ),
                    {"dead": dead},
                )
                s.execute(
                    text("DELETE FROM replica WHERE id = ANY(CAST(:dead AS text[]))"),
                    {"dead": dead},
                )
        return dead

    def renew(self, held: dict[str, int]) -> dict[str, int]:
        """Extend the leases still ours; the answer leaves out the ones we lost."""
        if not held:
            return {}
        with session_scope(self.engine) as s:
            rows = s.execute(
                text(
                    f"UPDATE lease SET renewed_at = {_NOW}, expires_at = {_NOW} + {self._ttl}"
                    " WHERE holder = :me AND name = ANY(CAST(:names AS text[]))"
                    f" AND expires_at > {_NOW} RETURNING name, token"
                ),
                {"me": self.replica, "names": list(held)},
            ).all()
        got = {str(n): int(t) for n, t in rows}
        return {n: t for n, t in got.items() if held.get(n) == t}

    def acquire(
        self, *, prefix: str, limit: int, only: list[str] | None = None, orphaned: bool = False
    ) -> dict[str, int]:
        """Take up to ``limit`` free or expired leases whose name starts with ``prefix``
        (or is in ``only``); with ``orphaned``, only expired leases of another replica
        (one that died). Each hand-over increments the token."""
        if limit <= 0:
            return {}
        where = "name = ANY(CAST(:only AS text[]))" if only is not None else "name LIKE :prefix"
        if orphaned:
            where += " AND holder IS NOT NULL AND holder <> :me"
        with session_scope(self.engine) as s:
            rows = s.execute(
                text(
                    "UPDATE lease SET holder = :me, token = token + 1,"
                    f" acquired_at = {_NOW}, renewed_at = {_NOW},"
                    f" expires_at = {_NOW} + {self._ttl}"
                    " WHERE name IN (SELECT name FROM lease"
                    f"  WHERE {where} AND (holder IS NULL OR expires_at <= {_NOW})"
                    "  ORDER BY random() LIMIT :k FOR UPDATE SKIP LOCKED)"
                    " RETURNING name, token"
                ),
                {"me": self.replica, "k": limit, "prefix": prefix + "%", "only": only or []},
            ).all()
        return {str(n): int(t) for n, t in rows}

    def release(self, names: list[str]) -> None:
        if not names:
            return
        with session_scope(self.engine) as s:
            s.execute(
                text(
                    f"UPDATE lease SET holder = NULL, expires_at = {_NOW}"
                    " WHERE holder = :me AND name = ANY(CAST(:names AS text[]))"
                ),
                {"me": self.replica, "names": names},
            )

    def live_replicas(self) -> set[str]:
        """Replicas with a heartbeat within two lease periods (this one included)."""
        with session_scope(self.engine, write=False) as s:
            rows = s.execute(
                text(f"SELECT id FROM replica WHERE heartbeat_at > {_NOW} - 2 * {self._ttl}")
            ).all()
        return {str(r[0]) for r in rows}

    def holder_of(self, lease: str) -> str | None:
        """The live holder of a lease, if any."""
        with session_scope(self.engine, write=False) as s:
            row = s.execute(
                text(f"SELECT holder FROM lease WHERE name = :n AND expires_at > {_NOW}"),
                {"n": lease},
            ).first()
        return None if row is None else row[0]


def lease_rows(session: Session) -> list[LeaseRow]:
    rows = session.execute(
        text(
            "SELECT name, holder, token, acquired_at, renewed_at, expires_at"
            " FROM lease ORDER BY name"
        )
    ).all()
    return [LeaseRow(str(r[0]), r[1], int(r[2]), _utc(r[3]), _utc(r[4]), _utc(r[5])) for r in rows]


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def db_now(session: Session) -> datetime | None:
    """The database's clock (UTC, naive), to age leases the way they expire."""
    value = session.execute(text(f"SELECT {_NOW}")).scalar_one()
    return to_db(value) if isinstance(value, datetime) else None
