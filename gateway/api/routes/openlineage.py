"""OpenLineage in: tools that emit OpenLineage (Airflow's provider, dbt, Spark) send
their RunEvents here, to a source of type ``openlineage`` (docs/openlineage.md)."""

from __future__ import annotations

from fastapi import Depends, Request

from gateway.openlineage.receive import accept_event
from gateway.openlineage.wire import OpenLineageRunEvent
from gateway.sync.push import PushRefused

from ..deps import Principal, require
from ..errors import ApiError
from ..events import Event
from ..routing import Router
from ..schemas import OpenLineageResult

router = Router(prefix="/api/v1/sources", tags=["agents"])


@router.post("/{name}/openlineage", response_model=OpenLineageResult)
def receive(
    name: str,
    body: OpenLineageRunEvent,
    request: Request,
    principal: Principal = Depends(require("push")),
) -> OpenLineageResult:
    """Store one OpenLineage RunEvent as a job, a run and its lineage of source ``name``.

    The token needs ``push`` on the source (like an agent's). An event that does not
    validate is refused whole (422 naming the field); duplicated and out-of-order events
    never move a run backwards.
    """
    try:
        got = accept_event(
            request.app.state.engine,
            name=name,
            decide=principal.decide,
            subject=principal.subject,
            event=body,
        )
    except PushRefused as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    events = request.app.state.events
    for ch in got.changes:
        events.publish(
            Event(
                "run.changed",
                got.domain,
                ch.job_uid,
                {"uid": ch.uid, "job_uid": ch.job_uid, "from": ch.from_state, "to": ch.to_state},
            )
        )
    if got.changes:
        request.app.state.openlineage.poke()
    return OpenLineageResult(run=got.run_uid, job=got.job_uid, runs=got.runs)
