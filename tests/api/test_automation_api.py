"""Dependencies, firings and impact analysis through the API, filtered by authorization."""

from __future__ import annotations

from adapters.testing.fake import systems
from gateway.model import RunState
from tests.conftest import wait_until

from .conftest import Api, apply_yaml

CHAIN = """
apiVersion: accord.dev/v1
kind: Dependency
metadata: {name: orders-to-backup}
spec:
  upstream: fake-data/finance_report
  downstream: fake-ops/db-backup
  trigger: true
  params: {note: "{{ upstream.job }} {{ upstream.state }}"}
---
apiVersion: accord.dev/v1
kind: RoleBinding
metadata: {name: chain}
spec: {role: operator, subjects: ["dependency:orders-to-backup"], domains: ["*"]}
---
apiVersion: accord.dev/v1
kind: SLA
metadata: {name: backup-by-six, domain: ops}
spec: {selector: {jobs: ["fake-ops/db-backup"]}, deadline: "06:00"}
"""


def test_impact_crosses_tools_lists_slas_and_hides_what_you_may_not_read(api: Api) -> None:
    apply_yaml(api.engine, CHAIN)
    r = api.get("admin", "/api/v1/jobs/fake-data/etl_orders/impact")
    assert r.status_code == 200, r.text
    body = r.json()
    by_uid = {n["uid"]: n for n in body["nodes"]}
    # etl_orders -> finance_report (the tool's own lineage) -> db-backup (the Dependency)
    assert by_uid["fake-data/finance_report"]["depth"] == 1
    backup = by_uid["fake-ops/db-backup"]
    assert backup["depth"] == 2 and backup["via"] == "fake-data/finance_report"
    assert backup["evidence"] == "dependency orders-to-backup"
    assert backup["slas"] == ["backup-by-six"]
    assert body["sources"] == ["fake-ops"] and body["hidden"] == 0
    # op-data may read the data domain only: the ops job is counted, not shown.
    mine = api.get("op-data", "/api/v1/jobs/fake-data/etl_orders/impact").json()
    assert [n["uid"] for n in mine["nodes"]] == ["fake-data/finance_report"]
    assert mine["hidden"] == 1
    assert api.get("viewer-ops", "/api/v1/jobs/fake-data/etl_orders/impact").status_code == 404
    assert api.get("admin", "/api/v1/jobs/fake-data/nope/impact").status_code == 404


def test_dependencies_list_shows_firings_to_those_who_may_read_them(api: Api) -> None:
    apply_yaml(api.engine, CHAIN)
    data = api.systems["data"]
    [rid] = [r.id for r in data.runs.values() if r.job == "finance_report"]
    data.finish(rid, RunState.SUCCESS)
    api.sync("fake-data")
    # The app's own dispatcher (started with the app) fires it.
    assert wait_until(lambda: api.get("admin", "/api/v1/firings").json()[0]["status"] == "fired")
    [dep] = api.get("admin", "/api/v1/dependencies").json()
    assert dep["name"] == "orders-to-backup" and dep["downstream"] == "fake-ops/db-backup"
    [firing] = dep["firings"]
    assert firing["status"] == "fired" and firing["upstream_runs"] == [f"fake-data/{rid}"]
    assert firing["latency_seconds"] is not None and dep["counts"] == {"fired": 1}
    assert api.get("op-data", "/api/v1/dependencies").json() == []
    by_run = api.get("admin", f"/api/v1/firings?run=fake-data/{rid}").json()
    assert [f["id"] for f in by_run] == [firing["id"]]
    started = firing["result_run_uid"]
    run = api.get("admin", f"/api/v1/runs/{started}").json()
    assert run["upstream"][0]["evidence"] == "dependency orders-to-backup"
    assert systems["api-ops"].calls.count("trigger") == 1
