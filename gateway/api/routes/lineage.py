from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from gateway.store.services import queries
from gateway.store.services.estate import estate_lineage

from ..deps import Principal, SessionDep, require
from ..errors import ApiError
from ..schemas import LineageEdge, LineageNode, LineagePublic

router = APIRouter(prefix="/api/v1", tags=["lineage"])


@router.get("/lineage", response_model=LineagePublic)
def lineage(
    session: SessionDep,
    job: str | None = Query(
        default=None,
        description="job uid to start from; without it, the whole estate up to `limit` nodes",
    ),
    direction: Literal["up", "down", "both"] = "both",
    depth: Annotated[int, Query(ge=0, le=20)] = 2,
    limit: Annotated[
        int | None,
        Query(ge=1, le=5000, description="at most this many nodes (500 for the estate, else 5000)"),
    ] = None,
    principal: Principal = Depends(require("read")),
) -> LineagePublic:
    if job is None:
        estate = estate_lineage(session, visible=principal.visible(), max_nodes=limit or 500)
        nodes, edges, root, truncated = estate.nodes, estate.edges, None, estate.truncated
    else:
        result = queries.lineage(
            session,
            visible=principal.visible(),
            root=job,
            direction=direction,
            depth=depth,
            max_nodes=limit or 5000,
        )
        if result is None:
            raise ApiError(404, "not_found", f"no job {job!r}")
        nodes, edges, root, truncated = (
            result.nodes,
            result.edges,
            job,
            len(result.nodes) >= (limit or 5000),
        )
    return LineagePublic(
        root=root,
        truncated=truncated,
        nodes=[LineageNode(**n) for n in nodes.values()],
        edges=[
            LineageEdge(
                kind=e.kind,
                src=e.src_uid,
                dst=e.dst_uid,
                evidence=e.evidence,
                reported_by=e.reported_by,
            )
            for e in edges
        ],
    )
