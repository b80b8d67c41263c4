"""The Terraform Cloud adapter against the simulator over real HTTP."""

from __future__ import annotations

import json

import pytest

from adapters.terraform.adapter import SIGNATURE_HEADER, signature
from adapters.testing.tfc_sim import SimState, TfcSimulator
from gateway.model import (
    ActionNotSupported,
    AdapterAuthError,
    AdapterUnavailable,
    EdgeKind,
    NotFound,
    RunState,
    Trigger,
)

from .conftest import HOOK_TOKEN, NARROW_TOKEN, ORG, AdapterFactory, Org

pytestmark = pytest.mark.anyio


async def _jobs(adapter):  # type: ignore[no-untyped-def]
    return {j.native_id: j async for j in adapter.list_jobs()}


async def test_inventory_shows_workspaces_with_their_settings(
    make_adapter: AdapterFactory, org: Org
) -> None:
    adapter = make_adapter()
    health = await adapter.check()
    assert "simulator" in health.message and ORG in health.message
    jobs = await _jobs(adapter)
    # Only the configured organization; the token sees no other.
    assert set(jobs) == {org.network.id, org.app.id, org.staging.id, org.legacy.id}
    net = jobs[org.network.id]
    assert net.name == "network-prod" and net.native_type == "workspace"
    assert net.labels == {"env": "prod", "network": "true", "organization": ORG, "project": "Core"}
    assert net.attributes["vcs_repo"] == "acme/network"
    assert net.attributes["vcs_branch"] == "main"
    assert net.attributes["execution_mode"] == "remote"
    assert net.attributes["auto_apply"] is False and net.paused is False
    assert net.description == "VPCs and peering"
    assert net.url is not None and net.url.endswith(f"/app/{ORG}/workspaces/network-prod")
    assert jobs[org.staging.id].attributes["auto_apply"] is True
    assert jobs[org.legacy.id].problems and "local execution" in jobs[org.legacy.id].problems[0]


async def test_current_run_is_part_of_the_inventory(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    run = state.create_run(org.app.id)
    state.plan(run.id)
    jobs = await _jobs(make_adapter())
    assert jobs[org.app.id].attributes["current_run"] == run.id
    assert jobs[org.app.id].attributes["current_run_status"] == "planned"


async def test_a_renamed_workspace_keeps_its_id(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    adapter = make_adapter()
    before = await _jobs(adapter)
    state.rename_workspace(org.app.id, "shop-prod")
    after = await _jobs(adapter)
    assert set(after) == set(before)
    assert after[org.app.id].name == "shop-prod"
    assert after[org.app.id].url is not None and after[org.app.id].url.endswith("/shop-prod")


async def test_plan_waits_for_confirmation_then_applies(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    adapter = make_adapter()
    await _jobs(adapter)
    cursor = (await adapter.list_runs(None)).cursor
    queued = await adapter.trigger(org.app.id, {"message": "bump instance size"})
    assert queued.state == RunState.QUEUED and queued.native_state == "pending"
    assert queued.job_native_id == org.app.id and queued.trigger == Trigger.API
    assert queued.message is not None and queued.message.startswith("bump instance size")

    state.plan(queued.native_id)
    page = await adapter.list_runs(cursor)
    run = {r.native_id: r for r in page.runs}[queued.native_id]
    assert run.state == RunState.WAITING and run.native_state == "planned"
    assert run.actor == "accord-bot"
    assert run.started_at is not None and run.ended_at is None
    assert run.url is not None and run.url.endswith(f"/workspaces/app-prod/runs/{run.native_id}")
    assert run.steps is not None
    steps = {s.name: s for s in run.steps}
    assert steps["Plan"].state == RunState.SUCCESS and steps["Plan"].ended_at is not None
    assert steps["Apply"].state == RunState.QUEUED

    await adapter.apply(queued.native_id)
    assert state.runs[queued.native_id].status == "apply_queued"
    state.finish_apply(queued.native_id)
    (done,) = await adapter.get_runs([queued.native_id])
    assert done.state == RunState.SUCCESS and done.native_state == "applied"
    assert done.ended_at is not None
    assert {s.name: s.state for s in done.steps or ()} == {
        "Plan": RunState.SUCCESS,
        "Apply": RunState.SUCCESS,
    }


async def test_apply_refuses_a_run_that_does_not_wait(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    adapter = make_adapter()
    run = state.create_run(org.app.id)
    with pytest.raises(ActionNotSupported, match="pending"):
        await adapter.apply(run.id)
    with pytest.raises(NotFound):
        await adapter.apply("run-doesnotexist0000")


async def test_discard_and_cancel(make_adapter: AdapterFactory, state: SimState, org: Org) -> None:
    adapter = make_adapter()
    waiting = state.create_run(org.app.id)
    state.plan(waiting.id)
    with pytest.raises(ActionNotSupported, match="discard"):
        await adapter.cancel(waiting.id)  # a plan awaiting confirmation is discarded
    await adapter.discard(waiting.id)
    assert state.runs[waiting.id].status == "discarded"

    pending = state.create_run(org.network.id)
    await adapter.cancel(pending.id)  # not started yet: Terraform Cloud discards it
    assert state.runs[pending.id].status == "discarded"

    applying = state.create_run(org.staging.id)
    state.plan(applying.id)  # auto-apply: straight to apply_queued
    assert state.runs[applying.id].status == "apply_queued"
    await adapter.cancel(applying.id)
    (run,) = await adapter.get_runs([applying.id])
    assert run.state == RunState.CANCELLED and run.native_state == "canceled"
    with pytest.raises(ActionNotSupported, match="canceled"):
        await adapter.cancel(applying.id)


async def test_trigger_parameters(make_adapter: AdapterFactory, state: SimState, org: Org) -> None:
    adapter = make_adapter()
    destroy = await adapter.trigger(org.network.id, {"destroy": True})
    assert state.runs[destroy.native_id].is_destroy is True
    assert destroy.message is not None and "destroy" in destroy.message
    plan = await adapter.trigger(org.network.id, {"plan_only": "true"})
    assert state.runs[plan.native_id].plan_only is True
    with pytest.raises(ActionNotSupported, match="use 'destroy'"):
        await adapter.trigger(org.network.id, {"is_destroy": True})
    with pytest.raises(ActionNotSupported, match="target"):
        await adapter.trigger(org.network.id, {"target": "aws_instance.x"})
    with pytest.raises(ActionNotSupported, match="true or false"):
        await adapter.trigger(org.network.id, {"destroy": "maybe"})
    with pytest.raises(NotFound):
        await adapter.trigger("ws-doesnotexist0000", {})


async def test_plan_only_runs_are_not_hidden(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    adapter = make_adapter()
    speculative = state.create_run(org.app.id, plan_only=True, source="tfe-configuration-version")
    page = await adapter.list_runs(None)
    runs = {r.native_id: r for r in page.runs}
    assert speculative.id in runs
    assert runs[speculative.id].message is not None
    assert "plan only" in runs[speculative.id].message


async def test_lock_and_unlock_are_pause_and_resume(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    adapter = make_adapter()
    await adapter.pause(org.app.id)
    await adapter.pause(org.app.id)  # already locked: still what was asked
    assert state.workspaces[org.app.id].locked
    assert (await _jobs(adapter))[org.app.id].paused is True
    run = await adapter.trigger(org.app.id, {})
    with pytest.raises(Exception, match="locked"):
        state.plan(run.native_id)  # a locked workspace's runs wait
    await adapter.resume(org.app.id)
    await adapter.resume(org.app.id)
    assert (await _jobs(adapter))[org.app.id].paused is False
    state.set_lock(org.app.id, True, by="someone-else")
    with pytest.raises(ActionNotSupported, match="locked by someone else"):
        await adapter.resume(org.app.id)


async def test_run_triggers_are_lineage(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    adapter = make_adapter()
    jobs = await _jobs(adapter)
    edges = await adapter.lineage(jobs[org.app.id])
    assert [(e.kind, e.src.id, e.dst.id) for e in edges] == [
        (EdgeKind.DEPENDS_ON, org.network.id, org.app.id)
    ]
    assert "network-prod" in edges[0].evidence
    assert await adapter.lineage(jobs[org.network.id]) == []
    before = adapter.request_count
    await adapter.lineage(jobs[org.app.id])
    assert adapter.request_count == before, "run triggers are reused until refreshed"

    cursor = (await adapter.list_runs(None)).cursor
    upstream = state.create_run(org.network.id)
    state.plan(upstream.id)
    state.confirm(upstream.id, by="alice")
    state.finish_apply(upstream.id)
    page = await adapter.list_runs(cursor)
    downstream = [r for r in page.runs if r.job_native_id == org.app.id]
    assert len(downstream) == 1 and downstream[0].trigger == Trigger.UPSTREAM
    assert [(e.kind, e.src.id, e.dst.id) for e in page.edges] == [
        (EdgeKind.TRIGGERED, upstream.id, downstream[0].native_id)
    ]


async def test_run_trigger_requests_have_a_budget(make_adapter: AdapterFactory, org: Org) -> None:
    adapter = make_adapter(runTriggerRequestsPerSync=1)
    jobs = await _jobs(adapter)
    await adapter.lineage(jobs[org.network.id])
    before = adapter.request_count
    assert await adapter.lineage(jobs[org.app.id]) == []  # over budget: next inventory
    assert adapter.request_count == before
    jobs = await _jobs(adapter)
    assert len(await adapter.lineage(jobs[org.app.id])) == 1


async def test_a_sync_costs_two_run_list_requests(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    adapter = make_adapter()
    runs = [state.create_run(ws.id) for ws in (org.app, org.network, org.staging)]
    for r in runs:
        state.plan(r.id)
    page = await adapter.list_runs(None)
    before = adapter.request_count
    page = await adapter.list_runs(page.cursor)
    assert adapter.request_count - before == 2
    open_ids = [r.id for r in runs]
    before = adapter.request_count
    got = await adapter.get_runs(open_ids)
    assert {r.native_id for r in got} == set(open_ids)
    assert adapter.request_count == before, "non-final runs are answered from the list"
    state.discard(runs[0].id)  # leaves the non-final list: read by id
    await adapter.list_runs(page.cursor)
    before = adapter.request_count
    got = await adapter.get_runs([*open_ids, "run-unknownunknown00"])
    assert adapter.request_count - before == 2  # the discarded run and the unknown id
    states = {r.native_id: r.state for r in got}
    assert states == {
        runs[0].id: RunState.CANCELLED,
        runs[1].id: RunState.WAITING,
        runs[2].id: RunState.QUEUED,  # auto-apply: confirmed and queued for apply
    }


async def test_cursor_reports_runs_created_since(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    adapter = make_adapter(pageSize=2)
    done = state.create_run(org.app.id)
    state.plan(done.id, has_changes=False)
    first = await adapter.list_runs(None)
    assert done.id in {r.native_id for r in first.runs}
    new = []
    for _ in range(5):
        r = state.create_run(org.network.id)
        state.plan(r.id, has_changes=False)  # finished before the next sync
        new.append(r.id)
    second = await adapter.list_runs(first.cursor)
    assert {r.native_id for r in second.runs} == set(new)
    assert all(r.state == RunState.SUCCESS for r in second.runs)
    third = await adapter.list_runs(second.cursor)
    assert third.runs == ()


async def test_rate_limit_storms(
    make_adapter: AdapterFactory, state: SimState, sim: TfcSimulator, org: Org
) -> None:
    adapter = make_adapter()
    # Short resets are waited out.
    state.faults.rate_limited, state.faults.reset = 2, 0.05
    assert len(await _jobs(adapter)) == 4
    assert sim.rate_limited == 2
    # A storm longer than the retries ends the call with the reset as retry_after.
    state.faults.rate_limited = 10
    with pytest.raises(AdapterUnavailable) as exc:
        await _jobs(adapter)
    assert exc.value.retry_after == pytest.approx(0.05)
    state.faults.rate_limited = 0
    # A long reset is not waited for at all.
    state.faults.rate_limited, state.faults.reset = 1, 42.0
    before = sim.request_count
    with pytest.raises(AdapterUnavailable, match="rate limit") as exc:
        await _jobs(adapter)
    assert exc.value.retry_after == pytest.approx(42.0)
    assert sim.request_count - before == 1


async def test_the_run_list_limit_of_30_per_minute(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    adapter = make_adapter()
    cursor = None
    for _ in range(15):  # two run-list requests per sync
        cursor = (await adapter.list_runs(cursor)).cursor
    with pytest.raises(AdapterUnavailable) as exc:
        await adapter.list_runs(cursor)
    assert exc.value.retry_after is not None and 30 < exc.value.retry_after <= 60
    # Reading runs by id is not a run list: still allowed.
    run = state.create_run(org.app.id)
    assert [r.native_id for r in await adapter.get_runs([run.id])] == [run.id]


async def test_general_rate_limit_is_waited_out(
    make_adapter: AdapterFactory, state: SimState, sim: TfcSimulator, org: Org
) -> None:
    adapter = make_adapter()
    state.rate_per_second = 4  # a lower limit than the real 30/s, so the test is quick
    ids = []
    for _ in range(12):
        r = state.create_run(org.app.id)
        state.discard(r.id)
        ids.append(r.id)
    got = await adapter.get_runs(ids)  # one request per run: over the limit
    assert [r.native_id for r in got] == ids
    assert all(r.state == RunState.CANCELLED for r in got)
    assert sim.rate_limited > 0


async def test_credentials_and_visibility(make_adapter: AdapterFactory, org: Org) -> None:
    with pytest.raises(AdapterAuthError, match="401"):
        await _jobs(make_adapter(secret="wrong-token"))
    with pytest.raises(AdapterAuthError, match="may not see"):
        await make_adapter(organizations=["other-org"]).check()
    narrow = make_adapter(secret=NARROW_TOKEN)
    assert set(await _jobs(narrow)) == {org.app.id}
    with pytest.raises(NotFound):
        await narrow.pause(org.network.id)  # hidden workspaces answer 404


async def test_include_and_exclude(make_adapter: AdapterFactory, state: SimState, org: Org) -> None:
    adapter = make_adapter(exclude=["legacy-*", "app-staging"])
    assert set(await _jobs(adapter)) == {org.network.id, org.app.id}
    r = state.create_run(org.staging.id)
    assert r.id not in {x.native_id for x in (await adapter.list_runs(None)).runs}
    with pytest.raises(NotFound, match="not governed"):
        await adapter.trigger(org.staging.id, {})


async def test_notifications_are_verified(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    adapter = make_adapter()
    state.add_notification(org.app.id, "http://127.0.0.1:9/hooks/tfc-test", HOOK_TOKEN)
    run = state.create_run(org.app.id)
    state.plan(run.id)
    deliveries = state.take_deliveries()
    triggers = [d.json()["notifications"][0]["trigger"] for d in deliveries]
    assert triggers == ["run:created", "run:planning", "run:needs_attention"]
    hints = adapter.parse_webhook(deliveries[-1].headers, deliveries[-1].body)
    assert [(h.scope, h.ids) for h in hints] == [("run", (run.id,)), ("runs", ())]
    # Headers arrive lower-cased through the gateway.
    lower = {k.lower(): v for k, v in deliveries[0].headers.items()}
    assert adapter.parse_webhook(lower, deliveries[0].body)
    tampered = deliveries[-1].body.replace(b"needs_attention", b"completed")
    with pytest.raises(AdapterAuthError, match="does not match"):
        adapter.parse_webhook(deliveries[-1].headers, tampered)
    with pytest.raises(AdapterAuthError, match="no X-TFE-Notification-Signature"):
        adapter.parse_webhook({"Content-Type": "application/json"}, deliveries[-1].body)
    verification = json.dumps(
        {
            "payload_version": 1,
            "run_id": None,
            "notifications": [{"trigger": "verification", "message": "Verification of test"}],
        }
    ).encode()
    assert (
        adapter.parse_webhook({SIGNATURE_HEADER: signature(HOOK_TOKEN, verification)}, verification)
        == []
    )
    unsigned_source = make_adapter(notificationToken=None)
    with pytest.raises(AdapterAuthError, match="no notificationToken"):
        unsigned_source.parse_webhook(deliveries[-1].headers, deliveries[-1].body)


async def test_no_backfill_still_marks_where_new_runs_start(
    make_adapter: AdapterFactory, state: SimState, org: Org
) -> None:
    adapter = make_adapter(backfillRuns=0)
    old = state.create_run(org.app.id)
    state.discard(old.id)
    first = await adapter.list_runs(None)
    assert first.runs == ()
    new = state.create_run(org.network.id)
    second = await adapter.list_runs(first.cursor)
    assert [r.native_id for r in second.runs] == [new.id]
