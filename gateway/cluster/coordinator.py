"""One replica's part in a cluster of gateways on one PostgreSQL.

Every ``lease_seconds / 3`` the coordinator: refreshes this replica's heartbeat, renews
the leases it holds (a lease it failed to renew is gone: its worker stops and its late
writes are fenced), releases source leases above its fair share (``ceil(sources /
live replicas) + 1``) so that a replica that joins gets work, and takes free or expired
leases up to that share. A replica that dies stops renewing; its leases expire within
one lease period and the others take them on their next tick, resuming from the cursors
stored with each source (see ``_tick`` for the two views of liveness that keep one slow
tick from re-dividing the work). A killed or crashed process is noticed sooner: its
liveness lock is free at once, and the next tick of another replica expires its leases
(``leases.Liveness``).

Singletons: ``singleton(name)`` returns a function that says whether this replica runs
the cluster-wide job ``name`` now (compliance sweep, approval expiry, SLA evaluation,
the dependency outbox, ...). The first replica to ask takes the lease; it keeps it while
it lives. On SQLite there is no coordinator and ``always`` stands in for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

import anyio
from sqlalchemy import Engine, text
from sqlmodel import Session

from gateway.store.engine import session_scope

from .leases import SINGLETON, SOURCE, LeaseStore, Liveness, fair_share, fence
from .notify import EVENTS, HINTS, Bus

__all__ = ["Cluster", "always", "new_replica_id"]

_log = logging.getLogger(__name__)


def always() -> bool:
    """The singleton check of a one-process gateway: it runs everything itself."""
    return True


def new_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Cluster:
    def __init__(
        self,
        engine: Engine,
        *,
        replica: str | None = None,
        lease_seconds: float = 15.0,
        url: str | None = None,
        leases_sources: bool = True,
    ) -> None:
        self.engine = engine
        self.replica = replica or new_replica_id()
        self.lease_seconds = lease_seconds
        self.url = url
        self.leases_sources = leases_sources
        self.store = LeaseStore(engine, replica=self.replica, lease_seconds=lease_seconds)
        self.liveness = Liveness(engine, replica=self.replica)
        self.owned: dict[str, int] = {}  # source name -> fencing token
        self._singletons: dict[str, int] = {}  # singleton name -> token
        self._wanted_singletons: set[str] = set()
        self.replicas = 1  # live: heartbeat within two lease periods
        self.fresh = 1  # heartbeat within one lease period
        self.on_owned_change: Callable[[], None] | None = None
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self.on_hint: Callable[[str, list[dict[str, Any]]], None] | None = None
        self.bus = Bus(engine, origin=self.replica, on_message=self._message)
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0

    # -- life -----------------------------------------------------------------------------
    async def start(self) -> None:
        self.bus.start()
        await self.tick()
        self._task = asyncio.create_task(self._loop(), name="cluster")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.owned.clear()
        self._singletons.clear()
        try:
            await anyio.to_thread.run_sync(self.store.leave)
        except Exception:  # the database is gone: the leases expire on their own
            _log.warning("could not release this replica's leases; they expire on their own")
        await anyio.to_thread.run_sync(self.liveness.close)
        await anyio.to_thread.run_sync(self.bus.stop)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.tick()
            except Exception:  # the database may be briefly away; leases expire if it stays
                _log.exception("cluster lease renewal failed")

    async def tick(self) -> None:
        before = dict(self.owned)
        await anyio.to_thread.run_sync(self._tick)
        self.ticks += 1
        if self.owned != before and self.on_owned_change is not None:
            self.on_owned_change()

    def _tick(self) -> None:
        s = self.store
        self.liveness.hold()
        # Replicas whose process is gone (their liveness lock is free) lose their leases
        # now, not when those expire; they leave the counts below at once too.
        dead = s.reap()
        if dead:
            _log.warning("replica(s) gone, their leases taken over: %s", ", ".join(dead))
        self.replicas, self.fresh = s.heartbeat(
            url=self.url, host=socket.gethostname(), pid=os.getpid(), liveness=True
        )
        names = [SINGLETON + n for n in sorted(self._wanted_singletons)]
        sources: list[str] = []
        if self.leases_sources:
            sources = self._source_names()
            names += [SOURCE + n for n in sources]
        s.ensure(names)
        # Renew what we hold (sources and singletons in one statement).
        held = {SOURCE + n: t for n, t in self.owned.items()}
        held |= {SINGLETON + n: t for n, t in self._singletons.items()}
        kept = s.renew(held)
        self.owned = {n[len(SOURCE) :]: t for n, t in kept.items() if n.startswith(SOURCE)}
        self._singletons = {
            n[len(SINGLETON) :]: t for n, t in kept.items() if n.startswith(SINGLETON)
        }
        lost = [n for n in held if n not in kept]
        if lost:
            _log.warning("replica %s lost lease(s): %s", self.replica, ", ".join(sorted(lost)))
        missing = [SINGLETON + n for n in self._wanted_singletons if n not in self._singletons]
        if missing:
            got = s.acquire(prefix=SINGLETON, limit=len(missing), only=missing)
            self._singletons |= {n[len(SINGLETON) :]: t for n, t in got.items()}
        if not self.leases_sources:
            return
        # Two views of who is alive: heartbeats within two lease periods (``replicas``,
        # for the share to take) and within one (``fresh``, for the share to keep). One
        # slow tick of a loaded replica then neither makes the others shed work nor grab
        # it; a dead replica drops out of ``fresh`` when its leases expire, so the
        # survivors take its sources (up to the share they will have without it) after
        # one lease period, not two.
        share = fair_share(len(sources), self.replicas)
        keep = fair_share(len(sources), self.fresh)
        if len(self.owned) > keep:
            extra = sorted(self.owned)[keep:]
            for n in extra:
                self.owned.pop(n)
            s.release([SOURCE + n for n in extra])
            _log.info("replica %s handed over %d source(s)", self.replica, len(extra))
            return
        if len(self.owned) < share:
            got = s.acquire(prefix=SOURCE, limit=share - len(self.owned))
            self.owned |= {n[len(SOURCE) :]: t for n, t in got.items()}
        if len(self.owned) < keep:
            got = s.acquire(prefix=SOURCE, limit=keep - len(self.owned), orphaned=True)
            self.owned |= {n[len(SOURCE) :]: t for n, t in got.items()}

    def _source_names(self) -> list[str]:
        with session_scope(self.engine, write=False) as session:
            rows = session.execute(text("SELECT name FROM source WHERE enabled")).all()
        return sorted(str(r[0]) for r in rows)

    # -- what others use -------------------------------------------------------------------
    def fence_for(self, source: str, token: int) -> Callable[[Session], None]:
        """The check a worker's write transaction runs first (see ``leases.fence``)."""
        lease, me = SOURCE + source, self.replica

        def check(session: Session) -> None:
            fence(session, lease=lease, holder=me, token=token)

        return check

    def singleton(self, name: str) -> Callable[[], bool]:
        """Register a cluster-wide job; the function answers whether this replica runs it
        now. Ask it before each run: the lease can move to another replica (after this
        one paused or lost the database). Work done under it should be idempotent, since a
        replica paused mid-run may finish that run after another took over."""
        self._wanted_singletons.add(name)
        return lambda: name in self._singletons

    def holds(self, source: str) -> bool:
        return source in self.owned

    def holder_of(self, source: str) -> str | None:
        return self.store.holder_of(SOURCE + source)

    def publish_event(self, event: dict[str, Any]) -> None:
        self.bus.publish(EVENTS, event)

    def forward_hint(self, source: str, hints: list[dict[str, Any]]) -> None:
        """Send sync hints to the replica that holds the source (whoever holds it acts)."""
        self.bus.publish(HINTS, {"source": source, "hints": hints})

    def _message(self, channel: str, message: dict[str, Any]) -> None:
        if channel == EVENTS and self.on_event is not None:
            self.on_event(message)
        elif channel == HINTS and self.on_hint is not None:
            source = message.get("source")
            hints = message.get("hints")
            if isinstance(source, str) and isinstance(hints, list):
                self.on_hint(source, hints)
