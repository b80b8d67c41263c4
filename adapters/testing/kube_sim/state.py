"""The simulated cluster: objects, resource versions, the event history watches read, and
the CronJob and Job controllers driven by a clock the tests (or the demo ticker) move.

Objects are JSON dicts shaped like the API's and never mutated once stored: an update
stores a new dict. A list snapshot is therefore just the list of references at that
moment, which is how ``limit``/``continue`` pages stay consistent, as the API promises.
"""

from __future__ import annotations

import copy
import functools
import random
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

__all__ = [
    "KINDS",
    "ApiError",
    "ClusterState",
    "Faults",
    "Plan",
    "fmt_time",
    "parse_time",
]

# resource (URL plural) -> (kind, apiVersion)
KINDS: dict[str, tuple[str, str]] = {
    "cronjobs": ("CronJob", "batch/v1"),
    "jobs": ("Job", "batch/v1"),
    "pods": ("Pod", "v1"),
    "namespaces": ("Namespace", "v1"),
}
_HISTORY = 10_000  # events kept per resource before the oldest are compacted away
_SCHEDULED_AT = "batch.kubernetes.io/cronjob-scheduled-timestamp"
_INSTANTIATE = "cronjob.kubernetes.io/instantiate"


F = TypeVar("F", bound=Callable[..., Any])


def _locked(fn: F) -> F:
    """Hold the state's lock (reentrant) for the whole call."""

    @functools.wraps(fn)
    def wrapper(self: ClusterState, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return fn(self, *args, **kwargs)

    return cast(F, wrapper)


def fmt_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


class ApiError(Exception):
    """An answer with a ``Status`` body (``code``, ``reason``, ``message``)."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


@dataclass
class Faults:
    """Misbehaviour the tests switch on."""

    unavailable: int = 0  # the next N requests answer 503 with Retry-After
    retry_after: int = 1
    gone_as_http: bool = False  # expired watch RVs: HTTP 410 instead of an ERROR event
    reject_tokens: bool = False  # every bearer token is rejected (401)


@dataclass
class Plan:
    """How the demo's (auto mode) Jobs of a CronJob behave."""

    seconds: float = 20.0
    fail_every: int = 0  # every Nth run fails (0: never)
    reason: str = "BackoffLimitExceeded"
    pod_reason: str = "Error"
    runs: int = 0


@dataclass
class _Event:
    rv: int
    type: str
    obj: dict[str, Any]


@dataclass
class _Store:
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    by_ns: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    events: deque[_Event] = field(default_factory=deque)
    compacted: int = 0  # events with rv <= this are gone


class ClusterState:
    """A namespace-scoped batch/v1 world with a controllable clock."""

    def __init__(self, *, now: datetime | None = None, controller_zone: str = "UTC") -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 1000
        self.now = (now or datetime.now(UTC)).replace(microsecond=0)
        self.controller_zone = controller_zone
        self.stores: dict[str, _Store] = {r: _Store() for r in KINDS}
        self.faults = Faults()
        self.plans: dict[tuple[str, str], Plan] = {}
        self.auto = False  # Jobs start and finish by themselves (demo)
        self.controller_down = False  # the CronJob controller does not run
        self.snapshots: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self.rng = random.Random(7)
        self.watch_generation = 0  # bumped to break every open watch stream
        self._last_check: dict[str, datetime] = {}  # cronjob uid -> last controller check

    # -- generic object store ---------------------------------------------------------------
    def _bump(self) -> int:
        self.rv += 1
        return self.rv

    def _record(self, resource: str, type_: str, obj: dict[str, Any]) -> None:
        store = self.stores[resource]
        store.events.append(_Event(int(obj["metadata"]["resourceVersion"]), type_, obj))
        while len(store.events) > _HISTORY:
            store.compacted = store.events.popleft().rv
        self.changed.notify_all()

    def get(self, resource: str, ns: str, name: str) -> dict[str, Any]:
        obj = self.stores[resource].objects.get((ns, name))
        if obj is None:
            batch = KINDS[resource][1] == "batch/v1"
            raise ApiError(
                404,
                "NotFound",
                f'{resource}{".batch" if batch else ""} "{name}" not found',
                details={"name": name, "group": "batch" if batch else "", "kind": resource},
            )
        return obj

    def find(self, resource: str, ns: str, name: str) -> dict[str, Any] | None:
        return self.stores[resource].objects.get((ns, name))

    def items(self, resource: str, ns: str | None = None) -> list[dict[str, Any]]:
        store = self.stores[resource]
        if ns is not None:
            names = store.by_ns.get(ns, {})
            return [names[n] for n in sorted(names)]
        return [store.objects[k] for k in sorted(store.objects)]

    @_locked
    def put(self, resource: str, obj: dict[str, Any], *, created: bool = False) -> dict[str, Any]:
        """Store a new version of ``obj`` (a fresh dict) and record the event."""
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._bump())
        key = (meta.get("namespace", ""), meta["name"])
        self.stores[resource].objects[key] = obj
        self.stores[resource].by_ns.setdefault(key[0], {})[key[1]] = obj
        self._record(resource, "ADDED" if created else "MODIFIED", obj)
        return obj

    @_locked
    def create(self, resource: str, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        kind, api_version = KINDS[resource]
        obj = copy.deepcopy(body)
        obj["kind"], obj["apiVersion"] = kind, api_version
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(
                    422,
                    "Invalid",
                    f"{kind}.batch is invalid: metadata.name: Required value: name or "
                    "generateName is required",
                )
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta["name"]
        if ns and meta.get("namespace", ns) != ns:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
            )
        if ns:
            meta["namespace"] = ns
        if (ns, name) in self.stores[resource].objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{resource}.batch "{name}" already exists',
                details={"name": name, "group": "batch", "kind": resource},
            )
        self._validate(resource, obj)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = fmt_time(self.now)
        meta["generation"] = 1
        meta.pop("resourceVersion", None)
        if resource == "cronjobs":
            spec = obj["spec"]
            spec.setdefault("concurrencyPolicy", "Allow")
            spec.setdefault("suspend", False)
            spec.setdefault("successfulJobsHistoryLimit", 3)
            spec.setdefault("failedJobsHistoryLimit", 1)
            obj["status"] = {}
        elif resource == "jobs":
            spec = obj.setdefault("spec", {})
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            spec.setdefault("suspend", False)
            labels = {
                "batch.kubernetes.io/controller-uid": meta["uid"],
                "batch.kubernetes.io/job-name": name,
                "controller-uid": meta["uid"],
                "job-name": name,
            }
            template = spec.setdefault("template", {})
            template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": meta["uid"]}}
            obj["status"] = {}
            if spec["suspend"]:
                obj["status"]["conditions"] = [self._condition("Suspended", "JobSuspended")]
        self.put(resource, obj, created=True)
        if resource == "cronjobs":
            self._last_check[meta["uid"]] = self.now
        return obj

    def _validate(self, resource: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        kind = KINDS[resource][0]
        limit = 52 if resource == "cronjobs" else 63
        if len(name) > limit:
            raise ApiError(
                422,
                "Invalid",
                f'{kind}.batch "{name}" is invalid: metadata.name: Invalid value: "{name}": '
                f"must be no more than {limit} characters",
            )
        if resource == "cronjobs":
            spec = obj.get("spec") or {}
            schedule = spec.get("schedule")
            if not isinstance(schedule, str) or not croniter.is_valid(schedule):
                raise ApiError(
                    422,
                    "Invalid",
                    f'CronJob.batch "{name}" is invalid: spec.schedule: Invalid value: '
                    f'"{schedule}": unparseable schedule',
                )
            zone = spec.get("timeZone")
            if zone is not None:
                try:
                    ZoneInfo(zone)
                except (ZoneInfoNotFoundError, ValueError):
                    raise ApiError(
                        422,
                        "Invalid",
                        f'CronJob.batch "{name}" is invalid: spec.timeZone: Invalid value: '
                        f'"{zone}": unknown time zone {zone}',
                    ) from None
            if not isinstance(spec.get("jobTemplate"), dict):
                raise ApiError(
                    422,
                    "Invalid",
                    f'CronJob.batch "{name}" is invalid: spec.jobTemplate: Required value',
                )

    @_locked
    def update(
        self, resource: str, ns: str, name: str, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Apply ``change`` to a copy of the object and store it."""
        new = copy.deepcopy(self.get(resource, ns, name))
        before_spec = copy.deepcopy(new.get("spec"))
        change(new)
        if new.get("spec") != before_spec:
            new["metadata"]["generation"] = int(new["metadata"].get("generation", 1)) + 1
        stored = self.put(resource, new)
        if resource == "jobs":
            self._job_suspension(stored)
        return self.find(resource, ns, name) or stored

    @_locked
    def delete(
        self,
        resource: str,
        ns: str,
        name: str,
        *,
        propagation: str | None = None,
        uid: str | None = None,
    ) -> dict[str, Any]:
        obj = self.get(resource, ns, name)
        if uid is not None and obj["metadata"]["uid"] != uid:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource}.batch "{name}": Precondition '
                f"failed: UID in precondition: {uid}, UID in object meta: "
                f"{obj['metadata']['uid']}",
            )
        if propagation is None:
            # batch/v1 Jobs keep the legacy default (orphan their pods); CronJobs cascade.
            propagation = "Orphan" if resource == "jobs" else "Background"
        if propagation not in ("Orphan", "Background", "Foreground"):
            raise ApiError(400, "BadRequest", f"unsupported propagationPolicy {propagation!r}")
        uid_ = obj["metadata"]["uid"]
        if propagation == "Foreground":
            obj = self.update(
                resource,
                ns,
                name,
                lambda o: o["metadata"].update(
                    deletionTimestamp=fmt_time(self.now), finalizers=["foregroundDeletion"]
                ),
            )
        for dep_resource, dep in self._dependents(ns, uid_):
            dm = dep["metadata"]
            if propagation == "Orphan":
                self.update(
                    dep_resource,
                    dm["namespace"],
                    dm["name"],
                    _drop_owner(uid_),
                )
            else:
                self.delete(dep_resource, dm["namespace"], dm["name"], propagation=propagation)
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self._bump())
        del self.stores[resource].objects[(ns, name)]
        del self.stores[resource].by_ns[ns][name]
        self._record(resource, "DELETED", gone)
        if resource == "jobs":
            self._forget_active(gone)
        self._last_check.pop(uid_, None)
        return gone

    def _dependents(self, ns: str, uid: str) -> list[tuple[str, dict[str, Any]]]:
        """Objects whose owner references name ``uid`` (owners are namespace-local)."""
        out = []
        for resource in ("jobs", "pods"):
            for obj in list(self.stores[resource].by_ns.get(ns, {}).values()):
                if any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences", [])):
                    out.append((resource, obj))
        return out

    def compact(self) -> int:
        """Forget every event up to now: watches resuming from an older RV get 410 Gone."""
        with self.lock:
            for store in self.stores.values():
                store.events.clear()
                store.compacted = self.rv
            self.snapshots.clear()
            return self.rv

    def break_watches(self) -> None:
        """End every open watch stream abruptly (as a dropped connection would)."""
        with self.lock:
            self.watch_generation += 1
            self.changed.notify_all()

    def events_after(
        self, resource: str, rv: int
    ) -> list[_Event] | None:  # None: rv is too old (compacted)
        store = self.stores[resource]
        if rv < store.compacted:
            return None
        return [e for e in store.events if e.rv > rv]

    # -- test helpers -------------------------------------------------------------------------
    def add_namespace(self, ns: str) -> None:
        with self.lock:
            if self.find("namespaces", "", ns) is None:
                self.create(
                    "namespaces",
                    "",
                    {"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}},
                )

    def add_cronjob(
        self,
        ns: str,
        name: str,
        schedule: str,
        *,
        time_zone: str | None = None,
        suspend: bool = False,
        concurrency: str = "Allow",
        deadline: int | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        image: str = "busybox:1.36",
        job_annotations: dict[str, str] | None = None,
        history: tuple[int, int] = (3, 1),
    ) -> dict[str, Any]:
        with self.lock:
            self.add_namespace(ns)
            spec: dict[str, Any] = {
                "schedule": schedule,
                "suspend": suspend,
                "concurrencyPolicy": concurrency,
                "successfulJobsHistoryLimit": history[0],
                "failedJobsHistoryLimit": history[1],
                "jobTemplate": {
                    "metadata": {
                        "labels": dict(labels or {}),
                        "annotations": dict(job_annotations or {}),
                    },
                    "spec": {
                        "backoffLimit": 2,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [
                                    {"name": "main", "image": image, "command": ["run"]}
                                ],
                            }
                        },
                    },
                },
            }
            if time_zone:
                spec["timeZone"] = time_zone
            if deadline is not None:
                spec["startingDeadlineSeconds"] = deadline
            meta: dict[str, Any] = {"name": name, "labels": dict(labels or {})}
            if annotations:
                meta["annotations"] = dict(annotations)
            return self.create("cronjobs", ns, {"metadata": meta, "spec": spec})

    def job_from_cronjob(
        self, ns: str, cronjob: str, name: str, *, manual: bool = False
    ) -> dict[str, Any]:
        """Create a Job from a CronJob's template (``kubectl create job --from`` when
        ``manual``, else as the controller does for a scheduled time)."""
        with self.lock:
            cj = self.get("cronjobs", ns, cronjob)
            template = copy.deepcopy(cj["spec"]["jobTemplate"])
            meta = template.get("metadata") or {}
            annotations = dict(meta.get("annotations") or {})
            ref: dict[str, Any] = {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": cronjob,
                "uid": cj["metadata"]["uid"],
                "controller": True,
            }
            if manual:
                annotations[_INSTANTIATE] = "manual"
            else:
                ref["blockOwnerDeletion"] = True
            body = {
                "metadata": {
                    "name": name,
                    "labels": dict(meta.get("labels") or {}),
                    "annotations": annotations,
                    "ownerReferences": [ref],
                },
                "spec": template.get("spec") or {},
            }
            job = self.create("jobs", ns, body)
            if not manual:
                self._add_active(cj, job)
            return job

    def start_job(self, ns: str, name: str) -> dict[str, Any]:
        """The Job controller creates its pod and the pod runs."""
        with self.lock:
            job = self.get("jobs", ns, name)
            if job["status"].get("startTime") or job["spec"].get("suspend"):
                return job
            pod_name = f"{name}-{secrets.token_hex(3)[:5]}"
            self.create(
                "pods",
                ns,
                {
                    "metadata": {
                        "name": pod_name,
                        "labels": dict(job["spec"]["template"]["metadata"]["labels"]),
                        "ownerReferences": [
                            {
                                "apiVersion": "batch/v1",
                                "kind": "Job",
                                "name": name,
                                "uid": job["metadata"]["uid"],
                                "controller": True,
                                "blockOwnerDeletion": True,
                            }
                        ],
                    },
                    "spec": copy.deepcopy(job["spec"]["template"].get("spec") or {}),
                    "status": {"phase": "Running", "startTime": fmt_time(self.now)},
                },
            )

            def start(o: dict[str, Any]) -> None:
                o["status"].update(startTime=fmt_time(self.now), active=1, ready=1)

            return self.update("jobs", ns, name, start)

    def finish_job(
        self,
        ns: str,
        name: str,
        *,
        succeeded: bool,
        reason: str = "BackoffLimitExceeded",
        pod_reason: str = "Error",
        exit_code: int = 1,
    ) -> dict[str, Any]:
        """End a Job: ``Complete``, or ``Failed`` with ``reason``; its pods end too, the
        failing one with ``pod_reason`` (``OOMKilled``, ``Error``, ``ImagePullBackOff``)."""
        with self.lock:
            job = self.start_job(ns, name)
            if _finished(job):
                return job
            now = fmt_time(self.now)
            for pod in self.items("pods", ns):
                if pod["metadata"]["labels"].get("batch.kubernetes.io/job-name") != name:
                    continue
                self.update(
                    "pods",
                    ns,
                    pod["metadata"]["name"],
                    _pod_end(succeeded, pod_reason, exit_code, now),
                )

            def end(o: dict[str, Any]) -> None:
                st = o["status"]
                st.pop("active", None)
                st.pop("ready", None)
                conds = [c for c in st.get("conditions", []) if c["type"] != "Suspended"]
                if succeeded:
                    st["succeeded"] = 1
                    st["completionTime"] = now
                    conds.append(self._condition("SuccessCriteriaMet", "CompletionsReached"))
                    conds.append(self._condition("Complete", "CompletionsReached"))
                else:
                    st["failed"] = 1
                    message = {
                        "BackoffLimitExceeded": "Job has reached the specified backoff limit",
                        "DeadlineExceeded": "Job was active longer than specified deadline",
                    }.get(reason, reason)
                    conds.append(self._condition("FailureTarget", reason, message))
                    conds.append(self._condition("Failed", reason, message))
                st["conditions"] = conds

            job = self.update("jobs", ns, name, end)
            self._forget_active(job)
            self._gc_history(job)
            return self.find("jobs", ns, name) or job

    def _condition(self, type_: str, reason: str, message: str = "") -> dict[str, Any]:
        now = fmt_time(self.now)
        return {
            "type": type_,
            "status": "True",
            "lastProbeTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }

    def _job_suspension(self, job: dict[str, Any]) -> None:
        """spec.suspend of a Job: pods go away and ``Suspended`` is set, or the reverse."""
        if _finished(job):
            return
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        suspended = any(
            c["type"] == "Suspended" and c["status"] == "True"
            for c in job["status"].get("conditions", [])
        )
        if job["spec"].get("suspend") and not suspended:
            for pod in self.items("pods", ns):
                if pod["metadata"]["labels"].get("batch.kubernetes.io/job-name") == name:
                    self.delete("pods", ns, pod["metadata"]["name"])

            def hold(o: dict[str, Any]) -> None:
                st = o["status"]
                for k in ("active", "ready", "startTime"):
                    st.pop(k, None)
                st["conditions"] = [
                    *[c for c in st.get("conditions", []) if c["type"] != "Suspended"],
                    self._condition("Suspended", "JobSuspended", "Job suspended"),
                ]

            self.put("jobs", _changed(job, hold))
        elif not job["spec"].get("suspend") and suspended:

            def release(o: dict[str, Any]) -> None:
                o["status"]["conditions"] = [
                    c for c in o["status"].get("conditions", []) if c["type"] != "Suspended"
                ]

            self.put("jobs", _changed(job, release))

    # -- CronJob controller -------------------------------------------------------------------
    def _owner(self, job: dict[str, Any]) -> dict[str, Any] | None:
        for ref in job["metadata"].get("ownerReferences", []):
            if ref.get("kind") == "CronJob":
                cj = self.find("cronjobs", job["metadata"]["namespace"], ref["name"])
                if cj is not None and cj["metadata"]["uid"] == ref["uid"]:
                    return cj
        return None

    def _add_active(self, cj: dict[str, Any], job: dict[str, Any]) -> None:
        ref = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job["metadata"]["name"],
            "namespace": job["metadata"]["namespace"],
            "uid": job["metadata"]["uid"],
            "resourceVersion": job["metadata"]["resourceVersion"],
        }

        def add(o: dict[str, Any]) -> None:
            o["status"]["active"] = [*o["status"].get("active", []), ref]

        self.update("cronjobs", cj["metadata"]["namespace"], cj["metadata"]["name"], add)

    def _forget_active(self, job: dict[str, Any]) -> None:
        cj = self._owner(job)
        if cj is None:
            return
        uid = job["metadata"]["uid"]
        done = job["status"].get("completionTime")
        active = cj["status"].get("active", [])
        if not any(a["uid"] == uid for a in active) and not done:
            return

        def drop(o: dict[str, Any]) -> None:
            rest = [a for a in o["status"].get("active", []) if a["uid"] != uid]
            if rest:
                o["status"]["active"] = rest
            else:
                o["status"].pop("active", None)
            if done and (
                not o["status"].get("lastSuccessfulTime")
                or o["status"]["lastSuccessfulTime"] < done
            ):
                o["status"]["lastSuccessfulTime"] = done

        self.update("cronjobs", cj["metadata"]["namespace"], cj["metadata"]["name"], drop)

    def _gc_history(self, job: dict[str, Any]) -> None:
        cj = self._owner(job)
        if cj is None:
            return
        ns, uid = cj["metadata"]["namespace"], cj["metadata"]["uid"]
        owned = [
            j
            for j in self.items("jobs", ns)
            if _finished(j)
            and any(r.get("uid") == uid for r in j["metadata"].get("ownerReferences", []))
        ]
        for ok, limit in (
            (True, cj["spec"].get("successfulJobsHistoryLimit", 3)),
            (False, cj["spec"].get("failedJobsHistoryLimit", 1)),
        ):
            group = sorted(
                (j for j in owned if _succeeded(j) == ok),
                key=lambda j: (j["status"].get("startTime") or "", j["metadata"]["name"]),
            )
            for old in group[: max(0, len(group) - int(limit))]:
                self.delete("jobs", ns, old["metadata"]["name"], propagation="Background")

    def _zone(self, cj: dict[str, Any]) -> ZoneInfo:
        return ZoneInfo(cj["spec"].get("timeZone") or self.controller_zone)

    def _run_controller(self) -> None:
        if self.controller_down:
            return
        for cj in self.items("cronjobs"):
            self._check_cronjob(cj)

    def _check_cronjob(self, cj: dict[str, Any]) -> None:
        meta, spec = cj["metadata"], cj["spec"]
        uid = meta["uid"]
        zone = self._zone(cj)
        last_sched = cj["status"].get("lastScheduleTime")
        since = parse_time(last_sched) if last_sched else parse_time(meta["creationTimestamp"])
        since = max(since, self._last_check.get(uid, since))
        self._last_check[uid] = self.now
        if spec.get("suspend"):
            return
        itr = croniter(spec["schedule"], since.astimezone(zone))
        most_recent: datetime | None = None
        for _ in range(1000):
            t = itr.get_next(datetime)
            if t > self.now:
                break
            most_recent = t
        if most_recent is None:
            return
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and (self.now - most_recent).total_seconds() > deadline:
            return  # missed its starting window: nothing runs
        ns = meta["namespace"]
        active = [a for a in cj["status"].get("active", []) if self.find("jobs", ns, a["name"])]
        policy = spec.get("concurrencyPolicy", "Allow")
        if active and policy == "Forbid":
            return
        if active and policy == "Replace":
            for a in active:
                self.delete("jobs", ns, a["name"], propagation="Background")
        name = f"{meta['name']}-{int(most_recent.timestamp()) // 60}"
        if self.find("jobs", ns, name) is not None:
            return
        job = self.job_from_cronjob(ns, meta["name"], name)

        def stamp(o: dict[str, Any]) -> None:
            o["metadata"].setdefault("annotations", {})[_SCHEDULED_AT] = fmt_time(most_recent)

        self.put("jobs", _changed(job, stamp))
        self.update(
            "cronjobs",
            ns,
            meta["name"],
            lambda o: o["status"].__setitem__("lastScheduleTime", fmt_time(most_recent)),
        )

    def _run_jobs(self) -> None:
        if not self.auto:
            return
        for job in self.items("jobs"):
            if _finished(job) or job["spec"].get("suspend"):
                continue
            ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
            start = job["status"].get("startTime")
            if start is None:
                if (
                    self.now - parse_time(job["metadata"]["creationTimestamp"])
                ).total_seconds() >= 1:
                    self.start_job(ns, name)
                continue
            owner = self._owner(job)
            plan = self.plans.get((ns, owner["metadata"]["name"])) if owner else None
            plan = plan or Plan()
            if (self.now - parse_time(start)).total_seconds() >= plan.seconds:
                plan.runs += 1
                fail = plan.fail_every > 0 and plan.runs % plan.fail_every == 0
                self.finish_job(
                    ns,
                    name,
                    succeeded=not fail,
                    reason=plan.reason,
                    pod_reason=plan.pod_reason,
                    exit_code=137 if plan.pod_reason == "OOMKilled" else 1,
                )

    def advance(self, seconds: float) -> None:
        """Move the clock; the controllers act at every minute boundary on the way."""
        with self.lock:
            target = self.now + timedelta(seconds=seconds)
            while self.now < target:
                step = min(target, self.now + timedelta(seconds=60 - self.now.second or 60))
                self.now = step
                self._run_controller()
                self._run_jobs()

    def set_time(self, when: datetime) -> None:
        with self.lock:
            if when > self.now:
                self.advance((when - self.now).total_seconds())

    def tick(self) -> None:
        """Follow the wall clock (the demo)."""
        self.set_time(datetime.now(UTC).replace(microsecond=0))

    def seed_history(self, ns: str, cronjob: str, outcomes: Iterable[bool | str]) -> None:
        """Past Jobs of a CronJob at its scheduled times before now, finished as given
        (``True`` success, ``False`` failure, or a failure reason / pod reason pair
        ``"DeadlineExceeded/ImagePullBackOff"``)."""
        with self.lock:
            cj = self.get("cronjobs", ns, cronjob)
            outcomes = list(outcomes)
            zone = self._zone(cj)
            itr = croniter(cj["spec"]["schedule"], self.now.astimezone(zone))
            times = sorted(itr.get_prev(datetime) for _ in outcomes)
            real_now = self.now
            try:
                for t, outcome in zip(times, outcomes, strict=True):
                    self.now = t.astimezone(UTC)
                    name = f"{cronjob}-{int(t.timestamp()) // 60}"
                    job = self.job_from_cronjob(ns, cronjob, name)
                    self.put(
                        "jobs",
                        _changed(job, _annotate(_SCHEDULED_AT, fmt_time(t))),
                    )
                    self.update(
                        "cronjobs",
                        ns,
                        cronjob,
                        _set_status("lastScheduleTime", fmt_time(t)),
                    )
                    self.start_job(ns, name)
                    self.now = t.astimezone(UTC) + timedelta(seconds=30 + self.rng.randint(0, 90))
                    if outcome is True:
                        self.finish_job(ns, name, succeeded=True)
                    else:
                        reason, _, pod = str(outcome).partition("/") if outcome else ("", "", "")
                        self.finish_job(
                            ns,
                            name,
                            succeeded=False,
                            reason=reason or "BackoffLimitExceeded",
                            pod_reason=pod or "Error",
                            exit_code=137 if pod == "OOMKilled" else 1,
                        )
            finally:
                self.now = real_now
            self._last_check[cj["metadata"]["uid"]] = self.now


Change = Callable[[dict[str, Any]], None]


def _drop_owner(uid: str) -> Change:
    def change(o: dict[str, Any]) -> None:
        refs = o["metadata"].get("ownerReferences", [])
        o["metadata"]["ownerReferences"] = [r for r in refs if r["uid"] != uid]

    return change


def _annotate(key: str, value: str) -> Change:
    def change(o: dict[str, Any]) -> None:
        o["metadata"].setdefault("annotations", {})[key] = value

    return change


def _set_status(key: str, value: str) -> Change:
    def change(o: dict[str, Any]) -> None:
        o["status"][key] = value

    return change


def _changed(obj: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    change(new)
    return new


def _finished(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in job.get("status", {}).get("conditions", [])
    )


def _succeeded(job: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Complete" and c.get("status") == "True"
        for c in job.get("status", {}).get("conditions", [])
    )


def _pod_end(
    succeeded: bool, reason: str, exit_code: int, now: str
) -> Callable[[dict[str, Any]], None]:
    def change(pod: dict[str, Any]) -> None:
        containers = pod["spec"].get("containers") or [{"name": "main", "image": ""}]
        st = pod["status"]
        if succeeded:
            st["phase"] = "Succeeded"
            state: dict[str, Any] = {
                "terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}
            }
        elif reason in ("ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff"):
            st["phase"] = "Failed" if reason == "CrashLoopBackOff" else "Pending"
            state = {
                "waiting": {
                    "reason": reason,
                    "message": f'Back-off pulling image "{containers[0].get("image", "")}"'
                    if "Image" in reason
                    else "back-off restarting failed container",
                }
            }
        else:
            st["phase"] = "Failed"
            state = {"terminated": {"exitCode": exit_code, "reason": reason, "finishedAt": now}}
        st["containerStatuses"] = [
            {
                "name": c.get("name", "main"),
                "image": c.get("image", ""),
                "ready": False,
                "restartCount": 0,
                "state": state,
            }
            for c in containers[:1]
        ]

    return change
