from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from gateway.store.services import queries
from gateway.store.tables import Source as SourceRow

from ..convert import source_public
from ..deps import Principal, SessionDep, in_thread, require
from ..errors import ApiError
from ..schemas import SourcePublic

router = APIRouter(prefix="/api/v1/sources", tags=["sources"])
Reader = Depends(require("read"))


@router.get("", response_model=list[SourcePublic])
def list_sources(session: SessionDep, principal: Principal = Reader) -> list[SourcePublic]:
    rows = queries.list_sources(session, visible=principal.visible())
    counts = queries.job_counts(session, visible=principal.visible())
    return [source_public(r, counts.get(r.name, 0)) for r in rows]


@router.get("/{name}", response_model=SourcePublic)
def get_source(name: str, session: SessionDep, principal: Principal = Reader) -> SourcePublic:
    for r in queries.list_sources(session, visible=principal.visible()):
        if r.name == name:
            counts = queries.job_counts(session, visible=principal.visible())
            return source_public(r, counts.get(r.name, 0))
    raise ApiError(404, "not_found", f"no source named {name!r}")


@router.post("/{name}/sync", response_model=dict[str, object])
async def sync_source(
    name: str, request: Request, principal: Principal = Reader
) -> dict[str, object]:
    row = await in_thread(request, lambda s: s.get(SourceRow, name))
    if row is None or not principal.decide(row.domain, f"{name}/*", "apply-config").allowed:
        raise ApiError(
            404 if row is None else 403,
            "not_found" if row is None else "forbidden",
            f"no source named {name!r}"
            if row is None
            else f"{principal.subject!r} may not sync {name!r}",
        )
    manager = request.app.state.manager
    if manager is None:
        raise ApiError(409, "sync_disabled", "this gateway runs without sync workers")
    report = await manager.sync_now(name)
    return {
        "source": name,
        "inventory": report.inventory,
        "runs": report.runs,
        "error": report.error,
        "seconds": round(report.seconds, 3),
    }
