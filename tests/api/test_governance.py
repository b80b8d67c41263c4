"""Guardrails end to end through the API: approvals (four-eyes) and agent limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
from sqlmodel import Session, select

from gateway.governance.housekeeping import Housekeeping
from gateway.store import session_scope
from gateway.store.services.tokens import create_token
from gateway.store.tables import ApprovalRequest, AuditRecord

from .conftest import Api, apply_yaml

APPROVAL = """
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {name: prod-four-eyes}
spec:
  type: approval
  selector: {domains: [data], labels: {env: prod}}
  actions: [trigger]
  expiresAfter: 1h
"""


def _token(api: Api, who: str, role: str, domain: str = "*", subject: str | None = None) -> None:
    with session_scope(api.engine) as s:
        api.tokens[who] = create_token(s, subject=subject or who, role=role, domain=domain).token


def test_approval_round_trip(api: Api) -> None:
    apply_yaml(api.engine, APPROVAL)
    _token(api, "alice-approver", "approver", "data")
    before = len(api.systems["data"].runs)
    r = api.post(
        "op-data",
        "/api/v1/jobs/fake-data/etl_orders/trigger",
        json={"reason": "backfill", "params": {"day": "2026-11-01"}},
    )
    assert r.status_code == 200 and r.json()["outcome"] == "pending", r.text
    req_id = r.json()["approval_id"]
    assert len(api.systems["data"].runs) == before, "nothing runs before approval"
    pending = api.get("alice-approver", "/api/v1/approvals", params={"status": "pending"}).json()
    assert [p["id"] for p in pending] == [req_id]
    assert pending[0]["requested_by"] == "op-data" and pending[0]["param_names"] == ["day"]
    # the requester cannot approve their own request, even holding the permission
    _token(api, "op-data-as-approver", "approver", "data", subject="op-data")
    self_try = api.post("op-data-as-approver", f"/api/v1/approvals/{req_id}/approve")
    assert self_try.status_code == 403
    assert self_try.json()["error"]["code"] == "self_approval"
    # another viewer without the approve permission cannot either
    assert api.post("viewer-ops", f"/api/v1/approvals/{req_id}/approve").status_code == 403
    ok = api.post(
        "alice-approver", f"/api/v1/approvals/{req_id}/approve", json={"reason": "looks right"}
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["approval"]["status"] == "approved"
    assert body["approval"]["approved_by"] == ["alice-approver"]
    assert body["result"]["outcome"] == "ok"
    assert len(api.systems["data"].runs) == before + 1, "the approved action ran"
    again = api.post("alice-approver", f"/api/v1/approvals/{req_id}/approve")
    assert again.status_code == 409
    with Session(api.engine) as s:
        trail = [(a.subject, a.action, a.outcome) for a in s.exec(select(AuditRecord)).all()]
    assert ("op-data", "trigger", "pending") in trail
    assert ("alice-approver", "approve", "ok") in trail
    assert ("op-data", "trigger", "ok") in trail, "the execution is audited as the requester's"
    assert ("op-data", "approve", "self_approval") in trail


def test_rejection_and_expiry(api: Api) -> None:
    apply_yaml(api.engine, APPROVAL)
    _token(api, "alice-approver", "approver", "data")
    first = api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger").json()["approval_id"]
    r = api.post("alice-approver", f"/api/v1/approvals/{first}/reject", json={"reason": "no"})
    assert r.status_code == 200 and r.json()["approval"]["status"] == "rejected"
    second = api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger").json()["approval_id"]
    with session_scope(api.engine) as s:
        req = s.get(ApprovalRequest, second)
        assert req is not None
        req.expires_at = datetime.now(UTC) - timedelta(minutes=1)
        s.add(req)
    listed = api.get("alice-approver", "/api/v1/approvals").json()
    assert {p["id"]: p["status"] for p in listed}[second] == "expired"
    r = api.post("alice-approver", f"/api/v1/approvals/{second}/approve")
    assert r.status_code == 409 and r.json()["error"]["code"] == "expired"


def test_jobs_outside_the_selector_need_no_approval(api: Api) -> None:
    apply_yaml(api.engine, APPROVAL)
    r = api.post("admin", "/api/v1/jobs/fake-ops/db-backup/trigger")
    assert r.status_code == 200 and r.json()["outcome"] == "ok"


def test_agent_limits(api: Api) -> None:
    apply_yaml(
        api.engine,
        """
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {name: ai-agents}
spec:
  type: agent-limit
  subjects: ["agent:*"]
  actions: [trigger]
  ratePerHour: 2
""",
    )
    # admin: authorization allows everything, so what refuses below is the guardrail.
    _token(api, "agent:copilot", "admin", "*")
    who = "agent:copilot"
    assert api.post(who, "/api/v1/jobs/fake-ops/db-backup/trigger").status_code == 200
    r = api.post(who, "/api/v1/jobs/fake-ops/db-backup/pause")
    assert r.status_code == 423 and "may only trigger" in r.json()["error"]["message"]
    r = api.post(who, "/api/v1/jobs/fake-ops/db-backup/trigger", json={"params": {"destroy": True}})
    assert r.status_code == 423 and "destructive" in r.json()["error"]["message"]
    assert api.post(who, "/api/v1/jobs/fake-ops/db-backup/trigger").status_code == 200
    r = api.post(who, "/api/v1/jobs/fake-ops/db-backup/trigger")
    assert r.status_code == 423 and "2 actions per hour" in r.json()["error"]["message"]
    # people are not limited by an agent limit
    assert api.post("admin", "/api/v1/jobs/fake-ops/db-backup/pause").status_code == 200


def test_expiry_shows_at_once_and_is_audited_once_by_housekeeping(api: Api) -> None:
    apply_yaml(api.engine, APPROVAL)
    rid = api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger").json()["approval_id"]
    with session_scope(api.engine) as s:
        req = s.get(ApprovalRequest, rid)
        assert req is not None
        req.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        s.add(req)
    assert (
        api.get("admin", "/api/v1/approvals", params={"status": "expired"}).json()[0]["id"] == rid
    )
    assert api.get("admin", "/api/v1/approvals", params={"status": "pending"}).json() == []
    # Listing is a read: nothing written yet; the gateway's housekeeping records it, once.
    with Session(api.engine) as s:
        assert not s.exec(select(AuditRecord).where(AuditRecord.action == "approval-expired")).all()
    keeper = Housekeeping(api.engine)
    assert anyio.run(keeper.run_once) == 1
    assert anyio.run(keeper.run_once) == 0
    with Session(api.engine) as s:
        rec = s.exec(select(AuditRecord).where(AuditRecord.action == "approval-expired")).one()
    assert rec.target == f"approval:{rid}" and rec.outcome == "expired"
    r = api.post("admin", f"/api/v1/approvals/{rid}/approve")
    assert r.status_code == 409 and r.json()["error"]["code"] == "expired"


def test_domain_admins_cannot_grant_themselves_more(api: Api) -> None:
    with session_scope(api.engine) as s:
        api.tokens["data-admin"] = create_token(
            s, subject="dadmin", role="admin", domain="data"
        ).token
    escalate = """apiVersion: accord.dev/v1
kind: RoleBinding
metadata: {name: grab, domain: data}
spec: {role: admin, subjects: [dadmin], domains: ["*"]}
"""
    r = api.client.post("/api/v1/config/apply", content=escalate, headers=api.as_("data-admin"))
    assert r.status_code == 403 and "every domain" in r.json()["error"]["message"]
    r = api.client.post(
        "/api/v1/config/apply?prune=true&dry_run=true", content="", headers=api.as_("data-admin")
    )
    assert r.status_code == 403, "pruning other domains' resources is refused"
    source = """apiVersion: accord.dev/v1
kind: Source
metadata: {name: fake-data, domain: data}
spec: {type: fake, system: api-data}
"""
    r = api.client.post("/api/v1/config/apply", content=source, headers=api.as_("data-admin"))
    assert r.status_code == 200, r.text
    moved = source.replace("domain: data", "domain: ops")
    r = api.client.post("/api/v1/config/apply", content=moved, headers=api.as_("data-admin"))
    assert r.status_code == 403
