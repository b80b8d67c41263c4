"""Apache Airflow 3 as an Accord source.

What maps to what:

* a DAG is a job (``native_id`` = dag id); its tags become labels (``team:data`` or
  ``team=data`` → ``{"team": "data"}``, ``nightly`` → ``{"nightly": ""}``);
* a DAG run is a run, ``native_id`` = ``"<dag_id>/<dag_run_id>"`` (a dag id never holds a
  ``/``); its task instances are its steps (mapped tasks as ``task[index]``); its attempt
  is the highest try number of its tasks, so a cleared (retried) run counts up;
* assets are datasets: a task's outlet is ``produces`` (DAG → dataset), an inlet or a
  schedule on the asset is ``consumes`` (dataset → DAG), a DAG scheduled on an asset
  ``depends_on`` every DAG producing it, and an asset-triggered run is ``triggered`` by
  the runs whose asset events started it;
* a run started by a ``TriggerDagRunOperator`` task is ``triggered`` by the run of that
  task: the child DAG is the task's rendered ``trigger_dag_id``, the child run its
  ``trigger_run_id`` XCom (read only for task instances of that operator, once);
* a run cancelled through Accord is marked failed in Airflow (which has no cancelled state
  for DAG runs) with the note "Cancelled through Accord"; such a run is ``cancelled``, its
  native state ``failed``.

Runs are read incrementally across all DAGs (``/dags/~/dagRuns``) by ``updated_at``. The
API filters on ``updated_at`` but does not return it, so the cursor is the server's clock
(its ``Date`` header) at the start of a scan, less an overlap that covers transactions
still open then; runs in the overlap are reported again, which the gateway ignores. Pages
are read by key (Airflow 3.3+) or by offset (older 3.x).
"""

from __future__ import annotations

import bisect
import json
import logging
import re
from collections import OrderedDict
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlsplit

import anyio
from pydantic import BaseModel

from adapters.base import AdapterContext, BaseAdapter
from gateway.model import (
    AdapterAuthError,
    AdapterError,
    AdapterInfo,
    AdapterUnavailable,
    Capability,
    Conflict,
    EdgeKind,
    EdgeRecord,
    HealthStatus,
    InvalidResponse,
    JobRecord,
    NodeKind,
    NodeRef,
    NotFound,
    RunPage,
    RunRecord,
    RunState,
    Schedule,
    SecretRef,
    SourceHealth,
    StepRecord,
)
from gateway.model.calendar import Calendar, calendar_from_cron, from_minute, to_minute

from . import states
from .client import (
    AirflowAuthFailed,
    AirflowBadResponse,
    AirflowClient,
    AirflowError,
    AirflowNotFound,
    AirflowRejected,
    AirflowUnreachable,
    Asset,
    Credentials,
    Dag,
    DagRun,
    PasswordLogin,
    StaticToken,
    TaskInstance,
)
from .config import AirflowConfig, PasswordAuth

__all__ = ["AirflowAdapter", "AirflowConfig"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

# Runs updated this long before a scan began are read again by the next scan: it covers
# scheduler transactions that were still open (their rows invisible) when the scan ran,
# and a small difference between the clocks of the API server and the scheduler.
CURSOR_OVERLAP = timedelta(seconds=30)
_MAX_LIST_ATTEMPTS = 3
_MAX_PAGES = 10_000
_TRIGGER_CACHE = 5_000
_STEPS_CACHE = 10_000
_CONCURRENCY = 8  # requests in flight at once while reading task instances of a page
_CANCEL_NOTE = "Cancelled through Accord"
# Operators whose task instances start another DAG's run, and the XCom naming that run.
_TRIGGER_OPERATORS = frozenset({"TriggerDagRunOperator"})
_TRIGGER_XCOM = "trigger_run_id"
# Task states in which a triggering task has run (and may have pushed its XCom).
_TRIGGER_DONE = frozenset({"running", "deferred", "success", "failed", "up_for_retry"})
_TERMINAL_TI = frozenset({"success", "failed"})
_TAG_KV = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-/]*)[:=](.*)$")


_AIRFLOW_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


class AirflowAdapter(BaseAdapter):
    """Airflow 3 through its REST API v2 (``apache-airflow-client``)."""

    info: ClassVar[AdapterInfo] = AdapterInfo(
        type="airflow",
        display_name="Apache Airflow",
        capabilities=frozenset(
            {
                Capability.TRIGGER,
                Capability.TRIGGER_PARAMS,
                Capability.CANCEL,
                Capability.PAUSE,
                Capability.RESUME,
                Capability.RETRY,
                Capability.STEPS,
                Capability.LINEAGE,
            }
        ),
        description="DAGs, DAG runs, task instances and asset lineage of Apache Airflow 3.",
    )
    config_model: ClassVar[type[BaseModel]] = AirflowConfig

    @classmethod
    def schedule_calendar(
        cls,
        *,
        job_id: str,
        expression: str,
        timezone: str | None,
        next_run_at: datetime | None,
    ) -> Calendar | None:
        """A cron timetable (the API's ``timetable_summary``: ``0 2 * * *``, ``@daily``).

        The API does not report a DAG's time zone, so the summary is read in UTC and
        shifted to agree with the ``next_dagrun_run_after`` Airflow reported: exact for
        DAGs in UTC or a zone without DST; across a DST change of the DAG's zone the later
        times can be an hour off until Airflow reports the next run. Asset, manual and
        interval timetables have no calendar (the reported next run is used alone)."""
        return _airflow_calendar(expression, next_run_at)

    config: AirflowConfig

    def __init__(self, ctx: AdapterContext, config: AirflowConfig) -> None:
        super().__init__(ctx, config)
        self.client = AirflowClient(
            config.url,
            self._credentials(config),
            timeout=ctx.timeout,
            verify_tls=config.verify_tls,
        )
        self._assets: list[Asset] | None = None
        # finished run -> (what it looked like, its task instances)
        self._steps: OrderedDict[tuple[str, str], tuple[tuple[Any, ...], list[TaskInstance]]] = (
            OrderedDict()
        )
        # asset-triggered run -> the edges to the runs that started it (they never change)
        self._triggered_by: OrderedDict[tuple[str, str], tuple[EdgeRecord, ...]] = OrderedDict()
        # TriggerDagRunOperator task instance -> the edge to the run it started, or None
        # when it finished without starting one (neither changes once known)
        self._operator_edges: OrderedDict[tuple[str, str, str, int, int], EdgeRecord | None] = (
            OrderedDict()
        )

    def _credentials(self, config: AirflowConfig) -> Credentials:
        auth = config.auth
        if isinstance(auth, PasswordAuth):
            return PasswordLogin(auth.username, partial(self._secret, auth.password_from))
        return StaticToken(partial(self._secret, auth.token_from))

    def _secret(self, ref: SecretRef) -> str:
        try:
            return self.ctx.secrets(ref).get_secret_value()
        except LookupError as exc:
            raise AirflowAuthFailed(
                f"the secret {ref.describe()} is not available: {exc}"
            ) from None

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """Turn the client's errors into Accord's."""
        try:
            yield
        except AirflowUnreachable as exc:
            raise AdapterUnavailable(str(exc), retry_after=exc.retry_after) from None
        except AirflowAuthFailed as exc:
            raise AdapterAuthError(str(exc)) from None
        except AirflowNotFound as exc:
            raise NotFound(str(exc)) from None
        except AirflowBadResponse as exc:
            raise InvalidResponse(str(exc)) from None
        except AirflowRejected as exc:
            raise AdapterError(str(exc)) from None
        except AirflowError as exc:  # pragma: no cover - every subclass is handled above
            raise AdapterError(str(exc)) from None

    async def _call(self, fn: Callable[[], T]) -> T:
        # The client blocks: its calls run in this source's own threads (never AnyIO's
        # default pool, which the API shares), and a caller that gives up stops waiting.
        with self._mapped():
            return await self.threads.run(fn)

    def _require(self, dag_id: str) -> None:
        if not self.config.wants(dag_id):
            raise NotFound(f"DAG {dag_id!r} is not governed by source {self.ctx.source!r}")

    def _split(self, run_id: str) -> tuple[str, str]:
        dag_id, sep, dag_run_id = run_id.partition("/")
        if not sep or not dag_id or not dag_run_id:
            raise NotFound(f"{run_id!r} is not an Airflow run id (expected <dag_id>/<run_id>)")
        self._require(dag_id)
        return dag_id, dag_run_id

    # -- health ---------------------------------------------------------------------------
    async def check(self) -> SourceHealth:
        health = await self._call(self.client.health)
        version = await self._call(self.client.version)
        page = await self._call(partial(self.client.dags, offset=0, limit=1))
        parts = {
            name: (health.get(name) or {}).get("status")
            for name in ("metadatabase", "scheduler", "dag_processor", "triggerer")
            if isinstance(health.get(name), dict)
        }
        details: dict[str, Any] = {
            "version": version.get("version"),
            "dags": page.total,
            **{f"{k}_status": v for k, v in parts.items()},
        }
        if parts.get("metadatabase") not in (None, "healthy"):
            return SourceHealth(
                status=HealthStatus.DOWN,
                message="Airflow's metadata database is unhealthy",
                details=details,
            )
        sick = [k for k in ("scheduler", "dag_processor") if parts.get(k) == "unhealthy"]
        if sick:
            return SourceHealth(
                status=HealthStatus.DEGRADED,
                message=f"Airflow reports an unhealthy {' and '.join(sick)}",
                details=details,
            )
        return SourceHealth(
            status=HealthStatus.OK, message=f"Airflow {details['version']}", details=details
        )

    # -- inventory ------------------------------------------------------------------------
    async def list_jobs(self) -> AsyncIterator[JobRecord]:
        self._assets = None  # lineage() reads assets afresh once per inventory pass
        dags = await self._all_dags()
        for dag in dags:
            if self.config.wants(dag.dag_id):
                yield self._job(dag)

    async def _all_dags(self) -> list[Dag]:
        """Every DAG, consistently: a listing that changed while it was paged is repeated."""
        size = self.config.page_size
        for _ in range(_MAX_LIST_ATTEMPTS):
            seen: dict[str, Dag] = {}
            totals: set[int | None] = set()
            offset = 0
            for _ in range(_MAX_PAGES):
                page = await self._call(partial(self.client.dags, offset=offset, limit=size))
                for dag in page.items:
                    seen[dag.dag_id] = dag
                totals.add(page.total)
                offset += len(page.items)
                if (
                    not page.items
                    or len(page.items) < size
                    or (page.total is not None and offset >= page.total)
                ):
                    break
            # Every page must tell the same total, and it must be what was read: otherwise a
            # DAG appeared or went away between pages and one may have been skipped.
            if totals == {None} or totals == {len(seen)}:
                return sorted(seen.values(), key=lambda d: d.dag_id)
        raise AdapterUnavailable(
            f"the DAG list kept changing while it was read ({_MAX_LIST_ATTEMPTS} attempts)",
            retry_after=5.0,
        )

    def _job(self, dag: Dag) -> JobRecord:
        attributes: dict[str, Any] = {
            k: v
            for k, v in {
                "fileloc": dag.fileloc,
                "relative_fileloc": dag.relative_fileloc,
                "bundle_name": dag.bundle_name,
                "max_active_runs": dag.max_active_runs,
                "max_active_tasks": dag.max_active_tasks,
                "tags": sorted(t.name for t in dag.tags),
            }.items()
            if v is not None
        }
        schedule = None
        if dag.timetable_summary or dag.timetable_description:
            schedule = Schedule(expression=dag.timetable_summary, text=dag.timetable_description)
        return JobRecord(
            native_id=dag.dag_id,
            name=dag.dag_display_name or dag.dag_id,
            native_type="dag",
            schedule=schedule,
            next_run_at=None if dag.is_paused else dag.next_dagrun_run_after,
            paused=dag.is_paused,
            owners=tuple(dict.fromkeys(o for o in dag.owners if o)),
            labels=_labels(t.name for t in dag.tags),
            url=f"{self.config.links_base}/dags/{quote(dag.dag_id, safe='')}",
            description=dag.description or None,
            attributes=attributes,
            problems=("the DAG file has import errors",) if dag.has_import_errors else (),
        )

    # -- lineage --------------------------------------------------------------------------
    async def _all_assets(self) -> list[Asset]:
        if self._assets is None:
            size = self.config.page_size
            assets: list[Asset] = []
            for _ in range(_MAX_PAGES):
                page = await self._call(partial(self.client.assets, offset=len(assets), limit=size))
                assets.extend(page.items)
                if (
                    not page.items
                    or len(page.items) < size
                    or (page.total is not None and len(assets) >= page.total)
                ):
                    break
            self._assets = assets
        return self._assets

    def dataset(self, uri: str) -> NodeRef:
        """The dataset of an asset URI, named the OpenLineage way where the URI allows."""
        parts = urlsplit(uri)
        if parts.scheme == "file":
            namespace, name = "file", parts.path or uri
        elif parts.scheme and parts.netloc:
            namespace = f"{parts.scheme}://{parts.netloc}"
            name = parts.path.lstrip("/") or "/"
            if parts.query:
                name += f"?{parts.query}"
        else:
            # A bare name only means something inside this Airflow.
            namespace, name = f"airflow://{self.ctx.source}", uri
        return NodeRef(kind=NodeKind.DATASET, id=name, namespace=namespace)

    async def lineage(self, job: JobRecord) -> list[EdgeRecord]:
        me = job.native_id
        node = NodeRef(kind=NodeKind.JOB, id=me)
        found: dict[tuple[EdgeKind, NodeRef, NodeRef], list[str]] = {}

        def add(kind: EdgeKind, src: NodeRef, dst: NodeRef, why: str) -> None:
            found.setdefault((kind, src, dst), []).append(why)

        for asset in await self._all_assets():
            ds = self.dataset(asset.uri)
            label = (
                f"asset {asset.name!r} ({asset.uri})"
                if asset.name != asset.uri
                else f"asset {asset.uri}"
            )
            outlets = sorted(t.task_id for t in asset.producing_tasks if t.dag_id == me)
            if outlets:
                add(EdgeKind.PRODUCES, node, ds, f"{label} is an outlet of {', '.join(outlets)}")
            inlets = sorted(t.task_id for t in asset.consuming_tasks if t.dag_id == me)
            if inlets:
                add(EdgeKind.CONSUMES, ds, node, f"{label} is an inlet of {', '.join(inlets)}")
            if any(d.dag_id == me for d in asset.scheduled_dags):
                add(EdgeKind.CONSUMES, ds, node, f"the DAG is scheduled on {label}")
                producers = sorted({t.dag_id for t in asset.producing_tasks} - {me})
                for producer in producers:
                    if self.config.wants(producer):
                        add(
                            EdgeKind.DEPENDS_ON,
                            NodeRef(kind=NodeKind.JOB, id=producer),
                            node,
                            f"scheduled on {label}, which {producer} produces",
                        )
        return [
            EdgeRecord(kind=kind, src=src, dst=dst, evidence="; ".join(why))
            for (kind, src, dst), why in found.items()
        ]

    # -- runs -----------------------------------------------------------------------------
    async def list_runs(self, cursor: str | None) -> RunPage:
        scan = _Scan.decode(cursor) if cursor else None
        if scan is None:
            scan = _Scan(since=datetime.now(UTC) - self.config.history)
        first = scan.next_since is None
        size = self.config.page_size
        if scan.offset is not None:
            page = await self._call(
                partial(
                    self.client.dag_runs, updated_since=scan.since, limit=size, offset=scan.offset
                )
            )
        else:
            page = await self._call(
                partial(
                    self.client.dag_runs,
                    updated_since=scan.since,
                    limit=size,
                    cursor=scan.page or "",
                )
            )
        if first:
            clock = page.server_time or datetime.now(UTC)
            scan.next_since = max(scan.since, clock - CURSOR_OVERLAP)
        runs = [r for r in page.items if self.config.wants(r.dag_id)]
        records, edges = await self._records(runs, with_edges=True)
        if page.keyset:
            more = page.next_cursor is not None and bool(page.items)
            following = _Scan(since=scan.since, next_since=scan.next_since, page=page.next_cursor)
        else:
            offset = (scan.offset or 0) + len(page.items)
            more = len(page.items) >= size and (page.total is None or offset < page.total)
            following = _Scan(since=scan.since, next_since=scan.next_since, offset=offset)
        assert scan.next_since is not None
        new_cursor = following if more else _Scan(since=scan.next_since)
        return RunPage(
            runs=tuple(records), cursor=new_cursor.encode(), more=more, edges=tuple(edges)
        )

    async def get_runs(self, native_ids: Sequence[str]) -> list[RunRecord]:
        keys: list[tuple[str, str]] = []
        for native_id in dict.fromkeys(native_ids):
            try:
                keys.append(self._split(native_id))
            except NotFound:
                continue  # not a run of this source: left out, as the contract says
        found = await self._gather([partial(self._one_run, d, r) for d, r in keys])
        records, _ = await self._records([r for r in found if r is not None], with_edges=False)
        return records

    async def _one_run(self, dag_id: str, run_id: str) -> DagRun | None:
        try:
            return await self._call(partial(self.client.dag_run, dag_id, run_id))
        except NotFound:
            return None

    async def _records(
        self, runs: Sequence[DagRun], *, with_edges: bool
    ) -> tuple[list[RunRecord], list[EdgeRecord]]:
        tis = await self._task_instances(runs)
        records = [self._run(r, tis[(r.dag_id, r.dag_run_id)]) for r in runs]
        edges: list[EdgeRecord] = []
        if with_edges:
            found = await self._gather(
                [partial(self._trigger_edges, r) for r in runs if r.run_type == "asset_triggered"]
            )
            for more in found:
                edges.extend(more)
            # Only task instances of a triggering operator cost a request (their XCom).
            triggering = [
                ti
                for r in runs
                for ti in tis[(r.dag_id, r.dag_run_id)]
                if ti.operator in _TRIGGER_OPERATORS and ti.state in _TRIGGER_DONE
            ]
            for edge in await self._gather([partial(self._operator_edge, ti) for ti in triggering]):
                if edge is not None:
                    edges.append(edge)
        return records, edges

    async def _operator_edge(self, ti: TaskInstance) -> EdgeRecord | None:
        """The run a TriggerDagRunOperator task started: its ``trigger_run_id`` XCom.

        The child DAG is the task's rendered ``trigger_dag_id`` (part of the task instance
        already read); only the XCom costs a request, once per task try.
        """
        key = (ti.dag_id, ti.dag_run_id, ti.task_id, ti.map_index, ti.try_number)
        if key in self._operator_edges:
            self._operator_edges.move_to_end(key)
            return self._operator_edges[key]
        child_dag = (ti.rendered_fields or {}).get("trigger_dag_id")
        edge: EdgeRecord | None = None
        if isinstance(child_dag, str) and child_dag and self.config.wants(child_dag):
            try:
                value = await self._call(
                    partial(
                        self.client.xcom_value,
                        ti.dag_id,
                        ti.dag_run_id,
                        ti.task_id,
                        _TRIGGER_XCOM,
                        map_index=ti.map_index,
                    )
                )
            except NotFound:
                value = None
                if ti.state not in _TERMINAL_TI:
                    return None  # not pushed yet: ask again when the run is read next
            except (AdapterUnavailable, InvalidResponse) as exc:
                # Lineage must not hold up the runs; the run is read again later.
                _log.info("no XCom %s of %s/%s yet: %s", _TRIGGER_XCOM, ti.dag_id, ti.task_id, exc)
                return None
            child_run = _xcom_text(value)
            if child_run:
                task = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
                edge = EdgeRecord(
                    kind=EdgeKind.TRIGGERED,
                    src=NodeRef(kind=NodeKind.RUN, id=f"{ti.dag_id}/{ti.dag_run_id}"),
                    dst=NodeRef(kind=NodeKind.RUN, id=f"{child_dag}/{child_run}"),
                    evidence=(
                        f"task {task} ({ti.operator}) triggered DAG {child_dag}: "
                        f"XCom {_TRIGGER_XCOM} = {child_run}"
                    ),
                )
        self._operator_edges[key] = edge
        while len(self._operator_edges) > _TRIGGER_CACHE:
            self._operator_edges.popitem(last=False)
        return edge

    async def _task_instances(
        self, runs: Sequence[DagRun]
    ) -> dict[tuple[str, str], list[TaskInstance]]:
        """Task instances of each run; a finished run seen unchanged before is not asked again."""
        out: dict[tuple[str, str], list[TaskInstance]] = {}
        todo: list[DagRun] = []
        for run in runs:
            key = (run.dag_id, run.dag_run_id)
            cached = self._steps.get(key)
            if cached is not None and cached[0] == _signature(run):
                self._steps.move_to_end(key)
                out[key] = cached[1]
            else:
                todo.append(run)
        fetched = await self._gather([partial(self._run_task_instances, r) for r in todo])
        for run, tis in zip(todo, fetched, strict=True):
            key = (run.dag_id, run.dag_run_id)
            out[key] = tis
            if states.run_state(run.state).terminal:
                self._steps[key] = (_signature(run), tis)
                while len(self._steps) > _STEPS_CACHE:
                    self._steps.popitem(last=False)
        return out

    async def _run_task_instances(self, run: DagRun) -> list[TaskInstance]:
        size = self.config.page_size
        tis: list[TaskInstance] = []
        for _ in range(_MAX_PAGES):
            try:
                page = await self._call(
                    partial(
                        self.client.task_instances,
                        run.dag_id,
                        run.dag_run_id,
                        offset=len(tis),
                        limit=size,
                    )
                )
            except NotFound:  # deleted since it was listed
                return tis
            tis.extend(page.items)
            if (
                not page.items
                or len(page.items) < size
                or (page.total is not None and len(tis) >= page.total)
            ):
                break
        return tis

    async def _gather(self, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run calls a few at a time; the first error ends the rest and is raised."""
        results: dict[int, T] = {}
        errors: list[AdapterError] = []
        slots = anyio.Semaphore(min(_CONCURRENCY, self.threads.size))

        async def one(i: int, call: Callable[[], Awaitable[T]], scope: anyio.CancelScope) -> None:
            async with slots:
                try:
                    results[i] = await call()
                except AdapterError as exc:
                    errors.append(exc)
                    scope.cancel()

        async with anyio.create_task_group() as tg:
            for i, call in enumerate(calls):
                tg.start_soon(one, i, call, tg.cancel_scope)
        if errors:
            raise errors[0]
        return [results[i] for i in range(len(calls))]

    async def _trigger_edges(self, run: DagRun) -> tuple[EdgeRecord, ...]:
        key = (run.dag_id, run.dag_run_id)
        cached = self._triggered_by.get(key)
        if cached is not None:
            return cached
        try:
            events = await self._call(
                partial(self.client.upstream_asset_events, run.dag_id, run.dag_run_id)
            )
        except NotFound:
            events = []
        except (AdapterUnavailable, InvalidResponse) as exc:
            # Lineage must not hold up the runs. Airflow 3.3 answers 500 here while a run
            # the events created has not started yet; the run is read again when it moves
            # on, and its edges with it.
            _log.info("no asset events for run %s/%s yet: %s", run.dag_id, run.dag_run_id, exc)
            return ()
        found: dict[str, list[str]] = {}
        for ev in events:
            if not ev.source_dag_id or not ev.source_run_id:
                continue  # an event posted through the API, not by a task
            if not self.config.wants(ev.source_dag_id):
                continue
            src = f"{ev.source_dag_id}/{ev.source_run_id}"
            what = ev.uri or ev.name or f"asset {ev.asset_id}"
            task = f" by task {ev.source_task_id}" if ev.source_task_id else ""
            found.setdefault(src, []).append(f"asset event {ev.id} on {what}{task}")
        dst = NodeRef(kind=NodeKind.RUN, id=f"{run.dag_id}/{run.dag_run_id}")
        edges = tuple(
            EdgeRecord(
                kind=EdgeKind.TRIGGERED,
                src=NodeRef(kind=NodeKind.RUN, id=src),
                dst=dst,
                evidence="; ".join(why),
            )
            for src, why in sorted(found.items())
        )
        self._triggered_by[key] = edges
        while len(self._triggered_by) > _TRIGGER_CACHE:
            self._triggered_by.popitem(last=False)
        return edges

    def _run(self, run: DagRun, tis: Sequence[TaskInstance]) -> RunRecord:
        steps = sorted(
            (
                StepRecord(
                    name=ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]",
                    state=states.task_state(ti.state),
                    native_state=ti.state,
                    started_at=ti.start_date,
                    ended_at=ti.end_date,
                    attempt=max(1, ti.try_number),
                )
                for ti in tis
            ),
            key=lambda s: (
                s.started_at is None,
                s.started_at or datetime.min.replace(tzinfo=UTC),
                s.name,
            ),
        )
        attempt = max((ti.try_number for ti in tis), default=1)
        failed = [s.name for s in steps if s.native_state == "failed"]
        message = "; ".join(
            part
            for part in (
                run.note,
                f"failed tasks: {', '.join(failed)}" if failed else None,
            )
            if part
        )
        state = states.run_state(run.state)
        if state == RunState.FAILED and run.note == _CANCEL_NOTE:
            # Airflow marks a cancelled run failed; the note Accord left says what it was.
            state = RunState.CANCELLED
        return RunRecord(
            native_id=f"{run.dag_id}/{run.dag_run_id}",
            job_native_id=run.dag_id,
            state=state,
            native_state=run.state,
            trigger=states.trigger_of(run.run_type, run.triggered_by),
            actor=run.triggering_user_name,
            queued_at=run.queued_at,
            started_at=run.start_date,
            ended_at=run.end_date,
            attempt=max(1, attempt),
            url=(
                f"{self.config.links_base}/dags/{quote(run.dag_id, safe='')}"
                f"/runs/{quote(run.dag_run_id, safe='')}"
            ),
            message=message or None,
            steps=tuple(steps),
        )

    # -- actions --------------------------------------------------------------------------
    async def trigger(self, job_id: str, params: Mapping[str, Any]) -> RunRecord:
        self._require(job_id)
        try:
            conf = json.loads(json.dumps(dict(params)))
        except (TypeError, ValueError) as exc:
            raise AdapterError(f"trigger parameters must be JSON values: {exc}") from None
        run = await self._call(partial(self.client.trigger, job_id, conf))
        record = self._run(run, [])
        return record.model_copy(update={"steps": None})

    async def pause(self, job_id: str) -> None:
        self._require(job_id)
        await self._call(partial(self.client.set_paused, job_id, True))

    async def resume(self, job_id: str) -> None:
        self._require(job_id)
        await self._call(partial(self.client.set_paused, job_id, False))

    async def cancel(self, run_id: str) -> None:
        dag_id, dag_run_id = self._split(run_id)
        run = await self._call(partial(self.client.dag_run, dag_id, dag_run_id))
        if states.run_state(run.state).terminal:
            raise Conflict(f"run {run_id} has already finished ({run.state})")
        # Airflow stops a run by marking it failed; its running tasks are stopped with it.
        note = None if run.note else _CANCEL_NOTE
        await self._call(partial(self.client.set_run_state, dag_id, dag_run_id, "failed", note))

    async def retry(self, run_id: str) -> RunRecord:
        dag_id, dag_run_id = self._split(run_id)
        before = await self.get_runs([run_id])
        if not before:
            raise NotFound(f"Airflow has no run {run_id}")
        if before[0].state != RunState.FAILED:
            raise Conflict(
                f"only a failed run can be retried; run {run_id} is {before[0].native_state}"
            )
        await self._call(partial(self.client.clear_run, dag_id, dag_run_id))
        run = await self._call(partial(self.client.dag_run, dag_id, dag_run_id))
        # Airflow keeps the run id; the new attempt shows in the tasks' try numbers once
        # they are scheduled again.
        return self._run(run, []).model_copy(
            update={"attempt": before[0].attempt + 1, "steps": None}
        )

    async def aclose(self) -> None:
        await super().aclose()
        # Drops idle pooled connections only (quick); not behind calls that still hang.
        self.client.close()


def _xcom_text(value: Any) -> str | None:
    """An XCom holding a string, whether Airflow answered it as JSON text or as a value."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value or None
        return decoded if isinstance(decoded, str) and decoded else (value or None)
    return None


def _signature(run: DagRun) -> tuple[Any, ...]:
    """What changes when a finished run is run again or its tasks are changed."""
    return (run.state, run.queued_at, run.start_date, run.end_date, run.note)


def _labels(tags: Iterable[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for tag in sorted(tags):
        m = _TAG_KV.match(tag)
        if m:
            labels[m.group(1)] = m.group(2)
        else:
            labels.setdefault(tag, "")
    return labels


class _Scan:
    """Where a scan of the runs stands: the opaque cursor of :meth:`AirflowAdapter.list_runs`.

    ``since`` is the lower bound of ``updated_at`` of this scan; ``next_since`` the bound
    of the next one (set by the scan's first page); ``page``/``offset`` how far this scan
    got.
    """

    def __init__(
        self,
        since: datetime,
        next_since: datetime | None = None,
        page: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.since = since
        self.next_since = next_since
        self.page = page
        self.offset = offset

    def encode(self) -> str:
        doc: dict[str, Any] = {"v": 1, "since": self.since.isoformat()}
        if self.next_since is not None:
            doc["next"] = self.next_since.isoformat()
        if self.page is not None:
            doc["page"] = self.page
        if self.offset is not None:
            doc["offset"] = self.offset
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def decode(cls, cursor: str) -> _Scan | None:
        try:
            doc = json.loads(cursor)
            if not isinstance(doc, dict) or doc.get("v") != 1:
                raise ValueError("unknown cursor version")
            since = datetime.fromisoformat(doc["since"])
            nxt = datetime.fromisoformat(doc["next"]) if "next" in doc else None
            page = doc.get("page")
            offset = doc.get("offset")
            if since.tzinfo is None or (nxt is not None and nxt.tzinfo is None):
                raise ValueError("naive time in cursor")
            if page is not None and not isinstance(page, str):
                raise ValueError("bad page")
            if offset is not None and (not isinstance(offset, int) or offset < 0):
                raise ValueError("bad offset")
        except (ValueError, KeyError, TypeError) as exc:
            _log.warning("ignoring an unreadable Airflow runs cursor (%s); starting over", exc)
            return None
        return cls(since, nxt, page, offset)


@lru_cache(maxsize=65_536)
def _airflow_calendar(expression: str, next_run_at: datetime | None) -> Calendar | None:
    """The calendar of one timetable summary aligned with one reported next run (DAGs
    with the same summary and next run share it)."""
    text = expression.strip()
    if text.startswith("@") and text not in _AIRFLOW_PRESETS:
        return None
    try:
        base = calendar_from_cron(_AIRFLOW_PRESETS.get(text, text), "UTC")
    except (ValueError, KeyError):
        return None
    if next_run_at is None:
        return base
    if next_run_at.tzinfo is None:
        raise ValueError("next_run_at must be timezone-aware")
    window = timedelta(hours=14)
    near = base.minutes(to_minute(next_run_at - window), to_minute(next_run_at + window))
    if not near:
        return base
    # The start nearest the reported run (the earlier one on a tie): the starts are
    # sorted, so it is one of the neighbours of the reported run's minute.
    i = bisect.bisect_left(near, to_minute(next_run_at))
    nearest = min(
        (from_minute(m) for m in near[max(0, i - 1) : i + 2]),
        key=lambda t: abs(t - next_run_at),
    )
    shift = next_run_at - nearest
    if abs(shift) > window or shift.total_seconds() % 900:
        return base  # not a zone offset: the DAG does not follow this summary
    return _shifted(base, shift)


@lru_cache(maxsize=4096)
def _shifted(base: Calendar, shift: timedelta) -> Calendar:
    """``base`` moved by ``shift`` (DAGs aligned the same way share one calendar)."""
    return Calendar(base.lines, "UTC", shift)
