"""Prometheus metrics of one gateway process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from gateway.store.tables import Job, Source
from gateway.sync.worker import health_of

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

    def refresh(self) -> None:
        with Session(self.engine) as s:
            self.source_up.clear()
            for src in s.exec(select(Source)).scalars():  # type: ignore[call-overload]
                h = health_of(src)
                self.source_up.labels(src.name, h).set(1 if h == "ok" else 0)
            self.jobs.clear()
            rows = s.execute(
                select(col(Job.source), func.count())
                .where(col(Job.tombstoned_at).is_(None))
                .group_by(col(Job.source))
            ).all()
            for name, n in rows:
                self.jobs.labels(name).set(n)
