"""Jenkins adapter: jobs in folders and multibranch projects, builds, the queue, stages,
upstream/downstream lineage, and trigger / cancel / pause / resume.

Ids: a job is its full path (``team/app/main``); a build is ``<job path>#<number>``; an
item waiting in the build queue is ``<job path>#queue:<id>`` (the job is part of the id so
that the item can be followed after it leaves the queue, even across restarts). When a
queued item becomes a build, its queue record ends as ``skipped`` with the build named in
its message, and the build is reported under its own number.

Cost of a sync (see ``request_count``): inventory = one ``tree=`` request per
``folderDepth`` levels of folders, plus ``config.xml`` of jobs whose timer spec is not
known yet or older than ``configRefresh`` (Jenkins exports triggers nowhere else); runs =
the same one-request walk with each job's newest builds and their causes, one queue
request, one extra request per job that ran more builds than ``maxBuildsPerJob`` since the
last sync, and wfapi requests for Pipeline stages within ``stageRequestsPerSync``.

The runs cursor holds, per job, the newest build number seen, its timestamp and the builds
still running; only builds past it (and those that were running) are reported again. A
build numbered at or below the cursor but created later means the job was reset or
recreated: its builds are then read as new.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel

from adapters.base import AdapterContext, BaseAdapter
from gateway.model import (
    ActionNotSupported,
    AdapterAuthError,
    AdapterInfo,
    AdapterUnavailable,
    Capability,
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
    SourceHealth,
    StepRecord,
    Trigger,
)
from gateway.model.calendar import Calendar, CalendarLine

from .client import (
    JenkinsAuthFailed,
    JenkinsBadResponse,
    JenkinsClient,
    JenkinsError,
    JenkinsNotFound,
    JenkinsRejected,
    JenkinsUnreachable,
    TreeItem,
)
from .config import JenkinsConfig
from .cron import LineSets, SpecError, compile_spec, next_fire, parse_spec
from .states import (
    QUEUE_CANCELLED,
    QUEUE_LEFT,
    QUEUE_STATES,
    QUEUE_VANISHED,
    build_state,
    queue_native_state,
    stage_state,
)

__all__ = ["JenkinsAdapter", "parse_run_id"]

_log = logging.getLogger(__name__)

_CAUSE = "causes[shortDescription,userId,userName,upstreamProject,upstreamBuild,addr,note]"
_BUILD = f"number,url,result,building,timestamp,duration,queueId,actions[{_CAUSE}]"
_JOB_FIELDS = (
    "name,fullName,displayName,description,url,color,buildable,disabled,"
    "upstreamProjects[fullName],downstreamProjects[fullName],"
    "property[parameterDefinitions[name]]"
)
_QUEUE_ITEM = f"id,why,blocked,buildable,inQueueSince,task[fullName,url],actions[{_CAUSE}]"
_LEFT_ITEM = f"{_QUEUE_ITEM},cancelled,executable[number,url]"
_ROOT = "description,mode,nodeDescription,quietingDown,useCrumbs,useSecurity"
_CONFIG_READERS = 8
_QUEUE_LOOKUPS_PER_SYNC = 50
_MAX_GAP_FILL = 500
_POLL_INTERVAL = 0.25
_RUN_ID = re.compile(r"^(?P<job>.+)#(?:(?P<number>[0-9]+)|queue:(?P<queue>[0-9]+))$")

# Causes by precedence (a build can carry several): the first kind found names the trigger.
# Jenkins' SCM and webhook causes have no Accord trigger of their own: an external system
# asked for the build, which is what ``api`` means.
_CAUSES: tuple[tuple[str, Trigger], ...] = (
    ("ReplayCause", Trigger.RETRY),
    ("RebuildCause", Trigger.RETRY),
    ("RestartDeclarativePipelineCause", Trigger.RETRY),
    ("UserIdCause", Trigger.MANUAL),
    ("UserCause", Trigger.MANUAL),
    ("UpstreamCause", Trigger.UPSTREAM),
    ("RemoteCause", Trigger.API),
    ("SCMTriggerCause", Trigger.API),
    ("BranchIndexingCause", Trigger.API),
    ("BranchEventCause", Trigger.API),
    ("GitHubPushCause", Trigger.API),
    ("TimerTriggerCause", Trigger.SCHEDULE),
)


def parse_run_id(native_id: str) -> tuple[str, int | None, int | None]:
    """``team/app#12`` → (team/app, 12, None); ``team/app#queue:7`` → (team/app, None, 7)."""
    m = _RUN_ID.match(native_id)
    if m is None:
        raise NotFound(f"{native_id!r} is not a Jenkins run id (job#number or job#queue:id)")
    number = int(m.group("number")) if m.group("number") else None
    queue = int(m.group("queue")) if m.group("queue") else None
    return m.group("job"), number, queue


def _ms(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class _Config:
    timer: str | None
    scm: str | None
    read_at: float
    problem: str | None = None


@dataclass
class _JobInfo:
    native_type: str
    parameters: tuple[str, ...]
    pipeline: bool


@dataclass
class _Cursor:
    """Per job: [newest number seen, its timestamp (ms), numbers still running]; queue
    items reported as queued (id → job) until they are seen to leave."""

    jobs: dict[str, tuple[int, int, tuple[int, ...]]] = field(default_factory=dict)
    queue: dict[int, str] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "jobs": {k: [n, t, list(o)] for k, (n, t, o) in sorted(self.jobs.items())},
                "queue": {str(k): v for k, v in sorted(self.queue.items())},
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str | None) -> _Cursor | None:
        if not text:
            return None
        try:
            raw = json.loads(text)
            jobs = {
                str(k): (int(v[0]), int(v[1]), tuple(int(x) for x in v[2]))
                for k, v in raw["jobs"].items()
            }
            queue = {int(k): str(v) for k, v in raw.get("queue", {}).items()}
        except (ValueError, KeyError, TypeError, IndexError):
            _log.warning("ignoring a Jenkins runs cursor that cannot be read; reading anew")
            return None
        return cls(jobs=jobs, queue=queue)


class JenkinsAdapter(BaseAdapter):
    """Accord's view of one Jenkins controller."""

    info: ClassVar[AdapterInfo] = AdapterInfo(
        type="jenkins",
        display_name="Jenkins",
        capabilities=frozenset(
            {
                Capability.TRIGGER,
                Capability.TRIGGER_PARAMS,
                Capability.CANCEL,
                Capability.PAUSE,
                Capability.RESUME,
                Capability.STEPS,
                Capability.LINEAGE,
            }
        ),
        description=(
            "Jobs in folders and multibranch projects, builds, the build queue, Pipeline "
            "stages and upstream/downstream lineage of a Jenkins controller."
        ),
    )
    config_model: ClassVar[type[BaseModel]] = JenkinsConfig

    @classmethod
    def schedule_calendar(
        cls,
        *,
        job_id: str,
        expression: str,
        timezone: str | None,
        next_run_at: datetime | None,
    ) -> Calendar | None:
        """Jenkins timer specs: ``H`` resolved with Jenkins' own hash of the job's full name
        (the job id), every line, all five fields must match (no day OR)."""
        try:
            spec = compile_spec(expression)
        except SpecError:
            return None
        if not spec.lines:
            return None
        # Jobs whose H values land on the same times share one (hashable) calendar, so the
        # forecaster evaluates it once.
        return _jenkins_calendar(spec.line_sets(job_id), spec.timezone or timezone or "UTC")

    config: JenkinsConfig

    def __init__(
        self,
        ctx: AdapterContext,
        config: JenkinsConfig,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(ctx, config)
        self._injected = http
        self._client: JenkinsClient | None = None
        self._http: httpx.AsyncClient | None = None
        self._retired: list[httpx.AsyncClient] = []
        self._configs: dict[str, _Config] = {}
        self._jobs: dict[str, _JobInfo] = {}
        self._declared: dict[str, set[tuple[str, str]]] = {}  # job -> (src, dst) edges
        self._observed: dict[tuple[str, str], str] = {}  # (upstream, downstream) -> evidence
        self._wfapi_missing = False
        self._requests_closed = 0

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def client(self) -> JenkinsClient:
        if self._client is None:
            http = self._injected
            if http is None:
                try:
                    token = self.ctx.secrets(self.config.token)
                except LookupError as exc:
                    raise AdapterAuthError(
                        f"the API token of Jenkins user {self.config.username!r} is not "
                        f"available ({self.config.token.describe()}): {exc}"
                    ) from None
                http = httpx.AsyncClient(
                    auth=httpx.BasicAuth(self.config.username, token.get_secret_value()),
                    verify=self.config.verify_tls,
                    timeout=self.ctx.timeout,
                    headers={"Accept": "application/json"},
                    follow_redirects=False,
                )
                self._http = http
            self._client = JenkinsClient(self.config.url, http, username=self.config.username)
        return self._client

    @property
    def request_count(self) -> int:
        """HTTP requests sent to Jenkins by this adapter so far."""
        current = self._client.request_count if self._client is not None else 0
        return self._requests_closed + current

    def _retire_client(self) -> None:
        """Stop using the client; the next call builds one with the secret read anew."""
        if self._client is not None:
            self._requests_closed += self._client.request_count
        self._client = None
        if self._http is not None:
            self._retired.append(self._http)
            self._http = None

    async def _reset_client(self) -> None:
        self._retire_client()
        while self._retired:
            await self._retired.pop().aclose()

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """Turn the client's errors into Accord's."""
        try:
            yield
        except JenkinsUnreachable as exc:
            raise AdapterUnavailable(str(exc), retry_after=exc.retry_after) from None
        except JenkinsAuthFailed as exc:
            if exc.rejected:
                self._retire_client()  # the next call reads the secret again (rotated?)
            raise AdapterAuthError(str(exc)) from None
        except JenkinsNotFound as exc:
            raise NotFound(str(exc)) from None
        except JenkinsBadResponse as exc:
            raise InvalidResponse(str(exc)) from None
        except JenkinsRejected as exc:
            raise InvalidResponse(str(exc)) from None
        except JenkinsError as exc:  # pragma: no cover - every subclass is handled above
            raise InvalidResponse(str(exc)) from None

    async def aclose(self) -> None:
        await self._reset_client()
        await super().aclose()

    def _governed(self, path: str) -> None:
        if not self.config.wants(path):
            raise NotFound(f"job {path!r} is not governed by source {self.ctx.source!r}")

    # -- health -------------------------------------------------------------------------------
    async def check(self) -> SourceHealth:
        with self._mapped():
            root = await self.client.root(_ROOT)
        version = self.client.version
        if version is None or root.get("_class") not in (None, "hudson.model.Hudson"):
            raise InvalidResponse(
                f"{self.config.url} answered without an X-Jenkins header: not a Jenkins controller"
            )
        details: dict[str, Any] = {
            "version": version,
            "user": self.config.username,
            "mode": root.get("mode"),
        }
        message = f"Jenkins {version}"
        if isinstance(root.get("description"), str) and root["description"].strip():
            details["system_message"] = root["description"].strip()
            message += f" — {root['description'].strip()}"
        if root.get("quietingDown"):
            return SourceHealth(
                status=HealthStatus.DEGRADED,
                message=f"Jenkins {version} is preparing for shutdown (no new builds start)",
                details=details,
            )
        return SourceHealth(status=HealthStatus.OK, message=message, details=details)

    # -- inventory ----------------------------------------------------------------------------
    async def list_jobs(self) -> AsyncIterator[JobRecord]:
        with self._mapped():
            items = await self.client.walk(_JOB_FIELDS, self.config.folder_depth)
        wanted = [i for i in items if self.config.wants(i.path)]
        await self._read_configs([i.path for i in wanted])
        now = datetime.now(UTC)
        jobs: dict[str, _JobInfo] = {}
        declared: dict[str, set[tuple[str, str]]] = {}
        records = []
        for item in wanted:
            record, info = self._job(item, now)
            jobs[item.path] = info
            declared[item.path] = self._declared_edges(item)
            records.append(record)
        self._jobs = jobs
        self._declared = declared
        for path in set(self._configs) - set(jobs):
            del self._configs[path]  # gone or renamed: forget its config
        for record in records:
            yield record

    async def _read_configs(self, paths: Sequence[str]) -> None:
        """Read config.xml of jobs whose timer spec is unknown or too old (concurrently)."""
        now = time.monotonic()
        refresh = self.config.config_refresh.total_seconds()
        # Each job's config ages between 3/4 and all of configRefresh (by a hash of its
        # path), so re-reads spread over several syncs instead of coming all at once.
        due = [
            p
            for p in paths
            if p not in self._configs
            or self._configs[p].read_at
            < now - refresh * (0.75 + (zlib.crc32(p.encode()) % 1000) / 4000)
        ]
        if not due:
            return
        gate = asyncio.Semaphore(_CONFIG_READERS)

        async def read(path: str) -> None:
            async with gate:
                try:
                    text = await self.client.config_xml(path)
                except JenkinsNotFound:
                    return  # deleted while listed: the next inventory drops it
                except JenkinsAuthFailed as exc:
                    # Reading config.xml needs Job/ExtendedRead: without it the schedule is
                    # unknown, which the job record says.
                    self._configs[path] = _Config(None, None, time.monotonic(), str(exc))
                    return
                self._configs[path] = _parse_config(text)

        results = await asyncio.gather(*(read(p) for p in due), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                with self._mapped():
                    raise result

    def _job(self, item: TreeItem, now: datetime) -> tuple[JobRecord, _JobInfo]:
        data = item.data
        cls = _str(data.get("_class")) or ""
        native_type = _native_type(cls, item.parent_class)
        params = tuple(
            str(p["name"])
            for prop in (data.get("property") or [])
            if isinstance(prop, dict)
            for p in (prop.get("parameterDefinitions") or [])
            if isinstance(p, dict) and isinstance(p.get("name"), str)
        )
        disabled = data.get("disabled")
        color = _str(data.get("color")) or ""
        paused = disabled if isinstance(disabled, bool) else color.startswith("disabled")
        config = self._configs.get(item.path)
        problems: list[str] = []
        schedule: Schedule | None = None
        next_run: datetime | None = None
        if config is not None and config.problem:
            problems.append(config.problem)
        if config is not None and config.timer is not None:
            schedule, next_run, problem = self._schedule(item.path, config.timer, now)
            if problem:
                problems.append(problem)
        attributes: dict[str, Any] = {"class": cls}
        if params:
            attributes["parameters"] = list(params)
        if config is not None and config.scm is not None:
            attributes["scm_poll"] = config.scm.strip()
        folder = item.path.rpartition("/")[0]
        name = data.get("displayName") if isinstance(data.get("displayName"), str) else None
        description = data.get("description")
        record = JobRecord(
            native_id=item.path,
            name=name or str(data.get("name") or item.path),
            native_type=native_type,
            schedule=schedule,
            next_run_at=None if paused else next_run,
            paused=paused,
            labels={"folder": folder} if folder else {},
            url=data.get("url") if isinstance(data.get("url"), str) else None,
            description=description.strip() or None if isinstance(description, str) else None,
            attributes=attributes,
            problems=tuple(problems),
        )
        info = _JobInfo(native_type, params, cls.endswith("WorkflowJob"))
        return record, info

    def _schedule(
        self, path: str, spec: str, now: datetime
    ) -> tuple[Schedule, datetime | None, str | None]:
        shown = spec.strip()
        try:
            timer = parse_spec(spec, path)
        except SpecError as exc:
            text = f"Jenkins timer; next run unknown: Jenkins rejects this spec ({exc})"
            return Schedule(expression=shown, text=text), None, f"invalid timer spec: {exc}"
        zone = timer.timezone or self.config.timezone
        if not timer.lines:
            text = "Jenkins timer without schedule lines: it never fires"
            return Schedule(expression=shown, timezone=zone, text=text), None, None
        hashed = any("H" in line.source or line.source.startswith("@") for line in timer.lines)
        text = f"Jenkins timer ({zone})"
        if hashed:
            text += f"; H resolved for this job: {timer.resolved.replace(chr(10), ' | ')}"
        when = next_fire(timer, now, self.config.timezone)
        if when is None:
            text += "; no date ever matches: it never fires"
        schedule = Schedule(expression=timer.expression, timezone=zone, text=text)
        return schedule, when, None

    def _declared_edges(self, item: TreeItem) -> set[tuple[str, str]]:
        edges: set[tuple[str, str]] = set()
        for key, upstream in (("upstreamProjects", True), ("downstreamProjects", False)):
            for ref in item.data.get(key) or []:
                other = ref.get("fullName") if isinstance(ref, dict) else None
                if isinstance(other, str) and other:
                    edges.add((other, item.path) if upstream else (item.path, other))
        return edges

    # -- lineage ------------------------------------------------------------------------------
    async def lineage(self, job: JobRecord) -> list[EdgeRecord]:
        """``depends_on`` edges of a job: declared (*Build other projects*, upstream and
        downstream projects of the last inventory) and observed (upstream causes of builds
        read so far). Costs no request."""
        me = job.native_id
        found: dict[tuple[str, str], list[str]] = {}
        for src, dst in self._declared.get(me, set()):
            found.setdefault((src, dst), []).append("declared in Jenkins (upstream/downstream)")
        for (src, dst), why in self._observed.items():
            if me in (src, dst):
                found.setdefault((src, dst), []).append(why)
        return [
            EdgeRecord(
                kind=EdgeKind.DEPENDS_ON,
                src=NodeRef(kind=NodeKind.JOB, id=src),
                dst=NodeRef(kind=NodeKind.JOB, id=dst),
                evidence="; ".join(dict.fromkeys(why)),
            )
            for (src, dst), why in sorted(found.items())
        ]

    # -- runs ---------------------------------------------------------------------------------
    async def list_runs(self, cursor: str | None) -> RunPage:
        old = _Cursor.decode(cursor)
        window = self.config.max_builds_per_job
        with self._mapped():
            items = await self.client.walk(
                f"name,builds[{_BUILD}]{{0,{window}}}", self.config.folder_depth
            )
            queue = await self.client.queue(f"items[{_QUEUE_ITEM}]")
        new = _Cursor()
        emitted: list[tuple[str, dict[str, Any]]] = []
        by_queue_id: dict[tuple[str, int], dict[str, Any]] = {}
        for item in items:
            if not self.config.wants(item.path):
                continue
            builds = _builds(item.data.get("builds"), item.path)
            for b in builds:
                qid = _int(b.get("queueId"))
                if qid is not None:
                    by_queue_id[(item.path, qid)] = b
            prev = old.jobs.get(item.path) if old is not None else None
            fresh = await self._fresh_builds(item.path, builds, prev, window)
            emitted.extend((item.path, b) for b in fresh)
            if builds:
                newest = builds[0]
                new.jobs[item.path] = (
                    int(newest["number"]),
                    _int(newest.get("timestamp")) or 0,
                    tuple(int(b["number"]) for b in builds if b.get("building")),
                )
            elif prev is not None:
                new.jobs[item.path] = (prev[0], prev[1], ())
        runs = await self._build_records(emitted)
        edges = self._edges(emitted)
        queued_now: set[int] = set()
        for entry in queue:
            record = self._queued(entry)
            if record is None:
                continue
            path, _, qid = parse_run_id(record.native_id)
            assert qid is not None
            queued_now.add(qid)
            new.queue[qid] = path
            runs.append(record)
        if old is not None:
            runs.extend(await self._left_queue(old.queue, queued_now, by_queue_id, new))
        return RunPage(runs=tuple(runs), cursor=new.encode(), edges=tuple(edges))

    async def _fresh_builds(
        self,
        path: str,
        builds: list[dict[str, Any]],
        prev: tuple[int, int, tuple[int, ...]] | None,
        window: int,
    ) -> list[dict[str, Any]]:
        """The builds of one job to report: all on first sight, else those past the cursor
        and those that were running."""
        if prev is None:
            return builds
        last, last_ts, running = prev
        if builds and (
            int(builds[0]["number"]) < last
            or any(
                int(b["number"]) <= last and (_int(b.get("timestamp")) or 0) > last_ts
                for b in builds
            )
        ):
            _log.warning(
                "Jenkins job %s restarted its build numbers (now #%s, was #%s): reading its"
                " builds as new",
                path,
                builds[0]["number"],
                last,
            )
            return builds
        fresh = [b for b in builds if int(b["number"]) > last or int(b["number"]) in running]
        oldest = int(builds[-1]["number"]) if builds else 0
        if len(builds) >= window and oldest > last + 1:
            # More builds ran since the last sync than one window holds: read the rest.
            # allBuilds is addressed by index, newest first, so builds that start between
            # the two requests shift the range: read one window more than the gap, keep
            # builds by number, and read on until the build after the cursor is reached
            # (or the job has no older builds, or the budget is spent).
            seen = {int(b["number"]) for b in fresh}
            start, budget = len(builds), _MAX_GAP_FILL
            while budget > 0 and oldest > last + 1:
                count = min(oldest - last - 1 + window, budget)
                with self._mapped():
                    data = await self.client.job(
                        path, f"allBuilds[{_BUILD}]{{{start},{start + count}}}"
                    )
                older = _builds(data.get("allBuilds"), path)
                if not older:
                    break
                for b in older:
                    number = int(b["number"])
                    if number > last and number not in seen:
                        seen.add(number)
                        fresh.append(b)
                start += len(older)
                budget -= len(older)
                oldest = min(oldest, *(int(b["number"]) for b in older))
        return fresh

    async def _build_records(self, emitted: list[tuple[str, dict[str, Any]]]) -> list[RunRecord]:
        budget = self.config.stage_requests_per_sync if self.config.stages else 0
        order = sorted(
            range(len(emitted)),
            key=lambda i: (_int(emitted[i][1].get("timestamp")) or 0, emitted[i][1]["number"]),
        )
        stages: dict[int, dict[str, Any] | None] = {}
        for i in reversed(order):  # newest first
            if budget <= 0 or self._wfapi_missing:
                break
            path, build = emitted[i]
            if not str(build.get("_class", "")).endswith("WorkflowRun"):
                continue
            budget -= 1
            stages[i] = await self._stages(path, int(build["number"]))
        return [self._run(path, build, stages.get(i)) for i, (path, build) in enumerate(emitted)]

    async def _stages(self, path: str, number: int) -> dict[str, Any] | None:
        try:
            with self._mapped():
                return await self.client.stages(path, number)
        except NotFound:
            # No Pipeline Stage View plugin (or the build is gone): stop asking for stages
            # while this adapter lives.
            self._wfapi_missing = True
            return None
        except InvalidResponse as exc:
            _log.warning("stages of %s#%s are unreadable: %s", path, number, exc)
            return None

    def _run(self, path: str, build: dict[str, Any], wfapi: dict[str, Any] | None) -> RunRecord:
        number = int(build["number"])
        result = build.get("result") if isinstance(build.get("result"), str) else None
        state, native = build_state(result, bool(build.get("building")))
        trigger, actor, message = _cause_summary(_causes(build))
        steps: tuple[StepRecord, ...] | None = None
        if wfapi is not None:
            steps = _steps(wfapi)
            run_status = wfapi.get("status")
            if state == RunState.RUNNING and run_status == "PAUSED_PENDING_INPUT":
                state, native = stage_state(run_status), run_status
                message = "waiting for input" + (f"; {message}" if message else "")
        started = _ms(build.get("timestamp"))
        ended = None
        if state.terminal and started is not None:
            duration = _int(build.get("duration")) or 0
            ended = _ms((_int(build.get("timestamp")) or 0) + max(duration, 0))
        return RunRecord(
            native_id=f"{path}#{number}",
            job_native_id=path,
            state=state,
            native_state=native,
            trigger=trigger,
            actor=actor,
            started_at=started,
            ended_at=ended,
            url=build.get("url") if isinstance(build.get("url"), str) else None,
            message=message,
            steps=steps,
        )

    def _edges(self, emitted: list[tuple[str, dict[str, Any]]]) -> list[EdgeRecord]:
        edges: list[EdgeRecord] = []
        for path, build in emitted:
            number = int(build["number"])
            for cause in _causes(build):
                if not str(cause.get("_class", "")).endswith("UpstreamCause"):
                    continue
                up_job = cause.get("upstreamProject")
                up_build = _int(cause.get("upstreamBuild"))
                if not isinstance(up_job, str) or up_build is None:
                    continue
                why = f"upstream cause of {path}#{number}: {up_job}#{up_build}"
                edges.append(
                    EdgeRecord(
                        kind=EdgeKind.TRIGGERED,
                        src=NodeRef(kind=NodeKind.RUN, id=f"{up_job}#{up_build}"),
                        dst=NodeRef(kind=NodeKind.RUN, id=f"{path}#{number}"),
                        evidence=why,
                    )
                )
                edges.append(
                    EdgeRecord(
                        kind=EdgeKind.DEPENDS_ON,
                        src=NodeRef(kind=NodeKind.JOB, id=up_job),
                        dst=NodeRef(kind=NodeKind.JOB, id=path),
                        evidence=f"observed: {why}",
                    )
                )
                self._observed[(up_job, path)] = f"observed: {why}"
        return edges

    def _queued(self, entry: dict[str, Any]) -> RunRecord | None:
        """A queued run from a queue item; None for items that are not a governed job's
        (e.g. a running Pipeline's ``node`` block waiting for an executor)."""
        qid = _int(entry.get("id"))
        task = entry.get("task")
        if not isinstance(task, dict):
            return None
        path = task.get("fullName")
        if qid is None or not isinstance(path, str) or not path or not self.config.wants(path):
            return None
        native = queue_native_state(
            entry.get("_class"),
            blocked=bool(entry.get("blocked")),
            buildable=bool(entry.get("buildable")),
        )
        trigger, actor, _ = _cause_summary(_causes(entry))
        why = entry.get("why") if isinstance(entry.get("why"), str) else None
        return RunRecord(
            native_id=f"{path}#queue:{qid}",
            job_native_id=path,
            state=QUEUE_STATES[native],
            native_state=native,
            trigger=trigger,
            actor=actor,
            queued_at=_ms(entry.get("inQueueSince")),
            url=task.get("url") if isinstance(task.get("url"), str) else None,
            message=why,
        )

    def _left(
        self,
        path: str,
        qid: int,
        *,
        number: int | None,
        cancelled: bool = False,
        url: str | None = None,
    ) -> RunRecord:
        if number is not None:
            native = QUEUE_LEFT
            message = f"left the queue as build #{number} ({path}#{number})"
        elif cancelled:
            native = QUEUE_CANCELLED
            message = "cancelled while in the queue"
        else:
            native = QUEUE_VANISHED
            message = "vanished from the queue without becoming a build"
        return RunRecord(
            native_id=f"{path}#queue:{qid}",
            job_native_id=path,
            state=QUEUE_STATES[native],
            native_state=native,
            url=url,
            message=message,
        )

    async def _left_queue(
        self,
        before: Mapping[int, str],
        now_queued: set[int],
        by_queue_id: Mapping[tuple[str, int], dict[str, Any]],
        new: _Cursor,
    ) -> list[RunRecord]:
        """Close queued runs whose item left the queue since the last sync."""
        out: list[RunRecord] = []
        lookups = 0
        for qid, path in sorted(before.items()):
            if qid in now_queued:
                continue
            build = by_queue_id.get((path, qid))
            if build is not None:
                number = int(build["number"])
                url = build.get("url") if isinstance(build.get("url"), str) else None
                out.append(self._left(path, qid, number=number, url=url))
                continue
            if lookups >= _QUEUE_LOOKUPS_PER_SYNC:
                new.queue[qid] = path  # look next time
                continue
            lookups += 1
            record, _ = await self._resolve_queue_item(path, qid)
            out.append(record)
        return out

    async def _resolve_queue_item(self, path: str, qid: int) -> tuple[RunRecord, int | None]:
        """What became of queue item ``qid`` of job ``path``: its record, and the number of
        the build it became (if it did)."""
        try:
            with self._mapped():
                item = await self.client.queue_item(qid, _LEFT_ITEM)
        except NotFound:
            item = None
        if item is not None:
            record = self._queued(item)
            if record is not None and not str(item.get("_class", "")).endswith("LeftItem"):
                return record, None
            executable = item.get("executable")
            number = _int(executable.get("number")) if isinstance(executable, dict) else None
            if isinstance(executable, dict) and number is not None:
                url = executable.get("url") if isinstance(executable.get("url"), str) else None
                return self._left(path, qid, number=number, url=url), number
            if item.get("cancelled"):
                return self._left(path, qid, number=None, cancelled=True), None
        # Gone (left items are kept 5 minutes): find the build that carries its queue id.
        try:
            with self._mapped():
                data = await self.client.job(
                    path, f"builds[number,url,queueId]{{0,{self.config.max_builds_per_job}}}"
                )
        except NotFound:
            return self._left(path, qid, number=None), None
        for b in data.get("builds") or []:
            number = _int(b.get("number")) if isinstance(b, dict) else None
            if number is not None and _int(b.get("queueId")) == qid:
                url = b.get("url") if isinstance(b.get("url"), str) else None
                return self._left(path, qid, number=number, url=url), number
        return self._left(path, qid, number=None), None

    async def get_runs(self, native_ids: Sequence[str]) -> list[RunRecord]:
        out: list[RunRecord] = []
        budget = self.config.stage_requests_per_sync if self.config.stages else 0
        for native_id in dict.fromkeys(native_ids):
            try:
                path, number, qid = parse_run_id(native_id)
            except NotFound:
                continue
            if not self.config.wants(path):
                continue
            if qid is not None:
                record, _ = await self._resolve_queue_item(path, qid)
                out.append(record)
                continue
            assert number is not None
            try:
                with self._mapped():
                    build = await self.client.build(path, number, _BUILD)
            except NotFound:
                continue
            wfapi = None
            if (
                budget > 0
                and not self._wfapi_missing
                and str(build.get("_class", "")).endswith("WorkflowRun")
            ):
                budget -= 1
                wfapi = await self._stages(path, number)
            out.append(self._run(path, build, wfapi))
        return out

    # -- actions ------------------------------------------------------------------------------
    async def trigger(self, job_id: str, params: Mapping[str, Any]) -> RunRecord:
        self._governed(job_id)
        info = self._jobs.get(job_id)
        if params and info is not None and not info.parameters:
            raise ActionNotSupported(
                f"Jenkins job {job_id!r} takes no parameters (got {', '.join(sorted(params))})"
            )
        with self._mapped():
            try:
                qid = await self.client.build_job(job_id, params)
            except JenkinsRejected as exc:
                if exc.status == 409:
                    raise ActionNotSupported(
                        f"Jenkins job {job_id!r} is not buildable (disabled?): resume it first"
                    ) from None
                raise ActionNotSupported(
                    f"Jenkins refused to trigger {job_id!r}: {exc.detail}"
                ) from None
        # Follow the queue item for a moment: answer with the build if it starts.
        deadline = time.monotonic() + self.config.trigger_wait.total_seconds()
        attempts = int(self.config.trigger_wait.total_seconds() / _POLL_INTERVAL) + 1
        record, number = self._left(job_id, qid, number=None), None
        for _ in range(attempts):
            record, number = await self._resolve_queue_item(job_id, qid)
            if record.state != RunState.QUEUED or time.monotonic() >= deadline:
                break
            await asyncio.sleep(_POLL_INTERVAL)
        if number is not None:
            builds = await self.get_runs([f"{job_id}#{number}"])
            if builds:
                return builds[0]
        return record

    async def cancel(self, run_id: str) -> None:
        path, number, qid = parse_run_id(run_id)
        self._governed(path)
        if qid is not None:
            with self._mapped():
                try:
                    await self.client.cancel_queue_item(qid)
                    return
                except JenkinsNotFound:
                    raise NotFound(
                        f"queue item {qid} of {path} is no longer in the queue"
                    ) from None
                except JenkinsRejected:
                    pass  # no longer cancellable: it left the queue
            _, number = await self._resolve_queue_item(path, qid)
            if number is None:
                return  # cancelled or gone already: nothing runs
        assert number is not None
        with self._mapped():
            await self.client.stop_build(path, number)

    async def pause(self, job_id: str) -> None:
        self._governed(job_id)
        with self._mapped():
            await self.client.disable(job_id)

    async def resume(self, job_id: str) -> None:
        self._governed(job_id)
        with self._mapped():
            await self.client.enable(job_id)


# -- pure helpers ---------------------------------------------------------------------------
def _native_type(cls: str, parent_class: str | None) -> str:
    if cls.endswith("WorkflowJob"):
        return (
            "multibranch-branch" if parent_class and "MultiBranch" in parent_class else "pipeline"
        )
    if cls.endswith("FreeStyleProject"):
        return "freestyle"
    short = cls.rsplit(".", 1)[-1].rsplit("$", 1)[-1]
    return short.lower() or "job"


def _parse_config(text: str) -> _Config:
    now = time.monotonic()
    body = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        return _Config(None, None, now, f"config.xml is not well-formed XML ({exc})")
    timers = [e.findtext("spec") or "" for e in root.iter("hudson.triggers.TimerTrigger")]
    scms = [e.findtext("spec") or "" for e in root.iter("hudson.triggers.SCMTrigger")]
    return _Config(
        timer="\n".join(timers) if timers else None,
        scm="\n".join(scms) if scms else None,
        read_at=now,
    )


def _builds(value: Any, path: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidResponse(f"the builds of {path} are not a list")
    out = [b for b in value if isinstance(b, dict) and _int(b.get("number")) is not None]
    return sorted(out, key=lambda b: int(b["number"]), reverse=True)


def _causes(obj: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for action in obj.get("actions") or []:
        if isinstance(action, dict):
            out.extend(c for c in action.get("causes") or [] if isinstance(c, dict))
    return out


def _cause_summary(causes: list[dict[str, Any]]) -> tuple[Trigger, str | None, str | None]:
    """Trigger, actor and a readable message from a build's or queue item's causes."""
    message = "; ".join(
        dict.fromkeys(
            c["shortDescription"] for c in causes if isinstance(c.get("shortDescription"), str)
        )
    )
    for suffix, trigger in _CAUSES:
        for cause in causes:
            cls = str(cause.get("_class", ""))
            if cls.endswith(suffix):
                actor = None
                if trigger in (Trigger.MANUAL, Trigger.RETRY):
                    user = cause.get("userId") or cause.get("userName")
                    actor = str(user) if user else None
                return trigger, actor, message or None
    # Older controllers or trimmed answers without _class: recognise by fields.
    for cause in causes:
        if cause.get("userId") or cause.get("userName"):
            user = cause.get("userId") or cause.get("userName")
            return Trigger.MANUAL, str(user), message or None
        if cause.get("upstreamProject"):
            return Trigger.UPSTREAM, None, message or None
    return Trigger.UNKNOWN, None, message or None


def _steps(wfapi: dict[str, Any]) -> tuple[StepRecord, ...]:
    steps: list[StepRecord] = []
    seen: dict[str, int] = {}
    for stage in wfapi.get("stages") or []:
        if not isinstance(stage, dict) or not isinstance(stage.get("name"), str):
            continue
        name = stage["name"]
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name} ({seen[name]})"
        status = stage.get("status") if isinstance(stage.get("status"), str) else None
        state = stage_state(status)
        start = _int(stage.get("startTimeMillis"))
        duration = _int(stage.get("durationMillis"))
        ended = None
        if state.terminal and start and duration is not None and status != "NOT_EXECUTED":
            ended = _ms(start + duration)
        steps.append(
            StepRecord(
                name=name,
                state=state,
                native_state=status,
                started_at=_ms(start) if status != "NOT_EXECUTED" else None,
                ended_at=ended,
            )
        )
    return tuple(steps)


@lru_cache(maxsize=65_536)
def _jenkins_calendar(lines: tuple[LineSets, ...], tz: str) -> Calendar:
    """The calendar of resolved Jenkins lines (all five fields must match, no day OR)."""
    return Calendar(
        tuple(
            CalendarLine(
                minutes=tuple(sorted(minutes)),
                hours=tuple(sorted(hours)),
                days=days,
                months=months,
                weekdays=weekdays,
                day_or=False,
            )
            for minutes, hours, days, months, weekdays in lines
        ),
        tz,
    )
