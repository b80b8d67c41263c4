from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from adapters.testing.fake import FakeSystem, systems
from gateway.api.app import create_app
from gateway.config import apply_plan, load_documents, plan
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services.tokens import create_token
from gateway.sync import SyncManager

SOURCES = """
apiVersion: accord.dev/v1
kind: Source
metadata: {name: fake-data, domain: data}
spec: {type: fake, system: api-data}
---
apiVersion: accord.dev/v1
kind: Source
metadata: {name: fake-ops, domain: ops}
spec: {type: fake, system: api-ops}
"""


def apply_yaml(engine: Engine, text: str) -> None:
    res = load_documents([("test", i, d) for i, d in enumerate(yaml.safe_load_all(text), 1)])
    assert res.ok, [str(e) for e in res.errors]
    with session_scope(engine) as s:
        apply_plan(s, plan(s, res.documents), subject="test", channel="cli")


class Api:
    def __init__(
        self,
        client: TestClient,
        engine: Engine,
        tokens: dict[str, str],
        systems: dict[str, FakeSystem],
    ) -> None:
        self.client = client
        self.engine = engine
        self.tokens = tokens
        self.systems = systems

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, who: str, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.as_(who), **kw)

    def post(self, who: str, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers=self.as_(who), **kw)

    def sync(self, source: str) -> None:
        import anyio

        mgr = SyncManager(self.engine)
        report = anyio.run(mgr.sync_now, source)
        assert report.error is None, report.error


@pytest.fixture
def api(engine: Engine, tmp_path: Path) -> Iterator[Api]:
    data, ops = FakeSystem("api-data"), FakeSystem("api-ops")
    data.page_size = 50
    ops.page_size = 50
    for n in ("etl_orders", "finance_report", "nightly-vacuum"):
        data.add_job(n, owners=["data-eng"], labels={"env": "prod"})
    data.jobs["finance_report"]["upstream"] = ["etl_orders"]
    ops.add_job("db-backup")
    systems.update({"api-data": data, "api-ops": ops})
    apply_yaml(engine, SOURCES)
    tokens: dict[str, str] = {}
    with session_scope(engine) as s:
        for who, role, dom in [
            ("admin", "admin", "*"),
            ("op-data", "operator", "data"),
            ("viewer-ops", "viewer", "ops"),
            ("agent", "agent", "*"),
            ("nobody", "viewer", "nowhere"),
        ]:
            tokens[who] = create_token(s, subject=who, role=role, domain=dom).token
    settings = Settings(data_dir=tmp_path / "data", max_body_bytes=64 * 1024)
    app = create_app(settings, engine=engine, start_sync=False)
    with TestClient(app) as client:
        a = Api(client, engine, tokens, {"data": data, "ops": ops})
        for rid in (data.start_run("etl_orders"),):
            data.finish(rid, __import__("gateway.model", fromlist=["RunState"]).RunState.FAILED)
        data.start_run("finance_report")
        ops.start_run("db-backup")
        a.sync("fake-data")
        a.sync("fake-ops")
        yield a
    systems.pop("api-data", None)
    systems.pop("api-ops", None)


@pytest.fixture
def live_url(api: Api) -> Iterator[str]:
    """The same app served over real HTTP on 127.0.0.1 (for the CLI's --server mode)."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            api.client.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
