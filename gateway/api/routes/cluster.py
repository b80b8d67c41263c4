"""The cluster: replicas, which one syncs which source, and the cluster-wide jobs."""

from __future__ import annotations

from datetime import datetime

from fastapi import Depends, Request
from sqlmodel import select

from gateway.cluster.leases import SINGLETON, SOURCE, db_now, lease_rows
from gateway.store.services import queries
from gateway.store.tables import Replica
from gateway.store.types import utcnow

from ..deps import Principal, SessionDep, require
from ..routing import Router
from ..schemas import ClusterPublic, LeasePublic, ReplicaPublic

router = Router(prefix="/api/v1", tags=["cluster"])


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max(0.0, (now - then).total_seconds()), 3)


@router.get("/cluster", response_model=ClusterPublic)
def cluster(
    request: Request, session: SessionDep, principal: Principal = Depends(require("read"))
) -> ClusterPublic:
    """Replicas and leases. On SQLite the one process syncs every enabled source."""
    settings = request.app.state.settings
    visible = {r.name: r for r in queries.list_sources(session, visible=principal.visible())}
    cl = request.app.state.cluster
    if cl is None:
        now = utcnow()
        return ClusterPublic(
            mode="single",
            replica="local",
            lease_seconds=settings.lease_seconds,
            replicas=[
                ReplicaPublic(id="local", leases=sum(1 for r in visible.values() if r.enabled))
            ],
            sources=[
                LeasePublic(name=n, holder="local", token=0)
                for n, r in sorted(visible.items())
                if r.enabled
            ],
            singletons=[],
        )
    raw_now = db_now(session)
    assert raw_now is not None
    now = raw_now.replace(tzinfo=utcnow().tzinfo)
    leases = lease_rows(session)
    held: dict[str, int] = {}
    sources: list[LeasePublic] = []
    singletons: list[LeasePublic] = []
    for row in leases:
        expired = row.expires_at is None or row.expires_at <= now
        holder = None if expired else row.holder
        if holder is not None and row.name.startswith(SOURCE):
            held[holder] = held.get(holder, 0) + 1
        public = LeasePublic(
            name=row.name.split(":", 1)[1],
            holder=holder,
            token=row.token,
            acquired_at=row.acquired_at,
            renewed_at=row.renewed_at,
            expires_at=row.expires_at,
            held_for_seconds=_age(now, row.acquired_at) if holder else None,
            renewed_age_seconds=_age(now, row.renewed_at),
            expired=expired,
        )
        if row.name.startswith(SOURCE) and public.name in visible:
            sources.append(public)
        elif row.name.startswith(SINGLETON):
            singletons.append(public)
    replicas = [
        ReplicaPublic(
            id=r.id,
            url=r.url,
            host=r.host,
            pid=r.pid,
            started_at=r.started_at,
            heartbeat_at=r.heartbeat_at,
            heartbeat_age_seconds=_age(now, r.heartbeat_at),
            alive=(now - r.heartbeat_at).total_seconds() <= cl.lease_seconds,
            leases=held.get(r.id, 0),
        )
        for r in session.exec(select(Replica).order_by(Replica.id)).all()
    ]
    return ClusterPublic(
        mode="cluster",
        replica=cl.replica,
        lease_seconds=cl.lease_seconds,
        replicas=replicas,
        sources=sources,
        singletons=singletons,
    )
