"""An HTTP server on 127.0.0.1 that answers like Airflow 3's API server, from a recording.

It serves the endpoints Accord's Airflow adapter uses, with Airflow's paging (offset, and
the key-based ``cursor`` of Airflow 3.3), its ``updated_at`` filters, its token login
(``POST /auth/token``; no token → 401, a bad or expired one → 403) and the changes the
adapter asks for (trigger, pause, mark failed, clear). Tests inject faults: an answer
with another status and headers (503 + Retry-After), a malformed body, a dropped
connection; they can revoke every token, and read the log of requests.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import html
import json
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from adapters.testing.httpd import SimulatorHTTPServer

from .state import ReplayState, parse_time

__all__ = ["Fault", "ReplayServer", "Request"]

Json = dict[str, Any]
_MUTABLE_RUN_STATES = {"queued", "success", "failed"}


@dataclass
class Fault:
    """An answer to put in place of the real one, for requests matching ``path`` (a regex)."""

    path: str
    status: int = 503
    body: bytes = b'{"detail": "Service Unavailable"}'
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    times: int = 1
    drop: bool = False  # close the connection without answering

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and re.search(
            self.path, path
        ) is not None


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    authorization: str | None


class _HttpError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _token(user: str, lifetime: float) -> tuple[str, float]:
    now = time.time()
    exp = now + lifetime

    def b64(doc: Json) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    claims = {"sub": user, "iat": int(now), "exp": int(exp), "jti": secrets.token_hex(8)}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.replay", exp


class ReplayServer:
    """The server and its knobs. ``start()`` serves in a daemon thread; ``stop()`` ends it."""

    def __init__(
        self,
        state: ReplayState,
        *,
        users: dict[str, str] | None = None,
        roles: dict[str, str] | None = None,
        static_tokens: set[str] | None = None,
        token_lifetime: float = 86400.0,
        keyset: bool = True,
        legacy_paging: bool = False,
        max_limit: int = 100,
        totals: bool = True,
        label: str = "replay",
    ) -> None:
        self.state = state
        self.users = dict(users if users is not None else {"admin": "admin"})
        self.roles = dict(roles or {})  # user -> "viewer" makes the user read-only
        self.static_tokens = set(static_tokens or ())
        self.token_lifetime = token_lifetime
        self.keyset = keyset  # answer ?cursor= by key, as Airflow 3.3 does
        self.legacy_paging = legacy_paging  # answer like Airflow 3.0-3.2 (offset only)
        self.max_limit = max_limit
        self.totals = totals  # False: listings leave out total_entries
        self.label = label
        self.health: dict[str, Any] | None = None  # replaces the health answer when set
        self.rejected = 0  # requests refused for want of a valid token
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ReplayServer:
        handler = type("_Handler", (_Handler,), {"replay": self})
        self._httpd = SimulatorHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="airflow-replay",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close open (keep-alive) connections, as a stopped server does."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._lock:
            open_connections = list(self._connections)
            self._connections.clear()
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- knobs ----------------------------------------------------------------------------
    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def revoke_tokens(self) -> None:
        """Forget every token issued so far (as a restart with a new secret key would)."""
        with self._lock:
            self._tokens.clear()

    def issue_token(self, user: str) -> str:
        token, exp = _token(user, self.token_lifetime)
        with self._lock:
            self._tokens[token] = (user, exp)
        return token

    def requests_to(self, pattern: str, method: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if re.search(pattern, r.path) and (method is None or r.method == method)
            ]

    # -- internals used by the handler ----------------------------------------------------
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _user(self, authorization: str | None) -> str:
        if not authorization or not authorization.lower().startswith("bearer "):
            with self._lock:
                self.rejected += 1
            raise _HttpError(401, "Not authenticated")
        token = authorization[7:].strip()
        if token in self.static_tokens:
            return "token"
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None or entry[1] < time.time():
                self.rejected += 1
                raise _HttpError(403, "Invalid JWT token")
        return entry[0]


class _Handler(BaseHTTPRequestHandler):
    replay: ReplayServer
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def setup(self) -> None:
        super().setup()
        with self.replay._lock:
            self.replay._connections.add(self.connection)

    def finish(self) -> None:
        with self.replay._lock:
            self.replay._connections.discard(self.connection)
        super().finish()

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The Date header follows the replay's clock (tests may fix it).
        if timestamp is not None:
            return super().date_time_string(timestamp)
        return email.utils.format_datetime(self.replay.state.clock().astimezone(UTC), usegmt=True)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- plumbing -------------------------------------------------------------------------
    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        replay = self.replay
        replay._log(Request(method, path, query, body, self.headers.get("Authorization")))
        fault = replay._take_fault(method, path)
        if fault is not None:
            if fault.drop:
                self.close_connection = True
                return
            self._send(fault.status, fault.body, "application/json", fault.headers)
            return
        try:
            status, answer = self._route(method, path, query, body)
        except _HttpError as exc:
            status, answer = exc.status, {"detail": exc.detail}
        if isinstance(answer, str):
            self._send(status, answer.encode(), "text/html; charset=utf-8")
        elif answer is None:
            self._send(status, b"", "application/json")
        else:
            self._send(status, json.dumps(answer).encode(), "application/json")

    def _send(
        self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Json | str | None]:
        replay = self.replay
        state = replay.state
        if method == "POST" and path == "/auth/token":
            return self._login(body)
        if method == "GET" and path == "/api/v2/monitor/health":
            if replay.health is not None:
                return 200, replay.health
            beat = datetime.now(UTC).isoformat()
            return 200, {
                "metadatabase": {"status": "healthy"},
                "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": beat},
                "triggerer": {"status": None, "latest_triggerer_heartbeat": None},
                "dag_processor": {"status": "healthy", "latest_dag_processor_heartbeat": beat},
            }
        ui = re.fullmatch(r"/dags/([^/]+)(?:/runs/([^/]+))?/?", path)
        if method == "GET" and ui:
            return 200, self._ui_page(unquote(ui.group(1)), ui.group(2) and unquote(ui.group(2)))
        if not path.startswith("/api/v2/"):
            raise _HttpError(404, "Not Found")
        user = replay._user(self.headers.get("Authorization"))
        if method != "GET" and replay.roles.get(user) == "viewer":
            raise _HttpError(403, "Forbidden")
        state.tick()
        route = path[len("/api/v2") :]
        segs = [unquote(s) for s in route.strip("/").split("/")]
        if route == "/version" and method == "GET":
            return 200, {"version": state.version, "git_version": None}
        if segs == ["dags"] and method == "GET":
            return 200, self._dags(query)
        if segs == ["assets"] and method == "GET":
            items = state.asset_list()
            return 200, self._offset_page(items, query, "assets")
        if segs == ["assets", "events"] and method == "GET":
            items = state.event_list()
            return 200, self._offset_page(items, query, "asset_events")
        if len(segs) >= 2 and segs[0] == "dags":
            return self._dag_routes(method, segs[1], segs[2:], query, body, user)
        raise _HttpError(404, "Not Found")

    def _login(self, body: Any) -> tuple[int, Json]:
        replay = self.replay
        if not isinstance(body, dict):
            raise _HttpError(422, "a JSON body with username and password is required")
        user, password = body.get("username"), body.get("password")
        if not isinstance(user, str) or replay.users.get(user) != password:
            raise _HttpError(401, "Invalid credentials")
        return 201, {"access_token": replay.issue_token(user)}

    def _ui_page(self, dag_id: str, run_id: str | None) -> str:
        replay = self.replay
        what = f"run {run_id} of DAG {dag_id}" if run_id else f"DAG {dag_id}"
        return (
            "<!doctype html><html><head><title>Demo Airflow</title></head><body>"
            f"<h1>Demo Airflow ({html.escape(replay.label)})</h1>"
            f"<p>{html.escape(what)}</p>"
            "<p>This is a simulator serving recorded answers of Apache Airflow "
            f"{html.escape(replay.state.version)}; it has no user interface of its own.</p>"
            "</body></html>"
        )

    # -- listings -------------------------------------------------------------------------
    def _limits(self, query: dict[str, list[str]]) -> tuple[int, int]:
        try:
            limit = int(query.get("limit", ["50"])[0])
            offset = int(query.get("offset", ["0"])[0])
        except ValueError:
            raise _HttpError(422, "limit and offset must be integers") from None
        if limit < 0 or offset < 0:
            raise _HttpError(422, "limit and offset must not be negative")
        return min(limit, self.replay.max_limit), offset

    def _offset_page(self, items: list[Json], query: dict[str, list[str]], key: str) -> Json:
        limit, offset = self._limits(query)
        return self._totals({key: items[offset : offset + limit], "total_entries": len(items)})

    def _totals(self, page: Json) -> Json:
        if not self.replay.totals:
            page.pop("total_entries", None)
        return page

    def _dags(self, query: dict[str, list[str]]) -> Json:
        order = query.get("order_by", ["dag_id"])
        dags = self.replay.state.dag_list()
        if order not in (["dag_id"], ["-dag_id"]):
            raise _HttpError(400, f"Ordering with {order!r} is not allowed")
        if order == ["-dag_id"]:
            dags.reverse()
        if query.get("paused"):
            want = query["paused"][0].lower() == "true"
            dags = [d for d in dags if d.get("is_paused") is want]
        return self._offset_page(dags, query, "dags")

    def _runs(self, dag_id: str, query: dict[str, list[str]]) -> Json:
        replay = self.replay
        if dag_id != "~" and replay.state.dag(dag_id) is None:
            raise _HttpError(404, f"The Dag with ID: `{dag_id}` was not found")

        def when(name: str) -> datetime | None:
            value = query.get(name, [None])[0]
            if not value:
                return None
            try:
                return parse_time(value)
            except ValueError:
                raise _HttpError(422, f"{name} is not a date-time: {value!r}") from None

        runs = replay.state.run_list(
            dag_id,
            updated_gte=when("updated_at_gte"),
            updated_lte=when("updated_at_lte"),
            states=query.get("state", []),
        )
        order = query.get("order_by", ["id"])
        if order not in (["id"], ["-id"]):
            raise _HttpError(400, f"Ordering with {order!r} is not supported by this replay")
        if order == ["-id"]:
            runs.reverse()
        limit, offset = self._limits(query)
        if "cursor" in query and replay.keyset and not replay.legacy_paging:
            token = query["cursor"][0]
            after = _decode_cursor(token) if token else None
            if after is not None:
                runs_after = [
                    r for r in runs if (r[0] > after if order == ["id"] else r[0] < after)
                ]
            else:
                runs_after = runs
            chunk = runs_after[:limit]
            more = len(runs_after) > limit
            return {
                "dag_runs": [b for _, b in chunk],
                "total_entries": len(runs),
                "total_entries_limit": 50000,
                "next_cursor": _encode_cursor(chunk[-1][0]) if more and chunk else None,
                "previous_cursor": _encode_cursor(chunk[0][0])
                if after is not None and chunk
                else None,
            }
        page: Json = {
            "dag_runs": [b for _, b in runs[offset : offset + limit]],
            "total_entries": len(runs),
        }
        if not replay.legacy_paging:
            page.update({"total_entries_limit": None, "next_cursor": None, "previous_cursor": None})
        return self._totals(page)

    # -- /dags/{dag_id}/... ---------------------------------------------------------------
    def _dag_routes(
        self,
        method: str,
        dag_id: str,
        rest: list[str],
        query: dict[str, list[str]],
        body: Any,
        user: str,
    ) -> tuple[int, Json | None]:
        state = self.replay.state
        if not rest:
            if method == "GET":
                return 200, self._need(
                    state.dag(dag_id), f"The Dag with ID: `{dag_id}` was not found"
                )
            if method == "PATCH":
                if not isinstance(body, dict) or not isinstance(body.get("is_paused"), bool):
                    raise _HttpError(422, "is_paused (a boolean) is required")
                return 200, self._need(
                    state.set_paused(dag_id, body["is_paused"]),
                    f"Dag with id: {dag_id} was not found",
                )
            if method == "DELETE":
                if not state.remove_dag(dag_id):
                    raise _HttpError(404, f"Dag with id: {dag_id} was not found")
                return 204, None
        if rest == ["dagRuns"]:
            if method == "GET":
                return 200, self._runs(dag_id, query)
            if method == "POST":
                return self._trigger(dag_id, body, user)
        if len(rest) >= 2 and rest[0] == "dagRuns":
            run_id = rest[1]
            tail = rest[2:]
            if not tail and method == "GET":
                return 200, self._need(state.run(dag_id, run_id), self._no_run(dag_id, run_id))
            if not tail and method == "PATCH":
                return self._patch_run(dag_id, run_id, body, query)
            if tail == ["clear"] and method == "POST":
                if not isinstance(body, dict):
                    raise _HttpError(422, "a JSON body is required")
                if body.get("dry_run", True):
                    return 200, {"task_instances": [], "total_entries": 0}
                return 200, self._need(
                    state.clear_run(dag_id, run_id), self._no_run(dag_id, run_id)
                )
            if tail == ["taskInstances"] and method == "GET":
                self._need(state.run(dag_id, run_id), self._no_run(dag_id, run_id))
                items = state.task_instances([dag_id], [run_id])
                return 200, self._offset_page(items, query, "task_instances")
            if tail == ["upstreamAssetEvents"] and method == "GET":
                self._need(state.run(dag_id, run_id), self._no_run(dag_id, run_id))
                events = state.upstream_events(dag_id, run_id)
                return 200, {"asset_events": events, "total_entries": len(events)}
        raise _HttpError(404, "Not Found")

    @staticmethod
    def _no_run(dag_id: str, run_id: str) -> str:
        return f"The DagRun with dag_id: `{dag_id}` and run_id: `{run_id}` was not found"

    @staticmethod
    def _need(value: Json | None, detail: str) -> Json:
        if value is None:
            raise _HttpError(404, detail)
        return value

    def _trigger(self, dag_id: str, body: Any, user: str) -> tuple[int, Json]:
        state = self.replay.state
        if state.dag(dag_id) is None:
            raise _HttpError(404, f"Dag with dag_id: '{dag_id}' not found")
        if not isinstance(body, dict):
            raise _HttpError(422, "a JSON body is required")
        conf = body.get("conf") or {}
        if not isinstance(conf, dict):
            raise _HttpError(422, "conf must be an object")
        note = body.get("note")
        return 200, state.trigger(dag_id, conf, note if isinstance(note, str) else None, user)

    def _patch_run(
        self, dag_id: str, run_id: str, body: Any, query: dict[str, list[str]]
    ) -> tuple[int, Json]:
        if not isinstance(body, dict):
            raise _HttpError(422, "a JSON body is required")
        mask = query.get("update_mask") or [k for k in ("state", "note") if k in body]
        new_state = body.get("state") if "state" in mask else None
        if new_state is not None and new_state not in _MUTABLE_RUN_STATES:
            raise _HttpError(422, f"Input should be 'queued', 'success' or 'failed': {new_state!r}")
        note = body.get("note")
        patched = self.replay.state.patch_run(
            dag_id, run_id, new_state, note if isinstance(note, str) else None, "note" in mask
        )
        return 200, self._need(patched, self._no_run(dag_id, run_id))


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([seq]).encode()).decode().rstrip("=")


def _decode_cursor(token: str) -> int:
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if isinstance(value, list) and value and isinstance(value[0], int):
            return int(value[0])
    except ValueError:
        pass
    raise _HttpError(400, "Invalid cursor")
