"""Run lineage, source health from the adapter's check, cancels and the signing key,
through the API (fake adapters; the real Airflow and cron cases are in tests/airflow and
tests/cron)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.app import app as cli
from gateway.model import (
    EdgeKind,
    EdgeRecord,
    HealthProblem,
    HealthStatus,
    NodeKind,
    NodeRef,
    RunState,
    SourceHealth,
)
from gateway.store import session_scope
from gateway.store.services import ingest

from .conftest import Api


def _chain(api: Api) -> tuple[str, str, str]:
    """etl_orders run X -> finance_report run Y (same source) -> ops run Z (other domain)."""
    data, ops = api.systems["data"], api.systems["ops"]
    x = data.start_run("etl_orders")
    data.finish(x, RunState.SUCCESS)
    y = data.start_run("finance_report", upstream=x)
    z = ops.start_run("db-backup")
    api.sync("fake-data")
    api.sync("fake-ops")
    with session_scope(api.engine) as s:
        ingest.record_edges(
            s,
            source="fake-data",
            edges=[
                EdgeRecord(
                    kind=EdgeKind.TRIGGERED,
                    src=NodeRef(kind=NodeKind.RUN, id=y),
                    dst=NodeRef(kind=NodeKind.RUN, id=z, source="fake-ops"),
                    evidence="finance_report started the backup",
                )
            ],
        )
    return f"fake-data/{x}", f"fake-data/{y}", f"fake-ops/{z}"


def test_run_lineage_up_and_down_across_sources(api: Api) -> None:
    x, y, z = _chain(api)
    body = api.get("admin", f"/api/v1/runs/{x}/lineage", params={"depth": 2}).json()
    assert body["root"] == x
    assert {r["uid"] for r in body["runs"]} == {x, y, z}
    assert {(e["src"], e["dst"], e["kind"]) for e in body["edges"]} == {
        (x, y, "triggered"),
        (y, z, "triggered"),
    }
    assert body["not_shown"] == 0
    near = api.get("admin", f"/api/v1/runs/{x}/lineage", params={"depth": 1}).json()
    assert {r["uid"] for r in near["runs"]} == {x, y}
    up = api.get("admin", f"/api/v1/runs/{z}/lineage", params={"direction": "up"}).json()
    assert {r["uid"] for r in up["runs"]} == {x, y, z}
    down = api.get("admin", f"/api/v1/runs/{y}/lineage", params={"direction": "down"}).json()
    assert {r["uid"] for r in down["runs"]} == {y, z}

    run = api.get("admin", f"/api/v1/runs/{y}").json()
    assert [(u["uid"], u["evidence"]) for u in run["upstream"]] == [(x, "fake upstream")]
    assert [(d["uid"], d["reported_by"]) for d in run["downstream"]] == [(z, "fake-data")]
    assert run["upstream"][0]["state"] == "success"


def test_run_lineage_shows_only_runs_the_caller_may_read(api: Api) -> None:
    x, y, z = _chain(api)
    body = api.get("op-data", f"/api/v1/runs/{x}/lineage", params={"depth": 5}).json()
    assert {r["uid"] for r in body["runs"]} == {x, y}
    assert all(z not in (e["src"], e["dst"]) for e in body["edges"])
    assert body["not_shown"] == 1
    assert api.get("op-data", f"/api/v1/runs/{y}").json()["downstream"] == []
    # the ops viewer sees the backup run, not what caused it
    assert api.get("viewer-ops", f"/api/v1/runs/{z}").json()["upstream"] == []
    assert api.get("viewer-ops", f"/api/v1/runs/{x}/lineage").status_code == 404
    assert api.get("nobody", f"/api/v1/runs/{z}/lineage").status_code == 404


def test_source_health_is_the_adapter_check_merged_with_the_sync(api: Api) -> None:
    crontab = "/var/spool/cron/crontabs/alice"
    api.systems["data"].health = SourceHealth(
        status=HealthStatus.DEGRADED,
        message="cron ignores all of user/alice: line 3 is invalid",
        problems=(
            HealthProblem(
                message=f"cron ignores all of {crontab}: line 3 is invalid", file=crontab, line=3
            ),
        ),
    )
    api.sync("fake-data")
    src = api.get("admin", "/api/v1/sources/fake-data").json()
    assert src["health"] == "degraded"
    assert src["health_message"] == "cron ignores all of user/alice: line 3 is invalid"
    assert src["problems"] == [
        {
            "message": f"cron ignores all of {crontab}: line 3 is invalid",
            "file": crontab,
            "line": 3,
            "job": None,
        }
    ]
    assert src["checked_at"] is not None and src["jobs"] == 3
    # a failing sync is worse than a degraded check and says so first
    from gateway.model import AdapterUnavailable

    api.systems["data"].fault = AdapterUnavailable("maintenance")
    import anyio

    from gateway.sync import SyncManager

    anyio.run(SyncManager(api.engine).sync_now, "fake-data")
    assert "maintenance" in api.get("admin", "/api/v1/sources/fake-data").json()["health_message"]
    api.systems["data"].fault = None
    api.systems["data"].health = None
    api.sync("fake-data")
    src = api.get("admin", "/api/v1/sources/fake-data").json()
    assert (src["health"], src["health_message"], src["problems"]) == ("ok", "", [])


def test_a_check_that_fails_is_a_problem_of_the_source(api: Api) -> None:
    import anyio

    from gateway.model import AdapterAuthError
    from gateway.store.tables import Source as SourceRow
    from gateway.sync.manager import build_adapter
    from gateway.sync.worker import SourceWorker

    with session_scope(api.engine) as s:
        row = s.get(SourceRow, "fake-ops")
        assert row is not None
        adapter = build_adapter(row)
    worker = SourceWorker(
        engine=api.engine,
        name="fake-ops",
        domain="ops",
        adapter=adapter,
        inventory_every=300,
        runs_every=30,
    )
    api.systems["ops"].fault = AdapterAuthError("the token was revoked")
    health = anyio.run(worker.check_once)
    assert health.status == HealthStatus.DOWN
    src = api.get("admin", "/api/v1/sources/fake-ops").json()
    assert src["health"] == "down" and "the token was revoked" in src["health_message"]
    assert [p["message"] for p in src["problems"]] == [src["health_message"]]


def test_jobs_say_why_they_have_no_next_run(api: Api) -> None:
    assert api.post("op-data", "/api/v1/jobs/fake-data/nightly-vacuum/pause").status_code == 200
    api.sync("fake-data")
    job = api.get("admin", "/api/v1/jobs/fake-data/nightly-vacuum").json()
    assert job["next_run_at"] is None and job["no_next_run_reason"] == "the job is paused"
    job = api.get("admin", "/api/v1/jobs/fake-data/etl_orders").json()
    assert job["no_next_run_reason"] == "the job has no schedule (it runs when triggered)"


def test_a_cancel_the_source_reports_as_failed_is_cancelled(api: Api) -> None:
    api.systems["data"].cancel_as = RunState.FAILED  # like Airflow
    running = api.get("op-data", "/api/v1/runs", params={"state": "running"}).json()["items"]
    uid = next(r["uid"] for r in running if r["source"] == "fake-data")
    r = api.post("op-data", f"/api/v1/runs/{uid}/cancel", json={"reason": "wrong day"})
    assert r.status_code == 200, r.text
    api.sync("fake-data")
    run = api.get("admin", f"/api/v1/runs/{uid}").json()
    assert (run["state"], run["native_state"]) == ("cancelled", "FAILED")
    assert run["cancelled_through_accord"] and run["cancel_requested_by"] == "op-data"
    events = api.get("admin", f"/api/v1/runs/{uid}/events").json()
    assert events[-1]["to_state"] == "cancelled"
    stats = api.get("admin", "/api/v1/runs", params={"state": "failed", "total": True}).json()
    assert uid not in {x["uid"] for x in stats["items"]}

    again = api.post("op-data", f"/api/v1/runs/{uid}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    audit = api.get("admin", "/api/v1/audit", params={"limit": 1}).json()["items"][0]
    assert audit["action"] == "cancel" and audit["outcome"] == "error"


def test_a_failure_stored_before_the_cancel_was_recorded_is_corrected(api: Api) -> None:
    data = api.systems["data"]
    data.cancel_as = RunState.FAILED
    rid = data.start_run("etl_orders")
    api.sync("fake-data")
    uid = f"fake-data/{rid}"
    # the sync reads the failure before the cancel is written down
    data.finish(rid, RunState.FAILED)
    api.sync("fake-data")
    assert api.get("admin", f"/api/v1/runs/{uid}").json()["state"] == "failed"
    with session_scope(api.engine) as s:
        assert ingest.mark_cancel_requested(s, uid=uid, subject="op-data")
    run = api.get("admin", f"/api/v1/runs/{uid}").json()
    assert (run["state"], run["native_state"]) == ("cancelled", "FAILED")
    assert api.get("admin", "/api/v1/jobs/fake-data/etl_orders").json()["last_run_state"] == (
        "cancelled"
    )


def test_audit_public_key_and_exports_signed_with_it(api: Api, tmp_path: Path) -> None:
    key = api.get("viewer-ops", "/api/v1/audit/public-key").json()
    assert key["algorithm"] == "ed25519" and key["origin"] == "installation"
    assert api.get("admin", "/api/v1/audit/public-key").json() == key
    r = api.get("admin", "/api/v1/audit/export")
    assert r.status_code == 200, r.text
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        [manifest_name] = [n for n in z.namelist() if n.endswith(".manifest.json")]
        assert json.loads(z.read(manifest_name))["public_key"] == key["public_key"]
    settings = api.client.app.state.settings  # type: ignore[attr-defined]
    key_file = settings.data_dir / "audit-signing-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_sources_list_from_the_local_store_counts_jobs(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_DATABASE_URL", str(api.engine.url))
    res = CliRunner().invoke(cli, ["sources", "list", "--output", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    api_rows = {r["name"]: r for r in api.get("admin", "/api/v1/sources").json()}
    assert rows["fake-data"]["jobs"] == api_rows["fake-data"]["jobs"] == 3
    assert rows["fake-ops"]["jobs"] == 1
