"""The Terraform Cloud simulator's data: organizations, projects, workspaces, runs with
their plan and apply, run triggers, notification configurations and their deliveries.

Tests drive runs through :class:`SimState` (``create_run``, ``plan``, ``finish_apply``,
``fail``, ...); the API's actions (apply, discard, cancel, force-cancel, lock, unlock) go
through the same methods, so a run moves the way Terraform Cloud moves it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "CANCELABLE",
    "CONFIRMABLE",
    "DISCARDABLE",
    "FINAL",
    "Delivery",
    "Faults",
    "NotificationConfig",
    "Phase",
    "Project",
    "Run",
    "RunTrigger",
    "SimError",
    "SimState",
    "TokenInfo",
    "Workspace",
    "iso",
]

FINAL = frozenset(
    {
        "applied",
        "planned_and_finished",
        "planned_and_saved",
        "discarded",
        "errored",
        "canceled",
        "force_canceled",
        "policy_soft_failed",
    }
)
CONFIRMABLE = frozenset({"planned", "cost_estimated", "policy_checked", "post_plan_completed"})
DISCARDABLE = frozenset({"pending", "policy_override", *CONFIRMABLE})
CANCELABLE = frozenset(
    {"plan_queued", "planning", "cost_estimating", "policy_checking", "apply_queued", "applying"}
)
# Which notification trigger a status fires.
_NOTIFY = {
    "pending": ("run:created", "Run Pending"),
    "planning": ("run:planning", "Run Planning"),
    "planned": ("run:needs_attention", "Run Needs Attention"),
    "policy_override": ("run:needs_attention", "Run Needs Attention"),
    "applying": ("run:applying", "Run Applying"),
    "applied": ("run:completed", "Applied"),
    "planned_and_finished": ("run:completed", "Planned and finished"),
    "errored": ("run:errored", "Errored"),
}


class SimError(Exception):
    """A request the simulated Terraform Cloud refuses (HTTP status, JSON:API errors)."""

    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class TokenInfo:
    user: str
    organizations: frozenset[str] | None = None  # None: every organization
    workspaces: frozenset[str] | None = None  # None: every workspace of those


@dataclass
class Project:
    id: str
    org: str
    name: str


@dataclass
class Workspace:
    id: str
    org: str
    name: str
    project_id: str
    description: str = ""
    execution_mode: str = "remote"
    auto_apply: bool = False
    locked: bool = False
    locked_by: str | None = None
    lock_reason: str | None = None
    tags: list[str] = field(default_factory=list)
    vcs_repo: dict[str, Any] | None = None
    terraform_version: str = "1.9.5"
    resource_count: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    current_run: str | None = None


@dataclass
class Phase:
    id: str
    status: str = "pending"
    timestamps: dict[str, datetime] = field(default_factory=dict)

    def set(self, status: str, at: datetime) -> None:
        self.status = status
        key = {"running": "started-at"}.get(status, f"{status.replace('_', '-')}-at")
        self.timestamps[key] = at


@dataclass
class Run:
    id: str
    ws_id: str
    created_at: datetime
    message: str
    source: str
    trigger_reason: str
    created_by: str
    plan: Phase
    apply: Phase
    is_destroy: bool = False
    plan_only: bool = False
    auto_apply: bool = False
    status: str = "pending"
    timestamps: dict[str, datetime] = field(default_factory=dict)
    has_changes: bool | None = None
    cancel_requested: bool = False
    confirmed_by: str | None = None

    @property
    def operation(self) -> str:
        if self.plan_only:
            return "plan_only"
        if self.is_destroy:
            return "destroy"
        return "plan_and_apply"


@dataclass
class RunTrigger:
    id: str
    ws_id: str  # the workspace whose runs are queued
    source_id: str  # the workspace whose applies queue them
    created_at: datetime


@dataclass
class NotificationConfig:
    id: str
    ws_id: str
    url: str
    token: str | None
    triggers: tuple[str, ...]
    name: str = "accord"
    enabled: bool = True


@dataclass
class Delivery:
    """A notification the simulator sends (or would send) to ``url``."""

    url: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Faults:
    rate_limited: int = 0  # the next N requests answer 429
    reset: float = 1.0  # ... with this X-RateLimit-Reset
    unavailable: int = 0  # the next N requests answer 503


class SimState:
    """Everything the simulated Terraform Cloud holds. Guard changes with ``lock``."""

    def __init__(
        self,
        *,
        seed: int = 7,
        clock: Callable[[], datetime] | None = None,
        base_url: str = "http://127.0.0.1",
    ) -> None:
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._last = datetime.fromtimestamp(0, UTC)
        self.base_url = base_url
        self.orgs: dict[str, str] = {}  # name -> email
        self.projects: dict[str, Project] = {}
        self.workspaces: dict[str, Workspace] = {}
        self.runs: dict[str, Run] = {}
        self.run_triggers: dict[str, RunTrigger] = {}
        self.notifications: dict[str, NotificationConfig] = {}
        self.users: dict[str, str] = {}  # username -> user id
        self.outbox: list[Delivery] = []
        self.faults = Faults()
        self.rate_per_second: int | None = 30  # per user, all endpoints
        self.run_list_per_minute: int | None = 30  # per user, the run-list endpoints
        self.version = "v202507-1 (Accord simulator)"

    # -- helpers ----------------------------------------------------------------------------
    def now(self) -> datetime:
        """The clock, strictly increasing by at least a millisecond per call."""
        t = self._clock()
        if t <= self._last:
            t = self._last + timedelta(milliseconds=1)
        self._last = t
        return t

    def new_id(self, prefix: str) -> str:
        alphabet = string.ascii_letters + string.digits
        return prefix + "-" + "".join(self.rng.choice(alphabet) for _ in range(16))

    def user_id(self, username: str) -> str:
        if username not in self.users:
            self.users[username] = self.new_id("user")
        return self.users[username]

    def workspace(self, ws_id: str) -> Workspace:
        ws = self.workspaces.get(ws_id)
        if ws is None:
            raise SimError(404, "not found")
        return ws

    def run(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise SimError(404, "not found")
        return run

    def by_name(self, org: str, name: str) -> Workspace:
        for ws in self.workspaces.values():
            if ws.org == org and ws.name == name:
                return ws
        raise SimError(404, "not found")

    # -- organizations, projects, workspaces ------------------------------------------------
    def add_org(self, name: str, email: str = "ops@example.com") -> str:
        with self.lock:
            self.orgs[name] = email
            self.add_project(name, "Default Project")
            return name

    def add_project(self, org: str, name: str) -> Project:
        with self.lock:
            for p in self.projects.values():
                if p.org == org and p.name == name:
                    return p
            project = Project(self.new_id("prj"), org, name)
            self.projects[project.id] = project
            return project

    def add_workspace(
        self, org: str, name: str, *, project: str | None = None, **kw: Any
    ) -> Workspace:
        with self.lock:
            if org not in self.orgs:
                self.add_org(org)
            if any(w.org == org and w.name == name for w in self.workspaces.values()):
                raise SimError(422, "invalid attribute", f"Name {name} has already been taken")
            prj = self.add_project(org, project or "Default Project")
            now = self.now()
            ws = Workspace(
                self.new_id("ws"), org, name, prj.id, created_at=now, updated_at=now, **kw
            )
            self.workspaces[ws.id] = ws
            return ws

    def rename_workspace(self, ws_id: str, name: str) -> None:
        with self.lock:
            ws = self.workspace(ws_id)
            ws.name = name
            ws.updated_at = self.now()

    def delete_workspace(self, ws_id: str) -> None:
        with self.lock:
            self.workspace(ws_id)
            del self.workspaces[ws_id]
            for rid in [r.id for r in self.runs.values() if r.ws_id == ws_id]:
                del self.runs[rid]
            for tid in [
                t.id for t in self.run_triggers.values() if ws_id in (t.ws_id, t.source_id)
            ]:
                del self.run_triggers[tid]

    def set_lock(self, ws_id: str, locked: bool, *, by: str = "api", reason: str = "") -> None:
        with self.lock:
            ws = self.workspace(ws_id)
            if locked and ws.locked:
                raise SimError(
                    409, "conflict", "Unable to lock workspace. The workspace is already locked."
                )
            if not locked and not ws.locked:
                raise SimError(
                    409, "conflict", "Unable to unlock workspace. The workspace is not locked."
                )
            if not locked and ws.locked_by not in (None, by):
                raise SimError(
                    409, "conflict", f"Unable to unlock workspace. It is locked by {ws.locked_by}."
                )
            ws.locked = locked
            ws.locked_by = by if locked else None
            ws.lock_reason = reason if locked else None
            ws.updated_at = self.now()

    def add_run_trigger(self, ws_id: str, source_id: str) -> RunTrigger:
        with self.lock:
            self.workspace(ws_id)
            self.workspace(source_id)
            rt = RunTrigger(self.new_id("rt"), ws_id, source_id, self.now())
            self.run_triggers[rt.id] = rt
            return rt

    def add_notification(
        self,
        ws_id: str,
        url: str,
        token: str | None,
        triggers: tuple[str, ...] = (
            "run:created",
            "run:planning",
            "run:needs_attention",
            "run:applying",
            "run:completed",
            "run:errored",
        ),
    ) -> NotificationConfig:
        with self.lock:
            self.workspace(ws_id)
            nc = NotificationConfig(self.new_id("nc"), ws_id, url, token, tuple(triggers))
            self.notifications[nc.id] = nc
            return nc

    # -- runs -------------------------------------------------------------------------------
    def create_run(
        self,
        ws_id: str,
        *,
        message: str = "Queued manually via the Terraform Enterprise API",
        source: str = "tfe-api",
        trigger_reason: str = "manual",
        created_by: str = "api-user",
        is_destroy: bool = False,
        plan_only: bool = False,
        auto_apply: bool | None = None,
    ) -> Run:
        with self.lock:
            ws = self.workspace(ws_id)
            if plan_only and is_destroy:
                pass  # a speculative destroy plan is allowed
            now = self.now()
            run = Run(
                id=self.new_id("run"),
                ws_id=ws_id,
                created_at=now,
                message=message,
                source=source,
                trigger_reason=trigger_reason,
                created_by=created_by,
                plan=Phase(self.new_id("plan")),
                apply=Phase(self.new_id("apply")),
                is_destroy=is_destroy,
                plan_only=plan_only,
                auto_apply=ws.auto_apply if auto_apply is None else auto_apply,
            )
            self.user_id(created_by)
            run.plan.set("pending", now)
            run.apply.set("pending", now)
            self.runs[run.id] = run
            if not plan_only:
                ws.current_run = run.id
            self._status(run, "pending", now)
            return run

    def _status(self, run: Run, status: str, at: datetime | None = None) -> None:
        at = at or self.now()
        run.status = status
        run.timestamps[f"{status.replace('_', '-')}-at"] = at
        if status in _NOTIFY:
            self._notify(run, status, at)

    def _walk(self, run: Run, *statuses: str) -> None:
        for status in statuses:
            self._status(run, status)

    def _require(self, run: Run, allowed: frozenset[str] | set[str], what: str) -> None:
        if run.status not in allowed:
            raise SimError(
                409, "transition not allowed", f"cannot {what} a run in status {run.status}"
            )

    def plan(
        self,
        run_id: str,
        *,
        has_changes: bool = True,
        policy: str | None = None,
        cost_estimate: bool = False,
    ) -> Run:
        """Plan a pending run: it ends ``planned`` (awaiting confirmation),
        ``planned_and_finished`` (no changes, or plan only), ``policy_override`` (a
        soft-mandatory policy failed), ``policy_soft_failed`` (same, plan only), or goes on
        to ``apply_queued`` when it auto-applies."""
        with self.lock:
            run = self.run(run_id)
            ws = self.workspace(run.ws_id)
            self._require(run, {"pending"}, "plan")
            if ws.locked and not run.plan_only:
                raise SimError(409, "workspace locked", f"{ws.name} is locked: the run waits")
            self._status(run, "plan_queued")
            run.plan.set("queued", self.now())
            self._status(run, "planning")
            run.plan.set("running", self.now())
            run.has_changes = has_changes
            run.plan.set("finished", self.now())
            if cost_estimate:
                self._walk(run, "cost_estimating", "cost_estimated")
            if policy is not None:
                self._status(run, "policy_checking")
                if policy == "soft_fail":
                    if run.plan_only:
                        self._status(run, "policy_soft_failed")
                        run.apply.set("unreachable", self.now())
                        return run
                    self._status(run, "policy_override")
                    return run
                self._status(run, "policy_checked")
            if run.plan_only or not has_changes:
                self._status(run, "planned_and_finished")
                run.apply.set("unreachable", self.now())
                return run
            if not (cost_estimate or policy):
                self._status(run, "planned")
            if run.auto_apply:
                self._queue_apply(run, "auto-apply")
            return run

    def _queue_apply(self, run: Run, by: str) -> None:
        run.confirmed_by = by
        self._status(run, "confirmed")
        self._status(run, "apply_queued")
        run.apply.set("queued", self.now())

    def confirm(self, run_id: str, *, by: str) -> None:
        """The ``apply`` action: confirm a plan awaiting confirmation."""
        with self.lock:
            run = self.run(run_id)
            self._require(run, CONFIRMABLE, "apply")
            self._queue_apply(run, by)

    def finish_apply(self, run_id: str, *, ok: bool = True) -> Run:
        with self.lock:
            run = self.run(run_id)
            self._require(run, {"apply_queued"}, "apply")
            self._status(run, "applying")
            run.apply.set("running", self.now())
            if not ok:
                run.apply.set("errored", self.now())
                self._status(run, "errored")
                return run
            run.apply.set("finished", self.now())
            self._status(run, "applied")
            ws = self.workspace(run.ws_id)
            ws.resource_count += 0 if run.is_destroy else 1
            self._fire_run_triggers(run)
            return run

    def _fire_run_triggers(self, run: Run) -> None:
        source = self.workspace(run.ws_id)
        for rt in sorted(self.run_triggers.values(), key=lambda t: t.created_at):
            if rt.source_id != run.ws_id or rt.ws_id not in self.workspaces:
                continue
            self.create_run(
                rt.ws_id,
                message=f"Triggered by run {run.id} in workspace {source.org}/{source.name}",
                source="tfe-run-trigger",
                trigger_reason="unknown",
                created_by=run.created_by,
            )

    def fail(self, run_id: str) -> Run:
        """The run errors in its current phase."""
        with self.lock:
            run = self.run(run_id)
            if run.status in FINAL:
                raise SimError(409, "transition not allowed", f"run is {run.status}")
            phase = run.apply if run.apply.status in ("queued", "running") else run.plan
            phase.set("errored", self.now())
            if phase is run.plan:
                run.apply.set("unreachable", self.now())
            self._status(run, "errored")
            return run

    def discard(self, run_id: str, *, by: str = "api") -> None:
        with self.lock:
            run = self.run(run_id)
            self._require(run, DISCARDABLE, "discard")
            if run.plan.status == "pending":
                run.plan.set("unreachable", self.now())
            run.apply.set("unreachable", self.now())
            self._status(run, "discarded")

    def cancel(self, run_id: str, *, by: str = "api") -> None:
        with self.lock:
            run = self.run(run_id)
            self._require(run, CANCELABLE, "cancel")
            run.cancel_requested = True
            phase = run.apply if run.apply.status in ("queued", "running") else run.plan
            phase.set("canceled", self.now())
            if phase is run.plan:
                run.apply.set("unreachable", self.now())
            self._status(run, "canceled")

    def force_cancel(self, run_id: str, *, by: str = "api") -> None:
        with self.lock:
            run = self.run(run_id)
            if not run.cancel_requested or run.status in FINAL:
                raise SimError(
                    409, "transition not allowed", "force-cancel needs a cancel requested before"
                )
            self._status(run, "force_canceled")

    def run_flags(self, run: Run) -> dict[str, bool]:
        return {
            "is-cancelable": run.status in CANCELABLE,
            "is-confirmable": run.status in CONFIRMABLE,
            "is-discardable": run.status in DISCARDABLE,
            "is-force-cancelable": run.cancel_requested and run.status not in FINAL,
        }

    # -- notifications ----------------------------------------------------------------------
    def _notify(self, run: Run, status: str, at: datetime) -> None:
        trigger, message = _NOTIFY[status]
        ws = self.workspaces.get(run.ws_id)
        if ws is None or ws.execution_mode == "local" or run.plan_only:
            return  # not sent for speculative plans or local-execution workspaces
        for nc in self.notifications.values():
            if nc.ws_id != run.ws_id or not nc.enabled or trigger not in nc.triggers:
                continue
            payload = {
                "payload_version": 1,
                "notification_configuration_id": nc.id,
                "run_url": f"{self.base_url}/app/{ws.org}/{ws.name}/runs/{run.id}",
                "run_id": run.id,
                "run_message": run.message,
                "run_created_at": iso(run.created_at),
                "run_created_by": run.created_by,
                "workspace_id": ws.id,
                "workspace_name": ws.name,
                "organization_name": ws.org,
                "notifications": [
                    {
                        "message": message,
                        "trigger": trigger,
                        "run_status": status,
                        "run_updated_at": iso(at),
                        "run_updated_by": run.confirmed_by or run.created_by,
                    }
                ],
            }
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", "User-Agent": "TFE-simulator"}
            if nc.token:
                # As documented: hex HMAC-SHA512 of the raw body, keyed with the token.
                digest = hmac.new(nc.token.encode(), body, hashlib.sha512).hexdigest()
                headers["X-TFE-Notification-Signature"] = digest
            self.outbox.append(Delivery(nc.url, headers, body))

    def take_deliveries(self) -> list[Delivery]:
        with self.lock:
            out, self.outbox = self.outbox, []
            return out

    # -- the demo's own motion --------------------------------------------------------------
    def tick(self) -> None:
        """Move runs along as Terraform Cloud would without anyone (used by the demo):
        pending runs plan, confirmed applies finish. Runs awaiting confirmation wait."""
        with self.lock:
            for run in sorted(self.runs.values(), key=lambda r: r.created_at):
                ws = self.workspaces.get(run.ws_id)
                if ws is None:
                    continue
                if run.status == "pending" and not (ws.locked and not run.plan_only):
                    busy = any(
                        r.ws_id == run.ws_id
                        and r.id != run.id
                        and r.status not in FINAL
                        and r.status != "pending"
                        and not r.plan_only
                        for r in self.runs.values()
                    )
                    if not busy or run.plan_only:
                        self.plan(run.id, has_changes=self.rng.random() > 0.2)
                elif run.status == "apply_queued":
                    self.finish_apply(run.id, ok=self.rng.random() > 0.1)
