from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from gateway.store.services import queries

from ..deps import Principal, SessionDep, require
from ..errors import ApiError
from ..schemas import LineageEdge, LineageNode, LineagePublic

router = APIRouter(prefix="/api/v1", tags=["lineage"])


@router.get("/lineage", response_model=LineagePublic)
def lineage(
    session: SessionDep,
    job: str = Query(description="job uid to start from"),
    direction: Literal["up", "down", "both"] = "both",
    depth: Annotated[int, Query(ge=0, le=20)] = 2,
    principal: Principal = Depends(require("read")),
) -> LineagePublic:
    result = queries.lineage(
        session, visible=principal.visible(), root=job, direction=direction, depth=depth
    )
    if result is None:
        raise ApiError(404, "not_found", f"no job {job!r}")
    return LineagePublic(
        root=job,
        nodes=[LineageNode(**n) for n in result.nodes.values()],
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
    )
