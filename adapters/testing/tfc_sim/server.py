"""The Terraform Cloud simulator's HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1)."""

from __future__ import annotations

import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from adapters.testing.httpd import SimulatorHTTPServer

from .state import (
    FINAL,
    Delivery,
    Run,
    SimError,
    SimState,
    TokenInfo,
    Workspace,
    iso,
)

__all__ = ["JSONAPI", "TfcSimulator"]

JSONAPI = "application/vnd.api+json"
_LABEL = "Accord Terraform Cloud simulator (not the real Terraform Cloud)"
_NON_FINAL_EXCLUDED = FINAL
_DEFAULT_OPERATIONS = ("plan_and_apply", "destroy", "refresh_only", "save_plan", "empty_apply")


class _Reply(Exception):
    def __init__(
        self,
        status: int,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def _error(status: int, title: str, detail: str = "") -> _Reply:
    err: dict[str, Any] = {"status": str(status), "title": title}
    if detail:
        err["detail"] = detail
    return _Reply(status, {"errors": [err]})


class TfcSimulator:
    """Terraform Cloud's API v2 over real HTTP, for tests and the demo.

    ``tokens`` maps bearer tokens to :class:`TokenInfo` (user, and the organizations and
    workspaces it may see; everything else answers 404). With ``auto=True`` a thread calls
    :meth:`SimState.tick` and sends notification deliveries (the demo); otherwise the test
    drives the state and takes deliveries from ``state.outbox``.
    """

    def __init__(
        self,
        state: SimState | None = None,
        *,
        tokens: Mapping[str, TokenInfo | str] | None = None,
        auto: bool = False,
        tick_seconds: float = 2.0,
    ) -> None:
        self.state = state or SimState()
        self.tokens: dict[str, TokenInfo] = {
            k: v if isinstance(v, TokenInfo) else TokenInfo(v) for k, v in (tokens or {}).items()
        }
        self.auto = auto
        self.tick_seconds = tick_seconds
        self.requests: list[tuple[str, str]] = []
        self.rate_limited = 0
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> TfcSimulator:
        handler = type("_BoundHandler", (_Handler,), {"sim": self})
        self._httpd = SimulatorHTTPServer(("127.0.0.1", 0), handler)
        self.state.base_url = self.url
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="tfc-simulator",
            daemon=True,
        )
        self._thread.start()
        if self.auto:
            self._ticker = threading.Thread(
                target=self._tick_loop, name="tfc-simulator-tick", daemon=True
            )
            self._ticker.start()
        return self

    def _tick_loop(self) -> None:
        while not self._stopping.wait(self.tick_seconds):
            self.state.tick()
            self.send_deliveries()

    def send_deliveries(self, timeout: float = 5.0) -> list[tuple[Delivery, int | str]]:
        """POST pending notification deliveries to their URLs; return (delivery, HTTP status
        or error text) for each."""
        out: list[tuple[Delivery, int | str]] = []
        for d in self.state.take_deliveries():
            req = urllib.request.Request(d.url, data=d.body, headers=d.headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    out.append((d, int(resp.status)))
            except urllib.error.HTTPError as exc:
                out.append((d, int(exc.code)))
            except (OSError, ValueError) as exc:
                out.append((d, f"{type(exc).__name__}: {exc}"))
        return out

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for t in (self._thread, self._ticker):
            if t is not None:
                t.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> TfcSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def request_count(self) -> int:
        return len(self.requests)

    # -- auth and limits --------------------------------------------------------------------
    def authenticate(self, header: str | None) -> TokenInfo:
        if not header or not header.lower().startswith("bearer "):
            raise _error(401, "unauthorized")
        sent = header[7:].strip()
        for token, info in self.tokens.items():
            if hmac.compare_digest(sent, token):
                return info
        raise _error(401, "unauthorized")

    def limit(self, user: str, kind: str, per: float, allowed: int | None) -> None:
        """Sliding-window rate limit: 429 with X-RateLimit-Reset when exceeded."""
        if allowed is None:
            return
        now = time.monotonic()
        window = self._windows.setdefault((user, kind), deque())
        while window and window[0] <= now - per:
            window.popleft()
        if len(window) >= allowed:
            reset = max(0.001, window[0] + per - now)
            self.rate_limited += 1
            raise _Reply(
                429,
                {
                    "errors": [
                        {
                            "detail": "You have exceeded the API's rate limit.",
                            "status": 429,
                            "title": "Too many requests",
                        }
                    ]
                },
                headers={"X-RateLimit-Limit": str(allowed), "X-RateLimit-Reset": f"{reset:.3f}"},
            )
        window.append(now)


class _Handler(BaseHTTPRequestHandler):
    sim: TfcSimulator
    protocol_version = "HTTP/1.1"
    server_version = "TFC-simulator"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    # -- plumbing ---------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        sim = self.sim
        state = sim.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        sim.requests.append((method, self.path))
        try:
            with state.lock:
                if state.faults.unavailable > 0:
                    state.faults.unavailable -= 1
                    raise _error(503, "service unavailable")
                if state.faults.rate_limited > 0:
                    state.faults.rate_limited -= 1
                    sim.rate_limited += 1
                    raise _Reply(
                        429,
                        {"errors": [{"status": 429, "title": "Too many requests"}]},
                        headers={
                            "X-RateLimit-Limit": "30",
                            "X-RateLimit-Reset": f"{state.faults.reset:.3f}",
                        },
                    )
            parts = [unquote(p) for p in split.path.split("/") if p]
            if parts[:2] != ["api", "v2"]:
                raise _error(404, "not found")
            parts = parts[2:]
            if method == "GET" and parts == ["ping"]:
                raise _Reply(204)
            token = sim.authenticate(self.headers.get("Authorization"))
            with state.lock:
                sim.limit(token.user, "all", 1.0, state.rate_per_second)
            query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            body: Any = None
            if raw:
                ctype = self.headers.get("Content-Type", "")
                if JSONAPI not in ctype:
                    raise _error(
                        415, "unsupported media type", f"expected {JSONAPI}, got {ctype!r}"
                    )
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise _error(400, "bad request", "malformed JSON") from None
            with state.lock:
                self._route(method, parts, query, body, token)
            raise _error(404, "not found")
        except SimError as exc:
            self._send(_error(exc.status, exc.title, exc.detail))
        except _Reply as reply:
            self._send(reply)

    def _send(self, reply: _Reply) -> None:
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if reply.body is not None:
            self.send_header("Content-Type", JSONAPI)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-TFE-Version", self.sim.state.version)
        self.send_header("TFP-API-Version", "2.6")
        self.send_header("X-Simulator", _LABEL)
        if self.sim.state.rate_per_second is not None:
            self.send_header("X-RateLimit-Limit", str(self.sim.state.rate_per_second))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    # -- visibility -------------------------------------------------------------------------
    def _org(self, token: TokenInfo, org: str) -> str:
        if org not in self.sim.state.orgs:
            raise _error(404, "not found")
        if token.organizations is not None and org not in token.organizations:
            raise _error(404, "not found")  # forbidden looks like missing
        return org

    def _ws(self, token: TokenInfo, ws_id: str) -> Workspace:
        ws = self.sim.state.workspaces.get(ws_id)
        if ws is None or not self._sees(token, ws):
            raise _error(404, "not found")
        return ws

    def _sees(self, token: TokenInfo, ws: Workspace) -> bool:
        if token.organizations is not None and ws.org not in token.organizations:
            return False
        return token.workspaces is None or ws.id in token.workspaces

    def _run(self, token: TokenInfo, run_id: str) -> Run:
        run = self.sim.state.runs.get(run_id)
        if run is None:
            raise _error(404, "not found")
        self._ws(token, run.ws_id)
        return run

    # -- routes -----------------------------------------------------------------------------
    def _route(
        self,
        method: str,
        parts: list[str],
        query: Mapping[str, str],
        body: Any,
        token: TokenInfo,
    ) -> None:
        state = self.sim.state
        n = len(parts)
        if parts[:1] == ["organizations"] and n >= 2:
            org = self._org(token, parts[1])
            if method == "GET" and n == 2:
                raise _Reply(200, {"data": self._org_resource(org)})
            if method == "GET" and parts[2:] == ["workspaces"]:
                self._list_workspaces(org, query, token)
            if method == "GET" and n == 4 and parts[2] == "workspaces":
                ws = state.by_name(org, parts[3])
                if not self._sees(token, ws):
                    raise _error(404, "not found")
                self._single(ws_resource(state, ws), query, {"project", "current_run"})
            if method == "GET" and parts[2:] == ["runs"]:
                self.sim.limit(token.user, "runs", 60.0, state.run_list_per_minute)
                runs = [r for r in state.runs.values() if state.workspaces[r.ws_id].org == org]
                self._list_runs(runs, query, token, totals=False)
        if parts[:1] == ["workspaces"] and n >= 2:
            ws = self._ws(token, parts[1])
            if method == "GET" and n == 2:
                self._single(ws_resource(state, ws), query, {"project", "current_run"})
            if method == "GET" and parts[2:] == ["runs"]:
                self.sim.limit(token.user, "runs", 60.0, state.run_list_per_minute)
                runs = [r for r in state.runs.values() if r.ws_id == ws.id]
                self._list_runs(runs, query, token, totals=True)
            if method == "GET" and parts[2:] == ["run-triggers"]:
                self._list_run_triggers(ws, query)
            if method == "POST" and n == 4 and parts[2] == "actions":
                reason = ""
                if isinstance(body, dict) and isinstance(body.get("reason"), str):
                    reason = body["reason"]
                if parts[3] == "lock":
                    state.set_lock(ws.id, True, by=token.user, reason=reason)
                elif parts[3] == "unlock":
                    state.set_lock(ws.id, False, by=token.user)
                elif parts[3] == "force-unlock":
                    if ws.locked:
                        state.set_lock(ws.id, False, by=ws.locked_by or token.user)
                else:
                    raise _error(404, "not found")
                raise _Reply(200, {"data": ws_resource(state, ws)})
        if parts == ["runs"] and method == "POST":
            self._create_run(body, token)
        if parts[:1] == ["runs"] and n >= 2:
            run = self._run(token, parts[1])
            if method == "GET" and n == 2:
                self._single(run_resource(state, run), query, _RUN_INCLUDES)
            if method == "POST" and n == 4 and parts[2] == "actions":
                action = parts[3]
                if action == "apply":
                    state.confirm(run.id, by=token.user)
                elif action == "discard":
                    state.discard(run.id, by=token.user)
                elif action == "cancel":
                    state.cancel(run.id, by=token.user)
                elif action == "force-cancel":
                    state.force_cancel(run.id, by=token.user)
                else:
                    raise _error(404, "not found")
                raise _Reply(202)

    def _org_resource(self, org: str) -> dict[str, Any]:
        return {
            "id": org,
            "type": "organizations",
            "attributes": {"name": org, "email": self.sim.state.orgs[org]},
            "links": {"self": f"/api/v2/organizations/{org}"},
        }

    def _single(
        self, resource: dict[str, Any], query: Mapping[str, str], allowed: set[str]
    ) -> None:
        includes = _includes(query, allowed)
        raise _Reply(
            200, {"data": resource, "included": included(self.sim.state, [resource], includes)}
        )

    def _list_workspaces(self, org: str, query: Mapping[str, str], token: TokenInfo) -> None:
        state = self.sim.state
        includes = _includes(query, {"project", "current_run"})
        items = [w for w in state.workspaces.values() if w.org == org and self._sees(token, w)]
        search = query.get("search[name]")
        if search:
            items = [w for w in items if search.lower() in w.name.lower()]
        items.sort(key=lambda w: w.name)
        resources = [ws_resource(state, w) for w in items]
        self._page(f"/api/v2/organizations/{org}/workspaces", resources, query, includes, True)

    def _list_runs(
        self, runs: list[Run], query: Mapping[str, str], token: TokenInfo, *, totals: bool
    ) -> None:
        state = self.sim.state
        includes = _includes(query, _RUN_INCLUDES)
        runs = [r for r in runs if self._sees(token, state.workspaces[r.ws_id])]
        ops = query.get("filter[operation]")
        wanted_ops = set(ops.split(",")) if ops else set(_DEFAULT_OPERATIONS)
        runs = [r for r in runs if r.operation in wanted_ops]
        group = query.get("filter[status_group]")
        if group == "non_final":
            runs = [r for r in runs if r.status not in _NON_FINAL_EXCLUDED]
        elif group == "final":
            runs = [r for r in runs if r.status in _NON_FINAL_EXCLUDED]
        elif group == "discardable":
            runs = [r for r in runs if state.run_flags(r)["is-discardable"]]
        elif group:
            raise _error(400, "invalid filter", f"unknown status group {group!r}")
        statuses = query.get("filter[status]")
        if statuses:
            runs = [r for r in runs if r.status in set(statuses.split(","))]
        names = query.get("filter[workspace_names]")
        if names:
            runs = [r for r in runs if state.workspaces[r.ws_id].name in set(names.split(","))]
        runs.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        resources = [run_resource(state, r) for r in runs]
        path = self.path.split("?")[0]
        self._page(path, resources, query, includes, totals)

    def _list_run_triggers(self, ws: Workspace, query: Mapping[str, str]) -> None:
        state = self.sim.state
        kind = query.get("filter[run-trigger][type]")
        if kind not in ("inbound", "outbound"):
            raise _error(
                400, "bad request", "filter[run-trigger][type] is required: inbound or outbound"
            )
        triggers = [
            t
            for t in state.run_triggers.values()
            if (t.ws_id if kind == "inbound" else t.source_id) == ws.id
        ]
        triggers.sort(key=lambda t: t.created_at)
        resources = []
        for t in triggers:
            dst, src = state.workspaces[t.ws_id], state.workspaces[t.source_id]
            resources.append(
                {
                    "id": t.id,
                    "type": "run-triggers",
                    "attributes": {
                        "workspace-name": dst.name,
                        "sourceable-name": src.name,
                        "created-at": iso(t.created_at),
                    },
                    "relationships": {
                        "workspace": {"data": {"id": dst.id, "type": "workspaces"}},
                        "sourceable": {"data": {"id": src.id, "type": "workspaces"}},
                    },
                    "links": {"self": f"/api/v2/run-triggers/{t.id}"},
                }
            )
        self._page(f"/api/v2/workspaces/{ws.id}/run-triggers", resources, query, set(), True)

    def _page(
        self,
        path: str,
        resources: list[dict[str, Any]],
        query: Mapping[str, str],
        includes: set[str],
        totals: bool,
    ) -> None:
        number = _positive(query.get("page[number]"), 1)
        size = min(_positive(query.get("page[size]"), 20), 100)
        total = len(resources)
        pages = max(1, -(-total // size))
        chunk = resources[(number - 1) * size : number * size]
        keep = {k: v for k, v in query.items() if not k.startswith("page[")}

        def link(n: int) -> str:
            return (
                self.sim.url
                + path
                + "?"
                + urlencode({**keep, "page[number]": n, "page[size]": size})
            )

        pagination: dict[str, Any] = {
            "current-page": number,
            "page-size": size,
            "prev-page": number - 1 if number > 1 else None,
            "next-page": number + 1 if number < pages else None,
        }
        links = {
            "self": link(number),
            "first": link(1),
            "prev": link(number - 1) if number > 1 else None,
            "next": link(number + 1) if number < pages else None,
        }
        if totals:
            pagination["total-pages"] = pages
            pagination["total-count"] = total
            links["last"] = link(pages)
        raise _Reply(
            200,
            {
                "data": chunk,
                "included": included(self.sim.state, chunk, includes),
                "links": links,
                "meta": {"pagination": pagination},
            },
        )

    def _create_run(self, body: Any, token: TokenInfo) -> None:
        state = self.sim.state
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("type") != "runs":
            raise _error(422, "invalid attribute", "data.type must be runs")
        rels = data.get("relationships") or {}
        ws_ref = (rels.get("workspace") or {}).get("data") if isinstance(rels, dict) else None
        if not isinstance(ws_ref, dict) or not isinstance(ws_ref.get("id"), str):
            raise _error(422, "invalid attribute", "Workspace relationship is required")
        ws = self._ws(token, ws_ref["id"])
        attrs = data.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise _error(422, "invalid attribute", "attributes must be an object")
        for key in ("is-destroy", "plan-only", "auto-apply"):
            if key in attrs and not isinstance(attrs[key], bool):
                raise _error(422, "invalid attribute", f"{key} must be a boolean")
        if ws.execution_mode == "local" and not attrs.get("plan-only"):
            raise _error(
                409, "conflict", "This workspace uses local execution: runs happen elsewhere"
            )
        run = state.create_run(
            ws.id,
            message=str(attrs.get("message") or "Queued manually via the Terraform Enterprise API"),
            source="tfe-api",
            trigger_reason="manual",
            created_by=token.user,
            is_destroy=bool(attrs.get("is-destroy")),
            plan_only=bool(attrs.get("plan-only")),
            auto_apply=attrs.get("auto-apply")
            if isinstance(attrs.get("auto-apply"), bool)
            else None,
        )
        raise _Reply(201, {"data": run_resource(state, run)})


_RUN_INCLUDES = {"plan", "apply", "created_by", "workspace", "configuration_version"}


def _includes(query: Mapping[str, str], allowed: set[str]) -> set[str]:
    raw = query.get("include")
    if not raw:
        return set()
    names = {n.strip() for n in raw.split(",") if n.strip()}
    bad = names - allowed
    if bad:
        raise _error(400, "bad request", f"Invalid include parameter: {', '.join(sorted(bad))}")
    return names


def _positive(text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or int(text) < 1:
        raise _error(400, "bad request", f"invalid page parameter {text!r}")
    return int(text)


def _rel(kind: str, rid: str | None) -> dict[str, Any]:
    return {"data": {"id": rid, "type": kind} if rid else None}


def ws_resource(state: SimState, ws: Workspace) -> dict[str, Any]:
    return {
        "id": ws.id,
        "type": "workspaces",
        "attributes": {
            "name": ws.name,
            "description": ws.description,
            "auto-apply": ws.auto_apply,
            "locked": ws.locked,
            "execution-mode": ws.execution_mode,
            "operations": ws.execution_mode != "local",
            "tag-names": list(ws.tags),
            "vcs-repo": ws.vcs_repo,
            "terraform-version": ws.terraform_version,
            "resource-count": ws.resource_count,
            "working-directory": "",
            "environment": "default",
            "queue-all-runs": False,
            "speculative-enabled": True,
            "created-at": iso(ws.created_at),
            "updated-at": iso(ws.updated_at),
            "permissions": {"can-queue-run": True, "can-lock": True, "can-unlock": True},
            "actions": {"is-destroyable": True},
        },
        "relationships": {
            "organization": _rel("organizations", ws.org),
            "project": _rel("projects", ws.project_id),
            "current-run": _rel("runs", ws.current_run if ws.current_run in state.runs else None),
            "locked-by": _rel("users", state.users.get(ws.locked_by or "") if ws.locked else None),
        },
        "links": {"self": f"/api/v2/organizations/{ws.org}/workspaces/{ws.name}"},
    }


def run_resource(state: SimState, run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "type": "runs",
        "attributes": {
            "status": run.status,
            "status-timestamps": {k: iso(v) for k, v in run.timestamps.items()},
            "created-at": iso(run.created_at),
            "message": run.message,
            "source": run.source,
            "trigger-reason": run.trigger_reason,
            "is-destroy": run.is_destroy,
            "plan-only": run.plan_only,
            "auto-apply": run.auto_apply,
            "has-changes": bool(run.has_changes),
            "refresh": True,
            "refresh-only": False,
            "save-plan": False,
            "allow-empty-apply": False,
            "position-in-queue": 0,
            "terraform-version": state.workspaces[run.ws_id].terraform_version,
            "target-addrs": None,
            "replace-addrs": None,
            "variables": [],
            "canceled-at": iso(run.timestamps.get("canceled-at")),
            "actions": state.run_flags(run),
            "permissions": {
                "can-apply": True,
                "can-cancel": True,
                "can-discard": True,
                "can-force-cancel": True,
                "can-force-execute": True,
            },
        },
        "relationships": {
            "workspace": _rel("workspaces", run.ws_id),
            "plan": _rel("plans", run.plan.id),
            "apply": _rel("applies", run.apply.id),
            "created-by": _rel("users", state.users.get(run.created_by)),
            "configuration-version": _rel("configuration-versions", None),
        },
        "links": {"self": f"/api/v2/runs/{run.id}"},
    }


def _phase(kind: str, phase: Any, has_changes: bool | None) -> dict[str, Any]:
    return {
        "id": phase.id,
        "type": kind,
        "attributes": {
            "status": phase.status,
            "status-timestamps": {k: iso(v) for k, v in phase.timestamps.items()},
            "has-changes": bool(has_changes),
        },
    }


def included(
    state: SimState, resources: list[dict[str, Any]], names: set[str]
) -> list[dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for res in resources:
        if res["type"] == "workspaces":
            ws = state.workspaces[res["id"]]
            if "project" in names:
                p = state.projects[ws.project_id]
                out[("projects", p.id)] = {
                    "id": p.id,
                    "type": "projects",
                    "attributes": {"name": p.name},
                }
            if "current_run" in names and ws.current_run in state.runs:
                r = state.runs[ws.current_run]
                out[("runs", r.id)] = run_resource(state, r)
        if res["type"] == "runs":
            run = state.runs[res["id"]]
            if "plan" in names:
                out[("plans", run.plan.id)] = _phase("plans", run.plan, run.has_changes)
            if "apply" in names:
                out[("applies", run.apply.id)] = _phase("applies", run.apply, run.has_changes)
            if "created_by" in names and run.created_by in state.users:
                uid = state.users[run.created_by]
                out[("users", uid)] = {
                    "id": uid,
                    "type": "users",
                    "attributes": {"username": run.created_by, "is-service-account": False},
                }
            if "workspace" in names:
                ws = state.workspaces[run.ws_id]
                out[("workspaces", ws.id)] = ws_resource(state, ws)
    return list(out.values())
