from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from gateway.config import load_path
from gateway.governance.compliance import evaluate_all
from gateway.store import session_scope
from gateway.store.tables import Job

from .conftest import Api, apply_yaml

STARTER = Path(__file__).resolve().parents[2] / "policies" / "rules"


def _open(api: Api, who: str = "admin", **params: str) -> set[tuple[str, str]]:
    rows = api.get(who, "/api/v1/violations", params=params).json()["items"]
    return {(v["rule"], v["job_uid"]) for v in rows}


def test_starter_pack_finds_violations_and_resolves_them(api: Api) -> None:
    apply_yaml(api.engine, (STARTER / "starter.yaml").read_text())
    found = _open(api)
    assert ("job-has-owner", "fake-ops/db-backup") in found
    assert ("job-has-owner", "fake-data/etl_orders") not in found
    assert ("prod-job-has-sla-or-alerting", "fake-data/etl_orders") in found
    row = next(
        v
        for v in api.get("admin", "/api/v1/violations").json()["items"]
        if v["job_uid"] == "fake-ops/db-backup"
    )
    assert row["evidence"]["job"]["owners"] == [] and row["severity"] == "medium"
    # an SLA for one prod job fixes its violation, with history kept
    apply_yaml(
        api.engine,
        """
apiVersion: accord.dev/v1
kind: SLA
metadata: {name: orders-sla}
spec: {selector: {jobs: ["fake-data/etl_orders"]}, maxDuration: 1h}
""",
    )
    assert ("prod-job-has-sla-or-alerting", "fake-data/etl_orders") not in _open(api)
    resolved = api.get("admin", "/api/v1/violations", params={"status": "resolved"}).json()["items"]
    assert [(v["job_uid"], v["resolution"]) for v in resolved] == [
        ("fake-data/etl_orders", "fixed")
    ]
    # visibility: a viewer of ops sees only ops violations
    assert {j for _r, j in _open(api, "viewer-ops")} == {"fake-ops/db-backup"}


def test_schedule_inside_a_freeze_and_long_pause(api: Api) -> None:
    api.systems["data"].jobs["etl_orders"]["schedule"] = "*/5 * * * *"
    api.systems["data"].jobs["nightly-vacuum"]["paused"] = True
    api.sync("fake-data")
    with session_scope(api.engine) as s:
        job = s.exec(select(Job).where(Job.uid == "fake-data/nightly-vacuum")).one()
        assert job.paused_since is not None, "the gateway notes when a job was seen paused"
        job.paused_since = datetime.now(UTC) - timedelta(days=45)
        s.add(job)
    start = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    apply_yaml(
        api.engine,
        (STARTER / "starter.yaml").read_text()
        + f"""
---
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {{name: release-freeze}}
spec:
  type: freeze
  selector: {{domains: [data]}}
  windows: [{{start: "{start}", duration: 3h}}]
""",
    )
    found = _open(api)
    assert ("no-schedule-in-freeze", "fake-data/etl_orders") in found
    assert ("no-long-pause-without-reason", "fake-data/nightly-vacuum") in found
    api.systems["data"].jobs["nightly-vacuum"]["labels"] = {
        "accord.dev/paused-reason": "replaced by db-backup"
    }
    api.sync("fake-data")
    assert ("no-long-pause-without-reason", "fake-data/nightly-vacuum") not in _open(api)


def test_rules_over_attributes_and_production_domains(api: Api) -> None:
    api.systems["data"].jobs["etl_orders"]["labels"] = {"tier": "gold"}
    api.sync("fake-data")
    apply_yaml(
        api.engine,
        """
apiVersion: accord.dev/v1
kind: Domain
metadata: {name: data}
spec: {production: true}
---
apiVersion: accord.dev/v1
kind: ComplianceRule
metadata: {name: prod-gold-only}
spec:
  severity: critical
  expression: '!domain.production || job.labels.tier == "gold"'
""",
    )
    found = {j for r, j in _open(api) if r == "prod-gold-only"}
    # a missing label is an evaluation error: reported as a violation with the error
    assert found == {"fake-data/finance_report", "fake-data/nightly-vacuum"}
    v = next(
        x
        for x in api.get("admin", "/api/v1/violations").json()["items"]
        if x["job_uid"] == "fake-data/finance_report"
    )
    assert "error" in v["evidence"]
    # removing the rule resolves its violations
    with session_scope(api.engine) as s:
        from gateway.store.tables import AppliedResource

        row = s.get(AppliedResource, ("ComplianceRule", "prod-gold-only"))
        assert row is not None
        s.delete(row)
        s.flush()
        evaluate_all(s)
    resolved = api.get("admin", "/api/v1/violations", params={"status": "resolved"}).json()["items"]
    assert {v["resolution"] for v in resolved} == {"rule-removed"}


def test_invalid_expression_is_refused_at_validation(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(
        "apiVersion: accord.dev/v1\nkind: ComplianceRule\nmetadata: {name: bad}\n"
        "spec: {expression: 'size(job.owners >'}\n"
    )
    res = load_path(p)
    assert not res.ok and res.errors[0].path == "spec.expression"
    assert "invalid CEL expression" in str(res.errors[0])


@pytest.mark.parametrize("name", ["starter.yaml"])
def test_starter_pack_is_valid(name: str) -> None:
    res = load_path(STARTER / name)
    assert res.ok and len(res.documents) == 5


def test_no_eval_of_python(api: Api) -> None:
    apply_yaml(
        api.engine,
        """
apiVersion: accord.dev/v1
kind: ComplianceRule
metadata: {name: sneaky}
spec: {expression: 'job.name == "__import__(\\"os\\").system(\\"true\\")"'}
""",
    )
    with Session(api.engine) as s:
        assert evaluate_all(s).rules == 1
