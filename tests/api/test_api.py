from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from gateway.model import RunState
from gateway.store import session_scope
from gateway.store.services.tokens import create_token, revoke_token
from gateway.store.tables import AuditRecord

from .conftest import Api, apply_yaml


def test_requests_without_a_valid_token_are_refused(api: Api) -> None:
    r = api.client.get("/api/v1/jobs")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert "Bearer" in r.json()["error"]["message"]
    r = api.client.get("/api/v1/jobs", headers={"Authorization": "Bearer acd_wrong"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "unknown API token"


def test_expired_and_revoked_tokens(api: Api) -> None:
    with session_scope(api.engine) as s:
        old = create_token(
            s, subject="old", role="viewer", expires_at=datetime.now(UTC) - timedelta(minutes=1)
        )
        gone = create_token(s, subject="gone", role="viewer")
        assert gone.record.id is not None
        revoke_token(s, token_id=gone.record.id)
    for tok, word in ((old.token, "expired"), (gone.token, "revoked")):
        r = api.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 401 and word in r.json()["error"]["message"]


def test_lists_show_only_what_the_subject_may_see(api: Api) -> None:
    all_jobs = {j["uid"] for j in api.get("admin", "/api/v1/jobs").json()["items"]}
    assert all_jobs == {
        "fake-data/etl_orders",
        "fake-data/finance_report",
        "fake-data/nightly-vacuum",
        "fake-ops/db-backup",
    }
    ops = api.get("viewer-ops", "/api/v1/jobs?total=true").json()
    assert [j["uid"] for j in ops["items"]] == ["fake-ops/db-backup"] and ops["total"] == 1
    runs = api.get("viewer-ops", "/api/v1/runs").json()["items"]
    assert {r["domain"] for r in runs} == {"ops"}
    assert api.get("viewer-ops", "/api/v1/jobs/fake-data/etl_orders").status_code == 404
    assert [s["name"] for s in api.get("viewer-ops", "/api/v1/sources").json()] == ["fake-ops"]
    stats = api.get(
        "viewer-ops", "/api/v1/stats/runs", params={"since": "2000-01-01T00:00:00Z"}
    ).json()
    assert {s["domain"] for s in stats} == {"ops"}
    nothing = api.get("nobody", "/api/v1/jobs").json()["items"]
    assert nothing == []


def test_job_and_run_details_events_and_lineage(api: Api) -> None:
    job = api.get("op-data", "/api/v1/jobs/fake-data/etl_orders").json()
    assert job["owners"] == ["data-eng"] and job["last_run_state"] == "failed"
    assert set(job["allowed_actions"]) == {"trigger", "pause", "resume"}
    viewer_job = api.get("admin", "/api/v1/jobs/fake-ops/db-backup").json()
    assert viewer_job["allowed_actions"] == ["trigger", "pause", "resume"]
    runs = api.get("op-data", "/api/v1/runs", params={"job": "fake-data/etl_orders"}).json()
    (run,) = runs["items"]
    assert run["state"] == "failed"
    events = api.get("op-data", f"/api/v1/runs/{run['uid']}/events").json()
    assert [e["to_state"] for e in events] == ["failed"]
    lin = api.get(
        "op-data", "/api/v1/lineage", params={"job": "fake-data/finance_report", "direction": "up"}
    ).json()
    assert {n["uid"] for n in lin["nodes"]} == {"fake-data/finance_report", "fake-data/etl_orders"}
    assert lin["edges"][0]["kind"] == "depends_on"


def test_filters(api: Api) -> None:
    failed = api.get("admin", "/api/v1/runs", params={"state": "failed"}).json()["items"]
    assert [r["job_uid"] for r in failed] == ["fake-data/etl_orders"]
    q = api.get("admin", "/api/v1/jobs", params={"q": "FINANCE"}).json()["items"]
    assert [j["uid"] for j in q] == ["fake-data/finance_report"]
    lab = api.get("admin", "/api/v1/jobs", params={"label": "env=prod"}).json()["items"]
    assert len(lab) == 3
    owner = api.get("admin", "/api/v1/jobs", params={"owner": "data-eng"}).json()["items"]
    assert len(owner) == 3
    bad = api.get("admin", "/api/v1/runs", params={"cursor": "!!"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    bad = api.get("admin", "/api/v1/runs", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_trigger_is_authorized_executed_and_audited(api: Api) -> None:
    r = api.post(
        "op-data",
        "/api/v1/jobs/fake-data/etl_orders/trigger",
        json={"params": {"password": "s3cret-value"}, "reason": "rerun"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["run"]["state"] == "running" and body["run"]["trigger"] == "api"
    # the run is visible at once
    runs = api.get("op-data", "/api/v1/runs", params={"job": "fake-data/etl_orders"}).json()
    assert body["run"]["uid"] in {x["uid"] for x in runs["items"]}
    with Session(api.engine) as s:
        rec = s.exec(select(AuditRecord).where(AuditRecord.seq == body["audit_seq"])).one()
    assert (rec.subject, rec.action, rec.decision, rec.outcome) == (
        "op-data",
        "trigger",
        "allow",
        "ok",
    )
    assert "s3cret-value" not in json.dumps(rec.details), "parameter values are not audited"


def test_denied_action_is_audited_and_refused(api: Api) -> None:
    r = api.post("viewer-ops", "/api/v1/jobs/fake-ops/db-backup/trigger")
    assert r.status_code == 403
    seq = r.json()["error"]["details"]["audit_seq"]
    with Session(api.engine) as s:
        rec = s.exec(select(AuditRecord).where(AuditRecord.seq == seq)).one()
    assert (rec.decision, rec.outcome, rec.subject) == ("deny", "denied", "viewer-ops")
    # an operator of another domain cannot even see the job
    assert api.post("op-data", "/api/v1/jobs/fake-ops/db-backup/trigger").status_code == 404


def test_pause_resume_cancel(api: Api) -> None:
    assert api.post("op-data", "/api/v1/jobs/fake-data/nightly-vacuum/pause").status_code == 200
    assert api.systems["data"].jobs["nightly-vacuum"]["paused"] is True
    assert api.get("op-data", "/api/v1/jobs/fake-data/nightly-vacuum").json()["paused"] is True
    assert api.post("op-data", "/api/v1/jobs/fake-data/nightly-vacuum/resume").status_code == 200
    assert api.systems["data"].jobs["nightly-vacuum"]["paused"] is False
    running = api.get("op-data", "/api/v1/runs", params={"state": "running"}).json()["items"]
    uid = running[0]["uid"]
    r = api.post("op-data", f"/api/v1/runs/{uid}/cancel")
    assert r.status_code == 200, r.text
    native = uid.split("/", 1)[1]
    assert api.systems["data"].runs[native].state == RunState.CANCELLED
    assert api.post("op-data", f"/api/v1/runs/{uid}/explode").status_code == 404


def test_source_errors_map_to_clear_statuses(api: Api) -> None:
    from gateway.model import AdapterUnavailable

    api.systems["data"].fault = AdapterUnavailable("maintenance", retry_after=42)
    r = api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger")
    assert r.status_code == 503 and r.headers["retry-after"] == "42"
    assert r.json()["error"]["code"] == "source_unavailable"
    api.systems["data"].fault = None
    api.systems["data"].jobs.pop("etl_orders")
    r = api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found_at_source"


def test_freeze_blocks_and_emergency_override_is_audited(api: Api) -> None:
    now = datetime.now(UTC)
    apply_yaml(
        api.engine,
        f"""
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {{name: year-end}}
spec:
  type: freeze
  selector: {{domains: [data]}}
  windows: [{{start: "{(now - timedelta(hours=1)).isoformat()}", duration: 2h}}]
""",
    )
    r = api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger")
    assert r.status_code == 423 and "year-end" in r.json()["error"]["message"]
    r = api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger", json={"emergency": True})
    assert r.status_code == 423 and "reason" in r.json()["error"]["message"]
    r = api.post(
        "op-data",
        "/api/v1/jobs/fake-data/etl_orders/trigger",
        json={"emergency": True, "reason": "INC-123 revenue restatement"},
    )
    assert r.status_code == 200
    with Session(api.engine) as s:
        rec = s.exec(select(AuditRecord).where(AuditRecord.seq == r.json()["audit_seq"])).one()
    assert rec.details["emergency_override"] == "year-end"
    assert rec.details["override_reason"] == "INC-123 revenue restatement"
    # other domains are not frozen
    assert api.post("admin", "/api/v1/jobs/fake-ops/db-backup/trigger").status_code == 200


def test_oversized_body_is_refused(api: Api) -> None:
    big = "x" * (65 * 1024)
    r = api.client.post("/api/v1/config/apply", content=big, headers=api.as_("admin"))
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_webhooks_verify_signatures_and_schedule_nothing_on_failure(api: Api) -> None:
    body = b'{"event": "run.finished"}'
    r = api.client.post("/hooks/fake-data", content=body, headers={"X-Fake-Signature": "bad"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_signature"
    sig = hmac.new(b"fake-secret", body, hashlib.sha256).hexdigest()
    r = api.client.post("/hooks/fake-data", content=body, headers={"X-Fake-Signature": sig})
    assert r.status_code == 202 and r.json()["accepted"] == 1
    assert api.client.post("/hooks/nope", content=body).status_code == 404


def test_push_is_for_push_sources_and_agents_only(api: Api) -> None:
    body = {"agent": {"id": "h1"}, "runs": []}
    r = api.post("viewer-ops", "/api/v1/sources/fake-ops/push", json=body)
    assert r.status_code == 403
    r = api.post("agent", "/api/v1/sources/fake-ops/push", json=body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_a_push_source"
    r = api.post("agent", "/api/v1/sources/nope/push", json=body)
    assert r.status_code == 404


def test_config_apply_through_the_api(api: Api) -> None:
    doc = (
        "apiVersion: accord.dev/v1\nkind: Domain\nmetadata: {name: finance}\n"
        "spec: {description: Money}\n"
    )
    r = api.client.post("/api/v1/config/apply?dry_run=true", content=doc, headers=api.as_("admin"))
    assert r.status_code == 200 and r.json()["changes"] == ["+ Domain/finance"]
    r = api.client.post("/api/v1/config/apply", content=doc, headers=api.as_("admin"))
    assert r.json()["summary"]["create"] == 1
    r = api.client.post("/api/v1/config/apply", content=doc, headers=api.as_("admin"))
    assert r.json()["summary"] == {"create": 0, "update": 0, "delete": 0, "unchanged": 1}
    r = api.client.post("/api/v1/config/apply", content="kind: [", headers=api.as_("admin"))
    assert r.status_code == 400 and "malformed YAML" in r.json()["error"]["message"]
    r = api.client.post("/api/v1/config/apply", content=doc, headers=api.as_("op-data"))
    assert r.status_code == 403


def test_role_bindings_applied_in_yaml_take_effect(api: Api) -> None:
    apply_yaml(
        api.engine,
        """
apiVersion: accord.dev/v1
kind: Role
metadata: {name: finance-operator}
spec:
  rules:
    - {actions: [read, trigger], objects: ["fake-data/finance_*"]}
    - {actions: [trigger], objects: ["fake-data/finance_report"], effect: deny}
---
apiVersion: accord.dev/v1
kind: RoleBinding
metadata: {name: fin}
spec: {role: finance-operator, subjects: [nobody], domains: [data]}
""",
    )
    items = api.get("nobody", "/api/v1/jobs").json()["items"]
    assert [j["uid"] for j in items] == ["fake-data/finance_report"]
    r = api.post("nobody", "/api/v1/jobs/fake-data/finance_report/trigger")
    assert r.status_code == 403 and "deny" in r.json()["error"]["message"]


def test_audit_list_is_filtered_and_verifiable(api: Api) -> None:
    api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger")
    api.post("admin", "/api/v1/jobs/fake-ops/db-backup/trigger")
    ops = api.get("viewer-ops", "/api/v1/audit").json()["items"]
    assert ops and {r["domain"] for r in ops} == {"ops"}
    assert api.get("viewer-ops", "/api/v1/audit/verify").status_code == 403
    v = api.get("admin", "/api/v1/audit/verify").json()
    assert v["ok"] is True and v["count"] >= 3


def test_health_metrics_openapi_and_me(api: Api) -> None:
    assert api.client.get("/readyz").json()["status"] == "ready"
    metrics = api.client.get("/metrics").text
    assert 'accord_jobs{source="fake-data"} 3.0' in metrics
    spec = api.client.get("/openapi.json").json()
    assert "/api/v1/runs" in spec["paths"] and "/api/v1/lineage" in spec["paths"]
    me = api.get("op-data", "/api/v1/me").json()
    assert me["subject"] == "op-data" and me["can"]["trigger"] and not me["can"]["export-audit"]


def test_source_health_shows_failures_and_staleness(api: Api) -> None:
    import anyio

    from gateway.model import AdapterAuthError
    from gateway.sync import SyncManager

    api.systems["ops"].fault = AdapterAuthError("token expired")
    report = anyio.run(SyncManager(api.engine).sync_now, "fake-ops")
    assert report.error and "token expired" in report.error
    src = api.get("admin", "/api/v1/sources/fake-ops").json()
    assert src["health"] == "down" and "token expired" in src["health_message"]
    good = api.get("admin", "/api/v1/sources/fake-data").json()
    assert good["health"] == "ok" and good["lag_seconds"] is not None


def test_login_is_audited(api: Api) -> None:
    r = api.client.post("/api/v1/login", headers={**api.as_("op-data"), "X-Accord-Channel": "ui"})
    assert r.status_code == 200 and r.json()["subject"] == "op-data"
    with Session(api.engine) as s:
        rec = s.exec(select(AuditRecord).where(AuditRecord.action == "login")).one()
    assert (rec.subject, rec.channel) == ("op-data", "ui")
    assert api.client.post("/api/v1/login").status_code == 401


def test_policy_view_for_admins_and_auditors(api: Api) -> None:
    apply_yaml(
        api.engine,
        """
apiVersion: accord.dev/v1
kind: Role
metadata: {name: night-shift}
spec: {rules: [{actions: [read, cancel], objects: ["*/nightly-*"]}]}
---
apiVersion: accord.dev/v1
kind: RoleBinding
metadata: {name: nights}
spec: {role: night-shift, subjects: [nina], domains: [ops]}
""",
    )
    view = api.get("admin", "/api/v1/policy").json()
    roles = {r["name"]: r for r in view["roles"]}
    assert roles["night-shift"]["origin"] == "applied" and roles["viewer"]["origin"] == "default"
    assert {
        "name": "nights",
        "role": "night-shift",
        "subjects": ["nina"],
        "domains": ["ops"],
        "origin": "applied",
    } in view["bindings"]
    tokens = [b for b in view["bindings"] if b["origin"] == "token"]
    assert any(b["subjects"] == ["op-data"] and b["role"] == "operator" for b in tokens)
    assert not any(t[10:] in str(view) for t in api.tokens.values()), "no token values"
    assert api.get("op-data", "/api/v1/policy").status_code == 403
