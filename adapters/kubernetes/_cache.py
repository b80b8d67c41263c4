"""What the watches have seen: CronJobs, their Jobs, and the run records built from them.

Thread-safe (the watch threads write, the event loop reads). Every change to a run's
record takes a new sequence number; ``list_runs`` cursors are sequence numbers, so the
steady state costs no API request at all. Records of Jobs Kubernetes deleted stay here
(their final state was already reported), so garbage-collected runs never look cancelled.

Ids: a CronJob is ``<namespace>/<name>@<uid[:8]>`` — the uid prefix makes a CronJob
deleted and re-created under the same name a different job, while the id stays the same
across syncs. A Job (run) is ``<cronjob id>/<job name>@<uid[:8]>``; a missed run is
``<cronjob id>/missed:<scheduled time, UTC>``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from gateway.model import (
    JobRecord,
    RunRecord,
    RunState,
    Schedule,
    StepRecord,
    Trigger,
)

from .states import STATES, job_state, pod_state

__all__ = [
    "AFTER_ANNOTATION",
    "Cache",
    "CronJobId",
    "RunId",
    "cronjob_id",
    "parse_cronjob_id",
    "parse_run_id",
    "parse_time",
]

AFTER_ANNOTATION = "accord.dev/after"
MANUAL_ANNOTATION = "cronjob.kubernetes.io/instantiate"
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
_SKIP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
_CRONJOB_ID = re.compile(r"^(?P<ns>[a-z0-9-]+)/(?P<name>[^/@]+)@(?P<uid>[0-9a-f]{8})$")
_RUN_ID = re.compile(
    r"^(?P<cj>[a-z0-9-]+/[^/@]+@[0-9a-f]{8})/(?:(?P<name>[^/@]+)@(?P<uid>[0-9a-f]{8})"
    r"|missed:(?P<missed>[0-9TZ:-]+))$"
)
_MINUTES = re.compile(r"-(\d{7,9})$")
_MAX_MISSED = 100
_MAX_RECORDS = 200_000
# Finished runs whose Job is gone from the cluster, kept after the gateway has stored them
# (so that a look-up of a recently collected Job still answers); older ones are forgotten.
_KEEP_GONE = 1_000
_MISSED_KEPT = timedelta(days=2)  # missed-run records younger than this are kept: the
# look-back (one day) may judge their scheduled times again when a schedule changes


@dataclass(frozen=True)
class CronJobId:
    namespace: str
    name: str
    uid8: str


@dataclass(frozen=True)
class RunId:
    cronjob: str
    namespace: str
    name: str | None  # None for a missed run
    uid8: str | None


def cronjob_id(namespace: str, name: str, uid: str) -> str:
    return f"{namespace}/{name}@{uid.replace('-', '')[:8]}"


def _uid8(uid: str) -> str:
    return uid.replace("-", "")[:8]


def parse_cronjob_id(text: str) -> CronJobId | None:
    m = _CRONJOB_ID.match(text)
    return CronJobId(m.group("ns"), m.group("name"), m.group("uid")) if m else None


def parse_run_id(text: str) -> RunId | None:
    m = _RUN_ID.match(text)
    if not m:
        return None
    cj = m.group("cj")
    return RunId(cj, cj.split("/", 1)[0], m.group("name"), m.group("uid"))


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _int_rv(obj: Mapping[str, Any]) -> int | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return int(rv) if isinstance(rv, str) and rv.isdigit() else None


def _controller_cronjob(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if (
            isinstance(ref, dict)
            and ref.get("kind") == "CronJob"
            and ref.get("controller")
            and isinstance(ref.get("uid"), str)
            and isinstance(ref.get("name"), str)
        ):
            return ref
    return None


@dataclass
class Links:
    job: str | None
    run: str | None

    @staticmethod
    def fill(template: str | None, ns: str, name: str, uid: str) -> str | None:
        return template.format(namespace=ns, name=name, uid=uid) if template else None


@dataclass
class _PodInfo:
    reasons: tuple[str, ...]
    steps: tuple[StepRecord, ...]


@dataclass
class Cache:
    """CronJobs and Jobs by uid, and run records by id with a sequence number."""

    links: Links
    owner_label: str
    default_zone: str
    clock: Callable[[], datetime]
    filtered: bool = False  # a label selector: runs show only once their CronJob is seen
    lock: threading.RLock = field(default_factory=threading.RLock)
    cronjobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, tuple[int, RunRecord]] = field(default_factory=dict)
    seq: int = 0
    _names: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (res, ns, name)->uid
    _job_owner: dict[str, str] = field(default_factory=dict)  # job uid -> cronjob id
    _run_of: dict[str, str] = field(default_factory=dict)  # job uid -> run id
    _fired: dict[str, set[int]] = field(default_factory=dict)  # cronjob uid -> minutes
    _first_seen: dict[str, datetime] = field(default_factory=dict)
    _suspended: dict[str, list[list[datetime | None]]] = field(default_factory=dict)
    _pods: dict[str, _PodInfo] = field(default_factory=dict)  # run id -> pods read
    pod_queue: dict[str, tuple[str, str]] = field(default_factory=dict)  # run id -> (ns, job)
    # cronjob uid -> (schedule key, next scheduled time not judged, judged up to)
    _due: dict[str, tuple[str, datetime, datetime]] = field(default_factory=dict)
    _seen_cronjob_ids: set[str] = field(default_factory=set)
    _job_built: dict[str, tuple[str, JobRecord]] = field(default_factory=dict)
    _fired_pruned: datetime | None = None

    # -- writes (watch threads and action answers) --------------------------------------------
    def apply(self, resource: str, type_: str, obj: dict[str, Any], *, local: bool = False) -> None:
        """One watch event (or an action's answer with ``local``: ignored when the cache
        already holds a newer version of the object)."""
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("uid"), str):
            return
        with self.lock:
            store = self.cronjobs if resource == "cronjobs" else self.jobs
            if local:
                held = store.get(meta["uid"])
                new_rv, old_rv = _int_rv(obj), _int_rv(held) if held else None
                if (
                    held is not None
                    and new_rv is not None
                    and old_rv is not None
                    and new_rv <= old_rv
                ):
                    return
            if resource == "cronjobs":
                if type_ == "DELETED":
                    self._drop_cronjob(obj)
                else:
                    self._put_cronjob(obj)
            elif type_ == "DELETED":
                self._drop_job(obj)
            else:
                self._put_job(obj)

    def replace(
        self, resource: str, namespace: str | None, items: Iterable[dict[str, Any]]
    ) -> None:
        """A full list of ``resource`` in ``namespace`` (None: all): what is cached there
        and not listed was deleted while no watch ran."""
        with self.lock:
            seen: set[str] = set()
            for obj in items:
                uid = (obj.get("metadata") or {}).get("uid")
                if isinstance(uid, str):
                    seen.add(uid)
                    self.apply(resource, "MODIFIED", obj)
            store = self.cronjobs if resource == "cronjobs" else self.jobs
            for uid, old in list(store.items()):
                ns = old["metadata"].get("namespace")
                if uid not in seen and (namespace is None or ns == namespace):
                    self.apply(resource, "DELETED", old)

    def _bump(self, run_id: str, record: RunRecord) -> None:
        held = self.records.get(run_id)
        if held is not None and held[1] == record:
            return
        self.seq += 1
        self.records[run_id] = (self.seq, record)
        if len(self.records) > _MAX_RECORDS:
            self._prune()

    def _prune(self) -> None:
        self._forget(
            self._gone(lambda rid, seq, rec: True)[: len(self.records) - _MAX_RECORDS // 2]
        )

    def _gone(self, eligible: Callable[[str, int, RunRecord], bool]) -> list[str]:
        """Finished records whose Job the cluster no longer holds and that ``eligible``
        admits, oldest change first."""
        live = set(self._run_of.values())
        return [
            rid
            for _, rid in sorted(
                (seq, rid)
                for rid, (seq, rec) in self.records.items()
                if rid not in live and rec.state.terminal and eligible(rid, seq, rec)
            )
        ]

    def _forget(self, run_ids: list[str]) -> int:
        for rid in run_ids:
            del self.records[rid]
            self._pods.pop(rid, None)
            self.pod_queue.pop(rid, None)
        return len(run_ids)

    def forget_delivered(self, stored: int) -> int:
        """The gateway has stored every change up to sequence ``stored``: forget the
        finished runs whose Job the cluster no longer holds (garbage-collected or deleted)
        and missed-run records older than the look-back, all but the newest
        ``_KEEP_GONE``. Without this the cache would hold every Job it ever saw. Returns
        how many records were forgotten."""
        with self.lock:
            if len(self.records) - len(self._run_of) <= 2 * _KEEP_GONE:
                return 0
            missed_before = self.clock() - _MISSED_KEPT

            def eligible(rid: str, seq: int, rec: RunRecord) -> bool:
                return (
                    seq <= stored
                    and self.visible(rec)  # a withheld record was never delivered
                    and not (
                        "/missed:" in rid
                        and (rec.queued_at is None or rec.queued_at > missed_before)
                    )
                )

            old = self._gone(eligible)
            return self._forget(old[: max(0, len(old) - _KEEP_GONE)])

    def _put_cronjob(self, obj: dict[str, Any]) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        uid = meta["uid"]
        now = self.clock()
        prev = self.cronjobs.get(uid)
        self.cronjobs[uid] = obj
        self._names[("cronjobs", meta.get("namespace", ""), meta.get("name", ""))] = uid
        suspended = bool(spec.get("suspend"))
        if prev is None:
            self._first_seen.setdefault(uid, now)
            self._suspended.setdefault(uid, [[now, None]] if suspended else [])
            cid = cronjob_id(meta.get("namespace", ""), meta.get("name", ""), uid)
            if self.filtered and cid not in self._seen_cronjob_ids:
                self._seen_cronjob_ids.add(cid)
                for rid, (_, rec) in list(self.records.items()):
                    if rec.job_native_id == cid:
                        self.seq += 1
                        self.records[rid] = (self.seq, rec)
            self._seen_cronjob_ids.add(cid)
        else:
            was = bool((prev.get("spec") or {}).get("suspend"))
            intervals = self._suspended.setdefault(uid, [])
            if suspended and not was:
                intervals.append([now, None])
            elif was and not suspended and intervals and intervals[-1][1] is None:
                intervals[-1][1] = now
        last = parse_time((obj.get("status") or {}).get("lastScheduleTime"))
        if last is not None:
            self._fired.setdefault(uid, set()).add(int(last.timestamp()) // 60)

    def _drop_cronjob(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        uid = meta["uid"]
        self.cronjobs.pop(uid, None)
        # What missed-run detection kept of it (a uid is never reused).
        for kept in (self._fired, self._first_seen, self._suspended, self._due):
            kept.pop(uid, None)
        key = ("cronjobs", meta.get("namespace", ""), meta.get("name", ""))
        if self._names.get(key) == uid:
            del self._names[key]

    def _put_job(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        uid, ns, name = meta["uid"], meta.get("namespace", ""), meta.get("name", "")
        ref = _controller_cronjob(obj)
        if ref is not None:
            owner = cronjob_id(ns, ref["name"], ref["uid"])
            self._job_owner[uid] = owner
            annotations = meta.get("annotations") or {}
            if annotations.get(MANUAL_ANNOTATION) != "manual":
                at = parse_time(annotations.get(SCHEDULED_ANNOTATION))
                minute = int(at.timestamp()) // 60 if at else None
                m = _MINUTES.search(name)
                if minute is None and m:
                    minute = int(m.group(1))
                if minute is not None:
                    self._fired.setdefault(ref["uid"], set()).add(minute)
        owner_id = self._job_owner.get(uid)
        if owner_id is None:
            return  # not a CronJob's Job
        self.jobs[uid] = obj
        self._names[("jobs", ns, name)] = uid
        run_id = f"{owner_id}/{name}@{_uid8(uid)}"
        self._run_of[uid] = run_id
        record = self._record(obj, owner_id, run_id)
        held = self.records.get(run_id)
        newly_failed = held is None or held[1].state != RunState.FAILED
        if record.state == RunState.FAILED and run_id not in self._pods and newly_failed:
            self.pod_queue.setdefault(run_id, (ns, name))
        self._bump(run_id, record)

    def _drop_job(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        uid, ns, name = meta["uid"], meta.get("namespace", ""), meta.get("name", "")
        owner_id = self._job_owner.pop(uid, None)  # the Job is gone: its record stays
        if owner_id is None:
            ref = _controller_cronjob(obj)
            if ref is None:
                return
            owner_id = cronjob_id(ns, ref["name"], ref["uid"])
        self.jobs.pop(uid, None)
        key = ("jobs", ns, name)
        if self._names.get(key) == uid:
            del self._names[key]
        run_id = self._run_of.pop(uid, f"{owner_id}/{name}@{_uid8(uid)}")
        record = self._record(obj, owner_id, run_id)
        if not record.state.terminal:
            record = record.model_copy(
                update={
                    "state": STATES["Deleted"],
                    "native_state": "Deleted",
                    "ended_at": record.ended_at or self.clock(),
                    "message": "deleted before it finished (cancelled, or removed in the cluster)",
                }
            )
        # A finished Job that was garbage-collected: its final state (usually reported
        # already, then nothing changes) stays in the history.
        self._bump(run_id, record)

    def _record(self, obj: Mapping[str, Any], owner_id: str, run_id: str) -> RunRecord:
        meta, status = obj["metadata"], obj.get("status") or {}
        state, native = job_state(status)
        annotations = meta.get("annotations") or {}
        manual = annotations.get(MANUAL_ANNOTATION) == "manual"
        conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
        ended = parse_time(status.get("completionTime"))
        message_parts: list[str] = []
        for c in conditions:
            if str(c.get("status", "")).lower() != "true":
                continue
            if c.get("type") in ("Failed", "Suspended") or (
                c.get("type") == "FailureTarget" and native == "FailureTarget"
            ):
                text = ": ".join(str(x) for x in (c.get("reason"), c.get("message")) if x)
                if text and text not in message_parts:
                    message_parts.append(text)
                if c.get("type") == "Failed" and ended is None:
                    ended = parse_time(c.get("lastTransitionTime"))
            if c.get("type") == "Complete" and ended is None:
                ended = parse_time(c.get("lastTransitionTime"))
        pods = self._pods.get(run_id)
        if pods is not None:
            message_parts.extend(pods.reasons)
        ns, name, uid = meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", "")
        return RunRecord(
            native_id=run_id,
            job_native_id=owner_id,
            state=state,
            native_state=native,
            trigger=Trigger.MANUAL if manual else Trigger.SCHEDULE,
            actor=annotations.get("accord.dev/actor") if manual else None,
            queued_at=parse_time(meta.get("creationTimestamp")),
            started_at=parse_time(status.get("startTime")),
            ended_at=ended if state.terminal else None,
            url=Links.fill(self.links.run, ns, name, uid),
            message="; ".join(message_parts) or None,
            steps=pods.steps if pods is not None else None,
        )

    def set_pods(self, run_id: str, pods: list[dict[str, Any]]) -> None:
        """What the pods of a failed Job say (reasons into the message, pods as steps)."""
        reasons: list[str] = []
        steps: list[StepRecord] = []
        for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
            pname = str((pod.get("metadata") or {}).get("name", "?"))
            st = pod.get("status") or {}
            phase = st.get("phase") if isinstance(st.get("phase"), str) else None
            ended: datetime | None = None
            if isinstance(st.get("reason"), str):
                reasons.append(f"pod {pname}: {st['reason']} {st.get('message') or ''}".strip())
            for cs in st.get("containerStatuses") or []:
                if not isinstance(cs, dict):
                    continue
                state = cs.get("state") or {}
                term, wait = state.get("terminated"), state.get("waiting")
                cname = cs.get("name", "?")
                if isinstance(term, dict):
                    ended = max(
                        filter(None, [ended, parse_time(term.get("finishedAt"))]), default=None
                    )
                    if term.get("reason") != "Completed" or term.get("exitCode") not in (0, None):
                        reasons.append(
                            f"pod {pname}: container {cname} terminated: "
                            f"{term.get('reason') or 'Error'} (exit code {term.get('exitCode')})"
                        )
                elif isinstance(wait, dict) and wait.get("reason"):
                    detail = f" ({wait['message']})" if wait.get("message") else ""
                    reasons.append(
                        f"pod {pname}: container {cname} waiting: {wait['reason']}{detail}"
                    )
            steps.append(
                StepRecord(
                    name=pname,
                    state=pod_state(phase),
                    native_state=phase,
                    started_at=parse_time(st.get("startTime")),
                    ended_at=ended if phase in ("Succeeded", "Failed") else None,
                )
            )
        with self.lock:
            self.pod_queue.pop(run_id, None)
            self._pods[run_id] = _PodInfo(tuple(dict.fromkeys(reasons)), tuple(steps))
            held = self.records.get(run_id)
            if held is None:
                return
            uid = next((u for u, r in self._run_of.items() if r == run_id), None)
            if uid is not None and uid in self.jobs:
                self._bump(run_id, self._record(self.jobs[uid], held[1].job_native_id, run_id))
            else:
                rec = held[1]
                extra = "; ".join(self._pods[run_id].reasons)
                msg = "; ".join(x for x in (rec.message, extra) if x) or None
                self._bump(run_id, rec.model_copy(update={"message": msg, "steps": tuple(steps)}))

    # -- reads --------------------------------------------------------------------------------
    def find(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            uid = self._names.get((resource, namespace, name))
            store = self.cronjobs if resource == "cronjobs" else self.jobs
            return store.get(uid) if uid else None

    def cronjob(self, job_id: str) -> dict[str, Any] | None:
        parsed = parse_cronjob_id(job_id)
        if parsed is None:
            return None
        obj = self.find("cronjobs", parsed.namespace, parsed.name)
        if obj is None or _uid8(obj["metadata"]["uid"]) != parsed.uid8:
            return None
        return obj

    def current_id(self, namespace: str, name: str) -> str | None:
        obj = self.find("cronjobs", namespace, name)
        if obj is None:
            return None
        return cronjob_id(namespace, name, obj["metadata"]["uid"])

    def visible(self, record: RunRecord) -> bool:
        return not self.filtered or record.job_native_id in self._seen_cronjob_ids

    def changes(self, after: int, limit: int) -> tuple[list[RunRecord], int, bool]:
        """Records changed after sequence ``after`` (oldest first), the sequence to continue
        from, and whether more are waiting."""
        with self.lock:
            newer = sorted(
                (seq, rec)
                for seq, rec in self.records.values()
                if seq > after and self.visible(rec)
            )
            page = newer[:limit]
            more = len(newer) > limit
            cursor = page[-1][0] if more else max(after, self.seq)
            return [rec for _, rec in page], cursor, more

    def run(self, run_id: str) -> RunRecord | None:
        with self.lock:
            held = self.records.get(run_id)
            return held[1] if held is not None and self.visible(held[1]) else None

    def job_records(self) -> list[JobRecord]:
        with self.lock:
            objs = list(self.cronjobs.values())
        now = self.clock()
        records = []
        built: dict[str, tuple[str, JobRecord]] = {}
        for o in objs:
            meta = o["metadata"]
            rv = str(meta.get("resourceVersion"))
            held = self._job_built.get(meta["uid"])
            # A record stays valid until the CronJob changes or its next run time passes.
            if (
                held is not None
                and held[0] == rv
                and (held[1].next_run_at is None or now < held[1].next_run_at)
            ):
                record = held[1]
            else:
                record = self._job_record(o, now)
            built[meta["uid"]] = (rv, record)
            records.append(record)
        self._job_built = built
        return sorted(records, key=lambda r: r.native_id)

    def _zone(self, spec: Mapping[str, Any]) -> tuple[str, ZoneInfo | None]:
        name = spec.get("timeZone") or self.default_zone
        try:
            return str(name), ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            return str(name), None

    def _job_record(self, obj: Mapping[str, Any], now: datetime) -> JobRecord:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        ns, name, uid = meta.get("namespace", ""), meta.get("name", ""), meta["uid"]
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        annotations = {
            str(k): str(v)
            for k, v in (meta.get("annotations") or {}).items()
            if k not in _SKIP_ANNOTATIONS
        }
        expression = str(spec.get("schedule") or "")
        zone_name, zone = self._zone(spec)
        problems: list[str] = []
        next_run: datetime | None = None
        if zone is None:
            problems.append(
                f"unknown time zone {zone_name!r}: the CronJob controller will not schedule it"
            )
        elif expression.startswith("@every"):
            pass  # an interval from the last run, not a calendar: no next time computed here
        elif not croniter.is_valid(expression):
            problems.append(f"schedule {expression!r} cannot be parsed")
        elif not spec.get("suspend"):
            next_run = croniter(expression, now.astimezone(zone)).get_next(datetime).astimezone(UTC)
        for token in _after_tokens(annotations.get(AFTER_ANNOTATION)):
            if "/" not in token:
                problems.append(
                    f"{AFTER_ANNOTATION}: {token!r} is not an Accord job uid (<source>/<job id>)"
                )
        owners_text = labels.get(self.owner_label) or annotations.get(self.owner_label) or ""
        owners = tuple(o.strip() for o in owners_text.split(",") if o.strip())
        attributes: dict[str, Any] = {
            "namespace": ns,
            "uid": uid,
            "timeZone": spec.get("timeZone"),
            "concurrencyPolicy": spec.get("concurrencyPolicy", "Allow"),
            "startingDeadlineSeconds": spec.get("startingDeadlineSeconds"),
            "suspend": bool(spec.get("suspend")),
            "successfulJobsHistoryLimit": spec.get("successfulJobsHistoryLimit"),
            "failedJobsHistoryLimit": spec.get("failedJobsHistoryLimit"),
            "lastScheduleTime": status.get("lastScheduleTime"),
            "lastSuccessfulTime": status.get("lastSuccessfulTime"),
            "annotations": annotations,
        }
        return JobRecord(
            native_id=cronjob_id(ns, name, uid),
            name=f"{ns}/{name}",
            native_type="CronJob",
            schedule=Schedule(expression=expression or None, timezone=zone_name),
            next_run_at=next_run,
            paused=bool(spec.get("suspend")),
            owners=owners,
            labels=labels,
            url=Links.fill(self.links.job, ns, name, uid),
            description=annotations.get("description") or annotations.get("accord.dev/description"),
            attributes=attributes,
            problems=tuple(problems),
        )

    # -- missed runs --------------------------------------------------------------------------
    def find_missed(self, *, grace: timedelta, lookback: timedelta = timedelta(days=1)) -> int:
        """Add a record for every scheduled time that passed without a Job (``Missed``) or
        while the CronJob was suspended (``Skipped``). Returns how many were new."""
        now = self.clock()
        added = 0
        with self.lock:
            for uid, obj in list(self.cronjobs.items()):
                added += self._missed_of(uid, obj, now, grace, lookback)
            if self._fired_pruned is None or now - self._fired_pruned > timedelta(hours=1):
                # Start minutes before the look-back (and any starting deadline) are
                # never judged again.
                oldest = int((now - lookback - timedelta(days=1)).timestamp()) // 60
                for minutes in self._fired.values():
                    minutes.difference_update([m for m in minutes if m < oldest])
                self._fired_pruned = now
        return added

    def _missed_of(
        self,
        uid: str,
        obj: Mapping[str, Any],
        now: datetime,
        grace: timedelta,
        lookback: timedelta,
    ) -> int:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        expression = str(spec.get("schedule") or "")
        _, zone = self._zone(spec)
        if zone is None or expression.startswith("@every"):
            return 0
        if not croniter.is_valid(expression):
            return 0
        deadline_s = spec.get("startingDeadlineSeconds")
        wait = timedelta(seconds=int(deadline_s)) if isinstance(deadline_s, int) else grace
        created = parse_time(meta.get("creationTimestamp")) or now
        begin = max(self._first_seen.get(uid, now), created, now - lookback)
        end = now - wait
        if begin >= end:
            return 0
        key = f"{expression}|{zone.key}|{wait}"
        due = self._due.get(uid)
        if due is not None and due[0] == key:
            if due[1] > end:
                return 0  # the next scheduled time is not due yet: no schedule arithmetic
            begin = max(begin, due[2])
        job_id = cronjob_id(meta.get("namespace", ""), meta.get("name", ""), uid)
        fired = self._fired.get(uid, set())
        itr = croniter(expression, begin.astimezone(zone))
        added = 0
        judged = begin  # scheduled times after this are judged next time
        for _ in range(_MAX_MISSED + 1):
            t = itr.get_next(datetime)
            if t > end or added >= _MAX_MISSED:
                break
            judged = t
            if int(t.timestamp()) // 60 in fired:
                continue
            run_id = f"{job_id}/missed:{_fmt(t)}"
            if run_id in self.records:
                continue
            native, message = self._why_missed(uid, spec, t, wait)
            self._bump(
                run_id,
                RunRecord(
                    native_id=run_id,
                    job_native_id=job_id,
                    state=STATES[native],
                    native_state=native,
                    trigger=Trigger.SCHEDULE,
                    queued_at=t.astimezone(UTC),
                    ended_at=(t + wait).astimezone(UTC),
                    message=message,
                ),
            )
            added += 1
        self._due[uid] = (key, t, judged)
        return added

    def _why_missed(
        self, uid: str, spec: Mapping[str, Any], t: datetime, wait: timedelta
    ) -> tuple[str, str]:
        when = f"{t:%Y-%m-%d %H:%M %Z}"
        for start, stop in self._suspended.get(uid, []):
            if start is not None and start <= t and (stop is None or t < stop):
                return "Skipped", f"scheduled for {when}; not started: the CronJob was suspended"
        if spec.get("concurrencyPolicy") == "Forbid":
            for job in self.jobs.values():
                ref = _controller_cronjob(job)
                if ref is None or ref["uid"] != uid:
                    continue
                st = job.get("status") or {}
                started = parse_time(st.get("startTime")) or parse_time(
                    job["metadata"].get("creationTimestamp")
                )
                state, _ = job_state(st)
                done = parse_time(st.get("completionTime"))
                if started and started <= t and (not state.terminal or (done and done > t)):
                    return "Missed", (
                        f"scheduled for {when}; not started: concurrencyPolicy Forbid and "
                        f"Job {job['metadata'].get('name')} was still running"
                    )
        seconds = int(wait.total_seconds())
        if isinstance(spec.get("startingDeadlineSeconds"), int):
            why = f"no Job started within startingDeadlineSeconds ({seconds}s)"
        else:
            why = f"no Job started within {seconds // 60} min (is the CronJob controller running?)"
        return "Missed", f"scheduled for {when}; {why}"


def _after_tokens(value: str | None) -> list[str]:
    if not value:
        return []
    return [t for t in re.split(r"[\s,]+", value) if t]


def after_tokens(value: str | None) -> list[str]:
    """The Accord job uids an ``accord.dev/after`` annotation names."""
    return _after_tokens(value)
