"""A gateway served over real HTTP on 127.0.0.1, on SQLite and on PostgreSQL, for tests
that fire requests from many threads at once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn
from sqlalchemy import Engine

from adapters.testing.fake import FakeSystem, systems
from gateway.api.app import create_app
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services.tokens import create_token
from gateway.sync import SyncManager

from ..api.conftest import SOURCES, apply_yaml


@dataclass
class Live:
    """Two gateway "replicas" (each its own app, event loop and server) on one database."""

    urls: list[str]
    engine: Engine
    data: FakeSystem
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.urls[0]

    def token(self, who: str, role: str, domain: str = "*") -> str:
        with session_scope(self.engine) as s:
            self.tokens[who] = create_token(s, subject=who, role=role, domain=domain).token
        return self.tokens[who]

    def post(self, who: str, path: str, *, replica: int = 0, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        url = self.urls[replica % len(self.urls)] + path
        return httpx.post(url, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


@pytest.fixture
def live(any_engine: Engine, tmp_path: Path) -> Iterator[Live]:
    name = f"race-{id(any_engine)}"
    data = FakeSystem(name)
    data.add_job("etl_orders", labels={"env": "prod"})
    systems[name] = data
    ops_name = name + "-ops"
    systems[ops_name] = FakeSystem(ops_name)
    apply_yaml(
        any_engine,
        SOURCES.replace("api-data", name).replace("api-ops", ops_name),
    )
    report = anyio.run(SyncManager(any_engine).sync_now, "fake-data")
    assert report.error is None, report.error
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []
    urls: list[str] = []
    for replica in range(2):
        settings = Settings(data_dir=tmp_path / f"data-{replica}")
        app = create_app(settings, engine=any_engine, start_sync=False)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        urls.append(f"http://127.0.0.1:{port}")
        # one after the other, as replicas roll out (migrations run at start-up)
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "the test gateway did not start"
    try:
        yield Live(urls, any_engine, data)
    finally:
        for server, _ in servers:
            server.should_exit = True
        for _, thread in servers:
            thread.join(timeout=15)
        systems.pop(name, None)
        systems.pop(ops_name, None)
