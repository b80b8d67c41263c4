"""No database work on the event loop, and every action on the record whatever happens.

A listener on the engine notes every SQL statement that runs on a thread with a running
event loop; then the async routes (actions, approvals, config apply, webhooks, on-demand
sync, the event stream) are exercised. One stalled statement there would freeze every
request, sync worker and event stream of the gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select
from sqlmodel import Session, col

from gateway.store.tables import AuditRecord

from .conftest import Api, apply_yaml
from .test_governance import APPROVAL, _token


@pytest.fixture
def loop_statements(api: Api) -> Iterator[list[str]]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread: fine
        seen.append(f"{threading.current_thread().name}: {statement[:80]}")

    event.listen(api.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(api.engine, "before_cursor_execute", before)


def test_async_routes_never_touch_the_database_on_the_event_loop(
    api: Api, loop_statements: list[str]
) -> None:
    assert api.post("admin", "/api/v1/jobs/fake-ops/db-backup/trigger").status_code == 200
    assert api.post("admin", "/api/v1/jobs/fake-ops/db-backup/pause").status_code == 200
    run = api.get("admin", "/api/v1/runs", params={"job": "fake-ops/db-backup"}).json()
    uid = run["items"][0]["uid"]
    api.post("admin", f"/api/v1/runs/{uid}/cancel")
    apply_yaml(api.engine, APPROVAL)
    _token(api, "approver-1", "approver", "data")
    held = api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger").json()
    assert held["outcome"] == "pending"
    assert (
        api.post("approver-1", f"/api/v1/approvals/{held['approval_id']}/approve").status_code
        == 200
    )
    doc = "apiVersion: accord.dev/v1\nkind: Domain\nmetadata: {name: risk}\nspec: {}\n"
    assert (
        api.client.post("/api/v1/config/apply", content=doc, headers=api.as_("admin")).status_code
        == 200
    )
    body = b'{"event": "run"}'
    sig = hmac.new(b"fake-secret", body, hashlib.sha256).hexdigest()
    assert (
        api.client.post(
            "/hooks/fake-data", content=body, headers={"x-fake-signature": sig}
        ).status_code
        == 202
    )
    assert loop_statements == [], "\n".join(loop_statements)


def test_an_action_is_on_the_record_even_when_the_tool_call_blows_up(api: Api) -> None:
    """The intent is committed before the tool is called; a failure that is not a known
    tool error (a bug, a cancelled request) still leaves an outcome record."""
    api.systems["ops"].fault = RuntimeError("the adapter crashed")
    client = TestClient(api.client.app, raise_server_exceptions=False)
    try:
        r = client.post("/api/v1/jobs/fake-ops/db-backup/trigger", headers=api.as_("admin"))
    finally:
        api.systems["ops"].fault = None
    assert r.status_code == 500
    with Session(api.engine) as s:
        recs = (
            s.exec(
                select(AuditRecord)
                .where(
                    col(AuditRecord.action) == "trigger",
                    col(AuditRecord.target) == "fake-ops/db-backup",
                )
                .order_by(col(AuditRecord.seq))
            )
            .scalars()
            .all()
        )  # type: ignore[attr-defined]
    assert [r.outcome for r in recs] == ["started", "error"]
    assert "interrupted" in (recs[1].reason or "")
    assert recs[1].details["intent_seq"] == recs[0].seq
