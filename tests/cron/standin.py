"""A stand-in for the gateway's push endpoint, over real HTTP on 127.0.0.1.

It implements the contract the agent codes to: ``POST /api/v1/sources/{source}/push``
with a bearer token; 401 for a bad token, 404 for an unknown source, 413 over the body
limit, 422 for an invalid body; runs upserted idempotently by native id with state only
moving forward; a present inventory replaces the whole inventory. It records every
request, so tests can see what arrived and how often.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.model import JobRecord, RunRecord, SourceHealth, accept_transition


class _Agent(BaseModel):
    id: str = Field(min_length=1)
    version: str = ""


class _Push(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: _Agent
    inventory: list[JobRecord] | None = None
    runs: list[RunRecord] = Field(default_factory=list)
    health: SourceHealth | None = None


@dataclass
class StandIn:
    token: str
    source: str
    max_body: int = 10 * 1024 * 1024
    delay: float = 0.0  # seconds to wait (after storing) before answering
    down: bool = False  # answer 503
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)
    changes: dict[str, int] = field(default_factory=dict)  # run id → accepted changes
    received: list[str] = field(default_factory=list)  # every run id received, in order
    pushes: int = 0
    inventories: int = 0
    health: SourceHealth | None = None
    statuses: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # body sizes, in order
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        self.sizes.append(len(body))
        if self.down:
            return 503, {"error": {"code": "unavailable", "message": "down for the test"}}
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"error": {"code": "unauthorized", "message": "bad token"}}
        prefix, suffix = "/api/v1/sources/", "/push"
        if not (path.startswith(prefix) and path.endswith(suffix)):
            return 404, {"error": {"code": "not_found", "message": path}}
        if path[len(prefix) : -len(suffix)] != self.source:
            return 404, {"error": {"code": "not_found", "message": "no such source"}}
        if len(body) > self.max_body:
            return 413, {"error": {"code": "too_large", "message": "body too large"}}
        try:
            push = _Push.model_validate_json(body)
        except ValidationError as exc:
            return 422, {"error": {"code": "invalid", "message": str(exc)[:300]}}
        with self.lock:
            self.pushes += 1
            counts = None
            if push.inventory is not None:
                self.inventories += 1
                new = {j.native_id: j for j in push.inventory}
                counts = {
                    "created": len(set(new) - set(self.jobs)),
                    "removed": len(set(self.jobs) - set(new)),
                }
                self.jobs = new
            changed = 0
            for run in push.runs:
                self.received.append(run.native_id)
                old = self.runs.get(run.native_id)
                if accept_transition(old.state if old else None, run.state):
                    self.runs[run.native_id] = run
                    self.changes[run.native_id] = self.changes.get(run.native_id, 0) + 1
                    changed += 1
            if push.health is not None:
                self.health = push.health
        return 200, {"jobs": counts, "runs": {"received": len(push.runs), "changed": changed}}


def serve(standin: StandIn) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, payload = standin.handle(self.path, self.headers, body)
            if standin.delay:
                time.sleep(standin.delay)
            standin.statuses.append(status)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    standin.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="standin", daemon=True)
    thread.start()
    return server, thread
