from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic_core import to_json
from sqlmodel import Session

from gateway.actions import RUN_ACTIONS
from gateway.model import RunState
from gateway.store.engine import is_sqlite
from gateway.store.services import queries
from gateway.store.tables import Run

from ..convert import run_link, run_public
from ..deps import Principal, SessionDep, require
from ..errors import ApiError
from ..export import sqlite_lines, stream_runs
from ..fastread import ActionsOf, read_as, reader, run_item
from ..params import INT64_MAX, Time, check_choices
from ..routing import Router
from ..schemas import (
    ActionRequest,
    ActionResult,
    LineageEdge,
    Paged,
    RunEventPublic,
    RunLineagePublic,
    RunPublic,
    StatsRow,
)
from .common import allowed_actions, take_action

router = Router(prefix="/api/v1", tags=["runs"])
Reader = Depends(require("read"))
FastReader = Depends(reader("read"))


def _run_filter(
    source: str | None,
    domain: str | None,
    job: str | None,
    state: list[str] | None,
    since: datetime | None,
    until: datetime | None,
    label: str | None,
    q: str | None,
) -> queries.RunFilter:
    states = check_choices(
        "state", (s for raw in state or [] for s in raw.split(",") if s), RunState
    )
    return queries.RunFilter(
        source=source,
        domain=domain,
        job=job,
        state=states,
        since=since,
        until=until,
        label=label,
        q=q,
    )


@router.get("/runs", response_model=Paged[RunPublic])
async def list_runs(
    request: Request,
    source: str | None = None,
    domain: str | None = None,
    job: str | None = Query(default=None, description="job uid"),
    state: Annotated[list[str] | None, Query(description="repeat or comma-separate")] = None,
    since: Time | None = None,
    until: Time | None = None,
    label: str | None = None,
    q: str | None = Query(default=None, max_length=200),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    total: bool = False,
) -> Response:
    filt = _run_filter(source, domain, job, state, since, until, label, q)

    sqlite = is_sqlite(request.app.state.engine)

    def page(session: Session, principal: Principal) -> bytes:
        visible = principal.visible()
        count = queries.count_runs(session, visible=visible, filt=filt) if total else None
        nxt: str | None = None
        if sqlite:
            # The database writes each run's JSON; Python adds allowed_actions and joins.
            conds = queries.run_conditions(filt, visible)
            if cursor:
                conds.append(queries.run_after(cursor))
            lines, keys = sqlite_lines(session, principal, conds, limit + 1)
            if len(lines) > limit:
                sort_at, rid = keys[limit - 1]
                nxt = queries.run_cursor(datetime.fromisoformat(sort_at), rid)
                del lines[limit:]
            return b"".join(
                (
                    b'{"items":[',
                    ",".join(lines).encode(),
                    b'],"next_cursor":',
                    to_json(nxt),
                    b',"total":',
                    to_json(count),
                    b"}",
                )
            )
        found = queries.list_run_rows(
            session, visible=visible, filt=filt, limit=limit, cursor=cursor
        )
        allowed = ActionsOf(session, principal, RUN_ACTIONS)
        allowed.load_sources({r["source"] for r in found.items})
        items = [run_item(r, allowed(r["source"], r["domain"], r["job_uid"])) for r in found.items]
        return to_json({"items": items, "next_cursor": found.next_cursor, "total": count})

    return Response(await read_as(request, page), media_type="application/json")


@router.get(
    "/runs/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "the runs, newest first: one JSON object per line (each as "
            "GET /api/v1/runs lists it) or CSV with a header row",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        }
    },
)
async def export_runs(
    request: Request,
    principal: Principal = FastReader,
    source: str | None = None,
    domain: str | None = None,
    job: str | None = Query(default=None, description="job uid"),
    state: Annotated[list[str] | None, Query(description="repeat or comma-separate")] = None,
    since: Time | None = None,
    until: Time | None = None,
    label: str | None = None,
    q: str | None = Query(default=None, max_length=200),
    format: Literal["ndjson", "csv"] = "ndjson",
    limit: Annotated[
        int | None, Query(ge=1, le=INT64_MAX, description="at most this many runs")
    ] = None,
) -> StreamingResponse:
    """Every run the filter selects that you may read, streamed in constant memory (the
    same filters and authorization as the list, without pages)."""
    filt = _run_filter(source, domain, job, state, since, until, label, q)
    media = "application/x-ndjson" if format == "ndjson" else "text/csv; charset=utf-8"
    return StreamingResponse(
        stream_runs(request.app.state.engine, principal, filt, fmt=format, limit=limit),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="runs.{format}"'},
    )


@router.get("/stats/runs", response_model=list[StatsRow])
def run_stats(
    session: SessionDep,
    since: Time,
    until: Time | None = None,
    principal: Principal = Reader,
) -> list[StatsRow]:
    rows = queries.run_stats(session, visible=principal.visible(), since=since, until=until)
    return [StatsRow(source=a, domain=b, state=c, count=n) for a, b, c, n in rows]


def _run(session: SessionDep, principal: Principal, uid: str) -> Run:
    run = queries.get_run(session, uid=uid, visible=principal.visible())
    if run is None:
        raise ApiError(404, "not_found", f"no run {uid!r}")
    return run


@router.get("/runs/{uid:path}/events", response_model=list[RunEventPublic])
def run_events(
    uid: str, session: SessionDep, principal: Principal = Reader
) -> list[RunEventPublic]:
    run = _run(session, principal, uid)
    return [
        RunEventPublic(
            seq=e.seq,
            from_state=e.from_state,
            to_state=e.to_state,
            at=e.at,
            observed_at=e.observed_at,
        )
        for e in queries.run_events(session, run_uid=run.uid)
    ]


@router.get("/runs/{uid:path}/lineage", response_model=RunLineagePublic)
def run_lineage(
    uid: str,
    session: SessionDep,
    direction: Literal["up", "down", "both"] = "both",
    depth: Annotated[int, Query(ge=0, le=20)] = 3,
    principal: Principal = Reader,
) -> RunLineagePublic:
    """Runs that caused this run and runs it caused, across sources (``triggered`` edges)."""
    result = queries.run_lineage(
        session, visible=principal.visible(), root=uid, direction=direction, depth=depth
    )
    if result is None:
        raise ApiError(404, "not_found", f"no run {uid!r}")
    return RunLineagePublic(
        root=uid,
        runs=[run_public(r) for r in result.runs.values()],
        edges=[
            LineageEdge(
                kind=e.kind,
                src=e.src_uid,
                dst=e.dst_uid,
                evidence=e.evidence,
                reported_by=e.reported_by,
            )
            for e in result.edges
        ],
        not_shown=result.hidden,
    )


@router.post("/runs/{uid:path}/{action}", response_model=ActionResult)
async def run_action(
    uid: str,
    action: str,
    request: Request,
    body: ActionRequest | None = None,
    principal: Principal = Reader,
) -> ActionResult:
    if action not in RUN_ACTIONS:
        raise ApiError(
            404, "not_found", f"unknown run action {action!r}; known: {', '.join(RUN_ACTIONS)}"
        )
    return await take_action(request, principal, action, uid, body, on_run=True)


@router.get("/runs/{uid:path}", response_model=RunPublic)
def get_run(uid: str, session: SessionDep, principal: Principal = Reader) -> RunPublic:
    run = _run(session, principal, uid)
    job = queries.get_job(session, uid=run.job_uid, visible=principal.visible())
    allowed = allowed_actions(session, principal, job, RUN_ACTIONS) if job else []
    out = run_public(run, queries.run_steps(session, run_uid=run.uid), allowed)
    near = queries.run_lineage(session, visible=principal.visible(), root=run.uid, depth=1)
    assert near is not None  # the run was just read with the same predicate
    out.upstream = [run_link(near.runs[e.src_uid], e) for e in near.edges if e.dst_uid == run.uid]
    out.downstream = [run_link(near.runs[e.dst_uid], e) for e in near.edges if e.src_uid == run.uid]
    return out
