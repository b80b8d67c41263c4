"""The Kubernetes adapter against the API-server simulator, through the official client."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from adapters.kubernetes import KubernetesAdapter
from adapters.kubernetes.adapter import manual_job
from adapters.testing.harness_kubernetes import connect
from adapters.testing.kube_sim import ClusterState, KubeSimulator
from gateway.model import (
    AdapterAuthError,
    EdgeKind,
    NotFound,
    RunRecord,
    RunState,
    Trigger,
)

from .conftest import TOKEN, Connect

pytestmark = pytest.mark.anyio
T = TypeVar("T")


def cid(obj: dict[str, Any]) -> str:
    m = obj["metadata"]
    return f"{m['namespace']}/{m['name']}@{m['uid'].replace('-', '')[:8]}"


def rid(cronjob: dict[str, Any], job: dict[str, Any]) -> str:
    m = job["metadata"]
    return f"{cid(cronjob)}/{m['name']}@{m['uid'].replace('-', '')[:8]}"


async def drain(adapter: KubernetesAdapter, cursor: str | None) -> tuple[list[RunRecord], str]:
    runs: list[RunRecord] = []
    for _ in range(100):
        page = await adapter.list_runs(cursor)
        runs.extend(page.runs)
        cursor = page.cursor
        if not page.more:
            break
    assert cursor is not None
    return runs, cursor


async def eventually(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = await check()
        if got:
            return got
        await anyio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def minute_runs(st: ClusterState, cronjob: dict[str, Any], count: int) -> list[str]:
    """``count`` minutes pass; each minute's Job of ``cronjob`` (scheduled every minute)
    succeeds. Returns the runs' ids."""
    made = []
    for _ in range(count):
        st.advance(60)
        job = next(j for j in st.items("jobs", "etl") if not j["status"].get("conditions"))
        made.append(rid(cronjob, job))
        st.finish_job("etl", job["metadata"]["name"], succeeded=True)
    return made


async def run_state(adapter: KubernetesAdapter, run_id: str) -> RunRecord | None:
    got = await adapter.get_runs([run_id])
    return got[0] if got and got[0].native_state != "Deleted" else None


async def test_inventory_shows_every_cronjob_with_its_settings(
    sim: KubeSimulator, adapter_for: Connect
) -> None:
    st = sim.state
    a = st.add_cronjob(
        "etl",
        "load",
        "0 3 * * *",
        time_zone="Europe/Berlin",
        concurrency="Forbid",
        deadline=300,
        labels={"team": "data", "tier": "gold"},
        annotations={"description": "Nightly load", "accord.dev/after": "airflow-prod/etl_daily"},
    )
    b = st.add_cronjob("reports", "weekly", "30 4 * * 1", suspend=True, labels={"team": "bi"})
    adapter = adapter_for(
        ownerLabel="team",
        consoleUrl="https://console.example/{namespace}/cronjobs/{name}?uid={uid}",
    )
    jobs = {j.native_id: j async for j in adapter.list_jobs()}
    assert set(jobs) == {cid(a), cid(b)}
    load = jobs[cid(a)]
    assert load.name == "etl/load" and load.native_type == "CronJob"
    assert load.schedule is not None
    assert (load.schedule.expression, load.schedule.timezone) == ("0 3 * * *", "Europe/Berlin")
    assert load.owners == ("data",) and load.labels == {"team": "data", "tier": "gold"}
    assert load.url == f"https://console.example/etl/cronjobs/load?uid={a['metadata']['uid']}"
    assert load.description == "Nightly load"
    assert load.attributes["concurrencyPolicy"] == "Forbid"
    assert load.attributes["startingDeadlineSeconds"] == 300
    assert load.next_run_at is not None and load.next_run_at.hour == 2  # 03:00 Berlin in March
    assert not load.paused
    weekly = jobs[cid(b)]
    assert weekly.paused and weekly.next_run_at is None and weekly.schedule is not None
    assert weekly.schedule.timezone == "UTC"  # the controller's zone
    edges = await adapter.lineage(load)
    assert [(e.kind, e.src.source, e.src.id, e.dst.id) for e in edges] == [
        (EdgeKind.DEPENDS_ON, "airflow-prod", "etl_daily", cid(a))
    ]


async def test_namespaces_and_label_selector_select_cronjobs_and_their_runs(
    sim: KubeSimulator, adapter_for: Connect
) -> None:
    st = sim.state
    keep = st.add_cronjob("etl", "keep", "0 1 * * *", labels={"team": "data"})
    other_ns = st.add_cronjob("ops", "elsewhere", "0 1 * * *", labels={"team": "data"})
    other_label = st.add_cronjob("etl", "not-mine", "0 1 * * *", labels={"team": "web"})
    for cj in (keep, other_ns, other_label):
        name = cj["metadata"]["name"]
        st.finish_job(
            cj["metadata"]["namespace"],
            st.job_from_cronjob(cj["metadata"]["namespace"], name, f"{name}-1")["metadata"]["name"],
            succeeded=True,
        )
    by_ns = adapter_for(namespaces=["etl"], source="by-ns")
    assert {j.native_id async for j in by_ns.list_jobs()} == {cid(keep), cid(other_label)}
    by_label = adapter_for(labelSelector="team=data", source="by-label")
    assert {j.native_id async for j in by_label.list_jobs()} == {cid(keep), cid(other_ns)}
    runs, _ = await drain(by_label, None)
    assert {r.job_native_id for r in runs} == {cid(keep), cid(other_ns)}
    both = adapter_for(namespaces=["etl", "ops"], labelSelector="team in (data)", source="both")
    runs, _ = await drain(both, None)
    assert {r.job_native_id for r in runs} == {cid(keep), cid(other_ns)}
    assert len(both.informers) == 4  # a CronJob and a Job watch per namespace


async def test_scheduled_and_manual_runs_with_states_and_times(
    sim: KubeSimulator, adapter_for: Connect
) -> None:
    st = sim.state
    cj = st.add_cronjob("etl", "every5", "*/5 * * * *")
    adapter = adapter_for()
    _, cursor = await drain(adapter, None)
    st.advance(5 * 60)  # 12:05 fires
    job = st.items("jobs", "etl")[0]
    run_id = rid(cj, job)
    queued = await eventually(lambda: run_state(adapter, run_id), "the scheduled Job")
    assert queued.state == RunState.QUEUED and queued.native_state == "Pending"
    assert queued.trigger == Trigger.SCHEDULE
    st.start_job("etl", job["metadata"]["name"])
    st.advance(40)
    st.finish_job("etl", job["metadata"]["name"], succeeded=True)

    async def done() -> RunRecord | None:
        r = await run_state(adapter, run_id)
        return r if r and r.state == RunState.SUCCESS else None

    ok = await eventually(done, "the Job to complete")
    assert ok.native_state == "Complete" and ok.started_at is not None
    assert ok.ended_at is not None and ok.ended_at > ok.started_at
    manual = st.job_from_cronjob("etl", "every5", "every5-by-hand", manual=True)
    manual_id = rid(cj, manual)
    got = await eventually(lambda: run_state(adapter, manual_id), "the manual Job")
    assert got.trigger == Trigger.MANUAL
    runs, _ = await drain(adapter, cursor)
    assert {r.native_id for r in runs} >= {run_id, manual_id}
    final = {r.native_id: r for r in runs}
    assert final[run_id].state == RunState.SUCCESS


async def test_failure_reason_from_conditions_and_pods(
    sim: KubeSimulator, adapter_for: Connect
) -> None:
    st = sim.state
    cj = st.add_cronjob(
        "etl", "heavy", "0 2 * * *", image="registry.example/heavy:1", history=(3, 3)
    )
    oom = st.job_from_cronjob("etl", "heavy", "heavy-1")
    st.finish_job("etl", "heavy-1", succeeded=False, pod_reason="OOMKilled", exit_code=137)
    pull = st.job_from_cronjob("etl", "heavy", "heavy-2")
    st.finish_job(
        "etl", "heavy-2", succeeded=False, reason="DeadlineExceeded", pod_reason="ImagePullBackOff"
    )
    adapter = adapter_for()
    runs, _ = await drain(adapter, None)
    final = {r.native_id: r for r in runs}
    first, second = final[rid(cj, oom)], final[rid(cj, pull)]
    assert first.state == RunState.FAILED and first.native_state == "Failed"
    assert first.message is not None
    assert "BackoffLimitExceeded" in first.message and "OOMKilled (exit code 137)" in first.message
    assert first.steps is not None and [s.state for s in first.steps] == [RunState.FAILED]
    assert second.message is not None and "DeadlineExceeded" in second.message
    assert "ImagePullBackOff" in second.message and "registry.example/heavy:1" in second.message


async def test_a_broken_watch_resumes_without_losing_or_duplicating_runs(
    sim: KubeSimulator, adapter_for: Connect
) -> None:
    st = sim.state
    cj = st.add_cronjob("etl", "often", "* * * * *")
    adapter = adapter_for()
    _, cursor = await drain(adapter, None)
    jobs_watch = next(i for i in adapter.informers if i.resource == "jobs")
    lists_before = jobs_watch.lists
    with st.lock:
        st.break_watches()  # every stream drops mid-way
        st.faults.unavailable = 2  # and the first reconnects fail
        st.advance(3 * 60)  # three scheduled Jobs while nobody watches
        names = [j["metadata"]["name"] for j in st.items("jobs", "etl")]
        for name in names:
            st.finish_job("etl", name, succeeded=True)
    expected = {rid(cj, j) for j in st.items("jobs", "etl")}
    assert len(expected) == 3

    async def all_seen() -> list[RunRecord] | None:
        got = await adapter.get_runs(sorted(expected))
        return got if all(r.state == RunState.SUCCESS for r in got) else None

    await eventually(all_seen, "the runs made while the watch was down")
    runs, _ = await drain(adapter, cursor)
    ids = [r.native_id for r in runs]
    assert sorted(ids) == sorted(expected), "each run once, none lost"
    assert all(r.state == RunState.SUCCESS for r in runs)
    assert jobs_watch.lists == lists_before, "resumed from its resourceVersion, no re-list"


@pytest.mark.parametrize("as_http", [False, True], ids=["in-stream", "http-410"])
async def test_410_gone_relists_without_losing_or_duplicating_runs(
    sim: KubeSimulator, adapter_for: Connect, as_http: bool
) -> None:
    st = sim.state
    st.faults.gone_as_http = as_http
    cj = st.add_cronjob("etl", "often", "* * * * *")
    adapter = adapter_for()
    st.advance(60)
    first = st.items("jobs", "etl")[0]["metadata"]["name"]
    st.finish_job("etl", first, succeeded=True)
    await eventually(
        lambda: run_state(adapter, rid(cj, st.get("jobs", "etl", first))), "the first run"
    )
    _, cursor = await drain(adapter, None)
    jobs_watch = next(i for i in adapter.informers if i.resource == "jobs")
    lists_before = jobs_watch.lists
    with st.lock:
        st.advance(60)  # one more Job, its events then compacted away
        second = next(j for j in st.items("jobs", "etl") if j["metadata"]["name"] != first)
        st.finish_job("etl", second["metadata"]["name"], succeeded=False)
        st.compact()
        st.break_watches()
    second_id = rid(cj, second)

    async def failed() -> RunRecord | None:
        r = await run_state(adapter, second_id)
        return r if r and r.state == RunState.FAILED else None

    await eventually(failed, "the run whose events expired")
    assert jobs_watch.gone >= 1 and jobs_watch.lists > lists_before
    runs, _ = await drain(adapter, cursor)
    ids = [r.native_id for r in runs]
    assert ids.count(second_id) == 1 and len(ids) == len(set(ids))
    assert rid(cj, st.get("jobs", "etl", first)) not in ids, (
        "an unchanged run is not reported again"
    )


async def test_garbage_collected_runs_stay_in_history(
    sim: KubeSimulator, adapter_for: Connect
) -> None:
    st = sim.state
    cj = st.add_cronjob("etl", "often", "* * * * *", history=(2, 1))
    adapter = adapter_for()
    _, cursor = await drain(adapter, None)
    made = minute_runs(st, cj, 4)
    assert len(st.items("jobs", "etl")) == 2, "the simulator keeps only the history limit"

    async def all_reported() -> list[RunRecord] | None:
        runs, _ = await drain(adapter, cursor)
        latest = {r.native_id: r for r in runs}
        ok = all(latest.get(m) and latest[m].state == RunState.SUCCESS for m in made)
        return list(latest.values()) if ok else None

    runs = await eventually(all_reported, "four successful runs")
    assert all(r.state == RunState.SUCCESS for r in runs), "deleted by GC is not cancelled"
    again = await adapter.get_runs(made)
    assert [r.state for r in again] == [RunState.SUCCESS] * 4


async def test_recreated_cronjob_is_a_new_job(sim: KubeSimulator, adapter_for: Connect) -> None:
    st = sim.state
    old = st.add_cronjob("etl", "load", "0 3 * * *")
    adapter = adapter_for()
    assert {j.native_id async for j in adapter.list_jobs()} == {cid(old)}
    st.delete("cronjobs", "etl", "load")
    new = st.add_cronjob("etl", "load", "0 4 * * *")
    assert cid(new) != cid(old)

    async def renewed() -> set[str] | None:
        ids = {j.native_id async for j in adapter.list_jobs()}
        return ids if ids == {cid(new)} else None

    await eventually(renewed, "the re-created CronJob")
    with pytest.raises(NotFound, match=cid(new).replace(".", r"\.")):
        await adapter.trigger(cid(old), {})
    with pytest.raises(NotFound):
        await adapter.pause(cid(old))
    run = await adapter.trigger(cid(new), {})
    assert run.job_native_id == cid(new)


async def test_actions_trigger_cancel_pause_resume(
    sim: KubeSimulator, adapter_for: Connect
) -> None:
    st = sim.state
    cj = st.add_cronjob("etl", "load", "0 3 * * *", job_annotations={"team": "data"})
    adapter = adapter_for(cancelPropagation="Foreground")
    run = await adapter.trigger(cid(cj), {})
    assert run.state == RunState.QUEUED and run.trigger == Trigger.MANUAL
    job_name = run.native_id.rsplit("/", 1)[1].split("@")[0]
    job = st.get("jobs", "etl", job_name)
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["annotations"]["team"] == "data"
    (ref,) = job["metadata"]["ownerReferences"]
    assert ref["uid"] == cj["metadata"]["uid"] and ref["controller"] is True
    assert "blockOwnerDeletion" not in ref
    st.start_job("etl", job_name)
    assert len(st.items("pods", "etl")) == 1
    await eventually(
        lambda: _state_is(adapter, run.native_id, RunState.RUNNING), "the run to start"
    )
    await adapter.cancel(run.native_id)
    assert st.find("jobs", "etl", job_name) is None and st.items("pods", "etl") == []
    cancelled = await adapter.get_runs([run.native_id])
    assert cancelled[0].state == RunState.CANCELLED and cancelled[0].native_state == "Deleted"
    await adapter.pause(cid(cj))
    assert st.get("cronjobs", "etl", "load")["spec"]["suspend"] is True
    assert {j.native_id: j.paused async for j in adapter.list_jobs()}[cid(cj)] is True
    await adapter.resume(cid(cj))
    assert st.get("cronjobs", "etl", "load")["spec"]["suspend"] is False
    with pytest.raises(NotFound):
        await adapter.cancel(run.native_id)


async def _state_is(adapter: KubernetesAdapter, run_id: str, state: RunState) -> bool:
    got = await adapter.get_runs([run_id])
    return bool(got) and got[0].state == state


async def test_missed_and_skipped_runs(sim: KubeSimulator, adapter_for: Connect) -> None:
    st = sim.state
    down = st.add_cronjob("etl", "down", "*/10 * * * *")
    paused = st.add_cronjob("etl", "paused", "*/10 * * * *", suspend=True)
    late = st.add_cronjob("etl", "late", "*/10 * * * *", deadline=60)
    adapter = adapter_for(missedGrace="5m")
    _, cursor = await drain(adapter, None)
    with st.lock:
        st.controller_down = True
        st.advance(25 * 60)  # 12:10 and 12:20 pass without a controller
        st.controller_down = False
        st.advance(60)  # back: starts only the most recent time (12:20), if in its deadline
    (late_run,) = st.items("jobs", "etl")
    # Minutes pass in microseconds here: let the watch deliver the late Job first, as it
    # would within the grace period in a real cluster.
    await eventually(lambda: run_state(adapter, rid(down, late_run)), "the late Job")
    st.advance(5 * 60)  # past the grace period (the controller is back: 12:30 runs)
    owners = {c["metadata"]["uid"]: c for c in (down, paused, late)}
    for job in st.items("jobs", "etl"):
        owner = owners[job["metadata"]["ownerReferences"][0]["uid"]]
        await eventually(lambda j=job, o=owner: run_state(adapter, rid(o, j)), "every Job")
    runs, _ = await drain(adapter, cursor)
    by_job: dict[str, list[RunRecord]] = {}
    for r in runs:
        by_job.setdefault(r.job_native_id, []).append(r)
    missed_down = sorted(r.native_id for r in by_job[cid(down)] if r.native_state == "Missed")
    assert missed_down == [f"{cid(down)}/missed:2025-03-10T12:10Z"]
    assert any(r.native_state == "Pending" for r in by_job[cid(down)]), "12:20 ran late"
    skipped = by_job[cid(paused)]
    assert {r.native_state for r in skipped} == {"Skipped"}
    assert all(r.state == RunState.SKIPPED for r in skipped) and len(skipped) == 2
    late_missed = [r for r in by_job[cid(late)] if r.native_state == "Missed"]
    assert sorted(r.native_id[-6:] for r in late_missed) == ["12:10Z", "12:20Z"]
    assert all("startingDeadlineSeconds" in (r.message or "") for r in late_missed)
    assert {r.state for r in late_missed} == {RunState.FAILED} and len(late_missed) == 2
    again, _ = await drain(adapter, None)
    assert len([r for r in again if r.native_state == "Missed"]) == len(
        [r for r in runs if r.native_state == "Missed"]
    ), "reported once, with stable ids"


async def test_steady_state_is_watch_driven(sim: KubeSimulator, adapter_for: Connect) -> None:
    st = sim.state
    for i in range(30):
        st.add_cronjob(f"ns-{i % 3}", f"job-{i}", "0 3 * * *")
    adapter = adapter_for(pageSize=7)
    cursor = None
    jobs = [j async for j in adapter.list_jobs()]
    assert len(jobs) == 30
    _, cursor = await drain(adapter, cursor)
    before = sim.requests.copy()
    for _ in range(5):
        assert len([j async for j in adapter.list_jobs()]) == 30
        for j in jobs:
            await adapter.lineage(j)
        _, cursor = await drain(adapter, cursor)
        await adapter.get_runs([f"{jobs[0].native_id}/x@12345678"])
    after = sim.requests.copy()
    assert {k: v for k, v in (after - before).items() if not k.startswith("watch")} == {}
    assert before["list cronjobs"] == 5  # 30 CronJobs in pages of 7


async def test_auth_modes_and_errors(
    sim: KubeSimulator, adapter_for: Connect, tmp_path: Path
) -> None:
    sim.state.add_cronjob("etl", "load", "0 3 * * *")
    wrong = adapter_for(_token="not-the-token", source="wrong")
    with pytest.raises(AdapterAuthError, match="401"):
        [j async for j in wrong.list_jobs()]
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(sim.kubeconfig(TOKEN, context="sim-ctx"))
    from adapters.base import AdapterContext
    from adapters.kubernetes import KubernetesConfig

    def no_secrets(ref: Any) -> Any:
        raise LookupError("none")

    by_file = KubernetesAdapter(
        AdapterContext(source="by-file", domain="default", secrets=no_secrets, timeout=10),
        KubernetesConfig.model_validate(
            {"auth": {"kubeconfig": str(kubeconfig), "context": "sim-ctx"}}
        ),
    )
    try:
        assert len([j async for j in by_file.list_jobs()]) == 1
        health = await by_file.check()
        assert health.status == "ok" and "simulator" in health.message
    finally:
        await by_file.aclose()
    bad_ctx = KubernetesAdapter(
        AdapterContext(source="bad-ctx", domain="default", secrets=no_secrets, timeout=10),
        KubernetesConfig.model_validate(
            {"auth": {"kubeconfig": str(kubeconfig), "context": "nope"}}
        ),
    )
    try:
        with pytest.raises(AdapterAuthError, match="nope"):
            await bad_ctx.check()
    finally:
        await bad_ctx.aclose()
    missing = connect(sim, TOKEN, source="missing")
    object.__setattr__(missing.ctx, "secrets", no_secrets)
    try:
        with pytest.raises(AdapterAuthError, match="env:ACCORD_SECRET_CONTRACT_K8S_TOKEN"):
            await missing.check()
    finally:
        await missing.aclose()


async def test_blocking_calls_stay_off_the_event_loop_and_the_default_limiter(
    sim: KubeSimulator, adapter_for: Connect
) -> None:
    sim.state.add_cronjob("etl", "load", "0 3 * * *")
    adapter = adapter_for()
    limiter = anyio.to_thread.current_default_thread_limiter()
    ticks = 0
    stop = anyio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        assert limiter.borrowed_tokens == 0
        await adapter.check()
        assert [j async for j in adapter.list_jobs()]
        stop.set()
    assert ticks > 1, "the loop kept running while the client worked"
    names = {t.name for t in threading.enumerate()}
    assert any(n.startswith("k8s-jobs-") for n in names), "watches run on threads of their own"
    assert limiter.borrowed_tokens == 0


def test_manual_job_is_built_like_kubectl_create_job_from() -> None:
    cronjob = {
        "metadata": {"name": "x" * 52, "namespace": "etl", "uid": "u-1"},
        "spec": {
            "jobTemplate": {
                "metadata": {"labels": {"a": "b"}, "annotations": {"c": "d"}},
                "spec": {"backoffLimit": 1, "template": {"spec": {"containers": []}}},
            }
        },
    }
    body = manual_job(cronjob, source="k8s-prod")
    assert len(body["metadata"]["name"]) <= 63
    assert body["metadata"]["annotations"] == {
        "c": "d",
        "cronjob.kubernetes.io/instantiate": "manual",
        "accord.dev/source": "k8s-prod",
    }
    assert body["metadata"]["labels"] == {"a": "b"}
    assert body["spec"]["backoffLimit"] == 1
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": "x" * 52,
            "uid": "u-1",
            "controller": True,
        }
    ]


async def test_garbage_collected_jobs_leave_no_bookkeeping_behind(
    sim: KubeSimulator, adapter_for: Connect
) -> None:
    """What the cache keeps per Job ends with the Job; only its run record stays."""
    st = sim.state
    cj = st.add_cronjob("etl", "often", "* * * * *", history=(1, 1))
    adapter = adapter_for()
    _, cursor = await drain(adapter, None)
    minute_runs(st, cj, 30)

    async def all_reported() -> bool:
        runs, _ = await drain(adapter, cursor)
        return sum(r.state == RunState.SUCCESS for r in runs) == 30

    await eventually(all_reported, "thirty successful runs")
    cache = adapter.cache
    with cache.lock:
        assert sum("/missed:" not in r for r in cache.records) == 30, "every run stays"
        assert len(cache.jobs) <= 2, "the simulator keeps the history limit"
        assert len(cache._job_owner) <= 2, "owners of deleted Jobs are forgotten"


async def test_collected_runs_are_forgotten_only_after_the_gateway_stored_them(
    sim: KubeSimulator, adapter_for: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache does not hold every Job it ever saw: once the sync's cursor has passed a
    finished run whose Job the cluster collected, the run is forgotten (all but the
    newest few); a run not yet delivered is never forgotten, however many there are."""
    monkeypatch.setattr("adapters.kubernetes._cache._KEEP_GONE", 5)
    st = sim.state
    cj = st.add_cronjob("etl", "often", "* * * * *", history=(1, 1))
    adapter = adapter_for()
    _, cursor = await drain(adapter, None)
    made = minute_runs(st, cj, 30)

    async def all_reported() -> list[RunRecord] | None:
        # Asked again and again from the same cursor: nothing is acknowledged yet.
        runs, _ = await drain(adapter, cursor)
        done = {r.native_id for r in runs if r.state == RunState.SUCCESS}
        return runs if done >= set(made) else None

    await eventually(all_reported, "thirty successful runs")
    runs, stored = await drain(adapter, cursor)
    assert {r.native_id for r in runs} >= set(made), "nothing forgotten before it is stored"
    again, stored = await drain(adapter, stored)  # the gateway stored them: forget
    assert again == []
    with adapter.cache.lock:
        kept = [r for r in adapter.cache.records if "/missed:" not in r]
    assert len(kept) <= 5 + 2, kept  # the newest collected ones and the live Jobs
    recent = await adapter.get_runs(made[-3:])
    assert [r.state for r in recent] == [RunState.SUCCESS] * 3
    assert await adapter.get_runs(made[:1]) == []
    # Later runs are reported as before.
    (nxt,) = minute_runs(st, cj, 1)

    async def the_next() -> list[RunRecord] | None:
        runs, _ = await drain(adapter, stored)
        return [r for r in runs if r.native_id == nxt] or None

    (later,) = await eventually(the_next, "the next run")
    assert later.state == RunState.SUCCESS
    # A deleted CronJob leaves nothing of its schedule bookkeeping behind.
    uid = cj["metadata"]["uid"]
    with adapter.cache.lock:
        assert uid in adapter.cache._fired
    st.delete("cronjobs", "etl", "often")

    async def cleaned() -> bool:
        await drain(adapter, stored)
        with adapter.cache.lock:
            kept = (adapter.cache._fired, adapter.cache._first_seen, adapter.cache._due)
            return all(uid not in k for k in kept)

    await eventually(cleaned, "the deleted CronJob's bookkeeping gone")
