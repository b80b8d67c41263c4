"""The adapter against a real Apache Airflow 3 (started by the ``airflow`` fixture).

Each test drives real DAG runs and checks what Accord's adapter shows, and that its
actions take effect in Airflow. Waits are bounded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import anyio.to_thread
import pytest

from adapters.airflow.adapter import AirflowAdapter
from gateway.model import (
    AdapterAuthError,
    AdapterError,
    Conflict,
    EdgeKind,
    EdgeRecord,
    HealthStatus,
    JobRecord,
    NodeKind,
    NotFound,
    RunRecord,
    RunState,
    Trigger,
)

from .conftest import TEST_DAGS, Secrets, make_adapter
from .deployment import PASSWORDS, AirflowDeployment

# The first test may have to create the Airflow virtualenv (minutes on a cold cache).
pytestmark = [pytest.mark.anyio, pytest.mark.peer, pytest.mark.timeout(1500)]

T = TypeVar("T")
_WAIT = 120.0


def adapter_for(airflow: AirflowDeployment, **kw: Any) -> AirflowAdapter:
    secrets = kw.pop("secrets", None) or Secrets({"AIRFLOW_PASSWORD": PASSWORDS["admin"]})
    return make_adapter(airflow.url, secrets=secrets, timeout=30, **kw)


async def api(airflow: AirflowDeployment, method: str, path: str, body: Any = None) -> Any:
    return await anyio.to_thread.run_sync(airflow.api, method, path, body)


def run_path(native_id: str) -> str:
    dag_id, run_id = native_id.split("/", 1)
    return f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"


async def until(what: str, probe: Callable[[], Awaitable[T | None]], timeout: float = _WAIT) -> T:
    """Poll ``probe`` until it returns something (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await probe()
        if value is not None:
            return value
        await anyio.sleep(1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


async def finished(adapter: AirflowAdapter, native_id: str) -> RunRecord:
    async def probe() -> RunRecord | None:
        [run] = await adapter.get_runs([native_id])
        return run if run.state.terminal else None

    return await until(f"run {native_id} to finish", probe)


async def drain(
    adapter: AirflowAdapter, cursor: str | None
) -> tuple[list[RunRecord], list[EdgeRecord], str | None]:
    runs: list[RunRecord] = []
    edges: list[EdgeRecord] = []
    for _ in range(100):
        page = await adapter.list_runs(cursor)
        runs.extend(page.runs)
        edges.extend(page.edges)
        cursor = page.cursor
        if not page.more:
            return runs, edges, cursor
    raise AssertionError("list_runs never finished")


async def jobs_of(adapter: AirflowAdapter) -> dict[str, JobRecord]:
    return {j.native_id: j async for j in adapter.list_jobs()}


async def test_health_and_inventory(airflow: AirflowDeployment) -> None:
    adapter = adapter_for(airflow, uiUrl="https://airflow.example.com/")
    health = await adapter.check()
    assert health.status == HealthStatus.OK
    assert str(health.details["version"]).startswith("3.")
    jobs = await jobs_of(adapter)
    assert set(jobs) == TEST_DAGS
    ok = jobs["accord_ok"]
    assert ok.name == "accord_ok" and ok.native_type == "dag"
    assert ok.owners == ("data-eng",)
    assert ok.labels == {"accord-test": "", "team": "data"}
    assert ok.description == "Two tasks that succeed"
    assert ok.url == "https://airflow.example.com/dags/accord_ok"
    assert ok.attributes["fileloc"].endswith("/accord_ok.py")
    assert ok.schedule is not None and ok.schedule.expression is None
    assert ok.schedule.text == "Never, external triggers only"
    paused = jobs["accord_paused"]
    assert paused.paused is True
    assert paused.schedule is not None and paused.schedule.expression == "0 6 * * *"
    assert paused.next_run_at is None
    consumer = jobs["accord_consumer"]
    assert consumer.schedule is not None and consumer.schedule.expression == "Asset"
    assert consumer.schedule.text == "Triggered by assets"
    assert (await jobs_of(adapter)) == jobs, "re-listing an unchanged Airflow is stable"

    some = adapter_for(airflow, include=["accord_*"], exclude=["accord_p*", "accord_slow"])
    assert set(await jobs_of(some)) == {"accord_ok", "accord_fail", "accord_consumer"}


async def test_runs_states_steps_and_cursor(airflow: AirflowDeployment) -> None:
    adapter = adapter_for(airflow)
    _, _, cursor = await drain(adapter, None)
    ok = await adapter.trigger("accord_ok", {"greeting": "from accord"})
    bad = await adapter.trigger("accord_fail", {})
    assert ok.state == RunState.QUEUED and ok.trigger == Trigger.API
    assert ok.actor == "admin"
    assert (await api(airflow, "GET", run_path(ok.native_id)))["conf"] == {
        "greeting": "from accord"
    }
    await finished(adapter, ok.native_id)
    await finished(adapter, bad.native_id)

    runs, _, cursor = await drain(adapter, cursor)
    latest = {r.native_id: r for r in runs}
    assert {ok.native_id, bad.native_id} <= set(latest)
    good, failed = latest[ok.native_id], latest[bad.native_id]
    assert good.state == RunState.SUCCESS and good.native_state == "success"
    assert [(s.name, s.state) for s in good.steps or ()] == [
        ("extract", RunState.SUCCESS),
        ("load", RunState.SUCCESS),
    ]
    assert good.started_at and good.ended_at and good.started_at <= good.ended_at
    assert good.url and good.url.startswith(f"{airflow.url}/dags/accord_ok/runs/")
    assert failed.state == RunState.FAILED and failed.native_state == "failed"
    assert failed.message == "failed tasks: broken"
    steps = {s.name: s for s in failed.steps or ()}
    assert steps["broken"].state == RunState.FAILED
    assert steps["after"].native_state == "upstream_failed"
    assert steps["after"].state == RunState.FAILED
    # Airflow's own view agrees
    assert (await api(airflow, "GET", run_path(bad.native_id)))["state"] == "failed"

    # the next scan does not bring them back with older states
    again, _, _ = await drain(adapter, cursor)
    for run in again:
        if run.native_id in latest:
            assert run.state == latest[run.native_id].state


async def test_asset_lineage_and_triggered_run(airflow: AirflowDeployment) -> None:
    adapter = adapter_for(airflow)
    jobs = await jobs_of(adapter)
    producer = {
        (e.kind, e.src.id, e.dst.id): e for e in await adapter.lineage(jobs["accord_producer"])
    }
    assert (EdgeKind.PRODUCES, "accord_producer", "raw/orders") in producer
    assert (EdgeKind.CONSUMES, "raw/customers", "accord_producer") in producer
    orders = producer[(EdgeKind.PRODUCES, "accord_producer", "raw/orders")].dst
    assert orders.kind == NodeKind.DATASET and orders.namespace == "s3://warehouse"
    consumer = {
        (e.kind, e.src.id, e.dst.id) for e in await adapter.lineage(jobs["accord_consumer"])
    }
    assert (EdgeKind.DEPENDS_ON, "accord_producer", "accord_consumer") in consumer
    assert (EdgeKind.CONSUMES, "raw/orders", "accord_consumer") in consumer
    assert (EdgeKind.PRODUCES, "accord_consumer", "marts/orders_report") in consumer
    assert await adapter.lineage(jobs["accord_ok"]) == []

    _, _, cursor = await drain(adapter, None)
    before = {
        r["dag_run_id"]
        for r in (await api(airflow, "GET", "/api/v2/dags/accord_consumer/dagRuns"))["dag_runs"]
    }
    produced = await adapter.trigger("accord_producer", {})
    await finished(adapter, produced.native_id)

    async def new_consumer_run() -> str | None:
        body = await api(airflow, "GET", "/api/v2/dags/accord_consumer/dagRuns")
        fresh = [r["dag_run_id"] for r in body["dag_runs"] if r["dag_run_id"] not in before]
        return f"accord_consumer/{fresh[0]}" if fresh else None

    consumed = await until("the asset-triggered run", new_consumer_run)
    await finished(adapter, consumed)
    runs, edges, _ = await drain(adapter, cursor)
    seen = {r.native_id: r for r in runs}
    assert seen[consumed].trigger == Trigger.UPSTREAM
    assert seen[consumed].actor is None
    triggered = [e for e in edges if e.kind == EdgeKind.TRIGGERED and e.dst.id == consumed]
    assert [e.src.id for e in triggered] == [produced.native_id]
    assert "s3://warehouse/raw/orders" in triggered[0].evidence


async def test_trigger_dag_run_operator_is_a_triggered_edge(airflow: AirflowDeployment) -> None:
    adapter = adapter_for(airflow)
    _, _, cursor = await drain(adapter, None)
    before = {
        r["dag_run_id"]
        for r in (await api(airflow, "GET", "/api/v2/dags/accord_ok/dagRuns"))["dag_runs"]
    }
    parent = await adapter.trigger("accord_parent", {})
    await finished(adapter, parent.native_id)

    async def child_run() -> str | None:
        body = await api(airflow, "GET", "/api/v2/dags/accord_ok/dagRuns?limit=100")
        fresh = [r for r in body["dag_runs"] if r["dag_run_id"] not in before]
        fresh = [r for r in fresh if r["triggered_by"] == "operator"]
        return f"accord_ok/{fresh[0]['dag_run_id']}" if fresh else None

    child = await until("the run started by TriggerDagRunOperator", child_run)
    await finished(adapter, child)
    runs, edges, _ = await drain(adapter, cursor)
    seen = {r.native_id: r for r in runs}
    assert seen[child].trigger == Trigger.UPSTREAM
    triggered = [e for e in edges if e.kind == EdgeKind.TRIGGERED and e.src.id == parent.native_id]
    assert [(e.src.kind, e.dst.kind, e.dst.id) for e in triggered] == [
        (NodeKind.RUN, NodeKind.RUN, child)
    ]
    assert "start_ok" in triggered[0].evidence
    assert "trigger_run_id" in triggered[0].evidence
    await adapter.aclose()


async def test_pause_and_resume(airflow: AirflowDeployment) -> None:
    adapter = adapter_for(airflow)
    try:
        await adapter.pause("accord_ok")
        assert (await api(airflow, "GET", "/api/v2/dags/accord_ok"))["is_paused"] is True
        assert (await jobs_of(adapter))["accord_ok"].paused is True
        await adapter.resume("accord_ok")
        assert (await api(airflow, "GET", "/api/v2/dags/accord_ok"))["is_paused"] is False
        assert (await jobs_of(adapter))["accord_ok"].paused is False
    finally:
        await api(airflow, "PATCH", "/api/v2/dags/accord_ok", {"is_paused": False})


async def test_cancel_a_running_run(airflow: AirflowDeployment) -> None:
    adapter = adapter_for(airflow)
    run = await adapter.trigger("accord_slow", {})

    async def running() -> RunRecord | None:
        [now] = await adapter.get_runs([run.native_id])
        steps = now.steps or ()
        return now if steps and steps[0].state == RunState.RUNNING else None

    await until("the sleep task to run", running)
    started = time.monotonic()
    await adapter.cancel(run.native_id)
    in_airflow = await api(airflow, "GET", run_path(run.native_id))
    assert in_airflow["state"] == "failed"
    assert in_airflow["note"] == "Cancelled through Accord"
    [seen] = await adapter.get_runs([run.native_id])
    # Airflow can only say "failed"; the note Accord left makes it a cancel.
    assert seen.state == RunState.CANCELLED and seen.native_state == "failed"
    assert seen.message is not None and "Cancelled through Accord" in seen.message
    assert [s.state for s in seen.steps or ()] == [RunState.FAILED]
    assert time.monotonic() - started < 60, "the two-minute task was stopped, not waited for"
    with pytest.raises(Conflict, match="already finished"):
        await adapter.cancel(run.native_id)


async def test_retry_a_failed_run(airflow: AirflowDeployment) -> None:
    adapter = adapter_for(airflow)
    run = await adapter.trigger("accord_fail", {})
    first = await finished(adapter, run.native_id)
    assert first.state == RunState.FAILED and first.attempt == 1
    again = await adapter.retry(run.native_id)
    assert again.native_id == run.native_id
    assert again.attempt == 2 and again.state in (RunState.QUEUED, RunState.RUNNING)
    assert (await api(airflow, "GET", run_path(run.native_id)))["state"] in ("queued", "running")

    async def second_failure() -> RunRecord | None:
        [now] = await adapter.get_runs([run.native_id])
        return now if now.state.terminal and now.attempt == 2 else None

    second = await until("the retried run to fail again", second_failure)
    assert second.state == RunState.FAILED
    assert {s.name: s.attempt for s in second.steps or ()}["broken"] == 2

    ok = await adapter.trigger("accord_ok", {})
    await finished(adapter, ok.native_id)
    with pytest.raises(AdapterError, match="only a failed run"):
        await adapter.retry(ok.native_id)


async def test_credentials(airflow: AirflowDeployment) -> None:
    wrong = adapter_for(airflow, secrets=Secrets({"AIRFLOW_PASSWORD": "not-the-password"}))
    with pytest.raises(AdapterAuthError) as err:
        await wrong.check()
    assert "not-the-password" not in str(err.value)

    token = await anyio.to_thread.run_sync(airflow.token)
    static = adapter_for(
        airflow, secrets=Secrets({"AF_TOKEN": token}), auth={"tokenFrom": {"env": "AF_TOKEN"}}
    )
    assert set(await jobs_of(static)) == TEST_DAGS
    assert static.client.requests == 1, "a static token needs no login"

    bogus = adapter_for(
        airflow, secrets=Secrets({"AF_TOKEN": "x.y.z"}), auth={"tokenFrom": {"env": "AF_TOKEN"}}
    )
    with pytest.raises(AdapterAuthError):
        await jobs_of(bogus)

    # A token Airflow no longer accepts (its key changed, say) is renewed once.
    adapter = adapter_for(airflow)
    await jobs_of(adapter)
    adapter.client._token = token[:-4] + "AAAA"
    assert set(await jobs_of(adapter)) == TEST_DAGS

    viewer = adapter_for(
        airflow,
        secrets=Secrets({"AIRFLOW_PASSWORD": PASSWORDS["viewer"]}),
        auth={"username": "viewer", "passwordFrom": {"env": "AIRFLOW_PASSWORD"}},
    )
    assert set(await jobs_of(viewer)) == TEST_DAGS
    with pytest.raises(AdapterAuthError):
        await viewer.pause("accord_ok")
    assert (await api(airflow, "GET", "/api/v2/dags/accord_ok"))["is_paused"] is False


async def test_unknown_ids(airflow: AirflowDeployment) -> None:
    adapter = adapter_for(airflow)
    with pytest.raises(NotFound):
        await adapter.trigger("no_such_dag", {})
    with pytest.raises(NotFound):
        await adapter.pause("no_such_dag")
    with pytest.raises(NotFound):
        await adapter.cancel("accord_ok/manual__1999-01-01T00:00:00+00:00")
    assert await adapter.get_runs(["accord_ok/nope", "garbage"]) == []


async def test_one_entry_per_page_reads_the_same(airflow: AirflowDeployment) -> None:
    """Airflow's paging (by key for runs, by offset for DAGs and tasks) at its edges."""
    big, small = adapter_for(airflow), adapter_for(airflow, pageSize=1)
    assert await jobs_of(small) == await jobs_of(big)
    runs, _, _ = await drain(big, None)
    tiny, _, _ = await drain(small, None)
    assert len(runs) >= 2, "earlier tests ran DAGs"
    assert {r.native_id: r for r in tiny} == {r.native_id: r for r in runs}


async def test_full_sync_cost(airflow: AirflowDeployment) -> None:
    """A full sync reads pages plus one request per run, never one per task; a second
    scan over runs that finished and did not change reads only the pages."""
    adapter = adapter_for(airflow)
    started = time.perf_counter()
    jobs = await jobs_of(adapter)
    for job in jobs.values():
        await adapter.lineage(job)
    runs, _, _ = await drain(adapter, None)
    seconds = time.perf_counter() - started
    first = adapter.client.requests
    asset_runs = sum(1 for r in runs if r.native_id.split("/", 1)[1].startswith("asset_triggered"))
    pages = -(-len(runs) // 100) or 1
    # runs of accord_parent have one TriggerDagRunOperator task each: its XCom, read once
    operator_runs = sum(1 for r in runs if r.job_native_id == "accord_parent")
    # token + DAG page + asset page + run pages + task instances of each run + the asset
    # events behind each asset-triggered run + the XCom of each triggering task
    assert first == 3 + pages + len(runs) + asset_runs + operator_runs
    assert all(r.state.terminal for r in runs), "every test waited for its runs"
    again, _, _ = await drain(adapter, None)
    assert len(again) == len(runs)
    assert adapter.client.requests - first == pages
    print(
        json.dumps(
            {
                "full_sync_seconds": round(seconds, 3),
                "requests": first,
                "dags": len(jobs),
                "runs": len(runs),
                "steps": sum(len(r.steps or ()) for r in runs),
                "second_scan_requests": adapter.client.requests - first,
            }
        )
    )


async def test_a_deleted_dag_file_leaves_the_inventory(airflow: AirflowDeployment) -> None:
    adapter = adapter_for(airflow)
    source = (airflow.dags / "accord_ok.py").read_text()
    extra = airflow.dags / "accord_temporary.py"
    extra.write_text(source.replace('"accord_ok"', '"accord_temporary"'))
    try:

        async def listed() -> bool | None:
            return True if "accord_temporary" in await jobs_of(adapter) else None

        await until("the new DAG to be listed", listed)
    finally:
        extra.unlink()

    async def gone() -> bool | None:
        return True if "accord_temporary" not in await jobs_of(adapter) else None

    await until("the deleted DAG to leave the listing", gone)
    assert set(await jobs_of(adapter)) == TEST_DAGS
