"""Terraform Cloud adapter: the workspaces of one or more organizations as jobs, their runs
(plan and apply as steps), run-trigger lineage, and trigger / apply / discard / cancel /
lock (pause) / unlock (resume), with notification deliveries as webhooks.

Ids: a job is a workspace id (``ws-…``), which survives renames; a run is its run id
(``run-…``). Both are unique across organizations.

Cost of a sync (see ``request_count``), built around the API's limits (30 requests per
second per user, and only 30 per minute on the run-list endpoints):

* inventory: one request per 100 workspaces and organization (``include=project,
  current_run`` brings projects and current runs along), plus the inbound run triggers of
  workspaces not read within ``runTriggersRefresh`` — one request each, at most
  ``runTriggerRequestsPerSync`` per inventory;
* runs: two run-list requests per organization (new runs since the cursor, newest first,
  and every non-final run with ``filter[status_group]=non_final``), each with the plan,
  apply, creator and workspace included; then the gateway's re-poll of runs it holds as
  non-final costs one request per run that left the non-final list since the last sync
  (``GET /runs/:id``), the others are answered from the list just read.

Run lists name every operation in ``filter[operation]``, as plan-only runs are left out
otherwise. A 429 is waited out when ``X-RateLimit-Reset`` is short, else it ends the sync
with ``AdapterUnavailable(retry_after=reset)``.

The runs cursor holds, per organization, the newest ``created-at`` seen and the ids created
at that instant.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

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
    SourceHealth,
    StepRecord,
    SyncHint,
    Trigger,
)

from .client import (
    TfcAuthFailed,
    TfcBadResponse,
    TfcClient,
    TfcConflict,
    TfcError,
    TfcNotFound,
    TfcUnavailable,
    included_index,
    rel_id,
)
from .config import TerraformConfig
from .states import phase_state, run_state

__all__ = ["OPERATIONS", "SIGNATURE_HEADER", "TerraformAdapter", "signature"]

_log = logging.getLogger(__name__)

OPERATIONS = (
    "plan_only",
    "plan_and_apply",
    "save_plan",
    "refresh_only",
    "destroy",
    "empty_apply",
)
"""Every run operation; run lists hide plan-only runs unless ``filter[operation]`` names them."""

SIGNATURE_HEADER = "X-TFE-Notification-Signature"
_RUN_INCLUDE = "plan,apply,created_by,workspace"
_FRESH_SECONDS = 30.0  # runs read by list_runs answer the next get_runs for this long
_RUN_ID = re.compile(r"\brun-[A-Za-z0-9]{8,}\b")
_TRIGGER_PARAMS = ("plan_only", "destroy", "message")

# Where a run came from (``source``) → Accord's trigger.
_SOURCES: dict[str, Trigger] = {
    "tfe-ui": Trigger.MANUAL,
    "terraform": Trigger.MANUAL,  # the CLI
    "terraform+cloud": Trigger.MANUAL,
    "tfe-api": Trigger.API,
    "tfe-configuration-version": Trigger.API,  # a VCS push or an uploaded configuration
    "tfe-module": Trigger.API,
    "tfe-infrastructure-lifecycle": Trigger.SCHEDULE,  # auto-destroy, drift and the like
    "tfe-run-trigger": Trigger.UPSTREAM,
}
_PHASE_END = ("finished-at", "errored-at", "canceled-at", "unreachable-at")


def signature(token: str, body: bytes) -> str:
    """The ``X-TFE-Notification-Signature`` of a delivery: hex HMAC-SHA512 of the raw body."""
    return hmac.new(token.encode(), body, hashlib.sha512).hexdigest()


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _attrs(resource: Mapping[str, Any]) -> dict[str, Any]:
    attrs = resource.get("attributes")
    return attrs if isinstance(attrs, dict) else {}


def _labels_from_tags(tags: Any) -> dict[str, str]:
    """``env:prod`` → {env: prod}; a plain tag ``network`` → {network: "true"}."""
    out: dict[str, str] = {}
    for tag in tags if isinstance(tags, list) else []:
        if not isinstance(tag, str) or not tag:
            continue
        key, sep, value = tag.partition(":")
        out[key] = value if sep and value else "true"
    return out


@dataclass
class _Workspace:
    org: str
    name: str


@dataclass
class _Triggers:
    read_at: float
    edges: list[EdgeRecord]


@dataclass
class _Cursor:
    """Per organization: newest created-at seen (None: no run yet) and the ids at it."""

    orgs: dict[str, tuple[str | None, tuple[str, ...]]] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps(
            {"v": 1, "orgs": {o: [s, list(ids)] for o, (s, ids) in sorted(self.orgs.items())}},
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str | None) -> _Cursor | None:
        if not text:
            return None
        try:
            raw = json.loads(text)
            orgs = {
                str(o): (v[0] if isinstance(v[0], str) else None, tuple(str(i) for i in v[1]))
                for o, v in raw["orgs"].items()
            }
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            _log.warning("ignoring a Terraform Cloud runs cursor that cannot be read")
            return None
        return cls(orgs=orgs)


class TerraformAdapter(BaseAdapter):
    """Accord's view of Terraform Cloud (HCP Terraform) or Terraform Enterprise."""

    info: ClassVar[AdapterInfo] = AdapterInfo(
        type="terraform",
        display_name="Terraform Cloud",
        capabilities=frozenset(
            {
                Capability.TRIGGER,
                Capability.TRIGGER_PARAMS,
                Capability.CANCEL,
                Capability.PAUSE,
                Capability.RESUME,
                Capability.APPLY,
                Capability.DISCARD,
                Capability.STEPS,
                Capability.LINEAGE,
                Capability.WEBHOOKS,
            }
        ),
        description=(
            "Workspaces, runs (plan and apply), run-trigger lineage and notifications of "
            "Terraform Cloud (HCP Terraform) or Terraform Enterprise organizations."
        ),
    )
    config_model: ClassVar[type[BaseModel]] = TerraformConfig
    config: TerraformConfig

    def __init__(
        self,
        ctx: AdapterContext,
        config: TerraformConfig,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(ctx, config)
        self._injected = http
        self._client: TfcClient | None = None
        self._http: httpx.AsyncClient | None = None
        self._retired: list[httpx.AsyncClient] = []
        self._requests_closed = 0
        self._workspaces: dict[str, _Workspace] = {}
        self._triggers: dict[str, _Triggers] = {}
        self._trigger_budget = config.run_trigger_requests_per_sync
        self._recent: dict[str, RunRecord] = {}
        self._recent_at = 0.0

    # -- plumbing -----------------------------------------------------------------------------
    @property
    def client(self) -> TfcClient:
        if self._client is None:
            http = self._injected
            if http is None:
                try:
                    token = self.ctx.secrets(self.config.token)
                except LookupError as exc:
                    raise AdapterAuthError(
                        f"the Terraform Cloud API token is not available "
                        f"({self.config.token.describe()}): {exc}"
                    ) from None
                http = httpx.AsyncClient(
                    headers={"Authorization": f"Bearer {token.get_secret_value()}"},
                    verify=self.config.verify_tls,
                    timeout=self.ctx.timeout,
                    follow_redirects=False,
                )
                self._http = http
            self._client = TfcClient(
                self.config.url,
                http,
                rate_limit_wait=self.config.rate_limit_wait.total_seconds(),
            )
        return self._client

    @property
    def request_count(self) -> int:
        """HTTP requests sent to Terraform Cloud by this adapter so far."""
        current = self._client.request_count if self._client is not None else 0
        return self._requests_closed + current

    def _retire_client(self) -> None:
        """Stop using the client; the next call builds one with the token read anew."""
        if self._injected is not None:
            return  # an injected client is the caller's to manage
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
        except TfcUnavailable as exc:
            raise AdapterUnavailable(str(exc), retry_after=exc.retry_after) from None
        except TfcAuthFailed as exc:
            self._retire_client()  # the next call reads the token again (rotated?)
            raise AdapterAuthError(str(exc)) from None
        except TfcNotFound as exc:
            raise NotFound(str(exc)) from None
        except TfcBadResponse as exc:
            raise InvalidResponse(str(exc)) from None
        except TfcConflict as exc:
            raise InvalidResponse(str(exc)) from None
        except TfcError as exc:  # pragma: no cover - every subclass is handled above
            raise InvalidResponse(str(exc)) from None

    async def aclose(self) -> None:
        await self._reset_client()

    def _ws_url(self, ws_id: str) -> str | None:
        ws = self._workspaces.get(ws_id)
        if ws is None:
            return None
        return f"{self.config.url}/app/{ws.org}/workspaces/{ws.name}"

    async def _governed(self, ws_id: str) -> None:
        """NotFound unless the workspace exists, is visible and is governed by this source."""
        if not ws_id.startswith("ws-"):
            raise NotFound(f"{ws_id!r} is not a Terraform Cloud workspace id (ws-…)")
        ws = self._workspaces.get(ws_id)
        if ws is None or self.config.filters_names:
            with self._mapped():
                data = await self.client.workspace(ws_id)
            org = rel_id(data, "organization") or ""
            ws = _Workspace(org, str(_attrs(data).get("name") or ws_id))
            if org not in self.config.organizations:
                raise NotFound(
                    f"workspace {ws_id} is not in {', '.join(self.config.organizations)}"
                )
            self._workspaces[ws_id] = ws
        if not self.config.wants(ws.name):
            raise NotFound(f"workspace {ws.name!r} is not governed by source {self.ctx.source!r}")

    # -- health -------------------------------------------------------------------------------
    async def check(self) -> SourceHealth:
        names: list[str] = []
        for org in self.config.organizations:
            try:
                with self._mapped():
                    data = await self.client.organization(org)
            except NotFound:
                raise AdapterAuthError(
                    f"organization {org!r} does not exist or this token may not see it"
                    " (Terraform Cloud answers 404 for both)"
                ) from None
            names.append(str(_attrs(data).get("name") or org))
        version = self.client.version
        details: dict[str, Any] = {"organizations": names}
        if version:
            details["version"] = version
        label = f"Terraform Enterprise {version}" if version else "Terraform Cloud"
        return SourceHealth(
            status=HealthStatus.OK,
            message=f"{label}: organization(s) {', '.join(names)}",
            details=details,
        )

    # -- inventory ----------------------------------------------------------------------------
    async def list_jobs(self) -> AsyncIterator[JobRecord]:
        records: list[JobRecord] = []
        seen: dict[str, _Workspace] = {}
        for org in self.config.organizations:
            with self._mapped():
                data, included = await self.client.workspaces(org, page_size=self.config.page_size)
            for ws in data:
                ws_id = _str(ws.get("id"))
                name = _str(_attrs(ws).get("name"))
                if not ws_id or not name:
                    raise InvalidResponse(f"a workspace of {org} has no id or name")
                if not self.config.wants(name):
                    continue
                seen[ws_id] = _Workspace(org, name)
                records.append(self._job(org, ws, included))
        self._workspaces = seen
        for ws_id in set(self._triggers) - set(seen):
            del self._triggers[ws_id]
        self._trigger_budget = self.config.run_trigger_requests_per_sync
        for record in records:
            yield record

    def _job(
        self, org: str, ws: dict[str, Any], included: Mapping[tuple[str, str], dict[str, Any]]
    ) -> JobRecord:
        a = _attrs(ws)
        ws_id = str(ws["id"])
        name = str(a["name"])
        project_id = rel_id(ws, "project")
        project = included.get(("projects", project_id or ""))
        project_name = _str(_attrs(project).get("name")) if project else None
        run_id = rel_id(ws, "current-run")
        run = included.get(("runs", run_id or ""))
        vcs = a.get("vcs-repo") if isinstance(a.get("vcs-repo"), dict) else None
        execution_mode = _str(a.get("execution-mode")) or "remote"
        attributes: dict[str, Any] = {
            "organization": org,
            "execution_mode": execution_mode,
            "auto_apply": bool(a.get("auto-apply")),
            "locked": bool(a.get("locked")),
        }
        if project_name or project_id:
            attributes["project"] = project_name or project_id
        if vcs is not None:
            repo = _str(vcs.get("display-identifier")) or _str(vcs.get("identifier"))
            attributes["vcs_repo"] = repo
            if _str(vcs.get("branch")):
                attributes["vcs_branch"] = vcs["branch"]
        if run_id:
            attributes["current_run"] = run_id
            status = _str(_attrs(run).get("status")) if run else None
            if status:
                attributes["current_run_status"] = status
        if _str(a.get("terraform-version")):
            attributes["terraform_version"] = a["terraform-version"]
        if isinstance(a.get("resource-count"), int):
            attributes["resource_count"] = a["resource-count"]
        labels = _labels_from_tags(a.get("tag-names"))
        labels["organization"] = org
        if project_name:
            labels["project"] = project_name
        description = _str(a.get("description"))
        problems: list[str] = []
        if execution_mode == "local":
            problems.append(
                "local execution: runs happen on someone's machine and are not visible here"
            )
        return JobRecord(
            native_id=ws_id,
            name=name,
            native_type="workspace",
            paused=bool(a.get("locked")),
            labels=labels,
            url=f"{self.config.url}/app/{org}/workspaces/{name}",
            description=description.strip() or None if description else None,
            attributes=attributes,
            problems=tuple(problems),
        )

    # -- lineage ------------------------------------------------------------------------------
    async def lineage(self, job: JobRecord) -> list[EdgeRecord]:
        """``depends_on`` edges from the workspace's inbound run triggers (source workspace →
        this one), read at most every ``runTriggersRefresh`` and within the per-inventory
        request budget."""
        ws_id = job.native_id
        cached = self._triggers.get(ws_id)
        refresh = self.config.run_triggers_refresh.total_seconds()
        if cached is not None and time.monotonic() - cached.read_at < refresh:
            return list(cached.edges)
        if self._trigger_budget <= 0:
            return list(cached.edges) if cached else []
        self._trigger_budget -= 1
        try:
            with self._mapped():
                triggers = await self.client.run_triggers(ws_id)
        except NotFound:
            triggers = []
        edges: list[EdgeRecord] = []
        for rt in triggers:
            src = rel_id(rt, "sourceable")
            if not src:
                continue
            a = _attrs(rt)
            edges.append(
                EdgeRecord(
                    kind=EdgeKind.DEPENDS_ON,
                    src=NodeRef(kind=NodeKind.JOB, id=src),
                    dst=NodeRef(kind=NodeKind.JOB, id=ws_id),
                    evidence=(
                        f"run trigger {rt.get('id')}: applies in "
                        f"{a.get('sourceable-name') or src} queue runs in "
                        f"{a.get('workspace-name') or ws_id}"
                    ),
                )
            )
        self._triggers[ws_id] = _Triggers(time.monotonic(), edges)
        return edges

    # -- runs ---------------------------------------------------------------------------------
    def _list_params(self, **extra: str) -> dict[str, str]:
        return {"filter[operation]": ",".join(OPERATIONS), "include": _RUN_INCLUDE, **extra}

    async def list_runs(self, cursor: str | None) -> RunPage:
        old = _Cursor.decode(cursor)
        new = _Cursor()
        found: dict[str, RunRecord] = {}
        edges: list[EdgeRecord] = []
        for org in self.config.organizations:
            mark = old.orgs.get(org) if old is not None else None
            fresh, included, new.orgs[org] = await self._new_runs(org, mark, old is None)
            with self._mapped():
                open_runs, open_inc, _ = await self.client.org_runs(
                    org,
                    params=self._list_params(**{"filter[status_group]": "non_final"}),
                    page_size=self.config.page_size,
                    max_pages=self.config.max_run_pages,
                )
            for res, inc in [(r, included) for r in fresh] + [(r, open_inc) for r in open_runs]:
                self._learn_workspace(org, res, inc)
                record = self._run(res, inc)
                if record is None:
                    continue
                if record.native_id not in found:  # a new run may be non-final too
                    edge = self._triggered_edge(res)
                    if edge is not None:
                        edges.append(edge)
                found[record.native_id] = record
        self._recent = dict(found)
        self._recent_at = time.monotonic()
        return RunPage(runs=tuple(found.values()), cursor=new.encode(), edges=tuple(edges))

    async def _new_runs(
        self, org: str, mark: tuple[str | None, tuple[str, ...]] | None, first: bool
    ) -> tuple[
        list[dict[str, Any]],
        dict[tuple[str, str], dict[str, Any]],
        tuple[str | None, tuple[str, ...]],
    ]:
        """Runs created since ``mark`` (newest first), their included resources, and the new
        mark. Without a mark, the newest ``backfillRuns``."""
        params = self._list_params()
        runs: list[dict[str, Any]] = []
        included: dict[tuple[str, str], dict[str, Any]] = {}
        since = _ts(mark[0]) if mark is not None and mark[0] else None
        at_since = set(mark[1]) if mark is not None else set()
        limit = self.config.backfill_runs if first or mark is None else None
        size = self.config.page_size if limit is None else max(1, min(limit, self.config.page_size))
        done = False
        for number in range(1, self.config.max_run_pages + 1):
            with self._mapped():
                doc = await self.client.get(
                    f"organizations/{quote(org, safe='')}/runs",
                    what=f"list the runs of organization {org}",
                    params={**params, "page[number]": number, "page[size]": size},
                )
            items = doc.get("data")
            if not isinstance(items, list):
                raise InvalidResponse(f"the runs of organization {org} are not a list")
            included.update(included_index(doc))
            for res in items:
                if not isinstance(res, dict):
                    continue
                created = _ts(_attrs(res).get("created-at"))
                if (
                    since is not None
                    and created is not None
                    and (created < since or (created == since and res.get("id") in at_since))
                ):
                    done = True
                    break
                runs.append(res)
                if limit is not None and len(runs) >= limit:
                    done = True
                    break
            meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
            pagination = meta.get("pagination") if isinstance(meta, dict) else None
            if done or not isinstance(pagination, dict) or pagination.get("next-page") is None:
                break
        else:
            _log.warning(
                "Terraform Cloud organization %s: more than %d pages of new runs since the last"
                " sync; older ones are left to the non-final list and re-polls",
                org,
                self.config.max_run_pages,
            )
        newest: datetime | None = since
        ids: set[str] = set(at_since)
        for res in runs:
            created = _ts(_attrs(res).get("created-at"))
            if created is None:
                continue
            if newest is None or created > newest:
                newest, ids = created, {str(res.get("id"))}
            elif created == newest:
                ids.add(str(res.get("id")))
        new_mark = (newest.isoformat() if newest else None, tuple(sorted(ids)))
        if limit == 0:
            runs = []  # no backfill: only the mark of where "new" starts
        return runs, included, new_mark

    def _learn_workspace(
        self, org: str, run: dict[str, Any], included: Mapping[tuple[str, str], dict[str, Any]]
    ) -> None:
        ws_id = rel_id(run, "workspace")
        ws = included.get(("workspaces", ws_id or ""))
        name = _str(_attrs(ws).get("name")) if ws else None
        if ws_id and name and ws_id not in self._workspaces:
            self._workspaces[ws_id] = _Workspace(org, name)

    def _run(
        self, res: dict[str, Any], included: Mapping[tuple[str, str], dict[str, Any]]
    ) -> RunRecord | None:
        run_id = _str(res.get("id"))
        ws_id = rel_id(res, "workspace")
        if not run_id or not ws_id:
            raise InvalidResponse("a run without an id or a workspace")
        ws = self._workspaces.get(ws_id)
        if ws is not None and not self.config.wants(ws.name):
            return None
        a = _attrs(res)
        status = _str(a.get("status"))
        actions = a.get("actions") if isinstance(a.get("actions"), dict) else {}
        confirmable = actions.get("is-confirmable") if isinstance(actions, dict) else None
        state = run_state(
            status, confirmable=confirmable if isinstance(confirmable, bool) else None
        )
        stamps = a.get("status-timestamps") if isinstance(a.get("status-timestamps"), dict) else {}
        assert isinstance(stamps, dict)
        started_candidates = [
            t
            for t in (_ts(stamps.get(k)) for k in ("pre-plan-running-at", "planning-at"))
            if t is not None
        ]
        ended = None
        if state.terminal and status:
            ended = _ts(stamps.get(f"{status.replace('_', '-')}-at"))
        source = _str(a.get("source")) or ""
        creator = included.get(("users", rel_id(res, "created-by") or ""))
        actor = _str(_attrs(creator).get("username")) if creator else None
        base = self._ws_url(ws_id)
        return RunRecord(
            native_id=run_id,
            job_native_id=ws_id,
            state=state,
            native_state=status,
            trigger=_SOURCES.get(source, Trigger.UNKNOWN),
            actor=actor,
            queued_at=_ts(a.get("created-at")),
            started_at=min(started_candidates) if started_candidates else None,
            ended_at=ended,
            url=f"{base}/runs/{run_id}" if base else None,
            message=_message(a),
            steps=_steps(res, included),
        )

    def _triggered_edge(self, res: dict[str, Any]) -> EdgeRecord | None:
        """A run queued by a run trigger names the run that caused it in its message."""
        a = _attrs(res)
        if a.get("source") != "tfe-run-trigger":
            return None
        message = _str(a.get("message")) or ""
        cause = next((m for m in _RUN_ID.findall(message) if m != res.get("id")), None)
        if cause is None:
            return None
        return EdgeRecord(
            kind=EdgeKind.TRIGGERED,
            src=NodeRef(kind=NodeKind.RUN, id=cause),
            dst=NodeRef(kind=NodeKind.RUN, id=str(res["id"])),
            evidence=f"run {res['id']} was queued by a run trigger: {message}",
        )

    async def get_runs(self, native_ids: Sequence[str]) -> list[RunRecord]:
        out: list[RunRecord] = []
        fresh = time.monotonic() - self._recent_at < _FRESH_SECONDS
        for native_id in dict.fromkeys(native_ids):
            cached = self._recent.pop(native_id, None)
            if fresh and cached is not None:
                out.append(cached)  # read moments ago by list_runs (once: then anew)
                continue
            if not native_id.startswith("run-"):
                continue
            try:
                with self._mapped():
                    doc = await self.client.run(native_id, include=_RUN_INCLUDE)
            except NotFound:
                continue
            res = doc.get("data")
            if not isinstance(res, dict):
                raise InvalidResponse(f"run {native_id} is not an object")
            inc = included_index(doc)
            ws_id = rel_id(res, "workspace") or ""
            ws = inc.get(("workspaces", ws_id))
            org = rel_id(ws, "organization") if ws else None
            if ws is not None and org and org not in self.config.organizations:
                continue
            if ws is not None and org:
                self._learn_workspace(org, res, inc)
            record = self._run(res, inc)
            if record is not None:
                out.append(record)
        return out

    # -- actions ------------------------------------------------------------------------------
    async def trigger(self, job_id: str, params: Mapping[str, Any]) -> RunRecord:
        unknown = sorted(set(params) - set(_TRIGGER_PARAMS))
        if unknown:
            hint = " (use 'destroy')" if "is_destroy" in unknown else ""
            raise ActionNotSupported(
                f"Terraform Cloud runs take the parameters {', '.join(_TRIGGER_PARAMS)};"
                f" not {', '.join(unknown)}{hint}"
            )
        await self._governed(job_id)
        attributes: dict[str, Any] = {
            "message": str(params.get("message") or "Queued through Accord"),
            "is-destroy": _flag(params, "destroy"),
            "plan-only": _flag(params, "plan_only"),
        }
        with self._mapped():
            try:
                doc = await self.client.create_run(job_id, attributes)
            except TfcConflict as exc:
                raise ActionNotSupported(
                    f"Terraform Cloud refused to queue a run in {job_id}: {exc.detail}"
                ) from None
        res = doc.get("data")
        if not isinstance(res, dict):
            raise InvalidResponse("creating a run answered without the run")
        record = self._run(res, {})
        if record is None:  # pragma: no cover - _governed checked the name
            raise NotFound(f"workspace {job_id} is not governed by {self.ctx.source!r}")
        return record

    async def _run_action(self, run_id: str, action: str, verb: str) -> None:
        self._recent.pop(run_id, None)
        if not run_id.startswith("run-"):
            raise NotFound(f"{run_id!r} is not a Terraform Cloud run id (run-…)")
        with self._mapped():
            try:
                await self.client.run_action(run_id, action, comment="through Accord")
            except TfcConflict as exc:
                status = await self._status(run_id)
                raise ActionNotSupported(
                    f"run {run_id} cannot be {verb} in status {status!r}: {exc.detail}"
                ) from None

    async def _status(self, run_id: str) -> str | None:
        try:
            with self._mapped():
                doc = await self.client.run(run_id, include="")
        except (NotFound, InvalidResponse):
            return None
        data = doc.get("data")
        return _str(_attrs(data).get("status")) if isinstance(data, dict) else None

    async def apply(self, run_id: str) -> None:
        """Confirm a plan that waits for confirmation (policy overrides are not offered)."""
        await self._run_action(run_id, "apply", "applied")

    async def discard(self, run_id: str) -> None:
        """Skip the rest of a run that waits for confirmation or for its turn."""
        await self._run_action(run_id, "discard", "discarded")

    async def cancel(self, run_id: str) -> None:
        """Cancel a planning or applying run; a run still waiting for its turn is
        discarded (Terraform Cloud cancels only active phases)."""
        self._recent.pop(run_id, None)
        if not run_id.startswith("run-"):
            raise NotFound(f"{run_id!r} is not a Terraform Cloud run id (run-…)")
        with self._mapped():
            try:
                await self.client.run_action(run_id, "cancel", comment="through Accord")
                return
            except TfcConflict as exc:
                refusal = exc.detail
        status = await self._status(run_id)
        if status in ("pending", "fetching", "fetching_completed"):
            await self._run_action(run_id, "discard", "discarded")
            return
        if status is not None and run_state(status) == RunState.WAITING:
            raise ActionNotSupported(
                f"run {run_id} waits for confirmation ({status}): discard it instead"
                " (discarding a plan takes the approve permission)"
            )
        raise ActionNotSupported(
            f"run {run_id} cannot be cancelled in status {status!r}: {refusal}"
        )

    async def pause(self, job_id: str) -> None:
        """Lock the workspace: runs queue but do not start until it is unlocked."""
        await self._governed(job_id)
        with self._mapped():
            try:
                await self.client.lock(job_id, "Paused through Accord")
            except TfcConflict as exc:
                if exc.status != 409:
                    raise
                # 409: already locked. Locked is what was asked for.

    async def resume(self, job_id: str) -> None:
        await self._governed(job_id)
        with self._mapped():
            try:
                await self.client.unlock(job_id)
            except TfcConflict as exc:
                if exc.status != 409:
                    raise
                data = await self.client.workspace(job_id)
                if _attrs(data).get("locked"):
                    raise ActionNotSupported(
                        f"workspace {job_id} is locked by someone else and cannot be unlocked"
                        f" with this token: {exc.detail}"
                    ) from None

    # -- webhooks -----------------------------------------------------------------------------
    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[SyncHint]:
        if self.config.notification_token is None:
            raise AdapterAuthError(
                f"source {self.ctx.source!r} has no notificationToken: unsigned notifications"
                " are not accepted"
            )
        try:
            token = self.ctx.secrets(self.config.notification_token).get_secret_value()
        except LookupError as exc:
            raise AdapterAuthError(
                f"the notification token ({self.config.notification_token.describe()}) is not"
                f" available: {exc}"
            ) from None
        sent = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None)
        if not sent:
            raise AdapterAuthError(f"the notification carries no {SIGNATURE_HEADER} header")
        if not hmac.compare_digest(signature(token, body), sent.strip().lower()):
            raise AdapterAuthError(
                f"the {SIGNATURE_HEADER} does not match the body (wrong notificationToken,"
                " or the body was altered)"
            )
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise InvalidResponse(f"the notification is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise InvalidResponse("the notification is not a JSON object")
        version = payload.get("payload_version")
        if version == 1:
            triggers = [
                n.get("trigger") for n in payload.get("notifications") or [] if isinstance(n, dict)
            ]
            if triggers == ["verification"] or payload.get("run_id") is None:
                return []  # the verification request sent when a configuration is saved
            run_id = payload.get("run_id")
            if not isinstance(run_id, str):
                raise InvalidResponse("a run notification without a run_id")
            return [SyncHint(scope="run", ids=(run_id,)), SyncHint(scope="runs")]
        if version == "2" or version == 2:
            return [SyncHint(scope="inventory")]  # workspace or assessment events
        raise InvalidResponse(f"unknown notification payload_version {version!r}")


def _flag(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ActionNotSupported(f"parameter {name!r} must be true or false, not {value!r}")


def _message(a: Mapping[str, Any]) -> str | None:
    parts: list[str] = []
    text = _str(a.get("message"))
    if text:
        parts.append(text.strip())
    flags = []
    if a.get("is-destroy"):
        flags.append("destroy")
    if a.get("plan-only"):
        flags.append("plan only")
    if a.get("refresh-only"):
        flags.append("refresh only")
    source = _str(a.get("source"))
    if source:
        flags.append(f"source {source}")
    reason = _str(a.get("trigger-reason"))
    if reason and reason != "unknown":
        flags.append(f"reason {reason}")
    if flags:
        parts.append(f"[{', '.join(flags)}]")
    return " ".join(parts) or None


def _steps(
    res: Mapping[str, Any], included: Mapping[tuple[str, str], dict[str, Any]]
) -> tuple[StepRecord, ...] | None:
    steps: list[StepRecord] = []
    for name, kind, rel in (("Plan", "plans", "plan"), ("Apply", "applies", "apply")):
        phase = included.get((kind, rel_id(res, rel) or ""))
        if phase is None:
            continue
        a = _attrs(phase)
        status = _str(a.get("status"))
        stamps = a.get("status-timestamps") if isinstance(a.get("status-timestamps"), dict) else {}
        assert isinstance(stamps, dict)
        state = phase_state(status)
        ended = None
        if state.terminal:
            ended = next((t for t in (_ts(stamps.get(k)) for k in _PHASE_END) if t), None)
        steps.append(
            StepRecord(
                name=name,
                state=state,
                native_state=status,
                started_at=_ts(stamps.get("started-at")),
                ended_at=ended,
            )
        )
    return tuple(steps) if steps else None
