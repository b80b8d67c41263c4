"""How the simulator's objects export themselves (the beans behind ``/api/json``).

Property names, ``_class`` values and shapes follow Jenkins core (``AbstractItem``, ``Job``,
``AbstractProject``, ``Run``, ``Queue``) and the Pipeline plugins; see the package
docstring for what is left out.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from .state import (
    BUILD_CLASSES,
    FOLDER_CLASS,
    JOB_CLASSES,
    MULTIBRANCH_CLASS,
    Build,
    Folder,
    Item,
    Job,
    QueueItem,
    SimState,
)
from .tree import Exported

__all__ = ["build_bean", "item_bean", "queue_bean", "queue_item_bean", "root_bean", "wfapi_run"]

_COLORS = {
    "SUCCESS": "blue",
    "UNSTABLE": "yellow",
    "FAILURE": "red",
    "ABORTED": "aborted",
    "NOT_BUILT": "notbuilt",
}
_WFAPI = {
    "SUCCESS": "SUCCESS",
    "UNSTABLE": "UNSTABLE",
    "FAILURE": "FAILED",
    "ABORTED": "ABORTED",
    "NOT_BUILT": "NOT_EXECUTED",
}


def _color(job: Job) -> str:
    if job.disabled:
        return "disabled"
    done = [b for b in job.newest_first() if not b.building]
    base = _COLORS.get(done[0].result or "", "notbuilt") if done else "notbuilt"
    return base + "_anime" if job.building else base


def root_bean(state: SimState) -> Exported:
    def props() -> dict[str, Any]:
        return {
            "assignedLabels": [{"name": "built-in"}],
            "mode": "NORMAL",
            "nodeDescription": "the Jenkins controller's built-in node",
            "nodeName": "",
            "numExecutors": 2,
            "description": state.system_message,
            "jobs": [item_bean(state, i) for i in state.root.children()],
            "overallLoad": {},
            "primaryView": {
                "_class": "hudson.model.AllView",
                "name": "all",
                "url": state.base_url,
            },
            "quietDownReason": None,
            "quietingDown": False,
            "slaveAgentPort": -1,
            "unlabeledLoad": {"_class": "jenkins.model.UnlabeledLoadStatistics"},
            "url": state.base_url,
            "useCrumbs": True,
            "useSecurity": True,
            "views": [{"_class": "hudson.model.AllView", "name": "all", "url": state.base_url}],
        }

    return Exported("hudson.model.Hudson", props, summary=("url",))


def item_bean(state: SimState, item: Item) -> Exported:
    if isinstance(item, Job):
        return _job_bean(state, item)
    assert isinstance(item, Folder)
    folder = item

    def props() -> dict[str, Any]:
        return {
            "actions": [{}],
            "description": folder.description or None,
            "displayName": folder.name,
            "displayNameOrNull": None,
            "fullDisplayName": folder.full_name.replace("/", " » "),
            "fullName": folder.full_name,
            "name": folder.name,
            "url": state.base_url + folder.url_path,
            "healthReport": [],
            "jobs": [item_bean(state, i) for i in folder.children()],
            "primaryView": {"_class": "hudson.model.AllView", "name": "All"},
            "views": [{"_class": "hudson.model.AllView", "name": "All"}],
        }

    cls = MULTIBRANCH_CLASS if folder.multibranch else FOLDER_CLASS
    return Exported(cls, props, summary=("name", "url"))


def _ref(state: SimState, build: Build | None) -> Exported | None:
    return None if build is None else build_bean(state, build)


def _job_bean(state: SimState, job: Job) -> Exported:
    def props() -> dict[str, Any]:
        builds = job.newest_first()
        done = [b for b in builds if not b.building]
        queued = next((q for q in state.queue.values() if q.job is job), None)

        def last(pred: Any) -> Exported | None:
            return _ref(state, next((b for b in done if pred(b)), None))

        out: dict[str, Any] = {
            "actions": [{}, {"_class": "hudson.model.ParametersDefinitionProperty"}]
            if job.parameters
            else [{}],
            "description": job.description or None,
            "displayName": unquote(job.name) if _in_multibranch(job) else job.name,
            "displayNameOrNull": None,
            "fullDisplayName": job.full_name.replace("/", " » "),
            "fullName": job.full_name,
            "name": job.name,
            "url": state.base_url + job.url_path,
            "buildable": not job.disabled,
            "builds": [build_bean(state, b) for b in builds[:100]],
            "allBuilds": [build_bean(state, b) for b in builds],
            "color": _color(job),
            "firstBuild": _ref(state, builds[-1] if builds else None),
            "healthReport": [],
            "inQueue": queued is not None,
            "keepDependencies": False,
            "lastBuild": _ref(state, builds[0] if builds else None),
            "lastCompletedBuild": _ref(state, done[0] if done else None),
            "lastFailedBuild": last(lambda b: b.result == "FAILURE"),
            "lastStableBuild": last(lambda b: b.result == "SUCCESS"),
            "lastSuccessfulBuild": last(lambda b: b.result in ("SUCCESS", "UNSTABLE")),
            "lastUnstableBuild": last(lambda b: b.result == "UNSTABLE"),
            "lastUnsuccessfulBuild": last(lambda b: b.result != "SUCCESS"),
            "nextBuildNumber": job.next_number,
            "property": _properties(job),
            "queueItem": queue_item_bean(state, queued) if queued else None,
            "concurrentBuild": job.concurrent,
        }
        if job.kind == "freestyle":
            out.update(
                {
                    "disabled": job.disabled,
                    "downstreamProjects": [
                        _job_bean(state, j) for j in _resolve(state, job.downstream)
                    ],
                    "labelExpression": None,
                    "scm": {"_class": "hudson.scm.NullSCM"},
                    "upstreamProjects": [_job_bean(state, j) for j in state.upstream_of(job)],
                }
            )
        else:
            out["resumeBlocked"] = False
        return out

    return Exported(
        JOB_CLASSES[job.kind],
        props,
        summary=("name", "url", "color"),
        hidden=frozenset({"allBuilds"}),
    )


def _in_multibranch(job: Job) -> bool:
    return isinstance(job.parent, Folder) and job.parent.multibranch


def _resolve(state: SimState, paths: list[str]) -> list[Job]:
    found = [state.find(p) for p in paths]
    return [j for j in found if isinstance(j, Job)]


def _properties(job: Job) -> list[Any]:
    props: list[Any] = []
    if job.parameters:
        props.append(
            {
                "_class": "hudson.model.ParametersDefinitionProperty",
                "parameterDefinitions": [
                    {
                        "_class": "hudson.model.StringParameterDefinition",
                        "defaultParameterValue": {
                            "_class": "hudson.model.StringParameterValue",
                            "name": name,
                            "value": default,
                        },
                        "description": None,
                        "name": name,
                        "type": "StringParameterDefinition",
                    }
                    for name, default in job.parameters.items()
                ],
            }
        )
    if job.kind == "pipeline" and (job.spec or job.scm_spec):
        props.append(
            {"_class": "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty"}
        )
    return props


def build_bean(state: SimState, build: Build) -> Exported:
    def props() -> dict[str, Any]:
        actions: list[Any] = [{"_class": "hudson.model.CauseAction", "causes": build.causes}]
        if build.params:
            actions.append(
                {
                    "_class": "hudson.model.ParametersAction",
                    "parameters": [
                        {"_class": "hudson.model.StringParameterValue", "name": k, "value": v}
                        for k, v in build.params.items()
                    ],
                }
            )
        actions.append({})
        if build.job.kind == "pipeline":
            actions.append({"_class": "org.jenkinsci.plugins.workflow.job.views.FlowGraphAction"})
        out: dict[str, Any] = {
            "actions": actions,
            "artifacts": [],
            "building": build.building,
            "description": build.description,
            "displayName": f"#{build.number}",
            "duration": 0 if build.building else build.duration,
            "estimatedDuration": build.job.duration_ms,
            "executor": {"_class": "hudson.model.Executor"} if build.building else None,
            "fullDisplayName": f"{build.job.full_name.replace('/', ' » ')} #{build.number}",
            "id": str(build.number),
            "keepLog": False,
            "number": build.number,
            "queueId": build.queue_id,
            "result": build.result,
            "timestamp": build.timestamp,
            "url": state.base_url + build.url_path,
            "inProgress": build.building,
        }
        if build.job.kind == "pipeline":
            out["changeSets"] = []
            out["culprits"] = []
            newer = build.job.builds.get(build.number + 1)
            older = build.job.builds.get(build.number - 1)
            out["nextBuild"] = build_bean(state, newer) if newer else None
            out["previousBuild"] = build_bean(state, older) if older else None
        else:
            out["builtOn"] = ""
            out["changeSet"] = {"_class": "hudson.scm.EmptyChangeLogSet", "items": []}
            out["culprits"] = []
        return out

    return Exported(BUILD_CLASSES[build.job.kind], props, summary=("number", "url"))


def _why(state: SimState, item: QueueItem) -> str | None:
    if item.why is not None:
        return item.why
    now = state.now_ms()
    if item.start_at_ms > now:
        return f"In the quiet period. Expires in {(item.start_at_ms - now) / 1000:.1f} sec"
    running = [b for b in item.job.newest_first() if b.building]
    if item.blocked or (running and not item.job.concurrent):
        if running:
            return f"Build #{running[0].number} is already in progress (ETA: N/A)"
        return "Blocked"
    return "Waiting for next available executor"


def queue_item_bean(state: SimState, item: QueueItem) -> Exported:
    def props() -> dict[str, Any]:
        out: dict[str, Any] = {
            "actions": [{"_class": "hudson.model.CauseAction", "causes": item.causes}],
            "blocked": False,
            "buildable": False,
            "id": item.id,
            "inQueueSince": item.in_queue_since,
            "params": "".join(f"\n{k}={v}" for k, v in item.params.items()),
            "stuck": False,
            "task": _job_bean(state, item.job),
            "url": f"queue/item/{item.id}/",
            "why": None if item.left else _why(state, item),
        }
        if item.params:
            out["actions"].append(
                {
                    "_class": "hudson.model.ParametersAction",
                    "parameters": [
                        {"_class": "hudson.model.StringParameterValue", "name": k, "value": v}
                        for k, v in item.params.items()
                    ],
                }
            )
        if item.left:
            out["cancelled"] = item.cancelled
            out["executable"] = (
                build_bean(state, item.executable) if item.executable is not None else None
            )
        elif _item_class(state, item).endswith("WaitingItem"):
            out["timestamp"] = item.start_at_ms
        else:
            out["blocked"] = _item_class(state, item).endswith("BlockedItem")
            out["buildable"] = not out["blocked"]
            out["buildableStartMilliseconds"] = item.start_at_ms
            if out["buildable"]:
                out["pending"] = False
        return out

    return Exported(_item_class(state, item), props, summary=("id", "url"))


def _item_class(state: SimState, item: QueueItem) -> str:
    if item.left:
        return "hudson.model.Queue$LeftItem"
    if item.start_at_ms > state.now_ms():
        return "hudson.model.Queue$WaitingItem"
    running = any(b.building for b in item.job.builds.values())
    if item.blocked or (running and not item.job.concurrent):
        return "hudson.model.Queue$BlockedItem"
    return "hudson.model.Queue$BuildableItem"


def queue_bean(state: SimState) -> Exported:
    def props() -> dict[str, Any]:
        return {
            "discoverableItems": [],
            "items": [
                queue_item_bean(state, i) for i in sorted(state.queue.values(), key=lambda i: i.id)
            ],
        }

    return Exported("hudson.model.Queue", props, inline=frozenset({"items"}))


def wfapi_run(state: SimState, build: Build) -> dict[str, Any]:
    """``/job/X/N/wfapi/describe`` (RunExt)."""
    now = state.now_ms()
    if build.building:
        status = "PAUSED_PENDING_INPUT" if build.paused_for_input else "IN_PROGRESS"
    else:
        status = _WFAPI.get(build.result or "", "NOT_EXECUTED")
    end = build.timestamp + build.duration if not build.building else 0
    href = "/" + build.url_path
    return {
        "_links": {"self": {"href": f"{href}wfapi/describe"}},
        "id": str(build.number),
        "name": f"#{build.number}",
        "status": status,
        "startTimeMillis": build.timestamp,
        "endTimeMillis": end,
        "durationMillis": (now - build.timestamp) if build.building else build.duration,
        "queueDurationMillis": 0,
        "pauseDurationMillis": 0,
        "stages": [
            {
                "_links": {"self": {"href": f"{href}execution/node/{6 + i}/wfapi/describe"}},
                "id": str(6 + i),
                "name": stage.name,
                "execNode": "",
                "status": stage.status,
                "startTimeMillis": stage.start_ms,
                "durationMillis": stage.duration_ms,
                "pauseDurationMillis": 0,
            }
            for i, stage in enumerate(build.stages(now))
        ],
    }
