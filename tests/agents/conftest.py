"""A gateway served over real HTTP on 127.0.0.1 with two fake schedulers, guardrails for
agents, and MCP sessions to it through the SDK's own client: over streamable HTTP, and
over stdio by spawning ``accord mcp``."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
import uvicorn
from mcp.client import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import Engine

from adapters.testing.fake import FakeSystem, systems
from gateway.api.app import create_app
from gateway.model import RunState
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services.tokens import create_token
from gateway.sync import SyncManager

from ..api.conftest import SOURCES, apply_yaml

AGENT = "agent:ops-bot"
RATE = 3  # actions per hour the agent limit allows


def guardrails() -> str:
    now = datetime.now(UTC)
    return f"""
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {{name: bots}}
spec:
  type: agent-limit
  subjects: ["agent:*"]
  actions: [trigger, retry, pause, resume, cancel]
  ratePerHour: {RATE}
  neverDestroy: true
---
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {{name: ops-freeze}}
spec:
  type: freeze
  selector: {{domains: [ops]}}
  actions: [trigger, retry, pause, resume, cancel]
  windows:
    - start: "{(now - timedelta(hours=1)).isoformat()}"
      end: "{(now + timedelta(hours=1)).isoformat()}"
"""


@dataclass
class Gateway:
    url: str
    engine: Engine
    data: FakeSystem
    ops: FakeSystem
    runs: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    def get(self, who: str, path: str, **kw: Any) -> Any:
        resp = httpx.get(
            self.url + path, headers={"Authorization": f"Bearer {self.tokens[who]}"}, **kw
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    def post(self, who: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(
            self.url + path,
            headers={"Authorization": f"Bearer {self.tokens[who]}"},
            timeout=60,
            **kw,
        )

    def audit(self, subject: str = AGENT) -> list[dict[str, Any]]:
        """The subject's audit records, oldest first (read by an admin)."""
        page = self.get("admin", "/api/v1/audit", params={"subject": subject, "limit": 1000})
        return list(reversed(page["items"]))


@pytest.fixture
def gateway(any_engine: Engine, tmp_path: Path) -> Iterator[Gateway]:
    name = f"mcp-{id(any_engine)}"
    data, ops = FakeSystem(name), FakeSystem(name + "-ops")
    data.page_size = ops.page_size = 50
    data.add_job("etl_orders", owners=["data-eng"], produces=["orders"])
    data.add_job("finance_report", upstream=["etl_orders"], consumes=["orders"])
    data.add_job("nightly-vacuum")
    ops.add_job("db-backup")
    systems.update({data.name: data, ops.name: ops})
    apply_yaml(any_engine, SOURCES.replace("api-data", data.name).replace("api-ops", ops.name))
    apply_yaml(any_engine, guardrails())
    x = data.start_run("etl_orders")
    data.finish(x, RunState.FAILED)
    data.runs[x].message = "connection to the orders database refused"
    y = data.start_run("finance_report", upstream=x)
    data.finish(y, RunState.FAILED)
    data.runs[y].message = "input table orders is empty"
    data.runs[y].url = f"http://fake.example/runs/{y}"
    data.runs[y].steps = (("extract", RunState.SUCCESS), ("load", RunState.FAILED))
    for src in ("fake-data", "fake-ops"):
        report = anyio.run(SyncManager(any_engine).sync_now, src)
        assert report.error is None, report.error
    tokens: dict[str, str] = {}
    with session_scope(any_engine) as s:
        for who, role, dom, kind in [
            ("admin", "admin", "*", "person"),
            ("approver", "approver", "*", "person"),
            (AGENT, "operator", "*", "agent"),
            ("agent:reader", "viewer", "data", "agent"),
        ]:
            tokens[who] = create_token(s, subject=who, role=role, domain=dom, kind=kind).token
    settings = Settings(data_dir=tmp_path / "data")
    app = create_app(settings, engine=any_engine, start_sync=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the test gateway did not start"
    try:
        yield Gateway(
            f"http://127.0.0.1:{port}",
            any_engine,
            data,
            ops,
            {"x": f"fake-data/{x}", "y": f"fake-data/{y}"},
            tokens,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        systems.pop(data.name, None)
        systems.pop(ops.name, None)


@asynccontextmanager
async def over_http(
    url: str, token: str, on_behalf_of: str | None = None
) -> AsyncIterator[ClientSession]:
    """An MCP session to the gateway's /mcp over streamable HTTP."""
    headers = {"Authorization": f"Bearer {token}"}
    if on_behalf_of:
        headers["X-Accord-On-Behalf-Of"] = on_behalf_of
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def accord_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from gateway.cli.main import main; main()", *args]


@asynccontextmanager
async def over_stdio(
    url: str, token: str, on_behalf_of: str | None = None
) -> AsyncIterator[ClientSession]:
    """An MCP session to ``accord mcp`` (spawned here), which talks to the gateway."""
    cmd = accord_command("mcp")
    env = {"ACCORD_SERVER": url, "ACCORD_TOKEN": token}
    if on_behalf_of:
        env["ACCORD_ON_BEHALF_OF"] = on_behalf_of
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=env)
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session
