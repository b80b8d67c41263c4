"""A small in-memory scheduler and its adapter, used only by Accord's own tests.

``FakeSystem`` is the "remote system"; tests hold it and change it (add jobs, finish
runs, inject faults). ``FakeAdapter`` reaches it by name (``system:`` setting), the way a
real adapter reaches a server by URL.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from adapters.base import AdapterContext, BaseAdapter
from gateway.model import (
    AdapterAuthError,
    AdapterInfo,
    AdapterUnavailable,
    Capability,
    Conflict,
    EdgeKind,
    EdgeRecord,
    HealthStatus,
    InvalidResponse,
    JobRecord,
    NodeKind,
    NodeRef,
    NotFound,
    RunPage,
    RunRecord,
    RunState,
    Schedule,
    SecretRef,
    SourceHealth,
    StepRecord,
    SyncHint,
    Trigger,
)
from gateway.model.calendar import Calendar, calendar_from_cron

__all__ = ["FakeAdapter", "FakeConfig", "FakeSystem", "systems"]


@dataclass
class _Run:
    id: str
    job: str
    state: RunState
    started: datetime
    ended: datetime | None = None
    seq: int = 0
    trigger: Trigger = Trigger.SCHEDULE
    upstream: str | None = None
    # what a real tool reports beside the state (None: nothing)
    message: str | None = None
    url: str | None = None
    steps: tuple[tuple[str, RunState], ...] | None = None


@dataclass
class FakeSystem:
    name: str
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, _Run] = field(default_factory=dict)
    fault: BaseException | None = None
    delay: float = 0.0
    token: str | None = None
    page_size: int = 2
    calls: list[str] = field(default_factory=list)
    # what check() answers (None: ok); how a cancelled run ends (Airflow says "failed")
    health: SourceHealth | None = None
    cancel_as: RunState = RunState.CANCELLED
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_job(self, job_id: str, **attrs: Any) -> None:
        self.jobs[job_id] = {"paused": False, **attrs}

    def start_run(
        self,
        job_id: str,
        *,
        trigger: Trigger = Trigger.SCHEDULE,
        upstream: str | None = None,
        at: datetime | None = None,
    ) -> str:
        rid = f"{job_id}-{next(self._ids)}"
        self.runs[rid] = _Run(
            rid,
            job_id,
            RunState.RUNNING,
            at or datetime.now(UTC),
            seq=next(self._seq),
            trigger=trigger,
            upstream=upstream,
        )
        return rid

    def finish(self, run_id: str, state: RunState) -> None:
        r = self.runs[run_id]
        r.state = state
        r.ended = r.started + timedelta(seconds=5)
        r.seq = next(self._seq)


systems: dict[str, FakeSystem] = {}


class FakeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    system: str
    token: SecretRef | None = None


class FakeAdapter(BaseAdapter):
    info: ClassVar[AdapterInfo] = AdapterInfo(
        type="fake",
        display_name="Fake scheduler (tests)",
        capabilities=frozenset(
            {
                Capability.TRIGGER,
                Capability.TRIGGER_PARAMS,
                Capability.CANCEL,
                Capability.PAUSE,
                Capability.RESUME,
                Capability.RETRY,
                Capability.LINEAGE,
                Capability.WEBHOOKS,
            }
        ),
        simulator=True,
    )
    config_model: ClassVar[type[BaseModel]] = FakeConfig

    @classmethod
    def schedule_calendar(
        cls,
        *,
        job_id: str,
        expression: str,
        timezone: str | None,
        next_run_at: datetime | None,
    ) -> Calendar | None:
        """Schedules are five-field cron expressions in UTC (or the zone reported)."""
        try:
            return calendar_from_cron(expression, timezone or "UTC")
        except (ValueError, KeyError):
            return None

    def __init__(self, ctx: AdapterContext, config: BaseModel) -> None:
        super().__init__(ctx, config)
        assert isinstance(config, FakeConfig)
        self.cfg = config

    @property
    def system(self) -> FakeSystem:
        try:
            return systems[self.cfg.system]
        except KeyError:
            raise AdapterUnavailable(f"fake system {self.cfg.system!r} is not running") from None

    async def _enter(self, call: str) -> FakeSystem:
        sys = self.system
        sys.calls.append(call)
        if sys.delay:
            await asyncio.sleep(sys.delay)
        if sys.fault is not None:
            raise sys.fault
        if sys.token is not None:
            given = self.ctx.secrets(self.cfg.token).get_secret_value() if self.cfg.token else None
            if given != sys.token:
                raise AdapterAuthError("the fake system rejected the token")
        return sys

    async def check(self) -> SourceHealth:
        sys = await self._enter("check")
        return sys.health or SourceHealth(status=HealthStatus.OK)

    async def list_jobs(self) -> AsyncIterator[JobRecord]:
        sys = await self._enter("list_jobs")
        for jid, attrs in sorted(sys.jobs.items()):
            yield JobRecord(
                native_id=jid,
                name=attrs.get("name", jid),
                native_type="fake",
                schedule=Schedule(expression=attrs.get("schedule"))
                if attrs.get("schedule")
                else None,
                paused=attrs["paused"],
                owners=tuple(attrs.get("owners", ())),
                labels=dict(attrs.get("labels", {})),
            )

    def _record(self, r: _Run) -> RunRecord:
        return RunRecord(
            native_id=r.id,
            job_native_id=r.job,
            state=r.state,
            native_state=r.state.value.upper(),
            trigger=r.trigger,
            started_at=r.started,
            ended_at=r.ended,
            message=r.message,
            url=r.url,
            steps=None
            if r.steps is None
            else tuple(StepRecord(name=n, state=st, native_state=st.upper()) for n, st in r.steps),
        )

    async def list_runs(self, cursor: str | None) -> RunPage:
        sys = await self._enter("list_runs")
        after = int(cursor) if cursor else 0
        changed = sorted((r for r in sys.runs.values() if r.seq > after), key=lambda r: r.seq)
        page = changed[: sys.page_size]
        edges = tuple(
            EdgeRecord(
                kind=EdgeKind.TRIGGERED,
                src=NodeRef(kind=NodeKind.RUN, id=r.upstream),
                dst=NodeRef(kind=NodeKind.RUN, id=r.id),
                evidence="fake upstream",
            )
            for r in page
            if r.upstream
        )
        new_cursor = str(page[-1].seq) if page else cursor
        return RunPage(
            runs=tuple(self._record(r) for r in page),
            cursor=new_cursor,
            more=len(changed) > len(page),
            edges=edges,
        )

    async def get_runs(self, native_ids: Sequence[str]) -> list[RunRecord]:
        sys = await self._enter("get_runs")
        return [self._record(sys.runs[i]) for i in native_ids if i in sys.runs]

    async def lineage(self, job: JobRecord) -> list[EdgeRecord]:
        sys = await self._enter("lineage")
        attrs = sys.jobs.get(job.native_id, {})
        out = [
            EdgeRecord(
                kind=EdgeKind.DEPENDS_ON,
                src=NodeRef(kind=NodeKind.JOB, id=up),
                dst=NodeRef(kind=NodeKind.JOB, id=job.native_id),
                evidence="fake",
            )
            for up in attrs.get("upstream", [])
        ]
        for ds in attrs.get("produces", []):
            out.append(
                EdgeRecord(
                    kind=EdgeKind.PRODUCES,
                    src=NodeRef(kind=NodeKind.JOB, id=job.native_id),
                    dst=NodeRef(kind=NodeKind.DATASET, id=ds, namespace="fake"),
                )
            )
        for ds in attrs.get("consumes", []):
            out.append(
                EdgeRecord(
                    kind=EdgeKind.CONSUMES,
                    src=NodeRef(kind=NodeKind.DATASET, id=ds, namespace="fake"),
                    dst=NodeRef(kind=NodeKind.JOB, id=job.native_id),
                )
            )
        return out

    def _job(self, sys: FakeSystem, job_id: str) -> dict[str, Any]:
        try:
            return sys.jobs[job_id]
        except KeyError:
            raise NotFound(f"no job {job_id!r}") from None

    async def trigger(self, job_id: str, params: Mapping[str, Any]) -> RunRecord:
        sys = await self._enter("trigger")
        self._job(sys, job_id)
        rid = sys.start_run(job_id, trigger=Trigger.API)
        return self._record(sys.runs[rid])

    async def cancel(self, run_id: str) -> None:
        sys = await self._enter("cancel")
        if run_id not in sys.runs:
            raise NotFound(f"no run {run_id!r}")
        if sys.runs[run_id].state.terminal:
            raise Conflict(f"run {run_id!r} has already finished")
        sys.finish(run_id, sys.cancel_as)

    async def retry(self, run_id: str) -> RunRecord:
        sys = await self._enter("retry")
        if run_id not in sys.runs:
            raise NotFound(f"no run {run_id!r}")
        rid = sys.start_run(sys.runs[run_id].job, trigger=Trigger.RETRY)
        return self._record(sys.runs[rid])

    async def pause(self, job_id: str) -> None:
        sys = await self._enter("pause")
        self._job(sys, job_id)["paused"] = True

    async def resume(self, job_id: str) -> None:
        sys = await self._enter("resume")
        self._job(sys, job_id)["paused"] = False

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[SyncHint]:
        import hashlib
        import hmac

        sys = self.system
        secret = (sys.token or "fake-secret").encode()
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers.get("x-fake-signature", ""), expected):
            raise AdapterAuthError("webhook signature does not match")
        if not body.strip():
            raise InvalidResponse("empty webhook body")
        return [SyncHint(scope="runs")]
