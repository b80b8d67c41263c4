"""A Terraform Cloud source through the gateway: sync, approval path, destroy permission,
webhooks, renames — with API tokens of different roles."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from adapters.testing.tfc_sim import SimState, TfcSimulator
from gateway.api.app import create_app
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services.tokens import create_token
from gateway.sync import SyncManager
from tests.api.conftest import apply_yaml

from .conftest import HOOK_TOKEN, ORG, TOKEN, Org

SOURCE = """
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: tfc, domain: infra}}
spec:
  type: terraform
  url: {url}
  organizations: [{org}]
  token: {{env: ACCORD_SECRET_TEST_TFC_TOKEN}}
  notificationToken: {{env: ACCORD_SECRET_TEST_TFC_HOOK}}
"""


class Gateway:
    def __init__(self, client: TestClient, engine: Engine, tokens: dict[str, str]) -> None:
        self.client = client
        self.engine = engine
        self.tokens = tokens

    def get(self, who: str, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}"}, **kw)

    def post(self, who: str, path: str, **kw: Any) -> Any:
        return self.client.post(path, headers={"Authorization": f"Bearer {self.tokens[who]}"}, **kw)

    def sync(self) -> None:
        report = anyio.run(SyncManager(self.engine).sync_now, "tfc")
        assert report.error is None, report.error

    def audit(self, **filters: str) -> list[dict[str, Any]]:
        """Audit records, newest first, without the intent records ("started") that
        every action writes before it calls the tool (each is followed by its outcome)."""
        r = self.get("admin", "/api/v1/audit", params=filters)
        assert r.status_code == 200, r.text
        return [a for a in r.json()["items"] if a["outcome"] != "started"]


@pytest.fixture
def gw(
    engine: Engine, tmp_path: Path, sim: TfcSimulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Gateway]:
    monkeypatch.setenv("ACCORD_SECRET_TEST_TFC_TOKEN", TOKEN)
    monkeypatch.setenv("ACCORD_SECRET_TEST_TFC_HOOK", HOOK_TOKEN)
    apply_yaml(engine, SOURCE.format(url=sim.url, org=ORG))
    tokens: dict[str, str] = {}
    with session_scope(engine) as s:
        for who, role in [("admin", "admin"), ("approver", "approver"), ("operator", "operator")]:
            tokens[who] = create_token(s, subject=who, role=role, domain="infra").token
    app = create_app(Settings(data_dir=tmp_path / "data"), engine=engine, start_sync=False)
    with TestClient(app) as client:
        yield Gateway(client, engine, tokens)


def test_a_plan_is_applied_by_an_approver_not_an_operator(
    gw: Gateway, state: SimState, org: Org
) -> None:
    run = state.create_run(org.app.id, message="resize the database", created_by="dana")
    state.plan(run.id)
    gw.sync()
    uid = f"tfc/{run.id}"
    seen = gw.get("operator", f"/api/v1/runs/{uid}").json()
    assert seen["state"] == "waiting" and seen["native_state"] == "planned"
    assert seen["actor"] == "dana"
    assert {s["name"]: s["state"] for s in seen["steps"]} == {"Plan": "success", "Apply": "queued"}
    assert "apply" not in seen["allowed_actions"] and "cancel" in seen["allowed_actions"]
    as_approver = gw.get("approver", f"/api/v1/runs/{uid}").json()
    assert {"apply", "discard"} <= set(as_approver["allowed_actions"])

    refused = gw.post("operator", f"/api/v1/runs/{uid}/apply", json={"reason": "looks fine"})
    assert refused.status_code == 403, refused.text
    assert state.runs[run.id].status == "planned", "a refused apply must not reach the source"
    (denied,) = gw.audit(subject="operator", action="apply")
    assert denied["decision"] == "deny" and denied["outcome"] == "denied"
    assert denied["target"] == uid

    ok = gw.post("approver", f"/api/v1/runs/{uid}/apply", json={"reason": "reviewed the plan"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["outcome"] == "ok"
    assert state.runs[run.id].status == "apply_queued"
    assert state.runs[run.id].confirmed_by == "accord-bot"  # the source's token applied it
    (allowed,) = gw.audit(subject="approver", action="apply")
    assert allowed["decision"] == "allow" and allowed["outcome"] == "ok"
    assert allowed["reason"] == "reviewed the plan"

    state.finish_apply(run.id)
    gw.sync()
    done = gw.get("operator", f"/api/v1/runs/{uid}").json()
    assert done["state"] == "success" and done["native_state"] == "applied"
    # Applying again is refused by Terraform Cloud, and said so.
    again = gw.post("approver", f"/api/v1/runs/{uid}/apply")
    assert again.status_code == 409, again.text
    assert "applied" in again.json()["error"]["message"]


def test_discard_takes_the_approve_permission(gw: Gateway, state: SimState, org: Org) -> None:
    run = state.create_run(org.app.id)
    state.plan(run.id)
    gw.sync()
    assert gw.post("operator", f"/api/v1/runs/tfc/{run.id}/discard").status_code == 403
    assert gw.post("approver", f"/api/v1/runs/tfc/{run.id}/discard").status_code == 200
    assert state.runs[run.id].status == "discarded"


def test_destroy_needs_its_own_permission(gw: Gateway, state: SimState, org: Org) -> None:
    gw.sync()
    job = f"/api/v1/jobs/tfc/{org.network.id}/trigger"
    refused = gw.post("operator", job, json={"params": {"destroy": True}})
    assert refused.status_code == 403 and "destroy" in refused.json()["error"]["message"]
    assert not any(r.is_destroy for r in state.runs.values())
    plain = gw.post("operator", job, json={"params": {"plan_only": True}})
    assert plain.status_code == 200, plain.text
    created = gw.post("admin", job, json={"params": {"destroy": True}, "reason": "decommission"})
    assert created.status_code == 200, created.text
    run_uid = created.json()["run"]["uid"]
    assert state.runs[run_uid.removeprefix("tfc/")].is_destroy is True
    assert [a["decision"] for a in gw.audit(action="trigger")] == ["allow", "allow", "deny"]


def test_workspaces_runs_and_lineage_in_the_gateway(gw: Gateway, state: SimState, org: Org) -> None:
    gw.sync()
    jobs = gw.get("operator", "/api/v1/jobs", params={"source": "tfc"}).json()["items"]
    assert {j["native_id"] for j in jobs} == {
        org.network.id,
        org.app.id,
        org.staging.id,
        org.legacy.id,
    }
    lineage = gw.get("operator", "/api/v1/lineage", params={"job": f"tfc/{org.app.id}"}).json()
    assert {(e["kind"], e["src"], e["dst"]) for e in lineage["edges"]} == {
        ("depends_on", f"tfc/{org.network.id}", f"tfc/{org.app.id}")
    }
    # Renamed at the source: the same job (the workspace id is stable), with its new name.
    state.rename_workspace(org.app.id, "shop-prod")
    gw.sync()
    job = gw.get("operator", f"/api/v1/jobs/tfc/{org.app.id}").json()
    assert job["name"] == "shop-prod" and job["tombstoned_at"] is None
    again = gw.get("operator", "/api/v1/jobs", params={"source": "tfc"}).json()["items"]
    assert len(again) == 4
    # Pause and resume lock and unlock the workspace.
    assert gw.post("operator", f"/api/v1/jobs/tfc/{org.app.id}/pause").status_code == 200
    assert state.workspaces[org.app.id].locked
    assert gw.post("operator", f"/api/v1/jobs/tfc/{org.app.id}/resume").status_code == 200
    assert not state.workspaces[org.app.id].locked


def test_notifications_and_bad_signatures(gw: Gateway, state: SimState, org: Org) -> None:
    gw.sync()
    state.add_notification(org.app.id, "http://testserver/hooks/tfc", HOOK_TOKEN)
    run = state.create_run(org.app.id)
    state.plan(run.id)
    deliveries = state.take_deliveries()
    assert deliveries
    for d in deliveries:
        r = gw.client.post("/hooks/tfc", content=d.body, headers=d.headers)
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 2
    forged = deliveries[-1].body.replace(b"Run Needs Attention", b"Applied")
    bad = gw.client.post("/hooks/tfc", content=forged, headers=deliveries[-1].headers)
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "bad_signature"
    wrong_key = dict(deliveries[-1].headers)
    wrong_key["X-TFE-Notification-Signature"] = secrets.token_hex(64)
    assert (
        gw.client.post("/hooks/tfc", content=deliveries[-1].body, headers=wrong_key).status_code
        == 401
    )
    records = gw.audit(action="webhook")
    assert len(records) == 2
    assert all(r["decision"] == "deny" and r["outcome"] == "bad_signature" for r in records)
    assert all(r["target"] == "tfc" and r["domain"] == "infra" for r in records)


def test_rate_limit_marks_the_source_degraded_with_a_backoff(gw: Gateway, state: SimState) -> None:
    state.faults.rate_limited, state.faults.reset = 1, 45.0
    report = anyio.run(SyncManager(gw.engine).sync_now, "tfc")
    assert report.error is not None and "rate limit" in report.error
    source = gw.get("admin", "/api/v1/sources/tfc").json()
    assert source["health"] == "degraded"
    assert "rate limit" in (source.get("health_message") or source.get("last_error") or "")


def test_four_eyes_on_applying_a_plan(gw: Gateway, state: SimState, org: Org) -> None:
    apply_yaml(
        gw.engine,
        """
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {name: four-eyes-apply, domain: infra}
spec: {type: approval, selector: {domains: [infra]}, actions: [apply]}
""",
    )
    with session_scope(gw.engine) as s:
        gw.tokens["approver2"] = create_token(
            s, subject="approver2", role="approver", domain="infra"
        ).token
    run = state.create_run(org.app.id)
    state.plan(run.id)
    gw.sync()
    held = gw.post("approver", f"/api/v1/runs/tfc/{run.id}/apply", json={"reason": "CHG-1"})
    assert held.status_code == 200 and held.json()["outcome"] == "pending", held.text
    assert state.runs[run.id].status == "planned", "held: nothing reached the source yet"
    request_id = held.json()["approval_id"]
    own = gw.post("approver", f"/api/v1/approvals/{request_id}/approve")
    assert own.status_code >= 400 and state.runs[run.id].status == "planned"
    second = gw.post("approver2", f"/api/v1/approvals/{request_id}/approve")
    assert second.status_code == 200, second.text
    assert second.json()["result"]["outcome"] == "ok"
    assert state.runs[run.id].status == "apply_queued"
