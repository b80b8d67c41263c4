"""OpenLineage out: every stored run state change, sent as an OpenLineage RunEvent.

The emitter reads the ``run_event`` rows (the append-only state changes every sync, push
and action writes) after they were committed, from a position it keeps in the ``meta``
table, builds one OpenLineage RunEvent per change (two for a run first seen already
ended: START, then its end) and hands them to a transport of the ``openlineage-python``
client (HTTP or file). The sync write path never waits for it: nothing is sent inside a
write transaction, and a receiver that is down only holds the emitter, which tries again
with backoff from the first change not yet delivered.

Delivery is at least once: the position moves after the events up to it were accepted
by the transport, so an emitter stopped between a delivery and the write of its position
sends those events again when it resumes. Nothing is skipped: on PostgreSQL the ids of
rows committed by concurrent transactions may become visible out of order; a gap in the
ids is only passed once every transaction that was running when the gap was seen has
ended (the snapshot's ``xmin`` has passed the ``xmax`` seen then), so a change committed
late is never jumped over. One emitter runs per deployment (the ``openlineage-emitter``
singleton in a cluster); the position is written by compare-and-set, so an emitter that
lost its lease cannot move it backwards.

Mapping (docs/openlineage.md): job namespace ``ACCORD_OPENLINEAGE_NAMESPACE`` (the
source's name in it), job name the job's native id; runId a UUID derived from the run's
uid (stable, so every event of a run and a child's parent facet agree); inputs from the
job's ``consumes`` edges, outputs from its ``produces`` edges; the parent run facet from
the ``triggered`` edge that started the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import JobFacet, RunFacet, job_type_job, parent_run
from openlineage.client.transport import Transport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from sqlalchemy import Engine, bindparam, insert, select, text, update
from sqlmodel import col

from gateway.settings import Settings
from gateway.store.engine import session_scope
from gateway.store.tables import Dataset, Edge, Meta
from gateway.store.tables import Job as JobRow
from gateway.store.tables import Run as RunRow
from gateway.store.tables import Source as SourceRow

__all__ = [
    "CURSOR_KEY",
    "Change",
    "Emitter",
    "build_events",
    "build_transport",
    "run_id",
]

_log = logging.getLogger(__name__)
CURSOR_KEY = "openlineage.cursor"
RECEIVED_TYPE = "openlineage"
_RUN_NS = uuid.UUID("6f0b7a52-4c1e-4d0e-9d37-6f6a1b0c5e11")  # Accord's runId namespace
_TERMINAL = {
    "success": RunState.COMPLETE,
    "failed": RunState.FAIL,
    "cancelled": RunState.ABORT,
    # A skipped run ended without doing its work, and OpenLineage has no such end.
    "skipped": RunState.COMPLETE,
}


def run_id(run_uid: str) -> str:
    """The OpenLineage runId of an Accord run: a UUID derived from its uid."""
    return str(uuid.uuid5(_RUN_NS, run_uid))


def build_transport(settings: Settings) -> Transport | None:
    """The configured transport, or None when ACCORD_OPENLINEAGE_TRANSPORT is ``none``."""
    kind = settings.openlineage_transport
    if kind == "http":
        params: dict[str, Any] = {
            "url": settings.openlineage_url,
            "endpoint": settings.openlineage_endpoint,
            "timeout": settings.openlineage_timeout,
            # The emitter retries itself, from its stored position: one try per pass.
            "retry": {"total": 0, "connect": 0, "read": 0, "status": 0},
        }
        key = settings.openlineage_api_key
        if key is not None:
            params["auth"] = {"type": "api_key", "apiKey": key.get_secret_value()}
        return HttpTransport(HttpConfig.from_dict(params))
    if kind == "file":
        path = settings.openlineage_file_path
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileTransport(FileConfig(log_file_path=str(path), append=True))
    return None


@dataclass(frozen=True)
class Change:
    """One stored state change (a ``run_event`` row)."""

    id: int
    run_uid: str
    seq: int
    from_state: str | None
    to_state: str
    at: datetime


@dataclass
class _Context:
    """What the events of a batch need besides the changes, read in one go."""

    runs: dict[str, RunRow] = field(default_factory=dict)
    jobs: dict[str, JobRow] = field(default_factory=dict)
    source_types: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # job uid
    outputs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    parents: dict[str, RunRow] = field(default_factory=dict)  # run uid -> parent run


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _native(uid: str, source: str) -> str:
    return uid.removeprefix(source + "/")


def _event_types(ch: Change) -> list[RunState]:
    to = ch.to_state
    if ch.from_state is None:
        end = _TERMINAL.get(to)
        return [RunState.START] if end is None else [RunState.START, end]
    if to in _TERMINAL:
        return [_TERMINAL[to]]
    if to == "unknown":
        return [RunState.OTHER]
    return [RunState.RUNNING]  # queued again, running, waiting (a new attempt, a hold)


def build_events(
    changes: Sequence[Change], ctx: _Context, *, namespace: str, producer: str
) -> list[tuple[int, RunEvent]]:
    """The OpenLineage events of these changes, each with the id of its change.

    A change whose run is gone (a withdrawn missed run) has no event.
    """
    out: list[tuple[int, RunEvent]] = []
    for ch in changes:
        run = ctx.runs.get(ch.run_uid)
        if run is None:
            continue
        job = ctx.jobs.get(run.job_uid)
        kind = ctx.source_types.get(run.source, "")
        job_name = job.native_id if job is not None else _native(run.job_uid, run.source)
        job_facets: dict[str, JobFacet] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH",
                integration=kind.upper() or "ACCORD",
                jobType=(job.native_type.upper() if job is not None else "JOB"),
                producer=producer,
            )
        }
        run_facets: dict[str, RunFacet] = {}
        parent = ctx.parents.get(run.uid)
        if parent is not None:
            parent_job = ctx.jobs.get(parent.job_uid)
            run_facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=run_id(parent.uid)),
                job=parent_run.Job(
                    namespace=namespace.format(source=parent.source),
                    name=(
                        parent_job.native_id
                        if parent_job is not None
                        else _native(parent.job_uid, parent.source)
                    ),
                ),
                producer=producer,
            )
        inputs = [InputDataset(namespace=ns, name=n) for ns, n in ctx.inputs.get(run.job_uid, [])]
        outputs = [
            OutputDataset(namespace=ns, name=n) for ns, n in ctx.outputs.get(run.job_uid, [])
        ]
        for i, et in enumerate(_event_types(ch)):
            at = ch.at
            if i == 0 and et == RunState.START and ch.to_state in _TERMINAL:
                # First seen already ended: its START is when it began.
                at = run.started_at or run.queued_at or ch.at
            out.append(
                (
                    ch.id,
                    RunEvent(
                        eventType=et,
                        eventTime=_iso(at),
                        run=Run(runId=run_id(run.uid), facets=dict(run_facets)),
                        job=Job(
                            namespace=namespace.format(source=run.source),
                            name=job_name,
                            facets=dict(job_facets),
                        ),
                        inputs=list(inputs),
                        outputs=list(outputs),
                        producer=producer,
                    ),
                )
            )
    return out


def _load_context(session: Any, changes: Sequence[Change]) -> _Context:
    ctx = _Context()
    uids = sorted({c.run_uid for c in changes})
    if not uids:
        return ctx
    ctx.runs = {
        r.uid: r for r in session.execute(select(RunRow).where(col(RunRow.uid).in_(uids))).scalars()
    }
    # The run each run was started by (a ``triggered`` edge into it).
    parent_of: dict[str, str] = {}
    for src, dst in session.execute(
        select(Edge.src_uid, Edge.dst_uid)  # type: ignore[call-overload]
        .where(col(Edge.kind) == "triggered", col(Edge.dst_uid).in_(uids))
        .order_by(col(Edge.first_seen), col(Edge.id))
    ):
        parent_of.setdefault(dst, src)
    if parent_of:
        parents = {
            r.uid: r
            for r in session.execute(
                select(RunRow).where(col(RunRow.uid).in_(sorted(set(parent_of.values()))))
            ).scalars()
        }
        ctx.parents = {u: parents[p] for u, p in parent_of.items() if p in parents}
    job_uids = sorted(
        {r.job_uid for r in ctx.runs.values()} | {p.job_uid for p in ctx.parents.values()}
    )
    ctx.jobs = {
        j.uid: j
        for j in session.execute(select(JobRow).where(col(JobRow.uid).in_(job_uids))).scalars()
    }
    sources = sorted({r.source for r in ctx.runs.values()})
    ctx.source_types = dict(
        session.execute(
            select(SourceRow.name, SourceRow.type).where(col(SourceRow.name).in_(sources))  # type: ignore[call-overload]
        ).all()
    )
    # produces: job -> dataset; consumes: dataset -> job.
    for job_uid, ns, name in session.execute(
        select(Edge.src_uid, Dataset.namespace, Dataset.name)  # type: ignore[call-overload]
        .join(Dataset, col(Dataset.uid) == col(Edge.dst_uid))
        .where(col(Edge.kind) == "produces", col(Edge.src_uid).in_(job_uids))
        .order_by(col(Dataset.namespace), col(Dataset.name))
    ):
        ctx.outputs.setdefault(job_uid, []).append((ns, name))
    for job_uid, ns, name in session.execute(
        select(Edge.dst_uid, Dataset.namespace, Dataset.name)  # type: ignore[call-overload]
        .join(Dataset, col(Dataset.uid) == col(Edge.src_uid))
        .where(col(Edge.kind) == "consumes", col(Edge.dst_uid).in_(job_uids))
        .order_by(col(Dataset.namespace), col(Dataset.name))
    ):
        ctx.inputs.setdefault(job_uid, []).append((ns, name))
    return ctx


class Emitter:
    """Sends the stored state changes as OpenLineage events (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        transport: Transport | None = None,
        leader: Callable[[], bool] | None = None,
        every: float = 2.0,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.transport = transport if transport is not None else build_transport(settings)
        self.leader = leader
        self.every = every
        self.sent = 0  # events the transport accepted (metrics, tests)
        self.failures = 0
        self.last_error: str | None = None
        self._gap: tuple[int, int] | None = None  # (first missing id, snapshot xmax then)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accord-openlineage")
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def enabled(self) -> bool:
        return self.transport is not None

    # -- the position -------------------------------------------------------------------

    def _cursor(self) -> int:
        """The id of the last change delivered, made on first use (``START_AT``)."""
        with session_scope(self.engine, write=False) as s:
            row = s.get(Meta, CURSOR_KEY)
            if row is not None:
                return int(row.value)
        start = 0
        if self.settings.openlineage_start_at == "now":
            with session_scope(self.engine, write=False) as s:
                start = int(
                    s.execute(text("SELECT COALESCE(MAX(id), 0) FROM run_event")).scalar_one()
                )
        with session_scope(self.engine) as s:
            if s.get(Meta, CURSOR_KEY) is None:
                s.execute(insert(Meta).values(key=CURSOR_KEY, value=str(start)))
                return start
            row = s.get(Meta, CURSOR_KEY)
            assert row is not None
            return int(row.value)

    def _advance(self, old: int, new: int) -> bool:
        with session_scope(self.engine) as s:
            res = s.execute(
                update(Meta)
                .where(col(Meta.key) == CURSOR_KEY, col(Meta.value) == str(old))
                .values(value=str(new))
            )
            return bool(res.rowcount == 1)  # type: ignore[attr-defined]

    def backlog(self, session: Any) -> int:
        """Stored changes after the delivered position (an upper bound: ids may have
        gaps). Read-only; 0 before the emitter made its position."""
        row = session.get(Meta, CURSOR_KEY)
        if row is None:
            return 0
        top = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM run_event")).scalar_one()
        return max(0, int(top) - int(row.value))

    # -- one pass -----------------------------------------------------------------------

    def _read(self, cursor: int) -> list[Change]:
        """Changes after ``cursor`` that are safe to send in id order."""
        limit = self.settings.openlineage_batch
        with session_scope(self.engine, write=False) as s:
            pg = s.get_bind().dialect.name == "postgresql"
            extra = ", pg_snapshot_xmax(pg_current_snapshot())::text" if pg else ""
            rows = s.execute(
                text(
                    "SELECT id, run_uid, seq, from_state, to_state, at"
                    f"{extra} FROM run_event WHERE id > :c ORDER BY id LIMIT :n"
                ).bindparams(bindparam("c"), bindparam("n")),
                {"c": cursor, "n": limit},
            ).all()
            out: list[Change] = []
            expected = cursor + 1
            for r in rows:
                if pg and r[0] != expected and not self._gap_closed(s, expected, int(r[6])):
                    break
                at = r[5]
                if isinstance(at, str):  # SQLite through a text() query
                    at = datetime.fromisoformat(at)
                out.append(Change(int(r[0]), r[1], int(r[2]), r[3], r[4], at))
                expected = int(r[0]) + 1
            if out and self._gap is not None and self._gap[0] < expected:
                self._gap = None
            return out

    def _gap_closed(self, session: Any, missing: int, xmax: int) -> bool:
        """Whether the ids from ``missing`` on that are not visible never will be: every
        transaction running when the gap was first seen has ended."""
        if self._gap is None or self._gap[0] != missing:
            self._gap = (missing, xmax)
        xmin = int(
            session.execute(
                text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
            ).scalar_one()
        )
        return xmin >= self._gap[1]

    def run_once(self) -> int:
        """One pass (blocking): read, build, deliver, move the position. Returns how many
        changes it delivered; raises what the transport raised (nothing moved past it)."""
        if self.transport is None:
            return 0
        cursor = self._cursor()
        changes = self._read(cursor)
        if not changes:
            return 0
        with session_scope(self.engine, write=False) as s:
            ctx = _load_context(s, changes)
        if not self.settings.openlineage_emit_received:
            received = {
                r.uid for r in ctx.runs.values() if ctx.source_types.get(r.source) == RECEIVED_TYPE
            }
            changes_to_send = [c for c in changes if c.run_uid not in received]
        else:
            changes_to_send = list(changes)
        events = build_events(
            changes_to_send,
            ctx,
            namespace=self.settings.openlineage_namespace,
            producer=self.settings.openlineage_producer,
        )
        by_change: dict[int, list[RunEvent]] = {}
        for change_id, event in events:
            by_change.setdefault(change_id, []).append(event)
        done = cursor  # every event of the changes up to this id was accepted
        try:
            for ch in changes:
                for event in by_change.get(ch.id, ()):
                    self.transport.emit(event)
                    self.sent += 1
                done = ch.id
        finally:
            # Keep what was delivered, also when a later event failed.
            if done > cursor and not self._advance(cursor, done):
                _log.warning("the OpenLineage position was moved by another emitter")
        return len(changes)

    # -- the loop -----------------------------------------------------------------------

    def poke(self) -> None:
        """Wake the loop now (thread-safe): runs changed."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        backoff = 0.0
        while True:
            wait = self.every
            if self.leader is None or self.leader():
                try:
                    n = await loop.run_in_executor(self._pool, self.run_once)
                    backoff = 0.0
                    self.last_error = None
                    if n >= self.settings.openlineage_batch:
                        wait = 0.0  # more to send
                    elif self._gap is not None:
                        wait = min(wait, 0.2)  # a concurrent commit is about to land
                except Exception as exc:
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    backoff = min(max(1.0, backoff * 2), self.settings.openlineage_retry_max)
                    wait = backoff
                    _log.warning(
                        "OpenLineage delivery failed (%s); trying again in %.0f s",
                        self.last_error,
                        wait,
                    )
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    if backoff:
                        await asyncio.sleep(wait)  # a poke must not hammer a receiver that is down
                    else:
                        await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.clear()

    def start(self) -> None:
        if self.transport is None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="openlineage-emitter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, functools.partial(self._pool.shutdown, wait=True))
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()
