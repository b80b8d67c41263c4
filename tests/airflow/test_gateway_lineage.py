"""The gateway over a real Apache Airflow 3: run lineage and cancels, through the API.

A Source of type airflow points at the ``airflow`` fixture; a sync stores what the adapter
reads. A run started by TriggerDagRunOperator shows as caused by its parent run (and the
parent as causing it), with the evidence; a run cancelled through Accord is ``cancelled``
with Airflow's ``failed`` kept as its native state, and cancelling it again is a conflict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gateway.api.app import create_app
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services.tokens import create_token
from gateway.sync import SyncManager
from tests.api.conftest import apply_yaml

from .deployment import PASSWORDS, AirflowDeployment

pytestmark = [pytest.mark.peer, pytest.mark.timeout(1500)]
T = TypeVar("T")
_WAIT = 120.0
_ENV = "ACCORD_SECRET_TEST_AIRFLOW_PASSWORD"


class Gateway:
    def __init__(self, client: TestClient, engine: Engine, token: str) -> None:
        self.client = client
        self.engine = engine
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, headers=self.headers, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.post(path, headers=self.headers, json=body or {})

    def sync(self) -> None:
        report = anyio.run(SyncManager(self.engine).sync_now, "airflow-real")
        assert report.error is None, report.error


def until(what: str, probe: Callable[[], T | None], timeout: float = _WAIT) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


@pytest.fixture
def gateway(
    airflow: AirflowDeployment, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Gateway]:
    monkeypatch.setenv(_ENV, PASSWORDS["admin"])
    apply_yaml(
        engine,
        f"""
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: airflow-real, domain: data}}
spec:
  type: airflow
  url: {airflow.url}
  auth: {{username: admin, passwordFrom: {{env: {_ENV}}}}}
""",
    )
    with session_scope(engine) as s:
        token = create_token(s, subject="alice", role="admin", domain="*").token
    app = create_app(Settings(data_dir=tmp_path / "data"), engine=engine, start_sync=False)
    with TestClient(app) as client:
        gw = Gateway(client, engine, token)
        gw.sync()
        yield gw


def _run(gw: Gateway, uid: str) -> dict[str, Any]:
    return gw.get(f"/api/v1/runs/{quote(uid, safe='/')}")  # type: ignore[no-any-return]


def _finished(gw: Gateway, uid: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        gw.sync()
        run = _run(gw, uid)
        return run if run["state"] in ("success", "failed", "cancelled", "skipped") else None

    return until(f"run {uid} to finish", probe)


def test_a_run_started_by_trigger_dag_run_operator_shows_its_cause(gateway: Gateway) -> None:
    before = {r["uid"] for r in gateway.get("/api/v1/runs", job="airflow-real/accord_ok")["items"]}
    started = gateway.post("/api/v1/jobs/airflow-real/accord_parent/trigger")
    assert started.status_code == 200, started.text
    parent = started.json()["run"]["uid"]
    _finished(gateway, parent)

    def child() -> str | None:
        gateway.sync()
        runs = gateway.get("/api/v1/runs", job="airflow-real/accord_ok")["items"]
        fresh = [r["uid"] for r in runs if r["uid"] not in before and r["trigger"] == "upstream"]
        return fresh[0] if fresh else None

    child_uid = until("the child run", child)
    assert _finished(gateway, child_uid)["state"] == "success"
    lineage = gateway.get(f"/api/v1/runs/{parent}/lineage", depth=2)
    assert {r["uid"] for r in lineage["runs"]} >= {parent, child_uid}
    [edge] = [e for e in lineage["edges"] if e["src"] == parent]
    assert edge["kind"] == "triggered" and edge["dst"] == child_uid
    assert "start_ok" in edge["evidence"] and edge["reported_by"] == "airflow-real"

    shown = _run(gateway, child_uid)
    assert [u["uid"] for u in shown["upstream"]] == [parent]
    assert "TriggerDagRunOperator" in shown["upstream"][0]["evidence"]
    assert [d["uid"] for d in _run(gateway, parent)["downstream"]] == [child_uid]
    up = gateway.get(f"/api/v1/runs/{child_uid}/lineage", direction="up")
    assert {r["uid"] for r in up["runs"]} == {parent, child_uid}


def test_a_cancel_through_accord_is_cancelled_with_the_native_state_kept(
    gateway: Gateway,
) -> None:
    started = gateway.post("/api/v1/jobs/airflow-real/accord_slow/trigger")
    assert started.status_code == 200, started.text
    uid = started.json()["run"]["uid"]

    def running() -> dict[str, Any] | None:
        gateway.sync()
        run = _run(gateway, uid)
        steps = run["steps"] or []
        return run if steps and steps[0]["state"] == "running" else None

    until("the sleep task to run", running)
    cancel = gateway.post(f"/api/v1/runs/{uid}/cancel", {"reason": "wrong parameters"})
    assert cancel.status_code == 200, cancel.text
    run = _finished(gateway, uid)
    assert run["state"] == "cancelled"
    assert run["native_state"] == "failed"
    assert run["cancelled_through_accord"] is True and run["cancel_requested_by"] == "alice"
    job = gateway.get("/api/v1/jobs/airflow-real/accord_slow")
    assert job["last_run_state"] == "cancelled"
    # a cancel is not a failure in the lists either
    failed = gateway.get("/api/v1/runs", job="airflow-real/accord_slow", state="failed")
    assert uid not in {r["uid"] for r in failed["items"]}

    again = gateway.post(f"/api/v1/runs/{uid}/cancel")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "conflict"
    assert "already finished" in again.json()["error"]["message"]
