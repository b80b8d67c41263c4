"""The gateway's own periodic work for forecasts, missed runs, SLAs and notifications.

``run_once`` (every ``every`` seconds from the app lifespan): refresh the forecast
(incremental), record missed runs for tools that do not, evaluate every SLA instance and
persist the changes (each change audited, notified and published on the event stream),
and deliver the notifications that are due. Failed and missed runs are not notified
here: their messages are written to the outbox in the transaction that stores the run
(``gateway.store.services.ingest.upsert_runs``), by whichever replica observed it. All
database work runs in worker threads; several replicas may run it at once (writes are
idempotent by key, sending claims each message by compare-and-set).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
import httpx
from pydantic import SecretStr
from sqlalchemy import Engine

from gateway.model.resources import SecretRef
from gateway.store.engine import session_scope
from gateway.store.types import utcnow

from .forecast import Forecaster
from .missed import detect_missed
from .notify import DeliveryResult, deliver_due
from .slas import SlaChange, evaluate, load_facts, persist, sla_documents

__all__ = ["CycleReport", "Evaluator"]

_log = logging.getLogger(__name__)
Publish = Callable[[str, str, str | None, dict[str, Any]], None]


@dataclass
class CycleReport:
    forecast: dict[str, Any] = field(default_factory=dict)
    missed: int = 0
    withdrawn: int = 0
    slas: int = 0
    sla_changes: list[SlaChange] = field(default_factory=list)
    delivery: DeliveryResult | None = None


class Evaluator:
    def __init__(
        self,
        engine: Engine,
        *,
        secrets: Callable[[SecretRef], SecretStr],
        publish: Publish | None = None,
        every: float = 15.0,
        missed_grace: timedelta = timedelta(minutes=10),
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = utcnow,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        self.engine = engine
        # In a cluster the cycle runs on one replica at a time (``Cluster.singleton``).
        self.leader = leader
        self.secrets = secrets
        self.publish = publish
        self.every = every
        self.missed_grace = missed_grace
        self.client = client
        self.clock = clock
        self.forecaster = Forecaster(engine)
        self._task: asyncio.Task[None] | None = None

    def _cycle(self, now: datetime) -> CycleReport:
        report = CycleReport()
        report.forecast = self.forecaster.refresh(now).as_dict()
        missed = detect_missed(self.engine, self.forecaster, grace=self.missed_grace, now=now)
        withdrawn = set(missed.withdrawn)
        recorded = [c for c in missed.recorded if c.uid not in withdrawn]
        report.missed, report.withdrawn = len(recorded), len(withdrawn)
        with session_scope(self.engine) as session:
            slas = sla_documents(session)
        results = []
        if slas:
            with session_scope(self.engine, write=False) as session:
                targets = (
                    [j.uid for j in self.forecaster.jobs()]
                    if any(s.max_age for _, _, s in slas)
                    else []
                )
                facts = load_facts(session, now=now, job_uids=targets)
            results = evaluate(slas, self.forecaster, facts, now=now)
        report.slas = len(results)
        with session_scope(self.engine) as session:
            report.sla_changes = persist(
                session, results, now=now, evaluated=[name for name, _, _ in slas]
            )
        for ch in recorded:
            self._publish(
                "run.changed",
                ch.domain,
                ch.job_uid,
                {
                    "uid": ch.uid,
                    "job_uid": ch.job_uid,
                    "from": None,
                    "to": ch.to_state,
                    "missed": True,
                },
            )
        for sc in report.sla_changes:
            r = sc.result
            self._publish(
                "sla.changed",
                r.domain,
                r.job_uid,
                {
                    "sla": r.sla,
                    "job_uid": r.job_uid,
                    "from": sc.previous,
                    "to": r.state,
                    "reason": r.reason,
                },
            )
        return report

    def _publish(self, kind: str, domain: str, job: str | None, data: dict[str, Any]) -> None:
        if self.publish is not None:
            self.publish(kind, domain, job, data)

    async def run_once(self) -> CycleReport:
        now = self.clock()
        report = await anyio.to_thread.run_sync(self._cycle, now)
        report.delivery = await deliver_due(
            self.engine, secrets=self.secrets, client=self.client, now=self.clock()
        )
        return report

    async def _loop(self) -> None:
        while True:
            try:
                if self.leader is None or self.leader():
                    await self.run_once()
            except Exception:  # the store may be briefly unavailable; try again next cycle
                _log.exception("forecast / SLA / notification cycle failed")
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="slas-and-notifications")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
