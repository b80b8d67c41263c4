"""The Jenkins adapter against the Jenkins simulator over real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.jenkins import JenkinsAdapter
from adapters.jenkins.cron import next_fire, parse_spec
from adapters.testing.jenkins_sim import (
    JenkinsSimulator,
    SimState,
    cause_remote,
    cause_scm,
    cause_timer,
    cause_user,
)
from gateway.model import (
    ActionNotSupported,
    AdapterAuthError,
    AdapterUnavailable,
    EdgeKind,
    HealthStatus,
    InvalidResponse,
    JobRecord,
    NodeKind,
    NotFound,
    RunPage,
    RunRecord,
    RunState,
    Trigger,
)

from .conftest import PASSWORD, TOKEN, AdapterFactory

pytestmark = pytest.mark.anyio


def _seed(state: SimState) -> None:
    state.add_folder("team", "The team's folder")
    state.add_job(
        "team/app/build",
        spec="H 2 * * *",
        description="Compile",
        downstream=["team/app/test"],
        parameters={"BRANCH": "main"},
    )
    state.add_job("team/app/test", downstream=["team/app/deploy"])
    state.add_job("team/app/deploy", "pipeline", stages=["Plan", "Apply"])
    state.add_job("ops/nightly", "pipeline", spec="TZ=Europe/Berlin\nH 2 * * *", stages=["Run"])
    state.add_job("ops/old", spec="@daily", disabled=True)
    state.add_job("ops/broken-spec", spec="H 25 * * *")
    state.add_branch("team/web", "feature/x", stages=["Build"])


async def _jobs(adapter: JenkinsAdapter) -> dict[str, JobRecord]:
    return {j.native_id: j async for j in adapter.list_jobs()}


def _runs(page: RunPage) -> dict[str, RunRecord]:
    return {r.native_id: r for r in page.runs}


def _start(state: SimState, path: str, cause: dict[str, object] | None = None) -> int:
    item, _ = state.enqueue(path, cause or cause_timer())
    build = state.start(item.id)
    assert build is not None
    return build.number


# -- inventory ----------------------------------------------------------------------------------
async def test_inventory_walks_folders_and_multibranch(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    adapter = make_adapter()
    jobs = await _jobs(adapter)
    assert set(jobs) == state.job_paths()
    build = jobs["team/app/build"]
    assert build.native_type == "freestyle"
    assert build.description == "Compile"
    assert build.url is not None and build.url.endswith("/job/team/job/app/job/build/")
    assert build.labels == {"folder": "team/app"}
    assert build.attributes["parameters"] == ["BRANCH"]
    assert jobs["team/app/deploy"].native_type == "pipeline"
    branch = jobs["team/web/feature%2Fx"]
    assert branch.native_type == "multibranch-branch"
    assert branch.name == "feature/x"
    assert jobs["ops/old"].paused is True
    assert jobs["ops/old"].next_run_at is None
    assert jobs["team/app/build"].paused is False


async def test_inventory_schedules_resolve_h_and_zones(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    before = datetime.now(UTC)
    jobs = await _jobs(make_adapter())
    after = datetime.now(UTC)
    build = jobs["team/app/build"]
    assert build.schedule is not None
    assert build.schedule.expression == "H 2 * * *"
    resolved = parse_spec("H 2 * * *", "team/app/build")
    assert resolved.resolved in (build.schedule.text or "")
    assert build.next_run_at is not None
    assert build.next_run_at in {next_fire(resolved, before), next_fire(resolved, after)}
    nightly = jobs["ops/nightly"]
    assert nightly.schedule is not None and nightly.schedule.timezone == "Europe/Berlin"
    assert nightly.next_run_at is not None
    broken = jobs["ops/broken-spec"]
    assert broken.next_run_at is None
    assert broken.schedule is not None and "rejects" in (broken.schedule.text or "")
    assert any("invalid timer spec" in p for p in broken.problems)


async def test_inventory_costs_one_tree_request_and_reuses_configs(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    for i in range(30):
        state.add_job(f"f{i % 3}/g{i % 2}/job-{i}", spec="H * * * *")
    adapter = make_adapter()
    await _jobs(adapter)
    assert adapter.request_count == 1 + 30  # the tree, then each config.xml once
    before = adapter.request_count
    await _jobs(adapter)
    assert adapter.request_count - before == 1  # configs are reused


async def test_deep_folders_take_a_request_per_level_group(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    state.add_job("a/b/c/d/e/f/g/deep")
    state.add_job("top")
    adapter = make_adapter(folderDepth=3)
    jobs = await _jobs(adapter)
    assert set(jobs) == {"a/b/c/d/e/f/g/deep", "top"}
    # levels 1-3 with the root, 4-6 from a/b/c, 7-8 from a/b/c/d/e/f; + 2 config.xml
    assert adapter.request_count == 3 + 2


async def test_include_and_exclude(state: SimState, make_adapter: AdapterFactory) -> None:
    _seed(state)
    adapter = make_adapter(include=["team/*"], exclude=["team/web/*"])
    assert set(await _jobs(adapter)) == {"team/app/build", "team/app/test", "team/app/deploy"}
    with pytest.raises(NotFound):
        await adapter.pause("ops/old")


# -- runs ---------------------------------------------------------------------------------------
async def test_runs_first_sync_then_only_new_builds(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    state.run("team/app/build", "SUCCESS", cause=cause_timer())
    state.run("ops/nightly", "FAILURE", cause=cause_user("alice", "Alice"))
    adapter = make_adapter()
    first = await adapter.list_runs(None)
    runs = _runs(first)
    assert runs["team/app/build#1"].state == RunState.SUCCESS
    assert runs["team/app/build#1"].trigger == Trigger.SCHEDULE
    nightly = runs["ops/nightly#1"]
    assert (nightly.state, nightly.native_state) == (RunState.FAILED, "FAILURE")
    assert (nightly.trigger, nightly.actor) == (Trigger.MANUAL, "alice")
    assert nightly.started_at is not None and nightly.ended_at is not None
    # the SUCCESS queued team/app/test with an upstream cause
    queued = runs["team/app/test#queue:2"]
    assert (queued.state, queued.trigger) == (RunState.QUEUED, Trigger.UPSTREAM)
    assert queued.message == "Waiting for next available executor"

    before = adapter.request_count
    again = await adapter.list_runs(first.cursor)
    assert adapter.request_count - before == 2  # the tree and the queue: nothing else
    assert set(_runs(again)) == {"team/app/test#queue:2"}  # old builds are not re-read

    number = _start(state, "ops/nightly", cause_scm())
    third = await adapter.list_runs(again.cursor)
    running = _runs(third)[f"ops/nightly#{number}"]
    assert (running.state, running.native_state) == (RunState.RUNNING, "BUILDING")
    assert running.trigger == Trigger.API  # an SCM change: an external system asked
    assert running.ended_at is None
    state.finish("ops/nightly", number, "ABORTED")
    fourth = await adapter.list_runs(third.cursor)
    assert _runs(fourth)[f"ops/nightly#{number}"].state == RunState.CANCELLED


async def test_queue_item_that_starts_ends_as_skipped_pointing_at_its_build(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    item, _ = state.enqueue("team/app/test", cause_remote("10.0.0.9", "deploy hook"))
    adapter = make_adapter()
    page = await adapter.list_runs(None)
    qrun = _runs(page)[f"team/app/test#queue:{item.id}"]
    assert (qrun.trigger, qrun.state) == (Trigger.API, RunState.QUEUED)
    build = state.start(item.id)
    assert build is not None
    page2 = await adapter.list_runs(page.cursor)
    runs = _runs(page2)
    left = runs[f"team/app/test#queue:{item.id}"]
    assert left.state == RunState.SKIPPED
    assert left.message is not None and f"#{build.number}" in left.message
    assert runs[f"team/app/test#{build.number}"].state == RunState.RUNNING


async def test_stages_become_steps_and_input_waits(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    state.run("team/app/deploy", "FAILURE", failed_stage=0)
    number = _start(state, "ops/nightly")
    state.pause_for_input("ops/nightly", number)
    adapter = make_adapter()
    runs = _runs(await adapter.list_runs(None))
    steps = runs["team/app/deploy#1"].steps
    assert steps is not None
    assert [(s.name, s.state) for s in steps] == [
        ("Plan", RunState.FAILED),
        ("Apply", RunState.SKIPPED),
    ]
    waiting = runs[f"ops/nightly#{number}"]
    assert waiting.state == RunState.WAITING
    assert waiting.steps is not None and waiting.steps[0].state == RunState.WAITING
    assert runs[f"ops/nightly#{number}"].native_state == "PAUSED_PENDING_INPUT"


async def test_stage_requests_stay_within_budget(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    state.add_job("p", "pipeline", stages=["S"])
    for _ in range(6):
        state.run("p", "SUCCESS")
    adapter = make_adapter(stageRequestsPerSync=2)
    runs = _runs(await adapter.list_runs(None))
    with_steps = sorted(r.native_id for r in runs.values() if r.steps is not None)
    assert with_steps == ["p#5", "p#6"]  # the newest first
    assert adapter.request_count == 2 + 2


async def test_upstream_causes_make_edges_and_lineage(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    state.run("team/app/build", "SUCCESS")
    test_item = next(q for q in state.queue.values() if q.job.full_name == "team/app/test")
    test_build = state.start(test_item.id)
    assert test_build is not None
    state.finish("team/app/test", test_build.number, "SUCCESS")
    adapter = make_adapter()
    jobs = await _jobs(adapter)
    page = await adapter.list_runs(None)
    triggered = [e for e in page.edges if e.kind == EdgeKind.TRIGGERED]
    assert [(e.src.id, e.dst.id) for e in triggered] == [("team/app/build#1", "team/app/test#1")]
    assert triggered[0].src.kind == NodeKind.RUN
    edges = await adapter.lineage(jobs["team/app/test"])
    pairs = {(e.src.id, e.dst.id) for e in edges}
    assert pairs == {("team/app/build", "team/app/test"), ("team/app/test", "team/app/deploy")}
    assert all(e.kind == EdgeKind.DEPENDS_ON for e in edges)
    # the pipeline exports no upstream projects: its edge is learned from observed causes
    deploy_item = next(q for q in state.queue.values() if q.job.full_name == "team/app/deploy")
    state.start(deploy_item.id)
    await adapter.list_runs(page.cursor)
    deploy_edges = await adapter.lineage(jobs["team/app/deploy"])
    assert any(
        (e.src.id, e.dst.id) == ("team/app/test", "team/app/deploy") and "observed" in e.evidence
        for e in deploy_edges
    )


async def test_more_builds_than_the_window_are_all_reported(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    state.add_job("busy")
    state.run("busy")
    adapter = make_adapter(maxBuildsPerJob=3)
    page = await adapter.list_runs(None)
    for _ in range(7):
        state.run("busy", "FAILURE")
    before = adapter.request_count
    page2 = await adapter.list_runs(page.cursor)
    assert sorted(_runs(page2)) == sorted(f"busy#{n}" for n in range(2, 9))
    assert adapter.request_count - before == 3  # tree, queue, one allBuilds range


async def test_builds_that_start_during_the_gap_fill_do_not_hide_older_ones(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    # allBuilds is addressed by index: builds that start between the window read and the
    # gap-fill read shift the range. Found by killing the gateway mid-sync under load
    # (tests/reliability): the oldest builds after the cursor were never reported.
    state.add_job("busy")
    state.run("busy")
    adapter = make_adapter(maxBuildsPerJob=3)
    page = await adapter.list_runs(None)
    for _ in range(7):
        state.run("busy", "FAILURE")
    read_job = adapter.client.job

    async def job_while_builds_start(path: str, tree: str) -> dict[str, Any]:
        if state.job("busy").next_number == 9:
            state.run("busy")  # two builds start just before the gap-fill request
            state.run("busy")
        return await read_job(path, tree)

    adapter.client.job = job_while_builds_start  # type: ignore[method-assign]
    page2 = await adapter.list_runs(page.cursor)
    reported = set(_runs(page2))
    assert {f"busy#{n}" for n in range(2, 9)} <= reported, sorted(reported)


async def test_get_runs(state: SimState, make_adapter: AdapterFactory) -> None:
    _seed(state)
    state.run("ops/nightly", "SUCCESS")
    item, _ = state.enqueue("ops/old", cause_user("bob"))
    cancelled, _ = state.enqueue("team/app/deploy", cause_user("bob"))
    state.cancel(cancelled.id)
    adapter = make_adapter()
    got = await adapter.get_runs(
        [
            "ops/nightly#1",
            f"ops/old#queue:{item.id}",
            f"team/app/deploy#queue:{cancelled.id}",
            "ops/nightly#99",
            "nope#1",
            "not-a-run-id",
        ]
    )
    assert [r.native_id for r in got] == [
        "ops/nightly#1",
        f"ops/old#queue:{item.id}",
        f"team/app/deploy#queue:{cancelled.id}",
    ]
    assert got[0].state == RunState.SUCCESS and got[0].steps is not None
    assert got[1].state == RunState.QUEUED and got[1].actor == "bob"
    assert got[2].state == RunState.CANCELLED


# -- actions ------------------------------------------------------------------------------------
async def test_trigger_with_parameters_returns_the_queued_run(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    adapter = make_adapter()
    await _jobs(adapter)
    run = await adapter.trigger("team/app/build", {"BRANCH": "release/1.2"})
    assert run.state == RunState.QUEUED
    assert run.native_id.startswith("team/app/build#queue:")
    assert (run.trigger, run.actor) == (Trigger.MANUAL, "accord")
    item = next(iter(state.queue.values()))
    assert item.params == {"BRANCH": "release/1.2"}


async def test_trigger_follows_the_queue_item_to_its_build(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    adapter = make_adapter(triggerWait="5s")

    def executor() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with state.lock:
                if state.queue:
                    state.start(next(iter(state.queue)))
                    return
            time.sleep(0.05)

    worker = threading.Thread(target=executor)
    worker.start()
    run = await adapter.trigger("ops/nightly", {})
    worker.join()
    assert run.native_id == "ops/nightly#1"
    assert run.state == RunState.RUNNING


async def test_trigger_refusals(state: SimState, make_adapter: AdapterFactory) -> None:
    _seed(state)
    adapter = make_adapter()
    await _jobs(adapter)
    with pytest.raises(ActionNotSupported, match="takes no parameters"):
        await adapter.trigger("team/app/test", {"X": "1"})
    with pytest.raises(ActionNotSupported, match="not buildable"):
        await adapter.trigger("ops/old", {})
    with pytest.raises(NotFound):
        await adapter.trigger("no/such/job", {})
    assert not state.queue


async def test_cancel_queue_item_and_running_build(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    adapter = make_adapter()
    run = await adapter.trigger("team/app/test", {})
    await adapter.cancel(run.native_id)
    assert not state.queue
    assert (await adapter.get_runs([run.native_id]))[0].state == RunState.CANCELLED
    with pytest.raises(NotFound):
        await adapter.cancel("team/app/test#queue:999")
    number = _start(state, "ops/nightly")
    await adapter.cancel(f"ops/nightly#{number}")
    assert state.build("ops/nightly", number).result == "ABORTED"
    with pytest.raises(NotFound):
        await adapter.cancel("ops/nightly#77")
    with pytest.raises(NotFound):
        await adapter.cancel("garbage")


async def test_cancel_of_a_queue_item_that_became_a_build_stops_the_build(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    adapter = make_adapter()
    run = await adapter.trigger("ops/nightly", {})
    _, _, qid = run.native_id.partition("#queue:")
    build = state.start(int(qid))
    assert build is not None
    await adapter.cancel(run.native_id)
    assert build.result == "ABORTED"


async def test_pause_and_resume(state: SimState, make_adapter: AdapterFactory) -> None:
    _seed(state)
    adapter = make_adapter()
    await adapter.pause("ops/nightly")
    assert (await _jobs(adapter))["ops/nightly"].paused is True
    assert (await _jobs(adapter))["ops/nightly"].next_run_at is None
    await adapter.resume("ops/nightly")
    assert (await _jobs(adapter))["ops/nightly"].paused is False
    with pytest.raises(NotFound):
        await adapter.pause("ops/missing")


# -- auth and CSRF --------------------------------------------------------------------------------
async def test_api_token_needs_no_crumb(
    state: SimState, sim: JenkinsSimulator, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    adapter = make_adapter()
    await adapter.pause("ops/nightly")
    assert not any("crumbIssuer" in path for _, path in sim.requests)


async def test_password_auth_fetches_a_crumb_and_keeps_the_session(
    state: SimState, sim: JenkinsSimulator, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    adapter = make_adapter(username="alice", secret=PASSWORD)
    await adapter.pause("ops/nightly")
    await adapter.resume("ops/nightly")
    assert state.job("ops/nightly").disabled is False
    crumbs = [p for _, p in sim.requests if "crumbIssuer" in p]
    assert len(crumbs) == 1  # fetched once, reused with the session cookie
    run = await adapter.trigger("ops/nightly", {})
    assert run.state == RunState.QUEUED


async def test_crumb_demanded_even_from_tokens(
    state: SimState, sim: JenkinsSimulator, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    state.faults.crumb_even_for_tokens = True
    adapter = make_adapter()
    await adapter.pause("ops/nightly")
    assert state.job("ops/nightly").disabled is True


async def test_wrong_credentials(state: SimState, make_adapter: AdapterFactory) -> None:
    _seed(state)
    adapter = make_adapter(secret="wrong-token-value")
    with pytest.raises(AdapterAuthError, match="rejected the credentials") as info:
        await adapter.check()
    assert "wrong-token-value" not in str(info.value)
    with pytest.raises(AdapterAuthError):
        await _jobs(adapter)
    state.faults.reject_all_credentials = True
    with pytest.raises(AdapterAuthError):
        await make_adapter().list_runs(None)


async def test_missing_secret_is_an_auth_error(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter()
    adapter.ctx.secrets.values.clear()  # type: ignore[attr-defined]
    with pytest.raises(AdapterAuthError, match="env:JENKINS_TOKEN"):
        await adapter.check()


# -- faults ---------------------------------------------------------------------------------------
async def test_check_reports_version_and_simulator_label(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    health = await make_adapter().check()
    assert health.status == HealthStatus.OK
    assert health.details["version"] == state.version
    assert "simulator" in health.message.lower()


async def test_503_with_retry_after(state: SimState, make_adapter: AdapterFactory) -> None:
    _seed(state)
    state.faults.unavailable = 1
    state.faults.retry_after = 42
    adapter = make_adapter()
    with pytest.raises(AdapterUnavailable) as info:
        await _jobs(adapter)
    assert info.value.retry_after == 42
    assert set(await _jobs(adapter)) == state.job_paths()  # next time it works


async def test_html_instead_of_json(state: SimState, make_adapter: AdapterFactory) -> None:
    state.faults.html = 1
    with pytest.raises(InvalidResponse, match="expected JSON"):
        await make_adapter().list_runs(None)


async def test_dead_controller_is_unavailable(make_adapter: AdapterFactory) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    adapter = make_adapter(url=f"http://127.0.0.1:{port}")
    with pytest.raises(AdapterUnavailable, match="cannot reach"):
        await adapter.check()


async def test_job_renamed_between_syncs(state: SimState, make_adapter: AdapterFactory) -> None:
    _seed(state)
    state.run("team/app/test")
    adapter = make_adapter()
    await _jobs(adapter)
    page = await adapter.list_runs(None)
    state.rename("team/app/test", "integration-test")
    state.run("team/app/integration-test", "FAILURE")
    jobs = await _jobs(adapter)
    assert "team/app/test" not in jobs and "team/app/integration-test" in jobs
    page2 = await adapter.list_runs(page.cursor)
    runs = _runs(page2)
    assert runs["team/app/integration-test#2"].state == RunState.FAILED
    assert "team/app/test" not in (page2.cursor or "")
    state.run("team/app/integration-test")
    page3 = await adapter.list_runs(page2.cursor)
    builds = [r.native_id for r in page3.runs if "#queue:" not in r.native_id]
    assert builds == ["team/app/integration-test#3"]


async def test_build_numbers_going_backwards(state: SimState, make_adapter: AdapterFactory) -> None:
    state.add_job("reset-me")
    for _ in range(5):
        state.run("reset-me")
    adapter = make_adapter()
    page = await adapter.list_runs(None)
    state.reset_builds("reset-me")
    time.sleep(0.01)
    state.run("reset-me", "FAILURE")
    page2 = await adapter.list_runs(page.cursor)
    assert _runs(page2)["reset-me#1"].state == RunState.FAILED
    # even when the new numbering has caught up with the old one
    for _ in range(6):
        state.run("reset-me")
    state.reset_builds("reset-me")
    time.sleep(0.01)
    for _ in range(7):
        state.run("reset-me", "UNSTABLE")
    page3 = await adapter.list_runs(page2.cursor)
    page3_runs = _runs(page3)
    assert {r.native_id for r in page3.runs} == {f"reset-me#{n}" for n in range(1, 8)}
    assert all(r.state == RunState.FAILED for r in page3_runs.values())
    page4 = await adapter.list_runs(page3.cursor)
    assert not page4.runs


async def test_queue_item_that_vanishes(state: SimState, make_adapter: AdapterFactory) -> None:
    _seed(state)
    adapter = make_adapter()
    run = await adapter.trigger("ops/nightly", {})
    page = await adapter.list_runs(None)
    assert _runs(page)[run.native_id].state == RunState.QUEUED
    state.faults.vanish_on_start = True
    state.start(next(iter(state.queue)))
    page2 = await adapter.list_runs(page.cursor)
    gone = _runs(page2)[run.native_id]
    assert (gone.state, gone.native_state) == (RunState.CANCELLED, "VANISHED")
    assert (await adapter.get_runs([run.native_id]))[0].state == RunState.CANCELLED


async def test_left_queue_item_expired_is_found_by_its_build(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    _seed(state)
    adapter = make_adapter()
    run = await adapter.trigger("ops/nightly", {})
    build = state.start(next(iter(state.queue)))
    assert build is not None
    state.advance(6 * 60)  # left items are forgotten after 5 minutes
    got = (await adapter.get_runs([run.native_id]))[0]
    assert got.state == RunState.SKIPPED
    assert got.message is not None and f"ops/nightly#{build.number}" in got.message


async def test_changed_timer_spec_is_read_again_once_the_config_is_old(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    state.add_job("cron-job", spec="H 2 * * *")
    adapter = make_adapter(configRefresh="0s")
    assert (await _jobs(adapter))["cron-job"].schedule is not None
    state.job("cron-job").spec = "H/5 * * * *"
    schedule = (await _jobs(adapter))["cron-job"].schedule
    assert schedule is not None and schedule.expression == "H/5 * * * *"
    cached = make_adapter()
    await _jobs(cached)
    state.job("cron-job").spec = "0 0 * * *"
    schedule = (await _jobs(cached))["cron-job"].schedule
    assert schedule is not None and schedule.expression == "H/5 * * * *"  # within configRefresh


async def test_a_rotated_token_is_read_again_after_a_rejection(
    state: SimState, make_adapter: AdapterFactory
) -> None:
    adapter = make_adapter(secret="old-token")
    with pytest.raises(AdapterAuthError):
        await adapter.check()
    adapter.ctx.secrets.values["JENKINS_TOKEN"] = TOKEN  # type: ignore[attr-defined]
    assert (await adapter.check()).status == HealthStatus.OK
