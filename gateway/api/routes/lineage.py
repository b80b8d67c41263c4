from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response
from pydantic_core import to_json
from sqlmodel import Session

from gateway.store.services import queries
from gateway.store.services.estate import estate_lineage

from ..deps import Principal
from ..errors import ApiError
from ..fastread import read_as
from ..routing import Router
from ..schemas import LineageNode, LineagePublic

router = Router(prefix="/api/v1", tags=["lineage"])


_NODE_FIELDS = tuple((name, f.default) for name, f in LineageNode.model_fields.items())


def node_item(node: dict[str, Any]) -> dict[str, Any]:
    """A lineage node as ``LineageNode`` gives it, as plain data for the JSON encoder."""
    return {name: node.get(name, default) for name, default in _NODE_FIELDS}


@router.get("/lineage", response_model=LineagePublic)
async def lineage(
    request: Request,
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
) -> Response:
    def graph(session: Session, principal: Principal) -> bytes:
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
        return to_json(
            {
                "root": root,
                "truncated": truncated,
                "nodes": [node_item(n) for n in nodes.values()],
                "edges": [
                    {
                        "kind": e.kind,
                        "src": e.src_uid,
                        "dst": e.dst_uid,
                        "evidence": e.evidence,
                        "reported_by": e.reported_by,
                    }
                    for e in edges
                ],
            }
        )

    return Response(await read_as(request, graph), media_type="application/json")
