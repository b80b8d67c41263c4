from __future__ import annotations

from fastapi import Depends, Request

from gateway.model import SyncHint
from gateway.store.services import queries
from gateway.store.tables import Source as SourceRow
from gateway.sync.manager import NotHolder
from gateway.sync.worker import COALESCE_WITHIN, SyncCancelled

from ..convert import source_public
from ..deps import Principal, SessionDep, in_thread, require
from ..errors import ApiError
from ..routing import Router
from ..schemas import SourcePublic

router = Router(prefix="/api/v1/sources", tags=["sources"])
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
    """Sync the source now. Requests share passes: one that started less than 2 s before
    the request answers it; otherwise the request waits for the next pass, which every
    request arriving meanwhile shares (``started_at`` says when the pass began).

    In a cluster, a replica that does not hold the source's lease forwards the request to
    the one that does and answers at once with ``forwarded_to`` (that replica's id) and
    no report; with no holder yet (the cluster is starting or failing over) it answers
    503 with Retry-After."""
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
    try:
        report = await manager.sync_now(name, max_age=COALESCE_WITHIN)
    except KeyError:
        raise ApiError(404, "not_found", f"no source named {name!r}") from None
    except SyncCancelled as exc:
        raise ApiError(503, "sync_cancelled", str(exc), headers={"Retry-After": "5"}) from None
    except NotHolder as exc:
        if exc.holder is None:
            raise ApiError(503, "no_lease_holder", str(exc), headers={"Retry-After": "5"}) from None
        manager.hint(name, [SyncHint(scope="inventory"), SyncHint(scope="runs")])
        return {"source": name, "forwarded_to": exc.holder}
    return {
        "source": name,
        "inventory": report.inventory,
        "runs": report.runs,
        "error": report.error,
        "seconds": round(report.seconds, 3),
        "started_at": report.started_at.isoformat() if report.started_at else None,
    }
