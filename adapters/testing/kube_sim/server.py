"""The Kubernetes API-server simulator's HTTP server (stdlib ``ThreadingHTTPServer`` on
127.0.0.1, HTTP/1.1 with keep-alive; watch streams use chunked transfer encoding)."""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import json
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from adapters.testing.httpd import SimulatorHTTPServer

from .selectors import SelectorError, field_selector, label_selector
from .state import KINDS, ApiError, ClusterState

__all__ = ["KubeSimulator"]

_LABEL = "Kubernetes API-server simulator"
_BATCH = re.compile(
    r"^/apis/batch/v1(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>cronjobs|jobs)(?:/(?P<name>[^/]+))?/?$"
)
_CORE = re.compile(
    r"^/api/v1(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>pods|namespaces)(?:/(?P<name>[^/]+))?/?$"
)
_SNAPSHOTS = 64


class _Done(Exception):
    """The response has been written (a watch stream)."""


class _Reply(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


class KubeSimulator:
    """A batch/v1 API server for CronJobs and Jobs (plus pods and namespaces, read-only),
    over real HTTP, for tests, the demo and the benchmark.

    ``tokens`` are the bearer tokens it accepts. With ``auto=True`` a background thread
    moves the cluster clock with the wall clock, so CronJobs fire and Jobs run by
    themselves (the demo); otherwise tests move it (``state.advance``).
    """

    def __init__(
        self,
        state: ClusterState | None = None,
        *,
        tokens: Iterable[str] = (),
        auto: bool = False,
        tick_seconds: float = 0.5,
        bookmark_seconds: float = 1.0,
    ) -> None:
        self.state = state or ClusterState()
        self.tokens = set(tokens)
        self.auto = auto
        self.tick_seconds = tick_seconds
        self.bookmark_seconds = bookmark_seconds
        self.requests: Counter[str] = Counter()  # "list cronjobs", "watch jobs", ...
        self._count_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ticker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._snapshot_ids = 0
        self.open_watches = 0

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> KubeSimulator:
        handler = type("_BoundHandler", (_Handler,), {"sim": self})
        self._httpd = SimulatorHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="kube-simulator",
            daemon=True,
        )
        self._thread.start()
        if self.auto:
            self.state.auto = True
            self._ticker = threading.Thread(
                target=self._tick_loop, name="kube-simulator-clock", daemon=True
            )
            self._ticker.start()
        return self

    def _tick_loop(self) -> None:
        while not self._stopping.wait(self.tick_seconds):
            self.state.tick()

    def stop(self) -> None:
        self._stopping.set()
        with self.state.lock:
            self.state.changed.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for t in (self._thread, self._ticker):
            if t is not None:
                t.join(timeout=5)
        self._httpd = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def count(self, what: str) -> None:
        with self._count_lock:
            self.requests[what] += 1

    def __enter__(self) -> KubeSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self, token: str, *, context: str = "sim", namespace: str = "default") -> str:
        """A kubeconfig (YAML text) pointing at this simulator with ``token``."""
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "sim", "cluster": {"server": self.url}}],
                "users": [{"name": "sim-user", "user": {"token": token}}],
                "contexts": [
                    {
                        "name": context,
                        "context": {"cluster": "sim", "user": "sim-user", "namespace": namespace},
                    }
                ],
                "current-context": context,
            }
        )

    def next_snapshot_id(self) -> str:
        self._snapshot_ids += 1
        return f"{self._snapshot_ids}-{secrets.token_hex(4)}"


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def _json_patch(obj: dict[str, Any], ops: Any) -> dict[str, Any]:
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    out = copy.deepcopy(obj)
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            raise ApiError(422, "Invalid", f"unsupported json patch operation: {op!r}")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in str(op["path"]).split("/")[1:]]
        node: Any = out
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node:
                raise ApiError(422, "Invalid", f"json patch path {op['path']} does not exist")
            node = node[p]
        if not isinstance(node, dict) or not parts:
            raise ApiError(422, "Invalid", f"json patch path {op['path']} is not an object field")
        if op["op"] == "remove":
            if parts[-1] not in node:
                raise ApiError(422, "Invalid", f"json patch path {op['path']} does not exist")
            del node[parts[-1]]
        elif op["op"] == "replace" and parts[-1] not in node:
            raise ApiError(422, "Invalid", f"json patch replace: {op['path']} does not exist")
        else:
            node[parts[-1]] = op.get("value")
    return out


class _Handler(BaseHTTPRequestHandler):
    sim: KubeSimulator
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-simulator"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # the client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    # -- plumbing -----------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        try:
            self._auth()
            state = self.sim.state
            with state.lock:
                if state.faults.unavailable > 0:
                    state.faults.unavailable -= 1
                    raise ApiError(
                        503,
                        "ServiceUnavailable",
                        "the server is currently unable to handle the request",
                        headers={"Retry-After": str(state.faults.retry_after)},
                    )
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise ApiError(400, "BadRequest", "the request body is not JSON") from None
            self._route(method, split.path, query, body)
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        except ApiError as exc:
            self._send(_Reply(exc.code, exc.status(), exc.headers))
        except _Reply as reply:
            self._send(reply)
        except _Done:
            return

    def _auth(self) -> None:
        header = self.headers.get("Authorization") or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        ok = any(hmac.compare_digest(token, t) for t in self.sim.tokens) if token else False
        if not ok or self.sim.state.faults.reject_tokens:
            self.sim.count("unauthorized")
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _send(self, reply: _Reply) -> None:
        data = json.dumps(reply.body, separators=(",", ":")).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Simulator", _LABEL)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    # -- routing ------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        sim, state = self.sim, self.sim.state
        if path.rstrip("/") == "/version" and method == "GET":
            sim.count("version")
            raise _Reply(
                200,
                {
                    "major": "1",
                    "minor": "31",
                    "gitVersion": "v1.31.0-simulator",
                    "platform": "linux/amd64",
                    "buildDate": "2024-08-13T00:00:00Z",
                    "compiler": "simulator",
                },
            )
        m = _BATCH.match(path) or _CORE.match(path)
        if m is None:
            return
        ns, resource, name = m.group("ns"), m.group("res"), m.group("name")
        if resource == "namespaces":
            ns, name = "", name
        read_only = resource in ("pods", "namespaces")
        if name is None:
            if method == "GET":
                if query.get("watch") in ("true", "1", "True"):
                    sim.count(f"watch {resource}")
                    self._watch(resource, ns, query)
                    raise _Done
                sim.count(f"list {resource}")
                raise _Reply(200, self._list(resource, ns, query))
            if method == "POST" and not read_only and ns:
                sim.count(f"create {resource}")
                if not isinstance(body, dict):
                    raise ApiError(400, "BadRequest", "the request body must be an object")
                with state.lock:
                    raise _Reply(201, state.create(resource, ns, body))
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed here")
        if method == "GET":
            sim.count(f"get {resource}")
            with state.lock:
                raise _Reply(200, state.get(resource, ns or "", name))
        if read_only:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed here")
        if method == "PATCH":
            sim.count(f"patch {resource}")
            raise _Reply(200, self._patch(resource, ns, name, body))
        if method == "DELETE":
            sim.count(f"delete {resource}")
            opts = body if isinstance(body, dict) else {}
            propagation = opts.get("propagationPolicy") or query.get("propagationPolicy")
            uid = (opts.get("preconditions") or {}).get("uid")
            with state.lock:
                gone = state.delete(resource, ns, name, propagation=propagation, uid=uid)
            raise _Reply(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": "batch",
                        "kind": resource,
                        "uid": gone["metadata"]["uid"],
                    },
                },
            )
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed here")

    def _patch(self, resource: str, ns: str, name: str, body: Any) -> dict[str, Any]:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        state = self.sim.state
        with state.lock:
            current = state.get(resource, ns, name)
            if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                if not isinstance(body, dict):
                    raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
                patched = _merge(current, body)
            elif ctype == "application/json-patch+json":
                patched = _json_patch(current, body)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: application/json-patch+json, application/merge-patch+json, "
                    f"application/strategic-merge-patch+json (got {ctype!r})",
                )
            wanted_uid = (body.get("metadata") or {}).get("uid") if isinstance(body, dict) else None
            if wanted_uid and wanted_uid != current["metadata"]["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {resource}.batch "{name}": Precondition '
                    f"failed: UID in precondition: {wanted_uid}, UID in object meta: "
                    f"{current['metadata']['uid']}",
                )
            for key in ("name", "namespace", "uid", "creationTimestamp"):
                if key in current["metadata"]:
                    patched.setdefault("metadata", {})[key] = current["metadata"][key]
            patched["status"] = current.get("status", {})
            probe = copy.deepcopy(patched)
            state._validate(resource, probe)

            def apply(o: dict[str, Any]) -> None:
                o.clear()
                o.update(copy.deepcopy(patched))

            return state.update(resource, ns, name, apply)

    # -- list ---------------------------------------------------------------------------------
    def _filters(self, query: dict[str, str]) -> Callable[[dict[str, Any]], bool]:
        try:
            labels = label_selector(query.get("labelSelector"))
            fields = field_selector(query.get("fieldSelector"))
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from None
        return lambda o: labels(o["metadata"].get("labels") or {}) and fields(o)

    def _list(self, resource: str, ns: str | None, query: dict[str, str]) -> dict[str, Any]:
        sim, state = self.sim, self.sim.state
        kind, api_version = KINDS[resource]
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 0
        token = query.get("continue")
        with state.lock:
            if token:
                try:
                    snap_id, offset = json.loads(base64.urlsafe_b64decode(token.encode()))
                except (ValueError, binascii.Error, TypeError):
                    raise ApiError(400, "BadRequest", "continue key is not valid") from None
                if snap_id not in state.snapshots:
                    raise ApiError(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter.",
                    )
                rv, items = state.snapshots[snap_id]
            else:
                keep = self._filters(query)
                rv = state.rv
                items = [o for o in state.items(resource, ns) if keep(o)]
                snap_id, offset = None, 0
            page = items[offset : offset + limit] if limit else items[offset:]
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            end = offset + len(page)
            if limit and end < len(items):
                if snap_id is None:
                    snap_id = sim.next_snapshot_id()
                    state.snapshots[snap_id] = (rv, items)
                    while len(state.snapshots) > _SNAPSHOTS:
                        state.snapshots.pop(next(iter(state.snapshots)))
                meta["continue"] = base64.urlsafe_b64encode(
                    json.dumps([snap_id, end]).encode()
                ).decode()
                meta["remainingItemCount"] = len(items) - end
            elif snap_id is not None:
                state.snapshots.pop(snap_id, None)
            return {
                "kind": f"{kind}List",
                "apiVersion": api_version,
                "metadata": meta,
                "items": page,
            }

    # -- watch --------------------------------------------------------------------------------
    def _chunk(self, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, resource: str, ns: str | None, query: dict[str, str]) -> None:
        sim, state = self.sim, self.sim.state
        keep = self._filters(query)
        kind, api_version = KINDS[resource]
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1", "True")
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else 1800.0
        rv_text = query.get("resourceVersion") or "0"
        initial: list[dict[str, Any]] = []
        with state.lock:
            generation = state.watch_generation
            if rv_text == "0":
                rv = state.rv
                initial = [o for o in state.items(resource, ns) if keep(o)]
            else:
                try:
                    rv = int(rv_text)
                except ValueError:
                    raise ApiError(
                        400, "BadRequest", f"invalid resource version: {rv_text}"
                    ) from None
                too_old = state.events_after(resource, rv) is None
                if too_old and state.faults.gone_as_http:
                    raise ApiError(
                        410,
                        "Expired",
                        f"too old resource version: {rv} ({state.stores[resource].compacted})",
                    )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Simulator", _LABEL)
        self.end_headers()
        self.close_connection = True
        sim.open_watches += 1
        try:
            for obj in initial:
                self._chunk({"type": "ADDED", "object": obj})
            deadline = time.monotonic() + timeout
            last_bookmark = time.monotonic()
            while True:
                with state.lock:
                    events = state.events_after(resource, rv)
                    if events is None:
                        compacted = state.stores[resource].compacted
                        self._chunk(
                            {
                                "type": "ERROR",
                                "object": {
                                    "kind": "Status",
                                    "apiVersion": "v1",
                                    "metadata": {},
                                    "status": "Failure",
                                    "message": f"too old resource version: {rv} ({compacted})",
                                    "reason": "Expired",
                                    "code": 410,
                                },
                            }
                        )
                        break
                    if not events and generation == state.watch_generation:
                        left = deadline - time.monotonic()
                        if left <= 0 or sim.stopping:
                            break
                        state.changed.wait(min(left, sim.bookmark_seconds))
                        events = state.events_after(resource, rv) or []
                    broken = generation != state.watch_generation
                    latest = state.rv
                if broken:
                    # A dropped connection: no terminating chunk.
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                for e in events:
                    rv = e.rv
                    obj_ns = e.obj["metadata"].get("namespace", "")
                    if (ns is None or obj_ns == ns) and keep(e.obj):
                        self._chunk({"type": e.type, "object": e.obj})
                if bookmarks and time.monotonic() - last_bookmark >= sim.bookmark_seconds:
                    rv = max(rv, latest)
                    self._chunk(
                        {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": kind,
                                "apiVersion": api_version,
                                "metadata": {"resourceVersion": str(rv)},
                            },
                        }
                    )
                    last_bookmark = time.monotonic()
                if time.monotonic() >= deadline or sim.stopping:
                    break
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
        finally:
            sim.open_watches -= 1
