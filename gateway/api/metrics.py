"""Prometheus metrics of one gateway process (in a cluster: of one replica; each
replica's series carry its ``replica`` label where they describe cluster work).

Ingest rate: ``rate(accord_run_changes_total[1m])`` (run changes stored by this replica).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from gateway.store.tables import Job, Source
from gateway.sync.worker import health_of, lag_seconds

if TYPE_CHECKING:
    from gateway.cluster import Cluster
    from gateway.openlineage import Emitter

__all__ = ["Metrics"]


class Metrics:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "accord_http_requests", "HTTP requests", ["method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "accord_http_request_seconds", "HTTP request latency", registry=self.registry
        )
        self.runs_ingested = Counter(
            "accord_run_changes", "Run state changes stored", ["source"], registry=self.registry
        )
        self.sync_passes = Counter(
            "accord_sync_passes",
            "Sync passes run (concurrent requests for one source share a pass)",
            ["source"],
            registry=self.registry,
        )
        self.source_up = Gauge(
            "accord_source_health",
            "1 when the source is ok",
            ["source", "health"],
            registry=self.registry,
        )
        self.jobs = Gauge("accord_jobs", "Live jobs", ["source"], registry=self.registry)
        self.fenced_writes = Counter(
            "accord_fenced_writes",
            "Sync writes refused because this replica no longer held the source's lease",
            ["source"],
            registry=self.registry,
        )
        self.leases_held = Gauge(
            "accord_leases_held",
            "Source leases this replica holds (SQLite: every enabled source)",
            ["replica"],
            registry=self.registry,
        )
        self.replicas = Gauge(
            "accord_cluster_replicas", "Live replicas this replica sees", registry=self.registry
        )
        self.sync_lag = Gauge(
            "accord_sync_lag_seconds",
            "Seconds since the source's last successful sync (sources this replica syncs)",
            ["source"],
            registry=self.registry,
        )
        self.openlineage_sent = Gauge(
            "accord_openlineage_events_sent",
            "OpenLineage events this process delivered since it started",
            registry=self.registry,
        )
        self.openlineage_failures = Gauge(
            "accord_openlineage_delivery_failures",
            "Failed OpenLineage delivery passes of this process since it started",
            registry=self.registry,
        )
        self.openlineage_backlog = Gauge(
            "accord_openlineage_backlog",
            "Stored run state changes not yet delivered as OpenLineage events (at most)",
            registry=self.registry,
        )
        self.cluster: Cluster | None = None
        self.openlineage: Emitter | None = None

    def refresh(self) -> None:
        with Session(self.engine) as s:
            self.source_up.clear()
            self.sync_lag.clear()
            cluster = self.cluster
            owned = set(cluster.owned) if cluster is not None else None
            held = 0
            for src in s.exec(select(Source)).scalars():  # type: ignore[call-overload]
                h = health_of(src)
                self.source_up.labels(src.name, h).set(1 if h == "ok" else 0)
                if owned is None and not src.enabled:
                    continue
                if owned is not None and src.name not in owned:
                    continue
                held += 1
                lag = lag_seconds(src)
                if lag is not None:
                    self.sync_lag.labels(src.name).set(lag)
            self.leases_held.clear()
            self.leases_held.labels(cluster.replica if cluster else "local").set(held)
            self.replicas.set(cluster.replicas if cluster else 1)
            self.jobs.clear()
            rows = s.execute(
                select(col(Job.source), func.count())
                .where(col(Job.tombstoned_at).is_(None))
                .group_by(col(Job.source))
            ).all()
            for name, n in rows:
                self.jobs.labels(name).set(n)
            emitter = self.openlineage
            if emitter is not None and emitter.enabled:
                self.openlineage_sent.set(emitter.sent)
                self.openlineage_failures.set(emitter.failures)
                self.openlineage_backlog.set(emitter.backlog(s))
