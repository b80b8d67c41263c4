"""Starts one worker per configured source and keeps the set in line with the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import Engine, func
from sqlmodel import col, select

from adapters.base import (
    DEFAULT_CONCURRENCY,
    Adapter,
    AdapterContext,
    Registry,
    SecretResolver,
    registry,
)
from gateway.cluster import Cluster
from gateway.governance.compliance import sweep
from gateway.model import Capability, SyncHint, parse_duration
from gateway.secrets import resolve_secret
from gateway.store.engine import session_scope
from gateway.store.services.ingest import RunChange
from gateway.store.tables import Job as JobRow
from gateway.store.tables import Source as SourceRow
from gateway.store.types import utcnow

from .slots import PassSlots
from .worker import SourceWorker, SyncCancelled, SyncReport

__all__ = ["NotHolder", "SyncManager", "adapter_settings", "build_adapter"]

_log = logging.getLogger(__name__)
_COMMON = {"type", "enabled", "demo", "sync"}


def build_adapter(
    row: SourceRow, reg: Registry = registry, *, secrets: SecretResolver = resolve_secret
) -> Adapter:
    """The adapter of a stored Source. ``secrets`` resolves its secret references (by
    default under the allow-list of this process's settings, see ``gateway.secrets``)."""
    ctx = AdapterContext(
        source=row.name,
        domain=row.domain,
        secrets=secrets,
        timeout=_timeout(row),
        concurrency=_concurrency(row),
    )
    return reg.create(row.type, ctx, adapter_settings(row))


def adapter_settings(row: SourceRow) -> dict[str, Any]:
    """What of a stored Source's spec belongs to its adapter."""
    return {k: v for k, v in row.spec.items() if k not in _COMMON}


def _concurrency(row: SourceRow) -> int:
    raw = (row.spec.get("sync") or {}).get("concurrency", DEFAULT_CONCURRENCY)
    return raw if isinstance(raw, int) and raw >= 1 else DEFAULT_CONCURRENCY


def _timeout(row: SourceRow) -> float:
    raw = (row.spec.get("sync") or {}).get("timeout", "30s")
    try:
        return parse_duration(raw).total_seconds()
    except ValueError:
        return 30.0


class NotHolder(Exception):
    """In a cluster, another replica (or none yet) holds the source's lease."""

    def __init__(self, source: str, holder: str | None) -> None:
        super().__init__(
            f"replica {holder!r} syncs {source!r}"
            if holder
            else f"no replica holds {source!r} yet (the cluster is starting or failing over)"
        )
        self.source = source
        self.holder = holder


def _fingerprint(row: SourceRow) -> tuple[Any, ...]:
    return (row.type, row.domain, repr(sorted(row.spec.items())), row.enabled)


class SyncManager:
    """Owns the workers. ``refresh`` reconciles them with the Source table.

    Every pass of a source, whoever asks for it (its worker's schedule, a webhook hint,
    ``POST /sources/{name}/sync``), goes through that source's worker, which runs one pass
    at a time and coalesces concurrent requests (``SourceWorker.sync_once``).

    With a ``cluster`` (PostgreSQL), it runs workers only for the sources whose lease
    this replica holds, each fenced by its lease token; hints for other sources go to
    their holder, on-demand passes raise ``NotHolder``; the compliance sweep runs on one
    replica. ``max_passes`` caps the passes running at once in this process.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        reg: Registry = registry,
        refresh_every: float = 5.0,
        on_change: Callable[[str, list[RunChange]], None] | None = None,
        secrets: SecretResolver = resolve_secret,
        on_pass: Callable[[str], None] | None = None,
        compliance_every: float | None = 900.0,
        cluster: Cluster | None = None,
        max_passes: int | None = None,
        on_fenced: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self.cluster = cluster
        self.on_fenced = on_fenced
        self._slots = PassSlots(max_passes) if max_passes else None
        self._tokens: dict[str, int] = {}  # lease token each worker runs under
        self._refresh_now = asyncio.Event()
        self._sweep_leader = cluster.singleton("compliance-sweep") if cluster else None
        self.secrets = secrets
        self.registry = reg
        self.refresh_every = refresh_every
        self.compliance_every = compliance_every
        self.on_change = on_change
        self.on_pass = on_pass
        self.workers: dict[str, SourceWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._prints: dict[str, tuple[Any, ...]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._sweep_task: asyncio.Task[None] | None = None
        self._sweep_stop = threading.Event()
        self._adapters: dict[str, Adapter] = {}
        # Sources without a running worker (agent-only, disabled, not started yet) get a
        # one-off worker while someone asks for a pass; concurrent callers share it.
        self._oneoff: dict[str, tuple[SourceWorker, int]] = {}
        self._pass_locks: dict[str, asyncio.Lock] = {}
        self._closing = False

    def _rows(self) -> list[SourceRow]:
        with session_scope(self.engine) as session:
            return list(session.exec(select(SourceRow)).all())

    def wake(self) -> None:
        """Look at the sources and leases again now (the leases changed hands)."""
        self._refresh_now.set()

    async def refresh(self) -> None:
        rows = {r.name: r for r in await asyncio.to_thread(self._rows)}
        owned = dict(self.cluster.owned) if self.cluster is not None else None
        if owned is not None:
            rows = {n: r for n, r in rows.items() if n in owned}
        for name in list(self.workers):
            row = rows.get(name)
            if (
                row is None
                or _fingerprint(row) != self._prints.get(name)
                or not row.enabled
                or (owned is not None and owned.get(name) != self._tokens.get(name))
            ):
                await self._stop_worker(name)
        for name in list(self._adapters):
            if name not in rows:
                await self._stop_worker(name)
        resume: dict[str, tuple[float | None, float | None]] = {}
        if owned is not None:
            starting = [n for n, r in rows.items() if n not in self.workers and r.enabled]
            if starting:
                resume = await asyncio.to_thread(self._resume_points, starting)
        for name, row in rows.items():
            if name in self.workers or not row.enabled:
                continue
            try:
                adapter = build_adapter(row, self.registry, secrets=self.secrets)
            except Exception as exc:  # a broken source must not stop the others
                _log.error("source %s cannot start: %s", name, exc)
                await asyncio.to_thread(self._mark_broken, name, str(exc))
                self._prints[name] = _fingerprint(row)
                continue
            caps = getattr(adapter, "capabilities", adapter.info.capabilities)
            if Capability.PUSH in caps and not _polls(adapter):
                # Agents push; the gateway only holds the adapter for webhooks/actions.
                self._adapters[name] = adapter
                self._prints[name] = _fingerprint(row)
                continue
            worker = self._worker(row, adapter, token=None if owned is None else owned[name])
            if name in resume:
                # A source this replica has just taken (from a replica that stopped, or
                # handed over): its first pass goes first for a slot and reads the runs
                # from the stored cursor, re-listing the jobs only if the stored listing
                # is older than the inventory interval or than the source's definition.
                overdue_for, inventory_age = resume[name]
                worker.resume(overdue_for=overdue_for, inventory_age=inventory_age, urgent=True)
            self.workers[name] = worker
            self._prints[name] = _fingerprint(row)
            self._tasks[name] = asyncio.create_task(worker.run(), name=f"sync:{name}")

    def _worker(self, row: SourceRow, adapter: Adapter, token: int | None = None) -> SourceWorker:
        fence = None
        if self.cluster is not None and token is not None:
            fence = self.cluster.fence_for(row.name, token)
            self._tokens[row.name] = token
        return SourceWorker(
            engine=self.engine,
            name=row.name,
            domain=row.domain,
            adapter=adapter,
            inventory_every=row.inventory_every_s,
            runs_every=row.runs_every_s,
            timeout=_timeout(row),
            on_change=self.on_change,
            pass_lock=self._pass_locks.setdefault(row.name, asyncio.Lock()),
            on_pass=self.on_pass,
            fence=fence,
            slots=self._slots,
            on_fenced=self._fenced,
        )

    def _fenced(self, name: str) -> None:
        if self.on_fenced is not None:
            self.on_fenced(name)
        self.wake()

    def _resume_points(self, names: list[str]) -> dict[str, tuple[float | None, float | None]]:
        """For each source: seconds its runs have been due (None: never synced) and the
        age of its stored job listing (None: none usable). The listing's time is when its
        jobs were last seen by a full listing, usable if it is after the source's last
        change of definition."""
        out: dict[str, tuple[float | None, float | None]] = {}
        with session_scope(self.engine, write=False) as session:
            now = utcnow()
            listed = dict(
                session.execute(
                    select(JobRow.source, func.max(JobRow.last_seen))
                    .where(col(JobRow.source).in_(names), col(JobRow.tombstoned_at).is_(None))
                    .group_by(JobRow.source)
                ).all()
            )
            for row in session.exec(select(SourceRow).where(col(SourceRow.name).in_(names))):
                overdue = None
                if row.last_sync_at is not None:
                    since = (now - _aware(row.last_sync_at)).total_seconds()
                    overdue = since - row.runs_every_s
                age = None
                seen = listed.get(row.name)
                if seen is not None and _aware(seen) >= _aware(row.updated_at):
                    age = (now - _aware(seen)).total_seconds()
                out[row.name] = (overdue, age)
        return out

    def _mark_broken(self, name: str, message: str) -> None:
        with session_scope(self.engine) as session:
            row = session.get(SourceRow, name)
            if row is not None:
                row.health = "down"
                row.health_message = message
                row.last_error = message
                session.add(row)

    async def _stop_worker(self, name: str) -> None:
        worker = self.workers.pop(name, None)
        task = self._tasks.pop(name, None)
        self._prints.pop(name, None)
        self._tokens.pop(name, None)
        if worker is not None:
            worker.stop()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if worker is not None:
            await worker.wait_passes()
        adapter = worker.adapter if worker else self._adapters.pop(name, None)
        if adapter is not None:
            with contextlib.suppress(Exception):
                await adapter.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # keep syncing the sources we have
                _log.exception("refreshing the source list failed")
            self._refresh_now.clear()
            with anyio.move_on_after(self.refresh_every):
                await self._refresh_now.wait()

    async def _sweep_loop(self, every: float) -> None:
        """Re-evaluate every job now and then: rules may read facts that change without
        an inventory change (days since the last run, days paused, a coming freeze)."""
        while True:
            await asyncio.sleep(every)
            if self._sweep_leader is not None and not self._sweep_leader():
                continue  # another replica sweeps
            try:
                await anyio.to_thread.run_sync(
                    lambda: sweep(self.engine, cancelled=self._sweep_stop.is_set)
                )
            except Exception:  # the next sweep tries again
                _log.exception("the periodic compliance evaluation failed")

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="sync:refresh")
        if self.compliance_every:
            self._sweep_task = asyncio.create_task(
                self._sweep_loop(self.compliance_every), name="sync:compliance"
            )

    def begin_stop(self) -> None:
        """Stop at once without waiting: no new pass starts, running ones are cancelled
        (their callers get SyncCancelled). ``stop`` then waits for them to end."""
        self._closing = True
        self._sweep_stop.set()
        for task in (self._loop_task, self._sweep_task):
            if task is not None:
                task.cancel()
        for worker in [*self.workers.values(), *(w for w, _n in self._oneoff.values())]:
            worker.stop()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop every worker and close the adapters; with ``timeout``, give up waiting
        after that many seconds (what is left is logged and abandoned)."""
        self.begin_stop()
        names = list(self.workers) + list(self._adapters)
        jobs = [t for t in (self._loop_task, self._sweep_task) if t is not None]
        jobs += [asyncio.create_task(self._stop_worker(n)) for n in names]
        jobs += [asyncio.create_task(w.wait_passes()) for w, _n in self._oneoff.values()]
        if not jobs:
            return
        _done, pending = await asyncio.wait(jobs, timeout=timeout)
        if pending:
            _log.warning(
                "%d sync task(s) still ending after %.0fs; not waiting for them",
                len(pending),
                timeout or 0,
            )

    # -- used by the API ----------------------------------------------------------------------
    def adapter_for(self, row: SourceRow) -> tuple[Adapter, bool]:
        """The running adapter of a source, or a new one (second value: caller closes it)."""
        worker = self.workers.get(row.name)
        if worker is not None and self._prints.get(row.name) == _fingerprint(row):
            return worker.adapter, False
        held = self._adapters.get(row.name)
        if held is not None:
            return held, False
        return build_adapter(row, self.registry, secrets=self.secrets), True

    def hint(self, name: str, hints: list[SyncHint], *, forward: bool = True) -> bool:
        """Sync the source sooner. In a cluster, hints for a source this replica does not
        hold go to the replica that does (``forward``); True when some worker gets it."""
        worker = self.workers.get(name)
        if worker is None:
            if self.cluster is None or not forward:
                return False
            self.cluster.forward_hint(name, [h.model_dump(mode="json") for h in hints])
            return True
        worker.hint(hints)
        return True

    async def sync_now(
        self, name: str, *, inventory: bool = True, max_age: float = 0.0
    ) -> SyncReport:
        """Run one pass for a source, or share the one about to run (used by the API, the
        CLI, tests and targeted re-syncs); see ``SourceWorker.sync_once``.

        Raises KeyError for an unknown source and SyncCancelled while the gateway stops.
        """
        if self._closing:
            raise SyncCancelled(name)
        worker = self.workers.get(name)
        if worker is not None:
            return await worker.sync_once(inventory=inventory, max_age=max_age)
        if self.cluster is not None:
            # Only the lease holder writes a source; the caller forwards the request.
            row = await asyncio.to_thread(self._row, name)
            if row is None:
                raise KeyError(name)
            raise NotHolder(name, await asyncio.to_thread(self.cluster.holder_of, name))
        if name not in self._oneoff:
            row = await asyncio.to_thread(self._row, name)
            if row is None:
                raise KeyError(name)
            if self._closing:
                raise SyncCancelled(name)
            worker = self.workers.get(name)
            if worker is not None:  # started while we read the row
                return await worker.sync_once(inventory=inventory, max_age=max_age)
            if name not in self._oneoff:
                self._oneoff[name] = (
                    self._worker(row, build_adapter(row, self.registry, secrets=self.secrets)),
                    0,
                )
        temp, users = self._oneoff[name]
        self._oneoff[name] = (temp, users + 1)
        try:
            return await temp.sync_once(inventory=inventory, max_age=max_age)
        finally:
            temp, users = self._oneoff[name]
            if users > 1:
                self._oneoff[name] = (temp, users - 1)
            else:
                del self._oneoff[name]
                await temp.adapter.aclose()

    def _row(self, name: str) -> SourceRow | None:
        with session_scope(self.engine) as session:
            return session.get(SourceRow, name)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _polls(adapter: Adapter) -> bool:
    """Push adapters may also poll (e.g. a cron source reading this host's files)."""
    return bool(getattr(adapter, "polls", False))
