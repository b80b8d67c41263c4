"""OpenLineage in: RunEvents from tools that emit OpenLineage, stored as Accord's jobs,
runs and lineage of a source of type ``openlineage``.

Mapping (docs/openlineage.md):

* job: native id ``<namespace>/<name>`` (so one source may hold jobs of several
  namespaces), name ``<name>``, type the ``jobType`` facet's ``jobType`` (lowercased) or
  ``job``; the namespace is kept as the label ``openlineage.io/namespace``;
* run: native id the ``runId``; state from ``eventType`` (``EVENT_STATES``); the times
  from ``eventTime`` (START and RUNNING: started, COMPLETE/FAIL/ABORT: ended); the
  ``errorMessage`` facet's message as the run's message;
* datasets: each input is a ``consumes`` edge (dataset → job), each output a
  ``produces`` edge (job → dataset), the dataset named by its OpenLineage namespace and
  name exactly, which is how every adapter names datasets, so the same table or file
  reported by another tool is the same node of the lineage graph;
* the ``parent`` run facet: a ``triggered`` edge from the parent run (a run of the same
  source, by its runId) to this run, and the run's trigger ``upstream``.

Runs only move forward: duplicated events change nothing, and an event older than what
is stored (START after COMPLETE) only fills in what was missing (the start time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import col

from gateway.authz import Decision
from gateway.model import (
    TERMINAL_STATES,
    EdgeKind,
    EdgeRecord,
    JobRecord,
    NodeKind,
    NodeRef,
    RunRecord,
    RunState,
    Trigger,
)
from gateway.store.engine import session_scope
from gateway.store.services import ingest
from gateway.store.tables import Run as RunRow
from gateway.store.types import utcnow
from gateway.sync.push import PushRefused, authorize_push

from .wire import OpenLineageRunEvent

__all__ = ["EVENT_STATES", "SOURCE_TYPE", "Received", "accept_event", "records_of"]

SOURCE_TYPE = "openlineage"
NAMESPACE_LABEL = "openlineage.io/namespace"

# Every eventType of the spec; None: the event says nothing of the run's state (OTHER
# carries metadata: datasets, facets).
EVENT_STATES: dict[str, RunState | None] = {
    "START": RunState.RUNNING,
    "RUNNING": RunState.RUNNING,
    "COMPLETE": RunState.SUCCESS,
    "FAIL": RunState.FAILED,
    "ABORT": RunState.CANCELLED,
    "OTHER": None,
}


@dataclass
class Received:
    domain: str
    run_uid: str
    job_uid: str
    runs: dict[str, int]
    changes: list[ingest.RunChange] = field(default_factory=list)


@dataclass(frozen=True)
class _Records:
    job: JobRecord
    run_id: str
    state: RunState | None
    native_state: str
    at: datetime
    trigger: Trigger
    message: str | None
    edges: list[EdgeRecord]


def job_native_id(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _facet_str(facets: dict[str, Any], facet: str, key: str) -> str | None:
    raw = facets.get(facet)
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value else None


def records_of(event: OpenLineageRunEvent) -> _Records:
    """What one event says, as Accord's records (pure)."""
    ns, name = event.job.namespace, event.job.name
    job_id = job_native_id(ns, name)
    kind = _facet_str(event.job.facets, "jobType", "jobType")
    job = JobRecord(
        native_id=job_id,
        name=name,
        native_type=(kind or "job").lower(),
        labels={NAMESPACE_LABEL: ns[:63]},
        description=_facet_str(event.job.facets, "documentation", "description"),
    )
    me = NodeRef(kind=NodeKind.JOB, id=job_id)
    evidence = f"OpenLineage {event.eventType or 'event'} from {event.producer}"
    edges = [
        EdgeRecord(
            kind=EdgeKind.CONSUMES,
            src=NodeRef(kind=NodeKind.DATASET, namespace=d.namespace, id=d.name),
            dst=me,
            evidence=evidence,
        )
        for d in event.inputs
    ] + [
        EdgeRecord(
            kind=EdgeKind.PRODUCES,
            src=me,
            dst=NodeRef(kind=NodeKind.DATASET, namespace=d.namespace, id=d.name),
            evidence=evidence,
        )
        for d in event.outputs
    ]
    run_id = str(event.run.runId)
    parent = event.run.parent
    if parent is not None and str(parent.run.runId) != run_id:
        edges.append(
            EdgeRecord(
                kind=EdgeKind.TRIGGERED,
                src=NodeRef(kind=NodeKind.RUN, id=str(parent.run.runId)),
                dst=NodeRef(kind=NodeKind.RUN, id=run_id),
                evidence=f"parent run facet: {parent.job.namespace}/{parent.job.name}",
            )
        )
    event_type = event.eventType or "OTHER"
    return _Records(
        job=job,
        run_id=run_id,
        state=EVENT_STATES[event_type],
        native_state=event_type,
        at=event.eventTime,
        trigger=Trigger.UPSTREAM if parent is not None else Trigger.UNKNOWN,
        message=_facet_str({"e": event.run.facet("errorMessage")}, "e", "message"),
        edges=edges,
    )


def _run_record(recs: _Records, stored: RunRow | None) -> RunRecord:
    """The run as it stands after this event, merged with what is stored (an event only
    says what it saw: a COMPLETE does not repeat the start time)."""
    started = stored.started_at if stored is not None else None
    ended = stored.ended_at if stored is not None else None
    message = stored.message if stored is not None else None
    state = recs.state
    native = recs.native_state
    trigger = recs.trigger
    if stored is not None and trigger == Trigger.UNKNOWN:
        trigger = Trigger(stored.trigger)  # only some events repeat the parent facet
    if state == RunState.RUNNING and recs.native_state == "START":
        started = recs.at if started is None or recs.at < started else started
    elif state == RunState.RUNNING and started is None:
        started = recs.at
    elif state is not None and state in TERMINAL_STATES:
        ended = recs.at
    if recs.message:
        message = recs.message
    if stored is not None:
        current = RunState(stored.state)
        if state is None or (current.terminal and not (state is not None and state.terminal)):
            # OTHER, or an event older than what is stored: it only fills in the gaps.
            state = current
            native = stored.native_state or native
        elif current.terminal and state is not None and state.terminal and state != current:
            state = current  # a second end: the first one stands (forward-only)
            native = stored.native_state or native
            ended = stored.ended_at
    return RunRecord(
        native_id=recs.run_id,
        job_native_id=recs.job.native_id,
        state=state or RunState.UNKNOWN,
        native_state=native,
        trigger=trigger,
        started_at=started,
        ended_at=ended,
        message=message,
    )


def accept_event(
    engine: Engine,
    *,
    name: str,
    decide: Callable[[str, str, str], Decision],
    subject: str,
    event: OpenLineageRunEvent,
) -> Received:
    """Authorize and store one RunEvent for source ``name`` (blocking: call it in a
    worker thread). One write transaction: the job, the run and its edges, or nothing."""
    recs = records_of(event)
    with session_scope(engine) as session:
        src, _decision = authorize_push(session, name=name, decide=decide, subject=subject)
        if src.type != SOURCE_TYPE:
            raise PushRefused(
                409,
                "not_an_openlineage_source",
                f"source {name!r} is of type {src.type!r}; OpenLineage events go to a source"
                f" of type {SOURCE_TYPE!r}",
            )
        ingest.upsert_jobs(session, source=name, domain=src.domain, records=[recs.job])
        uid = ingest.run_uid(name, recs.run_id)
        stored = session.execute(select(RunRow).where(col(RunRow.uid) == uid)).scalars().first()
        result = ingest.upsert_runs(
            session, source=name, domain=src.domain, records=[_run_record(recs, stored)]
        )
        if recs.edges:
            ingest.record_edges(session, source=name, edges=recs.edges)
        now = utcnow()
        src.last_sync_at = now
        src.last_success_at = now
        src.health = "ok"
        src.health_message = f"last OpenLineage event from {event.producer}"[:500]
        src.checked_at = now
        src.last_error = None
        session.add(src)
        return Received(
            src.domain,
            uid,
            ingest.job_uid(name, recs.job.native_id),
            result.as_dict(),
            result.changes,
        )
