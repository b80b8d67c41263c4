from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Response
from pydantic_core import to_json
from sqlmodel import Session

from gateway.actions import JOB_ACTIONS
from gateway.model import RunState
from gateway.store.services import impact as impact_service
from gateway.store.services import queries
from gateway.store.tables import Job

from ..convert import job_item, job_public
from ..deps import Principal, SessionDep, require
from ..errors import ApiError
from ..fastread import ActionsOf, read_as
from ..routing import Router
from ..schemas import (
    ActionRequest,
    ActionResult,
    ImpactNodePublic,
    ImpactPublic,
    JobPublic,
    Paged,
)
from .common import allowed_actions, take_action

router = Router(prefix="/api/v1/jobs", tags=["jobs"])
Reader = Depends(require("read"))


@router.get("", response_model=Paged[JobPublic])
async def list_jobs(
    request: Request,
    source: str | None = None,
    domain: str | None = None,
    state: RunState | None = Query(default=None, description="state of the job's last run"),
    label: str | None = Query(default=None, description="key=value or key"),
    owner: str | None = None,
    q: str | None = Query(default=None, max_length=200),
    paused: bool | None = None,
    include_tombstoned: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
    total: bool = Query(default=False, description="also count all matches"),
) -> Response:
    filt = queries.JobFilter(
        source=source,
        domain=domain,
        state=state,
        label=label,
        owner=owner,
        q=q,
        include_tombstoned=include_tombstoned,
        paused=paused,
    )

    def page(session: Session, principal: Principal) -> bytes:
        visible = principal.visible()
        found = queries.list_jobs(session, visible=visible, filt=filt, limit=limit, cursor=cursor)
        count = queries.count_jobs(session, visible=visible, filt=filt) if total else None
        allowed = ActionsOf(session, principal, JOB_ACTIONS)
        allowed.load_sources({j.source for j in found.items})
        items = [job_item(j, allowed(j.source, j.domain, j.uid)) for j in found.items]
        return to_json({"items": items, "next_cursor": found.next_cursor, "total": count})

    return Response(await read_as(request, page), media_type="application/json")


def _job(session: SessionDep, principal: Principal, uid: str) -> Job:
    job = queries.get_job(session, uid=uid, visible=principal.visible())
    if job is None:
        raise ApiError(404, "not_found", f"no job {uid!r}")
    return job


@router.post("/{uid:path}/{action}", response_model=ActionResult)
async def job_action(
    uid: str,
    action: str,
    request: Request,
    body: ActionRequest | None = None,
    principal: Principal = Reader,
) -> ActionResult:
    if action not in JOB_ACTIONS:
        raise ApiError(
            404, "not_found", f"unknown job action {action!r}; known: {', '.join(JOB_ACTIONS)}"
        )
    return await take_action(request, principal, action, uid, body, on_run=False)


@router.get("/{uid:path}/impact", response_model=ImpactPublic)
def job_impact(
    uid: str,
    session: SessionDep,
    principal: Principal = Reader,
    depth: Annotated[int, Query(ge=1, le=50)] = 10,
) -> ImpactPublic:
    """What this job's failure or lateness affects downstream, across tools: jobs and
    datasets reached through depends_on, produces→consumes and Dependency edges, with the
    SLAs that select them. Jobs you may not read are counted in ``hidden``."""
    found = impact_service.impact(session, visible=principal.visible(), root=uid, depth=depth)
    if found is None:
        raise ApiError(404, "not_found", f"no job {uid!r}")
    return ImpactPublic(
        job=uid,
        slas=found.root_slas,
        affected_jobs=sum(1 for n in found.nodes if n.kind == "job"),
        affected_datasets=sum(1 for n in found.nodes if n.kind == "dataset"),
        sources=found.sources,
        nodes=[ImpactNodePublic(**n.__dict__) for n in found.nodes],
        hidden=found.hidden,
        truncated=found.truncated,
    )


@router.get("/{uid:path}", response_model=JobPublic)
def get_job(uid: str, session: SessionDep, principal: Principal = Reader) -> JobPublic:
    job = _job(session, principal, uid)
    return job_public(job, allowed_actions(session, principal, job, JOB_ACTIONS))
