"""The Jenkins simulator's HTTP server (stdlib ``ThreadingHTTPServer`` on 127.0.0.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from adapters.testing.httpd import SimulatorHTTPServer

from .api import build_bean, item_bean, queue_bean, queue_item_bean, root_bean, wfapi_run
from .state import Build, Folder, Job, SimState, cause_remote, cause_user
from .tree import TreeSyntaxError, parse_tree, render_depth, render_tree

__all__ = ["CRUMB_FIELD", "JenkinsSimulator"]

CRUMB_FIELD = "Jenkins-Crumb"
_SESSION_COOKIE = "JSESSIONID.sim"
_LABEL = "Jenkins simulator"
_BUILD_ALIASES = {
    "lastBuild",
    "lastCompletedBuild",
    "lastSuccessfulBuild",
    "lastFailedBuild",
    "lastStableBuild",
    "lastUnstableBuild",
    "lastUnsuccessfulBuild",
    "firstBuild",
}


class _Reply(Exception):
    """Ends handling with an HTTP answer (status, body, headers)."""

    def __init__(
        self,
        status: int,
        body: str = "",
        *,
        content_type: str = "text/html;charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})


def _page(title: str, message: str) -> str:
    return (
        f"<html><head><title>{title} [{_LABEL}]</title></head>"
        f"<body><h1>{title}</h1><p>{message}</p><p><i>{_LABEL}</i></p></body></html>"
    )


class _Auth:
    def __init__(self, user: str, by_token: bool, session: str | None) -> None:
        self.user = user
        self.by_token = by_token
        self.session = session


class JenkinsSimulator:
    """A Jenkins controller's JSON API over real HTTP, for tests and the demo.

    ``users`` maps user ids to passwords, ``tokens`` user ids to API tokens. With
    ``auto=True`` a background thread calls :meth:`SimState.tick` (the demo); otherwise the
    test drives the state. ``latency`` delays every answer by that many seconds, like a
    controller across a network (``bench/scale.py``).
    """

    def __init__(
        self,
        state: SimState | None = None,
        *,
        users: Mapping[str, str] | None = None,
        tokens: Mapping[str, str] | None = None,
        auto: bool = False,
        tick_seconds: float = 0.5,
        latency: float = 0.0,
    ) -> None:
        self.state = state or SimState()
        self.latency = latency
        self.users = dict(users or {})
        self.tokens = dict(tokens or {})
        self.auto = auto
        self.tick_seconds = tick_seconds
        self.requests: list[tuple[str, str]] = []
        self._secret = secrets.token_bytes(16)
        self._sessions: dict[str, str] = {}  # session id -> user
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

    def start(self) -> JenkinsSimulator:
        handler = type("_BoundHandler", (_Handler,), {"sim": self})
        self._httpd = SimulatorHTTPServer(("127.0.0.1", 0), handler)
        self.state.base_url = self.url + "/"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="jenkins-simulator",
            daemon=True,
        )
        self._thread.start()
        if self.auto:
            self._ticker = threading.Thread(
                target=self._tick_loop, name="jenkins-simulator-tick", daemon=True
            )
            self._ticker.start()
        return self

    def _tick_loop(self) -> None:
        while not self._stopping.wait(self.tick_seconds):
            self.state.tick()

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for t in (self._thread, self._ticker):
            if t is not None:
                t.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> JenkinsSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def request_count(self) -> int:
        return len(self.requests)

    # -- auth -------------------------------------------------------------------------------
    def crumb_for(self, user: str, session: str | None) -> str:
        msg = f"{user};{session or ''}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def authenticate(self, header: str | None, cookie: str | None) -> _Auth | None:
        """None for anonymous; raises 401 for wrong credentials."""
        session = None
        if cookie:
            jar = SimpleCookie()
            jar.load(cookie)
            if _SESSION_COOKIE in jar and jar[_SESSION_COOKIE].value in self._sessions:
                session = jar[_SESSION_COOKIE].value
        if not header or not header.lower().startswith("basic "):
            if session is not None:
                return _Auth(self._sessions[session], False, session)
            return None
        try:
            user, _, secret = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise _Reply(401, _page("Unauthorized", "Malformed credentials")) from None
        if self.state.faults.reject_all_credentials:
            raise _Reply(401, _page("Unauthorized", f"Invalid password/token for user: {user}"))
        token = self.tokens.get(user)
        if token is not None and hmac.compare_digest(secret, token):
            return _Auth(user, True, None)
        password = self.users.get(user)
        if password is not None and hmac.compare_digest(secret, password):
            if session is None or self._sessions.get(session) != user:
                session = None
            return _Auth(user, False, session)
        raise _Reply(401, _page("Unauthorized", f"Invalid password/token for user: {user}"))

    def new_session(self, user: str) -> str:
        sid = secrets.token_hex(12)
        self._sessions[sid] = user
        return sid


class _Handler(BaseHTTPRequestHandler):
    sim: JenkinsSimulator
    protocol_version = "HTTP/1.1"
    server_version = "Jenkins-simulator"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    # -- plumbing ---------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        sim = self.sim
        state = sim.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        sim.requests.append((method, self.path))
        if sim.latency:
            time.sleep(sim.latency)  # a controller some network hops away (benchmarks)
        self._set_cookie: str | None = None
        try:
            with state.lock:
                faults = state.faults
                if faults.unavailable > 0:
                    faults.unavailable -= 1
                    raise _Reply(
                        503,
                        _page("Service Unavailable", "Jenkins is getting ready to work"),
                        headers={"Retry-After": str(faults.retry_after)},
                    )
                if faults.html > 0:
                    faults.html -= 1
                    raise _Reply(200, _page("Sign in [Jenkins]", "Please sign in"))
            auth = sim.authenticate(self.headers.get("Authorization"), self.headers.get("Cookie"))
            if auth is None:
                raise _Reply(
                    403,
                    _page("Authentication required", "You are authenticated as: anonymous"),
                    headers={
                        "X-You-Are-Authenticated-As": "anonymous",
                        "X-Required-Permission": "hudson.model.Hudson.Read",
                    },
                )
            query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items() if body}
            if method == "POST":
                self._check_crumb(auth, query, form)
            with state.lock:
                self._route(method, unquote_path(split.path), query, form, auth)
            raise _Reply(404, _page("Not Found", "Not found"))
        except _Reply as reply:
            self._send(reply)

    def _check_crumb(self, auth: _Auth, query: Mapping[str, str], form: Mapping[str, str]) -> None:
        if auth.by_token and not self.sim.state.faults.crumb_even_for_tokens:
            return  # ApiCrumbExclusion: API-token requests need no crumb
        sent = self.headers.get(CRUMB_FIELD) or form.get(CRUMB_FIELD) or query.get(CRUMB_FIELD)
        expected = self.sim.crumb_for(auth.user, auth.session)
        if not sent or not hmac.compare_digest(sent, expected):
            raise _Reply(
                403,
                _page("Error 403 No valid crumb was included in the request", "Forbidden"),
            )

    def _send(self, reply: _Reply) -> None:
        data = reply.body.encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Jenkins", self.sim.state.version)
        self.send_header("X-Jenkins-Session", "5f1c0d2a")
        self.send_header("X-Jenkins-Simulator", "Accord Jenkins simulator (not a real Jenkins)")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "deny")
        if self._set_cookie:
            self.send_header("Set-Cookie", self._set_cookie)
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # -- routes -----------------------------------------------------------------------------
    def _route(
        self,
        method: str,
        parts: list[str],
        query: Mapping[str, str],
        form: Mapping[str, str],
        auth: _Auth,
    ) -> None:
        state = self.sim.state
        if method == "GET" and not parts:
            raise _Reply(200, _page("Dashboard [Jenkins]", state.system_message))
        if method == "GET" and parts == ["api", "json"]:
            self._json(root_bean(state), query)
        if method == "GET" and parts == ["crumbIssuer", "api", "json"]:
            session = auth.session
            if session is None and not auth.by_token:
                session = self.sim.new_session(auth.user)
                self._set_cookie = f"{_SESSION_COOKIE}={session}; Path=/; HttpOnly"
            crumb = self.sim.crumb_for(auth.user, session)
            self._json(
                {
                    "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                    "crumb": crumb,
                    "crumbRequestField": CRUMB_FIELD,
                },
                query,
            )
        if method == "GET" and parts == ["me", "api", "json"]:
            self._json(
                {"_class": "hudson.model.User", "id": auth.user, "fullName": auth.user}, query
            )
        if parts[:1] == ["queue"]:
            self._queue(method, parts[1:], query)
        if parts[:1] == ["job"]:
            self._job_route(method, parts, query, form, auth)

    def _queue(self, method: str, rest: list[str], query: Mapping[str, str]) -> None:
        state = self.sim.state
        if method == "GET" and rest == ["api", "json"]:
            self._json(queue_bean(state), query)
        if method == "GET" and len(rest) == 4 and rest[0] == "item" and rest[2:] == ["api", "json"]:
            item = state.queue_item(_int(rest[1]))
            if item is None:
                raise _Reply(404, _page("Not Found", f"No queue item {rest[1]}"))
            self._json(queue_item_bean(state, item), query)
        if method == "POST" and rest == ["cancelItem"]:
            qid = _int(query.get("id", ""))
            if state.queue_item(qid) is None:
                raise _Reply(404, _page("Not Found", f"Provided id ({qid}) not found"))
            if not state.cancel(qid):
                raise _Reply(422, _page("Unprocessable", f"Could not cancel run for id {qid}"))
            raise _Reply(204)

    def _job_route(
        self,
        method: str,
        parts: list[str],
        query: Mapping[str, str],
        form: Mapping[str, str],
        auth: _Auth,
    ) -> None:
        state = self.sim.state
        names: list[str] = []
        i = 0
        while i + 1 < len(parts) and parts[i] == "job":
            names.append(parts[i + 1])
            i += 2
        rest = parts[i:]
        item = state.find("/".join(names))
        if item is None or any("/" in n for n in names):
            raise _Reply(404, _page("Not Found", "No such job"))
        if method == "GET" and rest == ["api", "json"]:
            self._json(item_bean(state, item), query)
        if method == "GET" and not rest:
            raise _Reply(200, _page(f"{item.full_name} [Jenkins]", item.description))
        if isinstance(item, Folder) or not isinstance(item, Job):
            return
        job = item
        if method == "GET" and rest == ["config.xml"]:
            raise _Reply(200, job.config_xml(), content_type="application/xml;charset=utf-8")
        if (
            method == "GET"
            and rest in (["wfapi", "describe"], ["wfapi"])
            and job.kind == "pipeline"
        ):
            self._json(
                {
                    "_links": {"self": {"href": f"/{job.url_path}wfapi/describe"}},
                    "name": job.name,
                    "runCount": len(job.builds),
                },
                {},
            )
        if method == "GET" and rest == ["wfapi", "runs"] and job.kind == "pipeline":
            self._json([wfapi_run(state, b) for b in job.newest_first()[:10]], {})
        if rest and (rest[0].isdigit() or rest[0] in _BUILD_ALIASES):
            self._build_route(method, job, rest, query)
        if method != "POST":
            return
        if rest == ["build"]:
            if job.disabled:
                raise _Reply(409, _page("Conflict", f"{job.full_name} is not buildable"))
            item_, _ = state.enqueue(
                job.full_name, self._cause(auth, query), quiet_ms=_delay(query)
            )
            raise _Reply(201, headers={"Location": f"{state.base_url}queue/item/{item_.id}/"})
        if rest == ["buildWithParameters"]:
            if not job.parameters:
                raise _Reply(400, _page("Bad Request", f"{job.full_name} is not parameterized"))
            if job.disabled:
                raise _Reply(409, _page("Conflict", f"{job.full_name} is not buildable"))
            reserved = {"delay", "token", "cause", CRUMB_FIELD}
            params = {k: v for k, v in {**query, **form}.items() if k in job.parameters}
            unknown = set({**query, **form}) - reserved - set(job.parameters)
            del unknown  # Jenkins ignores parameters the job does not define
            item_, created = state.enqueue(
                job.full_name, self._cause(auth, query), params=params, quiet_ms=_delay(query)
            )
            status = 201 if created else 303
            raise _Reply(status, headers={"Location": f"{state.base_url}queue/item/{item_.id}/"})
        if rest in (["enable"], ["disable"]):
            state.set_disabled(job.full_name, rest == ["disable"])
            raise _Reply(302, headers={"Location": state.base_url + job.url_path})
        if rest == ["doDelete"]:
            state.delete(job.full_name)
            raise _Reply(302, headers={"Location": state.base_url})

    def _build_route(
        self, method: str, job: Job, rest: list[str], query: Mapping[str, str]
    ) -> None:
        state = self.sim.state
        build = _find_build(job, rest[0])
        if build is None:
            raise _Reply(404, _page("Not Found", f"No build {rest[0]} of {job.full_name}"))
        tail = rest[1:]
        if method == "GET" and not tail:
            raise _Reply(200, _page(f"{job.full_name} #{build.number} [Jenkins]", ""))
        if method == "GET" and tail == ["api", "json"]:
            self._json(build_bean(state, build), query)
        if (
            method == "GET"
            and tail in (["wfapi", "describe"], ["wfapi"])
            and job.kind == "pipeline"
        ):
            self._json(wfapi_run(state, build), {})
        if method == "GET" and tail == ["consoleText"]:
            lines = [c.get("shortDescription", "") for c in build.causes]
            if not build.building:
                lines.append(f"Finished: {build.result}")
            raise _Reply(200, "\n".join(lines) + "\n", content_type="text/plain;charset=utf-8")
        if method == "POST" and tail in (["stop"], ["term"], ["kill"]):
            state.abort(job.full_name, build.number)
            raise _Reply(302, headers={"Location": state.base_url + build.url_path})

    def _cause(self, auth: _Auth, query: Mapping[str, str]) -> dict[str, Any]:
        if "token" in query:
            return cause_remote(self.client_address[0], query.get("cause"))
        return cause_user(auth.user)

    def _json(self, value: Any, query: Mapping[str, str]) -> None:
        if "tree" in query:
            try:
                tree = parse_tree(query["tree"])
            except TreeSyntaxError as exc:
                raise _Reply(400, _page("Bad Request", str(exc))) from None
            rendered = render_tree(value, tree)
        else:
            depth = _int(query.get("depth", "0") or "0")
            rendered = render_depth(value, depth)
        indent = 2 if query.get("pretty") == "true" else None
        raise _Reply(
            200,
            json.dumps(rendered, indent=indent, separators=None if indent else (",", ":")),
            content_type="application/json;charset=utf-8",
        )


def unquote_path(path: str) -> list[str]:
    """Path segments, each percent-decoded once (``feature%252Fx`` → ``feature%2Fx``)."""
    return [unquote(p) for p in path.split("/") if p]


def _int(text: str) -> int:
    if not re.fullmatch(r"-?[0-9]+", text or ""):
        raise _Reply(400, _page("Bad Request", f"not a number: {text!r}"))
    return int(text)


def _delay(query: Mapping[str, str]) -> int | None:
    text = query.get("delay")
    if not text:
        return None
    m = re.fullmatch(r"(\d+)\s*(sec|secs|s)?", text.strip())
    if m is None:
        raise _Reply(400, _page("Bad Request", f"invalid delay {text!r}"))
    return int(m.group(1)) * 1000


def _find_build(job: Job, ref: str) -> Build | None:
    if ref.isdigit():
        return job.builds.get(int(ref))
    builds = job.newest_first()
    done = [b for b in builds if not b.building]
    pick = {
        "lastBuild": builds,
        "firstBuild": builds[::-1],
        "lastCompletedBuild": done,
        "lastSuccessfulBuild": [b for b in done if b.result in ("SUCCESS", "UNSTABLE")],
        "lastFailedBuild": [b for b in done if b.result == "FAILURE"],
        "lastStableBuild": [b for b in done if b.result == "SUCCESS"],
        "lastUnstableBuild": [b for b in done if b.result == "UNSTABLE"],
        "lastUnsuccessfulBuild": [b for b in done if b.result != "SUCCESS"],
    }[ref]
    return pick[0] if pick else None
