"""The demo scheduler: sample jobs whose runs follow their schedules in real time.

It is labelled demo everywhere. Runs are derived deterministically from the job's cron
schedule and a seed, so every gateway start shows the same history, and runs move from
running to success or failure as the clock passes their end. Actions work on in-memory
state (a triggered run appears at once and finishes a little later).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field

from adapters.base import AdapterContext, BaseAdapter
from gateway.model import (
    AdapterInfo,
    Capability,
    EdgeKind,
    EdgeRecord,
    HealthStatus,
    JobRecord,
    NodeKind,
    NodeRef,
    NotFound,
    RunPage,
    RunRecord,
    RunState,
    Schedule,
    SourceHealth,
    Trigger,
)
from gateway.model.calendar import Calendar, calendar_from_cron

__all__ = ["DemoAdapter", "DemoConfig", "DemoJob"]


class DemoJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    schedule: str
    minutes: float = Field(default=5, description="typical duration")
    fail_rate: float = 0.1
    owners: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    upstream: list[str] = Field(default_factory=list)
    produces: list[str] = Field(default_factory=list)
    consumes: list[str] = Field(default_factory=list)
    paused: bool = False
    description: str = ""


class DemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: str = "accord"
    history_days: float = 7
    jobs: list[DemoJob] = Field(default_factory=list)


@dataclass
class _Manual:
    id: str
    job: str
    started: datetime
    minutes: float
    trigger: Trigger
    cancelled_at: datetime | None = None
    outcome: RunState = RunState.SUCCESS
    changed_at: datetime | None = None


def _frac(*parts: str) -> float:
    h = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


class DemoAdapter(BaseAdapter):
    info: ClassVar[AdapterInfo] = AdapterInfo(
        type="demo",
        display_name="Demo scheduler (sample data)",
        capabilities=frozenset(
            {
                Capability.TRIGGER,
                Capability.CANCEL,
                Capability.PAUSE,
                Capability.RESUME,
                Capability.RETRY,
                Capability.LINEAGE,
            }
        ),
        simulator=True,
        description="Synthetic jobs and runs for the demo federation.",
    )
    config_model: ClassVar[type[BaseModel]] = DemoConfig

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
        assert isinstance(config, DemoConfig)
        self.cfg = config
        self.jobs = {j.id: j.model_copy() for j in config.jobs}
        self.manual: dict[str, _Manual] = {}
        self._n = 0

    def _now(self) -> datetime:
        return datetime.now(UTC)

    async def check(self) -> SourceHealth:
        return SourceHealth(status=HealthStatus.OK, message="demo data")

    async def list_jobs(self) -> AsyncIterator[JobRecord]:
        now = self._now()
        for j in self.jobs.values():
            nxt = croniter(j.schedule, now).get_next(datetime)
            yield JobRecord(
                native_id=j.id,
                name=j.id,
                native_type="demo-job",
                schedule=Schedule(expression=j.schedule, timezone="UTC"),
                next_run_at=None if j.paused else nxt,
                paused=j.paused,
                owners=tuple(j.owners),
                labels={"accord.dev/demo": "true", **j.labels},
                description=j.description or None,
            )

    # -- runs -----------------------------------------------------------------------------
    def _scheduled(self, j: DemoJob, since: datetime, until: datetime) -> list[RunRecord]:
        out = []
        it = croniter(j.schedule, since)
        for _ in range(5000):
            t: datetime = it.get_next(datetime)
            if t > until:
                break
            out.append(self._scheduled_record(j, t, until))
        return out

    def _scheduled_record(self, j: DemoJob, t: datetime, now: datetime) -> RunRecord:
        key = t.isoformat()
        minutes = j.minutes * (0.6 + 0.8 * _frac(self.cfg.seed, j.id, key, "d"))
        end = t + timedelta(minutes=minutes)
        failed = _frac(self.cfg.seed, j.id, key, "f") < j.fail_rate
        if end > now:
            state, native, ended = RunState.RUNNING, "running", None
        else:
            state = RunState.FAILED if failed else RunState.SUCCESS
            native, ended = ("failed" if failed else "succeeded"), end
        return RunRecord(
            native_id=f"{j.id}@{key}",
            job_native_id=j.id,
            state=state,
            native_state=native,
            trigger=Trigger.SCHEDULE,
            queued_at=t,
            started_at=t,
            ended_at=ended,
            message="exit status 1: sample failure" if state == RunState.FAILED else None,
        )

    def _manual_record(self, m: _Manual, now: datetime) -> RunRecord:
        end = m.started + timedelta(minutes=m.minutes)
        if m.cancelled_at is not None:
            state, native, ended = RunState.CANCELLED, "cancelled", m.cancelled_at
        elif end > now:
            state, native, ended = RunState.RUNNING, "running", None
        else:
            state, ended = m.outcome, end
            native = "succeeded" if m.outcome == RunState.SUCCESS else m.outcome.value
        return RunRecord(
            native_id=m.id,
            job_native_id=m.job,
            state=state,
            native_state=native,
            trigger=m.trigger,
            queued_at=m.started,
            started_at=m.started,
            ended_at=ended,
        )

    def _all_runs(self, since: datetime, now: datetime) -> list[RunRecord]:
        runs: list[RunRecord] = []
        for j in self.jobs.values():
            if not j.paused:
                runs.extend(self._scheduled(j, since, now))
        runs.extend(self._manual_record(m, now) for m in self.manual.values())
        return runs

    async def list_runs(self, cursor: str | None) -> RunPage:
        """Cursor: the time up to which runs were reported as final. Every run that was
        still open or started after it is reported again (upserts are idempotent)."""
        now = self._now()
        horizon = now - timedelta(days=self.cfg.history_days)
        since = max(datetime.fromisoformat(cursor), horizon) if cursor else horizon
        # Look back one longest duration so runs that were running get their end.
        longest = max((j.minutes for j in self.jobs.values()), default=5) * 1.5
        runs = [
            r
            for r in self._all_runs(since - timedelta(minutes=longest), now)
            if r.ended_at is None or r.ended_at >= since or self._changed_since(r.native_id, since)
        ]
        return RunPage(runs=tuple(runs), cursor=now.isoformat(), more=False)

    def _changed_since(self, run_id: str, since: datetime) -> bool:
        m = self.manual.get(run_id)
        return m is not None and m.changed_at is not None and m.changed_at >= since

    async def get_runs(self, native_ids: Sequence[str]) -> list[RunRecord]:
        now = self._now()
        out = []
        for rid in native_ids:
            if rid in self.manual:
                out.append(self._manual_record(self.manual[rid], now))
                continue
            job_id, _, at = rid.partition("@")
            j = self.jobs.get(job_id)
            if j is None or not at:
                continue
            try:
                t = datetime.fromisoformat(at)
            except ValueError:
                continue
            out.append(self._scheduled_record(j, t, now))
        return out

    async def lineage(self, job: JobRecord) -> list[EdgeRecord]:
        j = self.jobs.get(job.native_id)
        if j is None:
            return []
        me = NodeRef(kind=NodeKind.JOB, id=j.id)
        edges = [
            EdgeRecord(kind=EdgeKind.DEPENDS_ON, src=_job_ref(u), dst=me, evidence="demo")
            for u in j.upstream
        ]
        edges += [
            EdgeRecord(kind=EdgeKind.PRODUCES, src=me, dst=_ds(d), evidence="demo")
            for d in j.produces
        ]
        edges += [
            EdgeRecord(kind=EdgeKind.CONSUMES, src=_ds(d), dst=me, evidence="demo")
            for d in j.consumes
        ]
        return edges

    # -- actions --------------------------------------------------------------------------
    def _job(self, job_id: str) -> DemoJob:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise NotFound(f"no demo job {job_id!r}") from None

    async def trigger(self, job_id: str, params: Mapping[str, Any]) -> RunRecord:
        j = self._job(job_id)
        self._n += 1
        now = self._now()
        m = _Manual(
            f"{j.id}@manual-{now:%Y%m%dT%H%M%S}-{self._n}",
            j.id,
            now,
            max(0.5, j.minutes / 5),
            Trigger.MANUAL,
        )
        self.manual[m.id] = m
        return self._manual_record(m, now)

    async def cancel(self, run_id: str) -> None:
        m = self.manual.get(run_id)
        if m is None:
            raise NotFound(f"no running demo run {run_id!r} that can be cancelled")
        if m.cancelled_at is None:
            m.cancelled_at = m.changed_at = self._now()

    async def retry(self, run_id: str) -> RunRecord:
        job_id = run_id.partition("@")[0]
        run = await self.trigger(job_id, {})
        self.manual[run.native_id].trigger = Trigger.RETRY
        return self._manual_record(self.manual[run.native_id], self._now())

    async def pause(self, job_id: str) -> None:
        self._job(job_id).paused = True

    async def resume(self, job_id: str) -> None:
        self._job(job_id).paused = False


def _job_ref(ref: str) -> NodeRef:
    source, sep, native = ref.partition(":")
    if sep:
        return NodeRef(kind=NodeKind.JOB, id=native, source=source)
    return NodeRef(kind=NodeKind.JOB, id=ref)


def _ds(name: str) -> NodeRef:
    ns, sep, rest = name.partition("://")
    if sep:
        return NodeRef(kind=NodeKind.DATASET, id=rest, namespace=f"{ns}://")
    return NodeRef(kind=NodeKind.DATASET, id=name, namespace="demo")
