"""Capabilities are a source's, not its adapter type's (issue 11, item 10).

A cron source in agent mode is fed by ``accord agent``; the gateway cannot reach its host,
so it must not offer trigger, pause, resume or cancel — neither in ``allowed_actions``
(what the console shows) nor by accepting such a request, which is refused before any
guardrail, approval request or adapter call. A local-mode cron source of the same type
keeps them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import select

from gateway.store import session_scope
from gateway.store.tables import ApprovalRequest, AuditRecord

from .conftest import Api, apply_yaml

SOURCES = """
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: cron-agent, domain: data}}
spec: {{type: cron, mode: agent}}
---
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: cron-local, domain: data}}
spec: {{type: cron, mode: local, root: "{root}", syslog: "off", host: web-2}}
---
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {{name: cron-four-eyes}}
spec:
  type: approval
  selector: {{domains: [data]}}
  actions: [trigger, pause, resume, cancel]
  expiresAfter: 1h
"""


def _push(api: Api, source: str, host: str) -> None:
    started = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).isoformat()
    body = {
        "agent": {"id": host},
        "inventory": [{"native_id": f"{host}:backup", "name": "backup", "native_type": "crontab"}],
        "runs": [
            {
                "native_id": f"{host}:backup:1",
                "job_native_id": f"{host}:backup",
                "state": "running",
                "started_at": started,
            }
        ],
    }
    r = api.post("agent", f"/api/v1/sources/{source}/push", json=body)
    assert r.status_code == 200, r.text


def test_an_agent_fed_cron_source_offers_and_accepts_no_local_actions(
    api: Api, tmp_path: Path
) -> None:
    apply_yaml(api.engine, SOURCES.format(root=tmp_path / "host"))
    _push(api, "cron-agent", "web-1")
    _push(api, "cron-local", "web-2")

    sources = {s["name"]: s for s in api.get("admin", "/api/v1/sources").json()}
    assert sources["cron-agent"]["capabilities"] == ["push"]
    assert set(sources["cron-local"]["capabilities"]) == {
        "trigger",
        "cancel",
        "pause",
        "resume",
        "push",
    }

    # The console offers what each source can do (the admin may do everything).
    agent_job = api.get("admin", "/api/v1/jobs/cron-agent/web-1:backup").json()
    local_job = api.get("admin", "/api/v1/jobs/cron-local/web-2:backup").json()
    assert agent_job["allowed_actions"] == []
    assert local_job["allowed_actions"] == ["trigger", "pause", "resume"]
    agent_run = api.get("admin", "/api/v1/runs/cron-agent/web-1:backup:1").json()
    local_run = api.get("admin", "/api/v1/runs/cron-local/web-2:backup:1").json()
    assert agent_run["allowed_actions"] == []
    assert local_run["allowed_actions"] == ["cancel"]

    # Asking anyway: a clear 409 before any approval request (the guardrail would hold
    # every action in this domain for a second person) or adapter call.
    for path, action in (
        ("/api/v1/jobs/cron-agent/web-1:backup/trigger", "trigger"),
        ("/api/v1/jobs/cron-agent/web-1:backup/pause", "pause"),
        ("/api/v1/runs/cron-agent/web-1:backup:1/cancel", "cancel"),
    ):
        r = api.post("admin", path, json={"reason": "try"})
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "action_not_supported"
        assert f"source 'cron-agent' cannot {action}" in error["message"]
    with session_scope(api.engine) as s:
        assert s.exec(select(ApprovalRequest)).all() == []
        refused = s.exec(
            select(AuditRecord).where(AuditRecord.target.startswith("cron-agent/"))  # type: ignore[attr-defined]
        ).all()
    assert [(a.action, a.outcome) for a in refused] == [
        ("trigger", "error"),
        ("pause", "error"),
        ("cancel", "error"),
    ]

    # The local source's actions still go their normal way (here: held for approval).
    r = api.post("admin", "/api/v1/jobs/cron-local/web-2:backup/trigger", json={"reason": "x"})
    assert r.status_code == 200 and r.json()["outcome"] == "pending", r.text
