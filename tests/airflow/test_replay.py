"""The adapter against a replayed Airflow 3 that misbehaves on purpose.

Recorded answers (adapters/airflow/demo_data) served by adapters.testing.airflow_replay:
paging edges, token renewal, temporary outages with Retry-After, malformed answers,
unknown ids, and the actions' effect on the replayed state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import pytest

from adapters.airflow.adapter import CURSOR_OVERLAP, AirflowAdapter
from adapters.testing.airflow_replay import Fault, ReplayServer, ReplayState
from gateway.model import (
    AdapterAuthError,
    AdapterError,
    AdapterUnavailable,
    Conflict,
    EdgeKind,
    HealthStatus,
    InvalidResponse,
    JobRecord,
    NodeKind,
    NotFound,
    RunRecord,
    RunState,
    Trigger,
)

from .conftest import REPLAY_PASSWORD, REPLAY_VIEWER_PASSWORD, Secrets, make_adapter

pytestmark = pytest.mark.anyio

Build = Callable[..., AirflowAdapter]
RECORDED_DAGS = 7
RECORDED_RUNS = 21


async def _jobs(adapter: AirflowAdapter) -> list[JobRecord]:
    return [j async for j in adapter.list_jobs()]


async def _drain(
    adapter: AirflowAdapter, cursor: str | None = None
) -> tuple[list[RunRecord], str | None, int]:
    runs: list[RunRecord] = []
    for pages in range(1, 100):
        page = await adapter.list_runs(cursor)
        runs.extend(page.runs)
        cursor = page.cursor
        if not page.more:
            return runs, cursor, pages
    raise AssertionError("list_runs never finished")


# -- inventory and paging -----------------------------------------------------------------
async def test_inventory_from_recording(replay_adapter: Build) -> None:
    adapter = replay_adapter(uiUrl="https://airflow.example.com")
    jobs = {j.native_id: j for j in await _jobs(adapter)}
    assert len(jobs) == RECORDED_DAGS
    orders = jobs["ingest_orders"]
    assert orders.schedule is not None and orders.schedule.expression == "0 * * * *"
    assert orders.schedule.text == "Every hour"
    assert orders.owners == ("data-eng",)
    assert orders.labels == {"ingest": "", "tier": "gold"}
    assert orders.url == "https://airflow.example.com/dags/ingest_orders"
    assert orders.attributes["fileloc"] == "/opt/airflow/dags/ingest_orders.py"
    assert orders.next_run_at is not None
    legacy = jobs["legacy_export"]
    assert legacy.paused and legacy.next_run_at is None
    assert jobs["build_revenue_mart"].schedule is not None
    assert jobs["build_revenue_mart"].schedule.text == "Triggered by assets"
    assert jobs["finance_report"].labels == {"finance": "", "env": "prod"}


@pytest.mark.parametrize(("size", "requests"), [(7, 1), (3, 3), (100, 1)])
async def test_dag_pages_stop_at_total(
    replay: ReplayServer, replay_adapter: Build, size: int, requests: int
) -> None:
    adapter = replay_adapter(pageSize=size)
    assert len(await _jobs(adapter)) == RECORDED_DAGS
    assert len(replay.requests_to(r"^/api/v2/dags$")) == requests


async def test_dag_pages_without_totals_end_on_short_or_empty_page(
    replay: ReplayServer, replay_adapter: Build
) -> None:
    replay.totals = False
    adapter = replay_adapter(pageSize=7)  # exactly one full page, then an empty one
    assert len(await _jobs(adapter)) == RECORDED_DAGS
    offsets = [r.query["offset"] for r in replay.requests_to(r"^/api/v2/dags$")]
    assert offsets == [["0"], ["7"]]


async def test_dag_list_changing_while_paged_is_read_again(
    replay: ReplayServer, replay_adapter: Build
) -> None:
    adapter = replay_adapter(pageSize=3)
    page = json.loads(
        json.dumps({"dags": replay.state.dag_list()[:3], "total_entries": RECORDED_DAGS + 1})
    )
    replay.inject(Fault(r"^/api/v2/dags$", status=200, body=json.dumps(page).encode()))
    jobs = await _jobs(adapter)
    assert len(jobs) == RECORDED_DAGS
    assert len(replay.requests_to(r"^/api/v2/dags$")) == 3 + 3


@pytest.mark.parametrize("mode", ["keyset", "offset", "offset-no-totals"])
@pytest.mark.parametrize("size", [3, 7, RECORDED_RUNS, 100])
async def test_run_pages(replay: ReplayServer, replay_adapter: Build, mode: str, size: int) -> None:
    replay.legacy_paging = mode != "keyset"
    replay.totals = mode != "offset-no-totals"
    adapter = replay_adapter(pageSize=size)
    runs, cursor, pages = await _drain(adapter)
    ids = [r.native_id for r in runs]
    assert len(ids) == len(set(ids)) == RECORDED_RUNS
    full_pages = -(-RECORDED_RUNS // size)
    exact = RECORDED_RUNS % size == 0
    expected = full_pages + (1 if mode == "offset-no-totals" and exact else 0)
    assert pages == expected
    if mode == "keyset":
        cursors = [r.query.get("cursor") for r in replay.requests_to(r"/dags/~/dagRuns$")]
        assert cursors[0] == [""] and all(c and c != [""] for c in cursors[1:])
    # every run has all of its recorded task instances, even across task-instance pages
    recorded = replay.state.task_instances([], [])
    for run in runs:
        dag_id, run_id = run.native_id.split("/", 1)
        assert run.steps is not None
        assert len(run.steps) == sum(
            1 for t in recorded if t["dag_id"] == dag_id and t["dag_run_id"] == run_id
        )
    # the next scan starts where this one began (less the overlap), without paging state
    assert cursor is not None and "page" not in json.loads(cursor)


async def test_finished_runs_seen_unchanged_are_not_read_again(
    replay: ReplayServer, replay_adapter: Build
) -> None:
    adapter = replay_adapter()
    runs, _, _ = await _drain(adapter)
    per_run = len(replay.requests_to(r"/taskInstances$"))
    assert per_run == RECORDED_RUNS
    await _drain(adapter)
    assert len(replay.requests_to(r"/taskInstances$")) == per_run
    # a run that changes (retried) is read again, and shows its new task states
    failed = next(r for r in runs if r.state == RunState.FAILED)
    await adapter.retry(failed.native_id)
    [again] = await adapter.get_runs([failed.native_id])
    assert again.state == RunState.QUEUED
    assert {s.native_state for s in again.steps or ()} == {None}
    assert len(replay.requests_to(r"/taskInstances$")) > per_run


async def test_runs_mapped_from_recording(replay_adapter: Build) -> None:
    adapter = replay_adapter()
    runs, _, _ = await _drain(adapter)
    by_id = {r.native_id: r for r in runs}
    failed = [r for r in runs if r.state == RunState.FAILED]
    assert len(failed) == 1
    bad = failed[0]
    assert bad.job_native_id == "ingest_payments"
    assert bad.trigger == Trigger.SCHEDULE
    assert bad.attempt == 2, "validate_payments failed on its second try"
    assert bad.message == "failed tasks: validate_payments"
    steps = {s.name: s for s in bad.steps or ()}
    assert steps["validate_payments"].attempt == 2
    assert steps["load_payments"].native_state == "upstream_failed"
    assert steps["load_payments"].state == RunState.FAILED
    mart = next(r for r in runs if r.job_native_id == "build_revenue_mart")
    assert mart.trigger == Trigger.UPSTREAM
    assert {s.name for s in mart.steps or ()} == {
        "transform[0]",
        "transform[1]",
        "transform[2]",
        "publish",
    }
    manual = next(
        r for r in runs if r.job_native_id == "ingest_orders" and r.trigger == Trigger.API
    )
    assert manual.actor == "admin"
    assert manual.message == "Backfill fix"
    vacuum = next(r for r in runs if r.job_native_id == "warehouse_vacuum")
    assert {s.name: s.state for s in vacuum.steps or ()}["vacuum"] == RunState.SKIPPED
    assert all(r.url and "/runs/" in r.url for r in by_id.values())


async def test_triggered_edges_link_producer_runs(
    replay: ReplayServer, replay_adapter: Build
) -> None:
    adapter = replay_adapter()
    edges = []
    cursor = None
    for _ in range(10):
        page = await adapter.list_runs(cursor)
        edges.extend(page.edges)
        cursor = page.cursor
        if not page.more:
            break
    triggered = [e for e in edges if e.kind == EdgeKind.TRIGGERED]
    into_report = [e for e in triggered if e.dst.id.startswith("finance_report/")]
    assert len(into_report) == 1
    assert into_report[0].src.id.startswith("build_revenue_mart/asset_triggered__")
    assert "revenue_daily" in into_report[0].evidence
    into_mart = {
        e.src.id.split("/")[0] for e in triggered if e.dst.id.startswith("build_revenue_mart/")
    }
    assert into_mart == {"ingest_orders", "ingest_payments"}
    assert all(e.src.kind == e.dst.kind == NodeKind.RUN for e in triggered)
    # the events behind a run never change: a second scan does not ask again
    asked = len(replay.requests_to(r"/upstreamAssetEvents$"))
    await _drain(adapter)
    assert len(replay.requests_to(r"/upstreamAssetEvents$")) == asked


async def test_asset_event_failures_do_not_hold_up_runs(
    replay: ReplayServer, replay_adapter: Build
) -> None:
    adapter = replay_adapter()
    asset_runs = sum(1 for _, r in replay.state.run_list("~") if r["run_type"] == "asset_triggered")
    assert asset_runs == 2
    replay.inject(Fault(r"/upstreamAssetEvents$", status=500, times=asset_runs))
    runs, _, _ = await _drain(adapter)
    assert len(runs) == RECORDED_RUNS
    page = await adapter.list_runs(None)
    assert [e for e in page.edges if e.kind == EdgeKind.TRIGGERED], "asked again next time"


async def test_static_lineage(replay_adapter: Build) -> None:
    adapter = replay_adapter()
    jobs = {j.native_id: j for j in await _jobs(adapter)}
    mart = await adapter.lineage(jobs["build_revenue_mart"])
    kinds = {(e.kind, e.src.id, e.dst.id) for e in mart}
    assert (EdgeKind.DEPENDS_ON, "ingest_orders", "build_revenue_mart") in kinds
    assert (EdgeKind.DEPENDS_ON, "ingest_payments", "build_revenue_mart") in kinds
    assert (EdgeKind.CONSUMES, "raw/orders", "build_revenue_mart") in kinds
    produced = [e for e in mart if e.kind == EdgeKind.PRODUCES]
    assert len(produced) == 1
    assert produced[0].dst.namespace == "postgres://dwh:5432"
    assert produced[0].dst.id == "analytics/marts/revenue_daily"
    ml = await adapter.lineage(jobs["ml_features"])
    consumed = [e for e in ml if e.kind == EdgeKind.CONSUMES]
    assert [(e.src.namespace, e.src.id) for e in consumed] == [("s3://warehouse", "raw/orders")]
    assert "inlet of compute_features" in consumed[0].evidence
    assert not [e for e in ml if e.kind == EdgeKind.DEPENDS_ON], "an inlet is not a schedule"
    assert await adapter.lineage(jobs["legacy_export"]) == []


async def test_include_exclude_hide_dags_runs_and_edges(
    replay: ReplayServer, replay_adapter: Build
) -> None:
    adapter = replay_adapter(include=["ingest_*", "build_*"], exclude=["ingest_payments"])
    jobs = {j.native_id: j for j in await _jobs(adapter)}
    assert set(jobs) == {"ingest_orders", "build_revenue_mart"}
    runs, _, _ = await _drain(adapter)
    assert {r.job_native_id for r in runs} == {"ingest_orders", "build_revenue_mart"}
    mart = await adapter.lineage(jobs["build_revenue_mart"])
    assert {e.src.id for e in mart if e.kind == EdgeKind.DEPENDS_ON} == {"ingest_orders"}
    page = await adapter.list_runs(None)
    assert all(not e.src.id.startswith("ingest_payments/") for e in page.edges)
    with pytest.raises(NotFound):
        await adapter.pause("ingest_payments")
    assert not replay.requests_to(r"^/api/v2/dags/ingest_payments$", "PATCH")
    payments = next(r["dag_run_id"] for _, r in replay.state.run_list("ingest_payments"))
    assert await adapter.get_runs([f"ingest_payments/{payments}"]) == []


# -- the runs cursor ----------------------------------------------------------------------
async def test_cursor_keeps_runs_committed_late_in_the_same_instant(
    replay: ReplayServer, replay_adapter: Build
) -> None:
    # Two hours ahead of the recording, so only the runs made below are recent.
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    replay.state.clock = lambda: now
    adapter = replay_adapter()
    _, cursor, _ = await _drain(adapter)
    # Runs whose transactions began in the same second as the scan, or a little before,
    # but committed after it.
    same = replay.state.add_run("ingest_orders", "success")
    replay.state.clock = lambda: now - CURSOR_OVERLAP + timedelta(seconds=1)
    earlier = replay.state.add_run("ml_features", "failed")
    replay.state.clock = lambda: now + timedelta(seconds=5)
    runs, cursor2, _ = await _drain(adapter, cursor)
    seen = {r.native_id: r for r in runs}
    assert f"ingest_orders/{same['dag_run_id']}" in seen
    assert f"ml_features/{earlier['dag_run_id']}" in seen
    assert seen[f"ml_features/{earlier['dag_run_id']}"].state == RunState.FAILED
    # Nothing older than the overlap comes back.
    assert len(seen) == 2
    assert json.loads(cursor2 or "{}")["since"] >= json.loads(cursor or "{}")["since"]


async def test_unreadable_cursor_starts_over(replay_adapter: Build) -> None:
    adapter = replay_adapter()
    runs, _, _ = await _drain(adapter, "not a cursor")
    assert len(runs) == RECORDED_RUNS


async def test_history_window_limits_the_first_sync(
    replay: ReplayServer, replay_adapter: Build
) -> None:
    adapter = replay_adapter(history="1s")
    runs, _, _ = await _drain(adapter)
    assert runs == []
    rid = replay.state.add_run("ingest_orders", "running")
    runs, _, _ = await _drain(adapter)
    assert [r.native_id for r in runs] == [f"ingest_orders/{rid['dag_run_id']}"]
    assert runs[0].state == RunState.RUNNING


# -- authentication -----------------------------------------------------------------------
async def test_revoked_token_is_renewed_once(replay: ReplayServer, replay_adapter: Build) -> None:
    adapter = replay_adapter()
    await _jobs(adapter)
    replay.revoke_tokens()
    assert len(await _jobs(adapter)) == RECORDED_DAGS
    assert len(replay.requests_to(r"^/auth/token$")) == 2
    assert replay.rejected == 1


async def test_token_renewed_before_it_expires(replay: ReplayServer, replay_adapter: Build) -> None:
    replay.token_lifetime = 3
    adapter = replay_adapter()
    await _jobs(adapter)
    await _jobs(adapter)
    assert len(replay.requests_to(r"^/auth/token$")) == 1
    await anyio.sleep(2.2)
    await _jobs(adapter)
    assert len(replay.requests_to(r"^/auth/token$")) == 2
    assert replay.rejected == 0, "no request went out with an expired token"


async def test_wrong_password_is_an_auth_error(replay: ReplayServer) -> None:
    adapter = make_adapter(replay.url, secrets=Secrets({"AIRFLOW_PASSWORD": "wrong-horse"}))
    with pytest.raises(AdapterAuthError) as err:
        await adapter.check()
    assert "admin" in str(err.value) and "wrong-horse" not in str(err.value)
    with pytest.raises(AdapterAuthError):
        await _jobs(adapter)


async def test_missing_secret_is_an_auth_error(replay: ReplayServer) -> None:
    adapter = make_adapter(replay.url, secrets=Secrets({}))
    with pytest.raises(AdapterAuthError) as err:
        await _jobs(adapter)
    assert "env:AIRFLOW_PASSWORD" in str(err.value)


async def test_secret_is_read_only_when_used(replay: ReplayServer) -> None:
    secrets = Secrets({"AIRFLOW_PASSWORD": REPLAY_PASSWORD})
    adapter = make_adapter(replay.url, secrets=secrets)
    assert secrets.reads == 0
    await _jobs(adapter)
    await _jobs(adapter)
    assert secrets.reads == 1


async def test_static_token(replay: ReplayServer) -> None:
    replay.static_tokens = {"static-token-1"}
    secrets = Secrets({"AF_TOKEN": "static-token-1"})
    adapter = make_adapter(replay.url, secrets=secrets, auth={"tokenFrom": {"env": "AF_TOKEN"}})
    assert len(await _jobs(adapter)) == RECORDED_DAGS
    assert not replay.requests_to(r"^/auth/token$")
    assert {r.authorization for r in replay.requests_to("^/api/v2/dags$")} == {
        "Bearer static-token-1"
    }
    # rotated in its secret: the next refusal makes the adapter read it again
    replay.static_tokens = {"static-token-2"}
    secrets.values["AF_TOKEN"] = "static-token-2"
    assert len(await _jobs(adapter)) == RECORDED_DAGS
    # a token that is simply wrong stays an auth error
    replay.static_tokens = set()
    with pytest.raises(AdapterAuthError) as err:
        await _jobs(adapter)
    assert "static-token" not in str(err.value)


async def test_permission_denied_is_an_auth_error(replay: ReplayServer) -> None:
    adapter = make_adapter(
        replay.url,
        secrets=Secrets({"AIRFLOW_PASSWORD": REPLAY_VIEWER_PASSWORD}),
        auth={"username": "viewer", "passwordFrom": {"env": "AIRFLOW_PASSWORD"}},
    )
    assert len(await _jobs(adapter)) == RECORDED_DAGS
    with pytest.raises(AdapterAuthError):
        await adapter.pause("ingest_orders")
    assert replay.state.dag("ingest_orders")["is_paused"] is False  # type: ignore[index]


# -- availability -------------------------------------------------------------------------
async def test_503_with_retry_after_seconds(replay: ReplayServer, replay_adapter: Build) -> None:
    adapter = replay_adapter()
    replay.inject(Fault(r"^/api/v2/dags$", status=503, headers={"Retry-After": "7"}))
    with pytest.raises(AdapterUnavailable) as err:
        await _jobs(adapter)
    assert err.value.retry_after == 7
    assert len(await _jobs(adapter)) == RECORDED_DAGS, "the next attempt works"


async def test_429_with_retry_after_date(replay: ReplayServer, replay_adapter: Build) -> None:
    adapter = replay_adapter()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    replay.inject(Fault(r"/dags/~/dagRuns$", status=429, headers={"Retry-After": when}))
    with pytest.raises(AdapterUnavailable) as err:
        await adapter.list_runs(None)
    assert err.value.retry_after is not None and 100 < err.value.retry_after <= 121


async def test_token_endpoint_down_is_temporary(
    replay: ReplayServer, replay_adapter: Build
) -> None:
    adapter = replay_adapter()
    replay.inject(Fault(r"^/auth/token$", status=502, body=b"<html>Bad Gateway</html>"))
    with pytest.raises(AdapterUnavailable):
        await _jobs(adapter)


async def test_dropped_connection_is_temporary(replay: ReplayServer, replay_adapter: Build) -> None:
    adapter = replay_adapter()
    await _jobs(adapter)
    replay.inject(Fault(r"/dags/~/dagRuns$", drop=True))
    with pytest.raises(AdapterUnavailable):
        await adapter.list_runs(None)


async def test_server_down_is_temporary() -> None:
    state = ReplayState.load()
    server = ReplayServer(state).start()
    url = server.url
    server.stop()
    adapter = make_adapter(url, timeout=3)
    with pytest.raises(AdapterUnavailable) as err:
        await adapter.check()
    assert err.value.retry_after is None
    assert url in str(err.value)


async def test_health(replay: ReplayServer, replay_adapter: Build) -> None:
    adapter = replay_adapter()
    ok = await adapter.check()
    assert ok.status == HealthStatus.OK
    assert ok.details["version"] == replay.state.version
    assert ok.details["dags"] == RECORDED_DAGS
    replay.health = {
        "metadatabase": {"status": "healthy"},
        "scheduler": {"status": "unhealthy", "latest_scheduler_heartbeat": None},
        "dag_processor": {"status": "healthy"},
    }
    sick = await adapter.check()
    assert sick.status == HealthStatus.DEGRADED
    assert "scheduler" in sick.message


# -- malformed answers --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body"),
    [
        (r"^/api/v2/dags$", b"<html>proxy error</html>"),
        (r"^/api/v2/dags$", b"[1, 2, 3]"),
        (r"^/api/v2/dags$", b'{"dags": "nope", "total_entries": 1}'),
        (r"^/api/v2/dags$", b'{"dags": [{"dag_id": "x"}], "total_entries": 1}'),
        (r"^/api/v2/dags$", b'{"dags": [], "total_entries": "many"}'),
        (r"^/auth/token$", b'{"token_type": "bearer"}'),
    ],
)
async def test_malformed_inventory_answers(
    replay: ReplayServer, replay_adapter: Build, path: str, body: bytes
) -> None:
    adapter = replay_adapter()
    replay.inject(Fault(path, status=200, body=body))
    with pytest.raises(InvalidResponse):
        await _jobs(adapter)


@pytest.mark.parametrize(
    "run",
    [
        {"dag_id": "ingest_orders", "state": "success"},
        {"dag_id": "ingest_orders", "dag_run_id": "r1", "start_date": "yesterday"},
        {"dag_id": "ingest_orders", "dag_run_id": "r1", "start_date": "2026-01-01T00:00:00"},
    ],
)
async def test_malformed_runs(
    replay: ReplayServer, replay_adapter: Build, run: dict[str, Any]
) -> None:
    adapter = replay_adapter()
    body = {"dag_runs": [run], "total_entries": 1}
    replay.inject(Fault(r"/dags/~/dagRuns$", status=200, body=json.dumps(body).encode()))
    with pytest.raises(InvalidResponse):
        await adapter.list_runs(None)


async def test_unexpected_status_is_invalid(replay: ReplayServer, replay_adapter: Build) -> None:
    adapter = replay_adapter()
    replay.inject(Fault(r"^/api/v2/dags$", status=302, headers={"Location": "/login"}))
    with pytest.raises(InvalidResponse):
        await _jobs(adapter)


# -- actions ------------------------------------------------------------------------------
async def test_trigger_pause_resume(replay: ReplayServer, replay_adapter: Build) -> None:
    adapter = replay_adapter()
    run = await adapter.trigger("ml_features", {"full_refresh": True})
    assert run.state == RunState.QUEUED and run.trigger == Trigger.API and run.actor == "admin"
    posted = replay.requests_to(r"/dags/ml_features/dagRuns$", "POST")[-1].body
    assert posted["conf"] == {"full_refresh": True} and posted["logical_date"] is None
    assert replay.state.run(*run.native_id.split("/", 1)) is not None
    await adapter.pause("ml_features")
    assert replay.state.dag("ml_features")["is_paused"] is True  # type: ignore[index]
    assert {j.native_id: j.paused for j in await _jobs(adapter)}["ml_features"] is True
    await adapter.resume("ml_features")
    assert replay.state.dag("ml_features")["is_paused"] is False  # type: ignore[index]
    with pytest.raises(AdapterError, match="JSON"):
        await adapter.trigger("ml_features", {"when": object()})


async def test_cancel(replay: ReplayServer, replay_adapter: Build) -> None:
    adapter = replay_adapter()
    run = replay.state.add_run("ingest_payments", "running")
    native = f"ingest_payments/{run['dag_run_id']}"
    await adapter.cancel(native)
    after = replay.state.run("ingest_payments", run["dag_run_id"])
    assert after is not None and after["state"] == "failed"
    assert after["note"] == "Cancelled through Accord"
    [seen] = await adapter.get_runs([native])
    assert seen.state == RunState.CANCELLED and seen.native_state == "failed"
    assert {s.name: s.native_state for s in seen.steps or ()} == {
        "extract_payments": "failed",
        "validate_payments": "skipped",
        "load_payments": "skipped",
    }
    with pytest.raises(Conflict, match="already finished"):
        await adapter.cancel(native)


async def test_retry_clears_a_failed_run(replay: ReplayServer, replay_adapter: Build) -> None:
    adapter = replay_adapter()
    runs, _, _ = await _drain(adapter)
    failed = next(r for r in runs if r.state == RunState.FAILED)
    again = await adapter.retry(failed.native_id)
    assert again.native_id == failed.native_id
    assert again.state == RunState.QUEUED
    assert again.attempt == failed.attempt + 1
    dag_id, run_id = failed.native_id.split("/", 1)
    assert replay.state.run(dag_id, run_id)["state"] == "queued"  # type: ignore[index]
    cleared = replay.requests_to(r"/clear$", "POST")[-1].body
    assert cleared["dry_run"] is False
    ok = next(r for r in runs if r.state == RunState.SUCCESS)
    with pytest.raises(AdapterError, match="only a failed run"):
        await adapter.retry(ok.native_id)


async def test_unknown_ids(replay: ReplayServer, replay_adapter: Build) -> None:
    adapter = replay_adapter()
    with pytest.raises(NotFound):
        await adapter.trigger("no_such_dag", {})
    with pytest.raises(NotFound):
        await adapter.pause("no_such_dag")
    with pytest.raises(NotFound):
        await adapter.cancel("not-an-airflow-run-id")
    with pytest.raises(NotFound):
        await adapter.cancel("ingest_orders/manual__1999-01-01T00:00:00+00:00")
    with pytest.raises(NotFound):
        await adapter.retry("ingest_orders/nope")
    assert await adapter.get_runs(["bogus", "ingest_orders/nope", "no_such_dag/x"]) == []


async def test_removed_dag_disappears(replay: ReplayServer, replay_adapter: Build) -> None:
    adapter = replay_adapter()
    replay.state.remove_dag("warehouse_vacuum")
    assert "warehouse_vacuum" not in {j.native_id for j in await _jobs(adapter)}
    assert len(await _jobs(adapter)) == RECORDED_DAGS - 1
