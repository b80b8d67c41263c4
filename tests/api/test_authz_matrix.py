"""Authorization matrix: roles x actions x domains x object patterns, deny over allow,
and no cross-domain leak through any list endpoint."""

from __future__ import annotations

import itertools

import pytest

from gateway.store import session_scope
from gateway.store.services.tokens import create_token

from .conftest import Api, apply_yaml

ROLE_ACTIONS = {
    "viewer": set(),
    "operator": {"trigger", "pause", "resume"},
    "approver": set(),
    "auditor": set(),
    "admin": {"trigger", "pause", "resume"},
}
JOBS = {"data": "fake-data/etl_orders", "ops": "fake-ops/db-backup"}


@pytest.mark.parametrize(
    ("role", "bound", "target", "action"),
    list(
        itertools.product(
            ROLE_ACTIONS, ["data", "ops", "*"], ["data", "ops"], ["trigger", "pause", "resume"]
        )
    ),
)
def test_action_matrix(api: Api, role: str, bound: str, target: str, action: str) -> None:
    with session_scope(api.engine) as s:
        tok = create_token(s, subject=f"m-{role}-{bound}", role=role, domain=bound).token
    r = api.client.post(
        f"/api/v1/jobs/{JOBS[target]}/{action}", headers={"Authorization": f"Bearer {tok}"}
    )
    in_domain = bound in (target, "*")
    if not in_domain:
        assert r.status_code == 404, "a job in another domain does not exist for the subject"
    elif action in ROLE_ACTIONS[role]:
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 403


def test_deny_overrides_allow_and_patterns(api: Api) -> None:
    apply_yaml(
        api.engine,
        """
apiVersion: accord.dev/v1
kind: Role
metadata: {name: etl-runner}
spec:
  rules:
    - {actions: ["*"], objects: ["fake-data/*"]}
    - {actions: [trigger], objects: ["*/nightly-*"], effect: deny}
---
apiVersion: accord.dev/v1
kind: RoleBinding
metadata: {name: etl}
spec: {role: etl-runner, subjects: [erin], domains: ["*"]}
""",
    )
    with session_scope(api.engine) as s:
        api.tokens["erin"] = create_token(s, subject="erin", role="viewer", domain="nowhere").token
    assert api.post("erin", "/api/v1/jobs/fake-data/etl_orders/trigger").status_code == 200
    r = api.post("erin", "/api/v1/jobs/fake-data/nightly-vacuum/trigger")
    assert r.status_code == 403 and "deny" in r.json()["error"]["message"]
    assert api.post("erin", "/api/v1/jobs/fake-data/nightly-vacuum/pause").status_code == 200
    assert api.get("erin", "/api/v1/jobs/fake-ops/db-backup").status_code == 404


LISTS = [
    ("/api/v1/jobs", lambda b: [i["domain"] for i in b["items"]]),
    ("/api/v1/runs", lambda b: [i["domain"] for i in b["items"]]),
    ("/api/v1/sources", lambda b: [i["domain"] for i in b]),
    ("/api/v1/stats/runs?since=2000-01-01T00:00:00Z", lambda b: [i["domain"] for i in b]),
    ("/api/v1/audit", lambda b: [i["domain"] for i in b["items"]]),
    ("/api/v1/violations?status=all", lambda b: [i["domain"] for i in b["items"]]),
    ("/api/v1/approvals", lambda b: [i["domain"] for i in b]),
]


@pytest.mark.parametrize(("path", "domains_of"), LISTS)
def test_no_cross_domain_leak_through_lists(api: Api, path: str, domains_of: object) -> None:
    # Give every list something in both domains first.
    apply_yaml(
        api.engine,
        """
apiVersion: accord.dev/v1
kind: ComplianceRule
metadata: {name: needs-label}
spec: {expression: '"team" in job.labels'}
---
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {name: all-approve}
spec: {type: approval, actions: [pause]}
""",
    )
    api.post("admin", "/api/v1/jobs/fake-ops/db-backup/pause")
    api.post("admin", "/api/v1/jobs/fake-data/etl_orders/pause")
    api.post("admin", "/api/v1/jobs/fake-ops/db-backup/trigger")
    api.post("admin", "/api/v1/jobs/fake-data/etl_orders/trigger")
    everything = domains_of(api.get("admin", path).json())  # type: ignore[operator]
    assert {"data", "ops"} <= set(everything), f"{path} must hold both domains for this test"
    only_ops = domains_of(api.get("viewer-ops", path).json())  # type: ignore[operator]
    assert only_ops and set(only_ops) == {"ops"}, path
    assert domains_of(api.get("nobody", path).json()) == []  # type: ignore[operator]


def test_lineage_does_not_cross_into_invisible_domains(api: Api) -> None:
    api.systems["ops"].jobs["db-backup"]["upstream"] = []
    api.systems["data"].jobs["etl_orders"]["produces"] = ["orders"]
    api.systems["ops"].jobs["db-backup"]["consumes"] = ["orders"]
    api.systems["data"].jobs["etl_orders"]["consumes"] = []
    api.systems["ops"].add_job("ops-report")
    api.sync("fake-data")
    api.sync("fake-ops")
    # both sources use namespace "fake": the dataset links the two domains
    full = api.get(
        "admin",
        "/api/v1/lineage",
        params={"job": "fake-ops/db-backup", "direction": "up", "depth": 3},
    ).json()
    assert "fake-data/etl_orders" in {n["uid"] for n in full["nodes"]}
    ops = api.get(
        "viewer-ops",
        "/api/v1/lineage",
        params={"job": "fake-ops/db-backup", "direction": "up", "depth": 3},
    ).json()
    assert "fake-data/etl_orders" not in {n["uid"] for n in ops["nodes"]}
