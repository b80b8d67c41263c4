"""The Jenkins simulator's world: folders, jobs, builds, the queue, and the control API.

Tests and the demo drive it directly (``start``, ``finish``, ``rename``, ...); the HTTP
server in :mod:`.server` renders it as Jenkins' JSON API and changes it the way Jenkins'
POST endpoints do. Everything is guarded by one lock.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from adapters.jenkins.cron import SpecError, parse_spec

__all__ = [
    "BUILD_CLASSES",
    "FOLDER_CLASS",
    "JOB_CLASSES",
    "LEFT_ITEM_TTL_MS",
    "MULTIBRANCH_CLASS",
    "Build",
    "Faults",
    "Folder",
    "Job",
    "QueueItem",
    "SimState",
    "cause_remote",
    "cause_scm",
    "cause_timer",
    "cause_upstream",
    "cause_user",
]

FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
MULTIBRANCH_CLASS = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
JOB_CLASSES = {
    "freestyle": "hudson.model.FreeStyleProject",
    "pipeline": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
}
BUILD_CLASSES = {
    "freestyle": "hudson.model.FreeStyleBuild",
    "pipeline": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
}
LEFT_ITEM_TTL_MS = 5 * 60 * 1000  # Queue.leftItems expireAfterWrite(5 minutes)
RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED")


# -- causes (as Jenkins exports them in a CauseAction) -------------------------------------
def cause_user(user_id: str, user_name: str | None = None) -> dict[str, Any]:
    name = user_name or user_id
    return {
        "_class": "hudson.model.Cause$UserIdCause",
        "shortDescription": f"Started by user {name}",
        "userId": user_id,
        "userName": name,
    }


def cause_timer() -> dict[str, Any]:
    return {
        "_class": "hudson.triggers.TimerTrigger$TimerTriggerCause",
        "shortDescription": "Started by timer",
    }


def cause_scm() -> dict[str, Any]:
    return {
        "_class": "hudson.triggers.SCMTrigger$SCMTriggerCause",
        "shortDescription": "Started by an SCM change",
    }


def cause_remote(addr: str, note: str | None = None) -> dict[str, Any]:
    text = f"Started by remote host {addr}" + (f" with note: {note}" if note else "")
    return {
        "_class": "hudson.model.Cause$RemoteCause",
        "shortDescription": text,
        "addr": addr,
        "note": note,
    }


def cause_upstream(project: str, number: int, url: str) -> dict[str, Any]:
    return {
        "_class": "hudson.model.Cause$UpstreamCause",
        "shortDescription": f'Started by upstream project "{project}" build number {number}',
        "upstreamBuild": number,
        "upstreamProject": project,
        "upstreamUrl": url,
    }


# -- the model ------------------------------------------------------------------------------
@dataclass
class Faults:
    """Failures the test switches on. Counters count down one per HTTP request."""

    reject_all_credentials: bool = False  # every request: 401
    crumb_even_for_tokens: bool = False  # POST without crumb: 403 even with an API token
    unavailable: int = 0  # next N requests: 503 with Retry-After
    retry_after: int = 7
    html: int = 0  # next N requests: 200 with an HTML login page instead of JSON
    vanish_on_start: bool = False  # queue items disappear instead of becoming builds


@dataclass(eq=False)
class Item:
    name: str
    parent: Folder | None
    description: str = ""

    @property
    def full_name(self) -> str:
        if self.parent is None or self.parent.parent is None:
            return self.name
        return f"{self.parent.full_name}/{self.name}"

    @property
    def url_path(self) -> str:
        """``job/a/job/b/`` (names URL-quoted, so ``feature%2Fx`` becomes ``feature%252Fx``)."""
        own = f"job/{quote(self.name, safe='')}/"
        if self.parent is None or self.parent.parent is None:
            return own
        return self.parent.url_path + own


@dataclass(eq=False)
class Folder(Item):
    multibranch: bool = False
    items: dict[str, Item] = field(default_factory=dict)

    def children(self) -> list[Item]:
        # Jenkins keeps items in a map sorted case-insensitively by name.
        return [self.items[k] for k in sorted(self.items, key=str.lower)]


@dataclass(eq=False)
class Stage:
    name: str
    status: str
    start_ms: int
    duration_ms: int


@dataclass(eq=False)
class Build:
    job: Job
    number: int
    queue_id: int
    timestamp: int
    causes: list[dict[str, Any]]
    params: dict[str, str] = field(default_factory=dict)
    duration: int = 0
    result: str | None = None
    building: bool = True
    description: str | None = None
    # Pipelines: the stage running now (index), a paused input, the stage that fails.
    stage_index: int = 0
    paused_for_input: bool = False
    failed_stage: int | None = None
    planned_end_ms: int | None = None  # auto mode
    planned_result: str | None = None

    @property
    def url_path(self) -> str:
        return f"{self.job.url_path}{self.number}/"

    def stages(self, now_ms: int) -> list[Stage]:
        names = self.job.stage_names
        if self.job.kind != "pipeline" or not names:
            return []
        total = self.duration if not self.building else max(1, now_ms - self.timestamp)
        each = max(1, total // len(names))
        out: list[Stage] = []
        if self.building:
            current = min(self.stage_index, len(names) - 1)
            for i, name in enumerate(names[: current + 1]):
                status = "SUCCESS"
                if i == current:
                    status = "PAUSED_PENDING_INPUT" if self.paused_for_input else "IN_PROGRESS"
                out.append(Stage(name, status, self.timestamp + i * each, each))
            return out
        failed = self.failed_stage if self.failed_stage is not None else len(names) - 1
        for i, name in enumerate(names):
            start = self.timestamp + i * each
            if self.result == "SUCCESS":
                status = "SUCCESS"
            elif self.result == "NOT_BUILT":
                status = "NOT_EXECUTED"
            elif self.result in ("FAILURE", "ABORTED", "UNSTABLE"):
                word = {"FAILURE": "FAILED", "ABORTED": "ABORTED", "UNSTABLE": "UNSTABLE"}
                status = (
                    "SUCCESS"
                    if i < failed
                    else word[self.result]
                    if i == failed
                    else "NOT_EXECUTED"
                )
            else:
                status = "NOT_EXECUTED"
            out.append(Stage(name, status, start, each if status != "NOT_EXECUTED" else 0))
        return out


@dataclass(eq=False)
class Job(Item):
    kind: str = "freestyle"  # freestyle | pipeline
    spec: str | None = None  # TimerTrigger spec
    scm_spec: str | None = None  # SCMTrigger (polling) spec
    disabled: bool = False
    parameters: dict[str, str] = field(default_factory=dict)  # name -> default value
    downstream: list[str] = field(default_factory=list)  # full names triggered on success
    stage_names: list[str] = field(default_factory=list)
    concurrent: bool = False
    builds: dict[int, Build] = field(default_factory=dict)
    next_number: int = 1
    # auto mode
    duration_ms: int = 4000
    fail_rate: float = 0.0

    def newest_first(self) -> list[Build]:
        return [self.builds[n] for n in sorted(self.builds, reverse=True)]

    @property
    def building(self) -> bool:
        return any(b.building for b in self.builds.values())

    def config_xml(self) -> str:
        timer = (
            "<hudson.triggers.TimerTrigger><spec>"
            f"{escape(self.spec)}</spec></hudson.triggers.TimerTrigger>"
            if self.spec is not None
            else ""
        )
        scm = (
            "<hudson.triggers.SCMTrigger><spec>"
            f"{escape(self.scm_spec)}</spec><ignorePostCommitHooks>false"
            "</ignorePostCommitHooks></hudson.triggers.SCMTrigger>"
            if self.scm_spec is not None
            else ""
        )
        params = ""
        if self.parameters:
            defs = "".join(
                "<hudson.model.StringParameterDefinition>"
                f"<name>{escape(k)}</name><defaultValue>{escape(v)}</defaultValue>"
                "<trim>false</trim></hudson.model.StringParameterDefinition>"
                for k, v in self.parameters.items()
            )
            params = (
                "<hudson.model.ParametersDefinitionProperty><parameterDefinitions>"
                f"{defs}</parameterDefinitions></hudson.model.ParametersDefinitionProperty>"
            )
        desc = escape(self.description)
        disabled = "true" if self.disabled else "false"
        if self.kind == "pipeline":
            triggers = (
                "<org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty>"
                f"<triggers>{timer}{scm}</triggers>"
                "</org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty>"
                if timer or scm
                else ""
            )
            return (
                "<?xml version='1.1' encoding='UTF-8'?>\n"
                '<flow-definition plugin="workflow-job@1400.v7fd111b_ec82f">\n'
                "  <actions/>\n"
                f"  <description>{desc}</description>\n"
                "  <keepDependencies>false</keepDependencies>\n"
                f"  <properties>{params}{triggers}</properties>\n"
                '  <definition class="org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition"'
                ' plugin="workflow-cps@3894.vd0f0248b_a_fc4">\n'
                "    <script>pipeline { agent any; stages { stage('Build') { steps { echo 'hi' }"
                " } } }</script>\n"
                "    <sandbox>true</sandbox>\n"
                "  </definition>\n"
                "  <triggers/>\n"
                f"  <disabled>{disabled}</disabled>\n"
                "</flow-definition>\n"
            )
        publishers = ""
        if self.downstream:
            publishers = (
                "<hudson.tasks.BuildTrigger>"
                f"<childProjects>{escape(','.join(self.downstream))}</childProjects>"
                "<threshold><name>SUCCESS</name><ordinal>0</ordinal><color>BLUE</color>"
                "<completeBuild>true</completeBuild></threshold></hudson.tasks.BuildTrigger>"
            )
        return (
            "<?xml version='1.1' encoding='UTF-8'?>\n"
            "<project>\n"
            "  <actions/>\n"
            f"  <description>{desc}</description>\n"
            "  <keepDependencies>false</keepDependencies>\n"
            f"  <properties>{params}</properties>\n"
            '  <scm class="hudson.scm.NullSCM"/>\n'
            "  <canRoam>true</canRoam>\n"
            f"  <disabled>{disabled}</disabled>\n"
            "  <blockBuildWhenDownstreamBuilding>false</blockBuildWhenDownstreamBuilding>\n"
            "  <blockBuildWhenUpstreamBuilding>false</blockBuildWhenUpstreamBuilding>\n"
            f"  <triggers>{timer}{scm}</triggers>\n"
            f"  <concurrentBuild>{'true' if self.concurrent else 'false'}</concurrentBuild>\n"
            "  <builders/>\n"
            f"  <publishers>{publishers}</publishers>\n"
            "  <buildWrappers/>\n"
            "</project>\n"
        )


@dataclass(eq=False)
class QueueItem:
    id: int
    job: Job
    causes: list[dict[str, Any]]
    params: dict[str, str]
    in_queue_since: int
    start_at_ms: int  # end of the quiet period
    why: str | None = None  # a fixed reason set by the test (else derived)
    blocked: bool = False
    left_at: int | None = None
    cancelled: bool = False
    executable: Build | None = None

    @property
    def left(self) -> bool:
        return self.left_at is not None


class SimState:
    """The simulated controller. Public methods are the control API tests and the demo use."""

    def __init__(
        self,
        *,
        version: str = "2.479.3",
        system_message: str = "Jenkins simulator",
        clock: Callable[[], float] = time.time,
        seed: int = 7,
    ) -> None:
        self.lock = threading.RLock()
        self.version = version
        self.system_message = system_message
        self._clock = clock
        self._offset_ms = 0
        self.root = Folder(name="", parent=None)
        self.queue: dict[int, QueueItem] = {}
        self._left: dict[int, QueueItem] = {}
        self._next_queue_id = 1
        self.faults = Faults()
        self.random = random.Random(seed)
        self.quiet_period_ms = 0
        self.base_url = "http://127.0.0.1/"  # set by the server once it listens
        self.timezone = "UTC"  # the simulated JVM's zone (timers without TZ=)
        self.inventory_version = 0  # bumped by every change of folders and jobs
        self._upstream_key: int | None = None
        self._upstream: dict[str, list[Job]] = {}

    # -- time ------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self._clock() * 1000) + self._offset_ms

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (left queue items expire after 5 minutes)."""
        with self.lock:
            self._offset_ms += int(seconds * 1000)

    # -- lookup ----------------------------------------------------------------------------
    def find(self, path: str) -> Item | None:
        with self.lock:
            node: Item = self.root
            for part in [p for p in path.split("/") if p]:
                if not isinstance(node, Folder) or part not in node.items:
                    return None
                node = node.items[part]
            return node

    def job(self, path: str) -> Job:
        item = self.find(path)
        if not isinstance(item, Job):
            raise KeyError(f"no job {path!r}")
        return item

    def jobs(self) -> list[Job]:
        """Every job, depth first."""
        with self.lock:
            return list(self._walk(self.root))

    def _walk(self, folder: Folder) -> Iterator[Job]:
        for child in folder.children():
            if isinstance(child, Job):
                yield child
            elif isinstance(child, Folder):
                yield from self._walk(child)

    def upstream_of(self, job: Job) -> list[Job]:
        """Freestyle jobs whose *Build other projects* action names ``job``."""
        with self.lock:
            key = self.inventory_version
            if self._upstream_key != key:
                index: dict[str, list[Job]] = {}
                for j in self.jobs():
                    if j.kind == "freestyle":
                        for child in j.downstream:
                            index.setdefault(child, []).append(j)
                self._upstream_key, self._upstream = key, index
            return list(self._upstream.get(job.full_name, []))

    def job_paths(self) -> set[str]:
        return {j.full_name for j in self.jobs()}

    # -- inventory changes ------------------------------------------------------------------
    def _folder_for(self, path: str, *, create: bool = True) -> tuple[Folder, str]:
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise ValueError("empty path")
        node = self.root
        for part in parts[:-1]:
            child = node.items.get(part)
            if child is None:
                if not create:
                    raise KeyError(path)
                child = Folder(name=part, parent=node)
                node.items[part] = child
            if not isinstance(child, Folder):
                raise ValueError(f"{child.full_name!r} is a job, not a folder")
            node = child
        return node, parts[-1]

    def add_folder(self, path: str, description: str = "", *, multibranch: bool = False) -> Folder:
        with self.lock:
            parent, name = self._folder_for(path)
            existing = parent.items.get(name)
            if isinstance(existing, Folder):
                existing.description = description or existing.description
                existing.multibranch = multibranch or existing.multibranch
                return existing
            if existing is not None:
                raise ValueError(f"{path!r} exists and is not a folder")
            folder = Folder(name=name, parent=parent, description=description)
            folder.multibranch = multibranch
            parent.items[name] = folder
            self.inventory_version += 1
            return folder

    def add_job(
        self,
        path: str,
        kind: str = "freestyle",
        *,
        spec: str | None = None,
        scm_spec: str | None = None,
        description: str = "",
        disabled: bool = False,
        parameters: Mapping[str, str] | None = None,
        downstream: Sequence[str] = (),
        stages: Sequence[str] = (),
        concurrent: bool = False,
        duration_ms: int = 4000,
        fail_rate: float = 0.0,
    ) -> Job:
        if kind not in JOB_CLASSES:
            raise ValueError(f"kind must be one of {sorted(JOB_CLASSES)}")
        with self.lock:
            parent, name = self._folder_for(path)
            if name in parent.items:
                raise ValueError(f"{path!r} already exists")
            job = Job(name=name, parent=parent, description=description)
            job.kind = kind
            job.spec = spec
            job.scm_spec = scm_spec
            job.disabled = disabled
            job.parameters = dict(parameters or {})
            job.downstream = list(downstream)
            job.stage_names = list(stages)
            job.concurrent = concurrent
            job.duration_ms = duration_ms
            job.fail_rate = fail_rate
            parent.items[name] = job
            self.inventory_version += 1
            return job

    def add_branch(self, multibranch: str, branch: str, **kw: Any) -> Job:
        """A branch job of a multibranch project (a Pipeline; ``/`` in the name encoded)."""
        with self.lock:
            self.add_folder(multibranch, multibranch=True)
            encoded = branch.replace("%", "%25").replace("/", "%2F")
            return self.add_job(f"{multibranch}/{encoded}", "pipeline", **kw)

    def rename(self, path: str, new_name: str) -> str:
        """Rename a job or folder in place (its builds move with it); return the new path."""
        with self.lock:
            item = self.find(path)
            if item is None or item.parent is None:
                raise KeyError(path)
            parent = item.parent
            if new_name in parent.items:
                raise ValueError(f"{new_name!r} exists")
            del parent.items[item.name]
            item.name = new_name
            parent.items[new_name] = item
            self.inventory_version += 1
            return item.full_name

    def delete(self, path: str) -> None:
        with self.lock:
            item = self.find(path)
            if item is None or item.parent is None:
                raise KeyError(path)
            del item.parent.items[item.name]
            self.inventory_version += 1
            gone: list[Job] = []
            if isinstance(item, Job):
                gone.append(item)
            elif isinstance(item, Folder):
                gone.extend(self._walk(item))
            doomed = {id(j) for j in gone}
            for qid in [q.id for q in self.queue.values() if id(q.job) in doomed]:
                del self.queue[qid]

    def reset_builds(self, path: str) -> None:
        """Delete a job's builds and start numbering at 1 again (a job recreated or reset)."""
        with self.lock:
            job = self.job(path)
            job.builds.clear()
            job.next_number = 1

    def set_disabled(self, path: str, disabled: bool) -> None:
        with self.lock:
            self.job(path).disabled = disabled

    # -- the queue and builds -----------------------------------------------------------------
    def enqueue(
        self,
        path: str,
        cause: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        why: str | None = None,
        blocked: bool = False,
        quiet_ms: int | None = None,
    ) -> tuple[QueueItem, bool]:
        """Schedule a build like ``Queue.schedule2``: returns (item, created). An identical
        item (same job, same parameters) already waiting absorbs the new cause."""
        with self.lock:
            job = self.job(path)
            values = {**job.parameters, **{k: str(v) for k, v in (params or {}).items()}}
            causes = [dict(cause)] if cause else [cause_user("anonymous")]
            for item in self.queue.values():
                if item.job is job and item.params == values:
                    for c in causes:
                        if c not in item.causes:
                            item.causes.append(c)
                    return item, False
            now = self.now_ms()
            quiet = self.quiet_period_ms if quiet_ms is None else quiet_ms
            item = QueueItem(
                id=self._next_queue_id,
                job=job,
                causes=causes,
                params=values,
                in_queue_since=now,
                start_at_ms=now + quiet,
                why=why,
                blocked=blocked,
            )
            self._next_queue_id += 1
            self.queue[item.id] = item
            return item, True

    def queue_item(self, qid: int) -> QueueItem | None:
        """An item in the queue or one that left less than 5 minutes ago."""
        with self.lock:
            self._expire_left()
            return self.queue.get(qid) or self._left.get(qid)

    def _expire_left(self) -> None:
        now = self.now_ms()
        for qid in [q for q, i in self._left.items() if (i.left_at or 0) + LEFT_ITEM_TTL_MS < now]:
            del self._left[qid]

    def start(self, qid: int, *, at_ms: int | None = None) -> Build | None:
        """The queue hands item ``qid`` to an executor: it becomes a build (returned), or
        vanishes without a trace when ``faults.vanish_on_start`` is set (None)."""
        with self.lock:
            item = self.queue.pop(qid)
            if self.faults.vanish_on_start:
                return None
            job = item.job
            now = self.now_ms() if at_ms is None else at_ms
            build = Build(
                job=job,
                number=job.next_number,
                queue_id=item.id,
                timestamp=now,
                causes=item.causes,
                params=dict(item.params),
            )
            job.next_number += 1
            job.builds[build.number] = build
            item.left_at = self.now_ms()
            item.executable = build
            self._left[item.id] = item
            return build

    def vanish(self, qid: int) -> None:
        """Drop a queue item without a trace (as if Jenkins lost it before it became a build)."""
        with self.lock:
            self.queue.pop(qid, None)
            self._left.pop(qid, None)

    def cancel(self, qid: int) -> bool:
        """``Queue.cancel``: True when the item was waiting and is now cancelled."""
        with self.lock:
            item = self.queue.pop(qid, None)
            if item is None:
                return False
            item.cancelled = True
            item.left_at = self.now_ms()
            self._left[qid] = item
            return True

    def build(self, path: str, number: int) -> Build:
        with self.lock:
            job = self.job(path)
            if number not in job.builds:
                raise KeyError(f"{path}#{number}")
            return job.builds[number]

    def finish(
        self,
        path: str,
        number: int,
        result: str = "SUCCESS",
        *,
        duration_ms: int | None = None,
        failed_stage: int | None = None,
    ) -> Build:
        """End a running build with ``result``; on SUCCESS its downstream jobs are queued
        with an upstream cause (like the *Build other projects* post-build action)."""
        if result not in RESULTS:
            raise ValueError(f"result must be one of {RESULTS}")
        with self.lock:
            build = self.build(path, number)
            if not build.building:
                raise ValueError(f"{path}#{number} has finished already")
            build.building = False
            build.paused_for_input = False
            build.result = result
            build.failed_stage = failed_stage
            build.duration = (
                duration_ms if duration_ms is not None else max(1, self.now_ms() - build.timestamp)
            )
            if result == "SUCCESS":
                for child in build.job.downstream:
                    if isinstance(self.find(child), Job) and not self.job(child).disabled:
                        self.enqueue(
                            child,
                            cause_upstream(build.job.full_name, number, build.job.url_path),
                        )
            return build

    def abort(self, path: str, number: int) -> bool:
        """``/stop``: abort a running build (False when it had finished)."""
        with self.lock:
            build = self.build(path, number)
            if not build.building:
                return False
            self.finish(path, number, "ABORTED")
            build.failed_stage = build.stage_index
            return True

    def advance_stage(self, path: str, number: int) -> None:
        with self.lock:
            self.build(path, number).stage_index += 1

    def pause_for_input(self, path: str, number: int, paused: bool = True) -> None:
        with self.lock:
            self.build(path, number).paused_for_input = paused

    def run(
        self,
        path: str,
        result: str = "SUCCESS",
        *,
        cause: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        at_ms: int | None = None,
        duration_ms: int = 1000,
        failed_stage: int | None = None,
    ) -> Build:
        """Queue, start and finish one build (history seeding)."""
        with self.lock:
            item, _ = self.enqueue(path, cause, params=params)
            build = self.start(item.id, at_ms=at_ms)
            if build is None:
                raise RuntimeError("the queue item vanished (faults.vanish_on_start is set)")
            return self.finish(
                path, build.number, result, duration_ms=duration_ms, failed_stage=failed_stage
            )

    # -- auto mode (the demo) ------------------------------------------------------------------
    def tick(self) -> None:
        """Advance on its own: start due queue items, finish builds whose time has come, fire
        timers. Used by the demo's background thread; tests drive the state explicitly."""
        with self.lock:
            now = self.now_ms()
            for item in sorted(self.queue.values(), key=lambda i: i.id):
                job = item.job
                if item.blocked or item.start_at_ms > now or job.disabled:
                    continue
                if job.building and not job.concurrent:
                    continue
                build = self.start(item.id)
                if build is None:
                    continue
                build.planned_end_ms = now + job.duration_ms
                failed = self.random.random() < job.fail_rate
                build.planned_result = "FAILURE" if failed else "SUCCESS"
            for job in self.jobs():
                for build in list(job.builds.values()):
                    if not build.building or build.planned_end_ms is None:
                        continue
                    if job.stage_names:
                        span = max(1, build.planned_end_ms - build.timestamp)
                        done = (now - build.timestamp) * len(job.stage_names) // span
                        build.stage_index = min(len(job.stage_names) - 1, done)
                    if build.planned_end_ms <= now:
                        self.finish(job.full_name, build.number, build.planned_result or "SUCCESS")
            minute = now // 60000
            if minute != getattr(self, "_last_minute", None):
                self._last_minute = minute
                stamp = time.gmtime(minute * 60)
                for job in self.jobs():
                    if job.spec is None or job.disabled:
                        continue
                    try:
                        timer = parse_spec(job.spec, job.full_name)
                    except SpecError:
                        continue
                    wall = datetime(*stamp[:5], tzinfo=UTC).astimezone(
                        ZoneInfo(timer.timezone or self.timezone)
                    )
                    if any(line.matches(wall) for line in timer.lines):
                        self.enqueue(job.full_name, cause_timer())
