"""The simulator answers as the documented API does (checked with plain HTTP, not through
the adapter)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from adapters.testing.tfc_sim import JSONAPI, SimState, TfcSimulator

from .conftest import NARROW_TOKEN, ORG, TOKEN, Org


@pytest.fixture
def http(sim: TfcSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sim.url + "/api/v2/",
        headers={"Authorization": f"Bearer {TOKEN}", "Accept": JSONAPI},
    ) as client:
        yield client


def test_jsonapi_pages_and_errors(http: httpx.Client, state: SimState, org: Org) -> None:
    r = http.get(f"organizations/{ORG}/workspaces", params={"page[size]": 3})
    assert r.status_code == 200 and r.headers["Content-Type"] == JSONAPI
    assert "simulator" in r.headers["X-Simulator"]
    meta = r.json()["meta"]["pagination"]
    assert meta == {
        "current-page": 1,
        "page-size": 3,
        "prev-page": None,
        "next-page": 2,
        "total-pages": 2,
        "total-count": 4,
    }
    second = http.get(
        f"organizations/{ORG}/workspaces", params={"page[number]": 2, "page[size]": 3}
    )
    assert len(second.json()["data"]) == 1 and second.json()["links"]["next"] is None
    assert (
        http.get(f"organizations/{ORG}/workspaces", params={"page[size]": 500}).json()["meta"][
            "pagination"
        ]["page-size"]
        == 100
    )
    bad = http.get(f"organizations/{ORG}/workspaces", params={"include": "secrets"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["status"] == "400"
    r = http.post(
        "runs",
        content=b'{"data": {"type": "runs"}}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 415


def test_auth_and_hidden_resources(sim: TfcSimulator, http: httpx.Client, org: Org) -> None:
    assert httpx.get(sim.url + f"/api/v2/organizations/{ORG}").status_code == 401
    assert http.get("organizations/other-org").status_code == 404  # forbidden looks missing
    with httpx.Client(
        base_url=sim.url + "/api/v2/", headers={"Authorization": f"Bearer {NARROW_TOKEN}"}
    ) as narrow:
        assert narrow.get(f"workspaces/{org.network.id}").status_code == 404
        assert narrow.get(f"workspaces/{org.app.id}").status_code == 200


def test_run_lists_hide_plan_only_runs_and_omit_totals(
    http: httpx.Client, state: SimState, org: Org
) -> None:
    spec = state.create_run(org.app.id, plan_only=True)
    normal = state.create_run(org.app.id)
    r = http.get(f"organizations/{ORG}/runs")
    assert [x["id"] for x in r.json()["data"]] == [normal.id]
    assert "total-count" not in r.json()["meta"]["pagination"]
    r = http.get(
        f"organizations/{ORG}/runs",
        params={
            "filter[operation]": "plan_only,plan_and_apply",
            "filter[status_group]": "non_final",
        },
    )
    assert [x["id"] for x in r.json()["data"]] == [normal.id, spec.id]
    r = http.get(f"workspaces/{org.app.id}/runs")
    assert r.json()["meta"]["pagination"]["total-count"] == 1


def test_run_actions_follow_the_status_machine(
    http: httpx.Client, state: SimState, org: Org
) -> None:
    run = state.create_run(org.app.id)
    r = http.post(f"runs/{run.id}/actions/apply")
    assert r.status_code == 409 and r.json()["errors"][0]["title"] == "transition not allowed"
    state.plan(run.id)
    doc = http.get(f"runs/{run.id}", params={"include": "plan,apply"}).json()
    assert doc["data"]["attributes"]["actions"]["is-confirmable"] is True
    assert {i["type"]: i["attributes"]["status"] for i in doc["included"]} == {
        "plans": "finished",
        "applies": "pending",
    }
    r = http.post(f"runs/{run.id}/actions/apply")
    assert r.status_code == 202 and r.content == b""
    assert http.post(f"runs/{run.id}/actions/force-cancel").status_code == 409
    assert http.post(f"runs/{run.id}/actions/cancel").status_code == 202
    assert http.post(f"runs/{run.id}/actions/force-cancel").status_code == 409  # final now
    assert state.runs[run.id].status == "canceled"
    assert http.get(f"workspaces/{org.app.id}/run-triggers").status_code == 400
    inbound = http.get(
        f"workspaces/{org.app.id}/run-triggers", params={"filter[run-trigger][type]": "inbound"}
    ).json()["data"]
    assert [t["relationships"]["sourceable"]["data"]["id"] for t in inbound] == [org.network.id]


def test_the_run_list_limit(http: httpx.Client, state: SimState, org: Org) -> None:
    for _ in range(30):
        assert http.get(f"workspaces/{org.app.id}/runs").status_code == 200
    r = http.get(f"organizations/{ORG}/runs")
    assert r.status_code == 429
    assert r.json()["errors"][0]["title"] == "Too many requests"
    assert 0 < float(r.headers["X-RateLimit-Reset"]) <= 60
    assert "Retry-After" not in r.headers
    assert http.get(f"workspaces/{org.app.id}").status_code == 200  # other endpoints still answer
