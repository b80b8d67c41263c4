"""The console's overview aggregates: counts, failing jobs, health, sprawl, guardrails."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from gateway.model import RunState
from gateway.store import session_scope
from gateway.store.tables import Job

from .conftest import Api, apply_yaml


def _counts(rows: list[dict[str, object]]) -> Counter[tuple[object, object, object]]:
    return Counter({(r["source"], r["domain"], r["state"]): int(str(r["count"])) for r in rows})


def _runs_by_state(api: Api, who: str, since: datetime) -> Counter[tuple[object, object, object]]:
    items = api.get(who, "/api/v1/runs", params={"since": since.isoformat(), "limit": 1000}).json()[
        "items"
    ]
    return Counter((r["source"], r["domain"], r["state"]) for r in items)


def test_overview_counts_match_the_lists(api: Api) -> None:
    # One more run, three days old: in the 7-day window, not in the 24-hour one.
    old = api.systems["data"].start_run("nightly-vacuum", at=datetime.now(UTC) - timedelta(days=3))
    api.systems["data"].finish(old, RunState.SUCCESS)
    api.sync("fake-data")

    r = api.get("admin", "/api/v1/overview")
    assert r.status_code == 200
    ov = r.json()
    assert ov["jobs"] == 4 and ov["sources"] == 2
    now = datetime.now(UTC)
    assert _counts(ov["runs_24h"]) == _runs_by_state(api, "admin", now - timedelta(hours=24))
    week = api.get("admin", "/api/v1/overview/runs", params={"hours": 168}).json()
    assert _counts(week) == _runs_by_state(api, "admin", now - timedelta(days=7))
    assert ("fake-data", "data", "success") in _counts(week)
    assert ("fake-data", "data", "success") not in _counts(ov["runs_24h"])
    day = api.get("admin", "/api/v1/overview/runs").json()
    assert _counts(day) == _counts(ov["runs_24h"])
    assert api.get("admin", "/api/v1/overview/runs", params={"hours": 0}).status_code == 422
    assert ov["active_runs"] == 2  # finance_report and db-backup are running

    assert ov["failing_now"]["count"] == 1
    assert [j["uid"] for j in ov["failing_now"]["items"]] == ["fake-data/etl_orders"]
    health = {s["name"]: s for s in ov["source_health"]}
    assert set(health) == {"fake-data", "fake-ops"}
    assert health["fake-data"]["jobs"] == 3 and health["fake-ops"]["jobs"] == 1
    assert health["fake-data"]["health"] == "ok" and health["fake-data"]["last_success_at"]
    assert ov["freezes"] == []


def test_tool_sprawl_panel(api: Api) -> None:
    past = datetime.now(UTC) - timedelta(days=40)
    with session_scope(api.engine) as s:
        etl = s.exec(select(Job).where(Job.uid == "fake-data/etl_orders")).one()
        etl.last_run_at = past  # ran, but not for 40 days
        vacuum = s.exec(select(Job).where(Job.uid == "fake-data/nightly-vacuum")).one()
        vacuum.first_seen = past  # known for 40 days and never ran
        vacuum.paused = True
        s.add_all([etl, vacuum])

    sprawl = api.get("admin", "/api/v1/overview").json()["sprawl"]
    assert sprawl["by_tool"] == [
        {"type": "fake", "domain": "data", "sources": 1, "jobs": 3},
        {"type": "fake", "domain": "ops", "sources": 1, "jobs": 1},
    ]
    assert sprawl["without_owner"]["count"] == 1
    assert [j["uid"] for j in sprawl["without_owner"]["items"]] == ["fake-ops/db-backup"]
    assert sprawl["idle_after_days"] == 30
    assert {j["uid"] for j in sprawl["idle"]["items"]} == {
        "fake-data/etl_orders",
        "fake-data/nightly-vacuum",
    }
    assert sprawl["idle"]["count"] == 2
    assert [j["uid"] for j in sprawl["never_run"]["items"]] == ["fake-data/nightly-vacuum"]
    assert sprawl["paused"] == 1


def test_overview_shows_only_what_the_subject_may_see(api: Api) -> None:
    ops = api.get("viewer-ops", "/api/v1/overview").json()
    assert ops["jobs"] == 1 and ops["sources"] == 1
    assert {r["domain"] for r in ops["runs_24h"]} == {"ops"}
    assert _counts(ops["runs_24h"]) == _runs_by_state(
        api, "viewer-ops", datetime.now(UTC) - timedelta(hours=24)
    )
    ops_week = api.get("viewer-ops", "/api/v1/overview/runs", params={"hours": 168}).json()
    assert {r["domain"] for r in ops_week} == {"ops"}
    assert ops["failing_now"] == {"count": 0, "items": []}
    assert [s["name"] for s in ops["source_health"]] == ["fake-ops"]
    assert [t["domain"] for t in ops["sprawl"]["by_tool"]] == ["ops"]

    nobody = api.get("nobody", "/api/v1/overview").json()
    assert nobody["jobs"] == 0 and nobody["runs_24h"] == [] and nobody["source_health"] == []
    assert nobody["active_runs"] == 0 and nobody["sprawl"]["without_owner"]["count"] == 0

    assert api.client.get("/api/v1/overview").status_code == 401


def test_guardrails_and_active_freezes(api: Api) -> None:
    now = datetime.now(UTC)
    start, end = (now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat()
    apply_yaml(
        api.engine,
        f"""
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {{name: data-freeze, domain: data}}
spec:
  type: freeze
  selector: {{domains: [data]}}
  actions: [trigger, pause]
  windows:
    - {{start: "{start}", end: "{end}"}}
---
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {{name: next-year-freeze}}
spec:
  type: freeze
  windows:
    - {{start: "{(now + timedelta(days=365)).isoformat()}", duration: 2h}}
---
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {{name: ops-four-eyes, domain: ops}}
spec:
  type: approval
  selector: {{domains: [ops]}}
  actions: [trigger]
  approvers: 2
""",
    )
    admin = api.get("admin", "/api/v1/overview").json()
    assert [f["name"] for f in admin["freezes"]] == ["data-freeze"]
    assert admin["freezes"][0]["actions"] == ["trigger", "pause"]

    rails = {g["name"]: g for g in api.get("admin", "/api/v1/overview/guardrails").json()}
    assert set(rails) == {"data-freeze", "next-year-freeze", "ops-four-eyes"}
    assert rails["data-freeze"]["active"] is True
    assert rails["next-year-freeze"]["active"] is False
    assert rails["ops-four-eyes"]["approvers"] == 2

    # The ops viewer is not affected by the data freeze and does not see it.
    ops = api.get("viewer-ops", "/api/v1/overview").json()
    assert ops["freezes"] == []
    ops_rails = [g["name"] for g in api.get("viewer-ops", "/api/v1/overview/guardrails").json()]
    assert ops_rails == ["next-year-freeze", "ops-four-eyes"]
    # A subject who sees no job is shown no guardrail at all.
    assert api.get("nobody", "/api/v1/overview/guardrails").json() == []

    # And the freeze the overview reports is the one that refuses the action.
    r = api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger")
    assert r.status_code == 423 and "data-freeze" in r.json()["error"]["message"]
