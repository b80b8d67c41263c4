"""One sync worker per source: inventory, runs by cursor, re-poll of open runs, and the
adapter's health check (after every sync and on its own interval), merged with the sync's
own outcome into the source's health."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import anyio
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from adapters.base import Adapter
from gateway.cluster.leases import LeaseLost
from gateway.governance.compliance import evaluate_jobs
from gateway.model import (
    TERMINAL_STATES,
    AdapterAuthError,
    AdapterError,
    AdapterUnavailable,
    Capability,
    EdgeRecord,
    HealthProblem,
    HealthStatus,
    InvalidResponse,
    JobRecord,
    RunRecord,
    SourceHealth,
    SyncHint,
)
from gateway.store.engine import database_error, session_scope
from gateway.store.services import ingest
from gateway.store.tables import Run
from gateway.store.tables import Source as SourceRow
from gateway.store.types import utcnow

from .backoff import Backoff
from .slots import PassSlots

__all__ = [
    "SourceWorker",
    "SyncCancelled",
    "SyncReport",
    "health_of",
    "lag_seconds",
    "merge_health",
]

_log = logging.getLogger(__name__)
T = TypeVar("T")
_MAX_PAGES = 50
COALESCE_WITHIN = 2.0  # seconds: how old a pass an on-demand request (the API's) accepts
_REPOLL_BATCH = 100
_REPOLL_MAX = 2000
_CHECK_EVERY = 60.0  # seconds between health checks when nothing else happens


class SyncCancelled(Exception):
    """The pass a caller waited for was cancelled: the gateway is stopping, or the source
    was reconfigured or removed."""

    def __init__(self, source: str) -> None:
        super().__init__(
            f"the sync of {source!r} was cancelled: the gateway is stopping or the source changed"
        )
        self.source = source


@dataclass
class SyncReport:
    source: str
    inventory: dict[str, int] | None = None
    runs: dict[str, int] = field(default_factory=dict)
    edges: int = 0
    repolled: int = 0
    error: str | None = None
    seconds: float = 0.0
    started_at: datetime | None = None


class SourceWorker:
    """Drives one adapter. Never raises out of ``run``; a failure only affects its source."""

    def __init__(
        self,
        *,
        engine: Engine,
        name: str,
        domain: str,
        adapter: Adapter,
        inventory_every: float,
        runs_every: float,
        timeout: float = 30.0,
        on_change: Callable[[str, list[ingest.RunChange]], None] | None = None,
        check_every: float = _CHECK_EVERY,
        pass_lock: asyncio.Lock | None = None,
        on_pass: Callable[[str], None] | None = None,
        fence: Callable[[Session], None] | None = None,
        slots: PassSlots | None = None,
        on_fenced: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        # In a cluster: the lease check every write transaction runs first, the replica's
        # cap on concurrent passes, and who to tell when a write was refused.
        self.fence = fence
        self.slots = slots
        self.on_fenced = on_fenced
        self.name = name
        self.domain = domain
        self.adapter = adapter
        self.inventory_every = inventory_every
        self.runs_every = runs_every
        self.timeout = timeout
        self.backoff = Backoff()
        self.on_change = on_change
        self._wake = asyncio.Event()
        self._pending_inventory = True
        self._next_inventory = 0.0
        self._next_runs = 0.0
        self.check_every = check_every
        self._next_check = 0.0
        # The last sync's own verdict; the adapter's check is merged with it.
        self._sync_health: tuple[HealthStatus, str] = (HealthStatus.OK, "")
        self._stopped = False
        self.last_report: SyncReport | None = None
        # One pass at a time (see sync_once). The lock is shared with any other worker of
        # the same source (a replacement after reconfiguration, a one-off for the API).
        self._pass_lock = pass_lock or asyncio.Lock()
        self._last: asyncio.Task[SyncReport] | None = None  # the latest pass started
        self._last_started = 0.0
        self._last_inventory = False
        self._queued: asyncio.Task[SyncReport] | None = None  # the follow-up pass
        self._queued_inventory = False
        self.passes = 0  # passes run (coalesced requests share one)
        self.on_pass = on_pass
        # The first pass of a source this replica has just taken over goes first for a
        # pass slot (see ``resume``).
        self._urgent = False

    def resume(
        self, *, overdue_for: float | None, inventory_age: float | None, urgent: bool
    ) -> None:
        """Start where the stored state of the source says, not from scratch (in a cluster,
        when this replica takes the source over). ``overdue_for``: seconds since the runs
        were due (from the last stored sync; None: never synced); ``inventory_age``:
        seconds since the stored job listing (None: none usable, list again). A listing
        younger than the inventory interval is not repeated: the runs resume from the
        stored cursor. ``urgent``: the first pass goes before this process's other
        waiting passes."""
        now = time.monotonic()
        if overdue_for is not None:
            self._next_runs = now - max(0.0, overdue_for)
        if inventory_age is not None and inventory_age < self.inventory_every:
            self._pending_inventory = False
            self._next_inventory = now + self.inventory_every - max(0.0, inventory_age)
        self._urgent = urgent

    # -- control ---------------------------------------------------------------------------
    def hint(self, hints: list[SyncHint]) -> None:
        if any(h.scope == "inventory" for h in hints):
            self._pending_inventory = True
        self._next_runs = 0.0
        self._wake.set()

    def stop(self) -> None:
        """Stop the loop and cancel the running and the queued pass (their waiters get
        SyncCancelled)."""
        self._stopped = True
        self._wake.set()
        for task in (self._queued, self._last):
            if task is not None:
                task.cancel()

    async def wait_passes(self) -> None:
        """Wait until the cancelled passes have ended (a database call in a worker thread
        finishes its statement first)."""
        tasks = [t for t in (self._queued, self._last) if t is not None]
        if tasks:
            await asyncio.wait(tasks)

    async def run(self) -> None:
        while not self._stopped:
            now = time.monotonic()
            due = now >= min(self._next_inventory, self._next_runs) or self._pending_inventory
            if due and now >= self._retry_at:
                try:
                    report = await self.sync_once(
                        inventory=self._pending_inventory or now >= self._next_inventory
                    )
                except SyncCancelled:  # only stop() cancels a pass
                    break
                now = time.monotonic()
                if report.error is None:
                    self._retry_at = 0.0
                    if report.inventory is not None:
                        self._next_inventory = now + self.inventory_every
                    self._next_runs = now + self.runs_every
                else:
                    delay = self._last_delay
                    # Nothing (a pending inventory, a hint) starts a pass before then.
                    self._retry_at = now + delay
                    self._next_runs = now + delay
                    self._next_inventory = max(self._next_inventory, now + delay)
            elif now >= self._next_check:
                try:
                    health = await self.check_once()
                except LeaseLost as exc:
                    _log.warning("source %s: %s", self.name, exc)
                else:
                    if (
                        health.status == HealthStatus.OK
                        and self._retry_at > time.monotonic()
                        and not self._told_to_wait
                    ):
                        # Backing off, but the source answers its health check well again
                        # (it was down for hours, say): sync now rather than wait out the
                        # rest of the back-off (up to the circuit's 5 minutes). A source
                        # that said when to come back (Retry-After) is left alone.
                        self._retry_at = 0.0
                        self._next_runs = 0.0
            wait = max(
                0.05,
                min(
                    max(min(self._next_inventory, self._next_runs), self._retry_at),
                    self._next_check,
                )
                - time.monotonic(),
            )
            self._wake.clear()
            with anyio.move_on_after(wait):
                await self._wake.wait()

    _last_delay: float = 0.0
    _told_to_wait: bool = False  # the back-off is the source's own Retry-After
    _retry_at: float = 0.0  # monotonic time before which a failing source is not retried

    # -- one pass --------------------------------------------------------------------------
    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await asyncio.wait_for(fn(), timeout=self.timeout)
        except TimeoutError:
            raise AdapterUnavailable(f"no answer within {self.timeout:g}s") from None

    async def _db(self, fn: Callable[[Session], T]) -> T:
        def work() -> T:
            with session_scope(self.engine) as session:
                if self.fence is not None:
                    self.fence(session)
                return fn(session)

        return await anyio.to_thread.run_sync(work)

    async def sync_once(self, *, inventory: bool = True, max_age: float = 0.0) -> SyncReport:
        """Run one pass of this source, or share one: two passes never overlap.

        A request is answered by the latest pass if that pass started less than
        ``max_age`` seconds before it (waiting for it if it still runs) and covers what
        was asked (inventory) — unless that earlier pass fails: then the answer comes
        from a pass that starts after the request (the source may have been fixed in
        between; a person's "Sync now" must not get the error it was clicked to clear).
        Otherwise, if a pass is running, the request waits for the
        one follow-up pass, which starts when the running pass ends and which every
        request arriving meanwhile shares; if none is running, a pass starts. With the
        default ``max_age`` of 0 the answer always comes from a pass that started after
        the request; the API's on-demand syncs accept ``COALESCE_WITHIN`` (2 s), so a
        burst of them costs about one pass per 2 s however many there are. Cancelling a
        caller does not cancel a pass others wait for; ``stop`` does, and its waiters get
        SyncCancelled.
        """
        asked = time.monotonic()
        task, earlier = self._request(inventory, max_age)
        report = await self._await(task)
        if earlier and report.error is not None:
            # The shared pass began before this request and failed: the source may have
            # been fixed since (a person clicks "Sync now" once it is). Answer from a pass
            # that starts after the request, shared with whoever else asks meanwhile.
            task, _ = self._request(inventory, time.monotonic() - asked)
            report = await self._await(task)
        return report

    async def _await(self, task: asyncio.Task[SyncReport]) -> SyncReport:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if task.cancelled() and not (me is not None and me.cancelling()):
                raise SyncCancelled(self.name) from None
            raise

    def _request(self, inventory: bool, max_age: float) -> tuple[asyncio.Task[SyncReport], bool]:
        """The pass that answers a request, and whether it began before the request."""
        if self._stopped:
            raise SyncCancelled(self.name)
        if self._queued is not None:
            self._queued_inventory |= inventory
            return self._queued, False
        last = self._last
        if last is not None and not (last.done() and (last.cancelled() or last.exception())):
            recent = time.monotonic() - self._last_started < max_age
            failed = last.done() and last.result().error is not None
            if recent and not failed and (self._last_inventory or not inventory):
                return last, True
            if not last.done():
                self._queued_inventory = inventory
                self._queued = asyncio.create_task(
                    self._follow_up(last), name=f"sync-pass:{self.name}:next"
                )
                return self._queued, False
        task = asyncio.create_task(self._locked_pass(inventory), name=f"sync-pass:{self.name}")
        self._began(task, inventory)
        return task, False

    def _began(self, task: asyncio.Task[SyncReport], inventory: bool) -> None:
        self._last = task
        self._last_started = time.monotonic()
        self._last_inventory = inventory

    async def _follow_up(self, previous: asyncio.Task[SyncReport]) -> SyncReport:
        await asyncio.wait([previous])
        me = self._queued
        assert me is not None
        self._queued = None
        inventory = self._queued_inventory
        self._began(me, inventory)
        return await self._locked_pass(inventory)

    async def _locked_pass(self, inventory: bool) -> SyncReport:
        async with self._pass_lock:
            if self.slots is None:
                return await self._counted_pass(inventory)
            # Due since the earliest of: its runs, its listing if this pass lists, now (a
            # pass asked for on demand).
            due = min(
                self._next_runs,
                self._next_inventory if inventory else self._next_runs,
                time.monotonic(),
            )
            urgent, self._urgent = self._urgent, False
            async with self.slots.take(due=due, urgent=urgent):
                return await self._counted_pass(inventory)

    async def _counted_pass(self, inventory: bool) -> SyncReport:
        self.passes += 1
        if self.on_pass is not None:
            self.on_pass(self.name)
        return await self._pass(inventory=inventory)

    async def _pass(self, *, inventory: bool) -> SyncReport:
        started = time.monotonic()
        report = SyncReport(self.name, started_at=utcnow())
        try:
            if inventory and self._lists_inventory():
                jobs = await self._call(self._collect_jobs)
                edges: list[EdgeRecord] = []
                for job in jobs:
                    edges.extend(await self._call(lambda j=job: self.adapter.lineage(j)))  # type: ignore[misc]
                report.inventory = await self._db(lambda s: self._store_inventory(s, jobs))
                report.edges += await self._db(
                    lambda s: ingest.record_edges(s, source=self.name, edges=edges)
                )
                self._pending_inventory = False
            await self._sync_runs(report)
            await self._repoll(report)
        except AdapterError as exc:
            report.error = f"{type(exc).__name__}: {exc}"
            try:
                await self._failed(exc)
            except LeaseLost as lost:
                self._fenced(lost, report)
        except LeaseLost as exc:
            self._fenced(exc, report)
        except DBAPIError as exc:  # the store failed (full, gone): say which, plainly
            status, _code, message = database_error(exc)
            if status == 500:
                _log.exception("source %s: sync failed unexpectedly", self.name)
                report.error = f"internal error: {type(exc).__name__}: {exc.orig}"
            else:
                _log.error("source %s: %s (%s)", self.name, message, exc.orig)
                report.error = (
                    "the gateway's database is full (its disk or its size limit): what the "
                    "source holds beyond what is stored is read again once there is room"
                    if status == 507
                    else "the gateway's database cannot be reached: the pass is tried again"
                )
            await self._store_failed(report)
        except Exception as exc:  # a bug or a store failure must not kill the worker
            _log.exception("source %s: sync failed unexpectedly", self.name)
            report.error = f"internal error: {type(exc).__name__}: {exc}"
            self._last_delay = self.backoff.failure()
            try:
                await self._db(
                    lambda s: self._mark(
                        s, ok=False, status=HealthStatus.DEGRADED, message=report.error or ""
                    )
                )
            except Exception:  # the store itself is failing: keep the worker alive
                _log.exception("source %s: cannot record the failure", self.name)
        else:
            self.backoff.success()
            self._back_on_schedule(report)
            self._sync_health = (HealthStatus.OK, "")
            try:
                await self._db(lambda s: self._mark(s, ok=True))
                await self.check_once()
            except LeaseLost as exc:
                self._fenced(exc, report)
        report.seconds = time.monotonic() - started
        self.last_report = report
        return report

    def _back_on_schedule(self, report: SyncReport) -> None:
        """A pass succeeded, whoever asked for it: the schedule is the normal interval
        again. A source found well by an on-demand pass ("Sync now") while its loop was
        backing off would otherwise wait out the back-off (up to the circuit's 5 minutes)
        before its next scheduled pass."""
        now = time.monotonic()
        self._retry_at = 0.0
        self._next_runs = min(self._next_runs, now + self.runs_every)
        if report.inventory is not None:
            self._next_inventory = now + self.inventory_every
        else:
            self._next_inventory = min(self._next_inventory, now + self.inventory_every)
        self._wake.set()

    async def _store_failed(self, report: SyncReport) -> None:
        self._last_delay = self.backoff.failure()
        try:  # a full database may still take this one-row update; if not, the log says it
            await self._db(
                lambda s: self._mark(
                    s, ok=False, status=HealthStatus.DEGRADED, message=report.error or ""
                )
            )
        except Exception:
            _log.warning("source %s: cannot record the failure in the database", self.name)

    def _fenced(self, exc: LeaseLost, report: SyncReport) -> None:
        """Another replica holds the source now: this pass wrote nothing more; the
        manager stops this worker at its next look at the leases."""
        _log.warning("source %s: %s", self.name, exc)
        report.error = f"lease lost: {exc}"
        self._last_delay = 1.0
        if self.on_fenced is not None:
            self.on_fenced(self.name)

    def _lists_inventory(self) -> bool:
        """Whether the adapter's listing is the source's whole inventory. A push-only
        adapter (agents or tools send its jobs; it lists none) is not: applying its empty
        listing would tombstone every job that was sent."""
        caps = getattr(self.adapter, "capabilities", self.adapter.info.capabilities)
        return Capability.PUSH not in caps or bool(getattr(self.adapter, "polls", False))

    def _store_inventory(self, session: Session, jobs: list[JobRecord]) -> dict[str, int]:
        counts = ingest.apply_inventory(session, source=self.name, domain=self.domain, records=jobs)
        if counts.touched or counts.gone:
            # Detective rules look again at the jobs this pass changed, in the same
            # transaction; the rest of the estate is not read.
            evaluate_jobs(session, uids=[*counts.touched, *counts.gone])
        return counts.as_dict()

    async def _collect_jobs(self) -> list[JobRecord]:
        out: list[JobRecord] = []
        async for job in self.adapter.list_jobs():
            out.append(job)
        return out

    async def _sync_runs(self, report: SyncReport) -> None:
        cursor = await self._db(lambda s: self._cursor(s))
        for _ in range(_MAX_PAGES):
            page = await self._call(lambda c=cursor: self.adapter.list_runs(c))  # type: ignore[misc]
            result = await self._db(
                lambda s, p=page: self._store_page(s, p.runs, p.edges, p.cursor)  # type: ignore[misc]
            )
            for k, v in result.as_dict().items():
                report.runs[k] = report.runs.get(k, 0) + v
            self._notify(result.changes)
            if page.cursor is not None:
                cursor = page.cursor
            if not page.more:
                break

    def _store_page(
        self,
        session: Session,
        runs: tuple[RunRecord, ...],
        edges: tuple[EdgeRecord, ...],
        cursor: str | None,
    ) -> ingest.RunIngest:
        result = ingest.upsert_runs(session, source=self.name, domain=self.domain, records=runs)
        if edges:
            ingest.record_edges(session, source=self.name, edges=edges)
        if cursor is not None:
            row = session.get(SourceRow, self.name)
            if row is not None:
                row.runs_cursor = cursor
                session.add(row)
        return result

    async def _repoll(self, report: SyncReport) -> None:
        open_ids = await self._db(self._open_runs)
        for i in range(0, len(open_ids), _REPOLL_BATCH):
            batch = open_ids[i : i + _REPOLL_BATCH]
            runs = await self._call(lambda b=batch: self.adapter.get_runs(b))  # type: ignore[misc]
            result = await self._db(
                lambda s, r=runs: ingest.upsert_runs(  # type: ignore[misc]
                    s, source=self.name, domain=self.domain, records=r
                )
            )
            self._notify(result.changes)
            report.repolled += len(batch)

    def _notify(self, changes: list[ingest.RunChange]) -> None:
        if changes and self.on_change is not None:
            self.on_change(self.name, changes)

    def _open_runs(self, session: Session) -> list[str]:
        prefix = self.name + "/"
        rows = session.execute(
            select(col(Run.uid))
            .where(
                col(Run.source) == self.name,
                col(Run.state).not_in([s.value for s in TERMINAL_STATES]),
            )
            .order_by(col(Run.sort_at).desc())
            .limit(_REPOLL_MAX)
        ).scalars()
        return [uid[len(prefix) :] for uid in rows]

    def _cursor(self, session: Session) -> str | None:
        row = session.get(SourceRow, self.name)
        return row.runs_cursor if row else None

    async def _failed(self, exc: AdapterError) -> None:
        if isinstance(exc, AdapterAuthError):
            # Permanent until reconfigured: try again rarely, say so clearly.
            self.backoff.failures = max(self.backoff.failures + 1, self.backoff.open_after)
            delay = 300.0
            status = HealthStatus.DOWN
        else:
            retry_after = exc.retry_after if isinstance(exc, AdapterUnavailable) else None
            delay = self.backoff.failure(retry_after)
            status = HealthStatus.DOWN if self.backoff.circuit_open else HealthStatus.DEGRADED
        self._told_to_wait = isinstance(exc, AdapterUnavailable) and exc.retry_after is not None
        if isinstance(exc, InvalidResponse):
            status = HealthStatus.DEGRADED if not self.backoff.circuit_open else status
        self._last_delay = delay
        message = f"{type(exc).__name__}: {exc}"
        _log.warning("source %s: %s (next attempt in %.0fs)", self.name, message, delay)
        await self._db(lambda s: self._mark(s, ok=False, status=status, message=message))

    # -- health ---------------------------------------------------------------------------
    async def check_once(self) -> SourceHealth:
        """Ask the adapter how the source is, merge it with the last sync's outcome, store it.

        Runs after every successful sync and on its own interval. A check that fails is a
        problem of the source too; it raises only LeaseLost (another replica holds the
        source now and nothing was stored).
        """
        self._next_check = time.monotonic() + self.check_every
        try:
            health = await self._call(self.adapter.check)
        except AdapterError as exc:
            status = (
                HealthStatus.DOWN if isinstance(exc, AdapterAuthError) else HealthStatus.DEGRADED
            )
            message = f"health check failed: {type(exc).__name__}: {exc}"
            health = SourceHealth(
                status=status, message=message, problems=(HealthProblem(message=message),)
            )
        except Exception as exc:  # a bug in an adapter's check must not stop the worker
            _log.exception("source %s: health check failed unexpectedly", self.name)
            message = f"health check failed: internal error: {type(exc).__name__}: {exc}"
            health = SourceHealth(status=HealthStatus.DEGRADED, message=message)
        try:
            await self._db(lambda s: self._store_check(s, health))
        except LeaseLost:
            raise
        except Exception:  # the store itself is failing: keep the worker alive
            _log.exception("source %s: cannot record the health check", self.name)
        return health

    def _store_check(self, session: Session, health: SourceHealth) -> None:
        row = session.get(SourceRow, self.name)
        if row is None:
            return
        status, message = merge_health(self._sync_health, health)
        row.health = status.value
        row.health_message = message
        row.problems = [p.model_dump(exclude_none=True) for p in health.problems]
        if not row.problems and health.status in (HealthStatus.DEGRADED, HealthStatus.DOWN):
            row.problems = [{"message": health.message or f"the source is {health.status}"}]
        row.checked_at = utcnow()
        session.add(row)

    def _mark(
        self,
        session: Session,
        *,
        ok: bool,
        status: HealthStatus = HealthStatus.OK,
        message: str = "",
    ) -> None:
        row = session.get(SourceRow, self.name)
        if row is None:
            return
        now = utcnow()
        row.last_sync_at = now
        if ok:
            row.last_success_at = now
            row.consecutive_failures = 0
            row.health = HealthStatus.OK.value
            row.health_message = ""
            row.last_error = None
        else:
            self._sync_health = (status, message)
            row.consecutive_failures += 1
            row.health = status.value
            row.health_message = message
            row.last_error = message
        session.add(row)


_RANK = {
    HealthStatus.OK: 0,
    HealthStatus.UNKNOWN: 0,
    HealthStatus.STALE: 1,
    HealthStatus.DEGRADED: 2,
    HealthStatus.DOWN: 3,
}


def merge_health(sync: tuple[HealthStatus, str], check: SourceHealth) -> tuple[HealthStatus, str]:
    """The worse of the sync's outcome and the adapter's check, with its reason.

    A check that cannot tell (``unknown``, e.g. a source whose agent pushes) leaves the
    sync's verdict alone; when both are equally bad the sync's reason comes first.
    """
    sync_status, sync_message = sync
    if _RANK.get(check.status, 0) > _RANK.get(sync_status, 0):
        return check.status, check.message
    if sync_status == HealthStatus.OK and check.status == HealthStatus.OK:
        return HealthStatus.OK, ""
    if check.message and check.status == sync_status and check.message != sync_message:
        return sync_status, "; ".join(m for m in (sync_message, check.message) if m)
    return sync_status, sync_message


def health_of(row: SourceRow, now: datetime | None = None) -> str:
    """The health to show: a source without a recent success is stale."""
    now = now or datetime.now(UTC)
    if row.health in (HealthStatus.DOWN.value, HealthStatus.DEGRADED.value):
        return row.health
    if row.last_success_at is None:
        return row.health
    if (now - row.last_success_at).total_seconds() > row.stale_after_s:
        return HealthStatus.STALE.value
    return row.health


def lag_seconds(row: SourceRow, now: datetime | None = None) -> float | None:
    if row.last_success_at is None:
        return None
    now = now or datetime.now(UTC)
    return max(0.0, (now - row.last_success_at).total_seconds())
