"""The adapter contract suite: what every adapter must do.

``tests/contract/test_contract.py`` runs each check below for every registered adapter
type, through that type's harness (``adapters.testing.harness_<type>``). A third-party
adapter package can run the same checks by importing this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import cast

from gateway.model import (
    ActionNotSupported,
    AdapterInfo,
    Capability,
    JobRecord,
    NotFound,
    RunPage,
    RunRecord,
    RunState,
)

from .harness import ContractHarness, HarnessFactory

__all__ = ["CHECKS", "harness_for"]

Check = Callable[[ContractHarness], Awaitable[None]]
_MAX_PAGES = 200


def harness_for(type_: str) -> Callable[[], AbstractAsyncContextManager[ContractHarness]]:
    try:
        module = importlib.import_module(f"adapters.testing.harness_{type_}")
    except ModuleNotFoundError as exc:
        raise AssertionError(
            f"adapter type {type_!r} has no contract harness (adapters.testing.harness_{type_})"
        ) from exc
    return cast(HarnessFactory, module.harness)


async def _jobs(h: ContractHarness) -> list[JobRecord]:
    return [j async for j in h.adapter.list_jobs()]


async def _drain(h: ContractHarness, cursor: str | None) -> tuple[list[RunRecord], str | None]:
    runs: list[RunRecord] = []
    for _ in range(_MAX_PAGES):
        page: RunPage = await h.adapter.list_runs(cursor)
        runs.extend(page.runs)
        if page.cursor is not None:
            cursor = page.cursor
        if not page.more:
            return runs, cursor
    raise AssertionError(f"list_runs still says more=True after {_MAX_PAGES} pages")


def _push_only(h: ContractHarness) -> bool:
    """A source whose data only arrives by push (``polls = False``): the gateway never
    reads it, so there is nothing to list or re-read and no job to act on."""
    return Capability.PUSH in h.adapter.capabilities and not getattr(h.adapter, "polls", True)


async def _check_push_only(h: ContractHarness) -> None:
    """What a push-only adapter must do instead: report nothing of its own, keep the
    cursor, and refuse every action it does not have with a reason."""
    assert await _jobs(h) == [], "a push-only adapter lists no jobs of its own"
    page = await h.adapter.list_runs("c1")
    assert list(page.runs) == [] and not page.more and page.cursor in (None, "c1")
    assert await h.adapter.get_runs(["any"]) == []
    caps = h.adapter.capabilities
    for cap, call in (
        (Capability.TRIGGER, lambda: h.adapter.trigger("any", {})),
        (Capability.CANCEL, lambda: h.adapter.cancel("any")),
        (Capability.PAUSE, lambda: h.adapter.pause("any")),
        (Capability.RESUME, lambda: h.adapter.resume("any")),
    ):
        if cap not in caps:
            await _expect_unsupported(call())


async def check_info(h: ContractHarness) -> None:
    info = h.adapter.info
    assert isinstance(info, AdapterInfo)
    assert info.type and info.display_name
    if info.simulator:
        assert (
            "sim" in info.display_name.lower()
            or "fake" in info.display_name.lower()
            or ("demo" in info.display_name.lower())
        ), "a simulator must say so in its display name"
    # This source's capabilities: a subset of what the type may do, computed from its
    # settings the same way with or without an adapter instance.
    caps = h.adapter.capabilities
    assert caps <= type(h.adapter).info.capabilities, "capabilities beyond the type's info"
    for_config = getattr(type(h.adapter), "capabilities_for", None)
    config = getattr(h.adapter, "config", None)
    if callable(for_config) and config is not None:
        assert for_config(config) & type(h.adapter).info.capabilities == caps


async def check_inventory(h: ContractHarness) -> None:
    jobs = await _jobs(h)
    ids = [j.native_id for j in jobs]
    assert len(ids) == len(set(ids)), f"duplicate job ids: {ids}"
    assert set(ids) == h.job_ids()
    again = await _jobs(h)
    assert {j.native_id: j for j in again} == {j.native_id: j for j in jobs}, (
        "re-listing an unchanged source must yield equal records"
    )


async def check_runs_cursor(h: ContractHarness) -> None:
    if _push_only(h):
        return await _check_push_only(h)
    job = sorted(h.job_ids())[0]
    _, cursor = await _drain(h, None)
    ok_id = await h.run_job(job, RunState.SUCCESS)
    bad_id = await h.run_job(job, RunState.FAILED)
    runs, cursor2 = await _drain(h, cursor)
    latest = {r.native_id: r for r in runs}
    assert ok_id in latest and bad_id in latest, "runs finished after the cursor must appear"
    assert latest[ok_id].state == RunState.SUCCESS
    assert latest[bad_id].state == RunState.FAILED
    assert latest[ok_id].job_native_id == job
    assert all(r.native_state is not None for r in runs), "keep the native state"
    again, _ = await _drain(h, cursor2)
    assert ok_id not in {r.native_id for r in again if r.state != latest[ok_id].state}, (
        "a cursor must not return older changes as new states"
    )


async def check_get_runs(h: ContractHarness) -> None:
    if _push_only(h):
        return await _check_push_only(h)
    job = sorted(h.job_ids())[0]
    rid = await h.run_job(job, RunState.SUCCESS)
    got = await h.adapter.get_runs([rid, "no-such-run-id"])
    assert [r.native_id for r in got] == [rid]
    assert got[0].state == RunState.SUCCESS


async def check_actions(h: ContractHarness) -> None:
    if _push_only(h):
        return await _check_push_only(h)
    caps = h.adapter.capabilities
    job = sorted(h.job_ids())[0]
    if Capability.PAUSE in caps:
        await h.adapter.pause(job)
        assert {j.native_id: j.paused for j in await _jobs(h)}[job] is True
    else:
        await _expect_unsupported(h.adapter.pause(job))
    if Capability.RESUME in caps:
        await h.adapter.resume(job)
        assert {j.native_id: j.paused for j in await _jobs(h)}[job] is False
    else:
        await _expect_unsupported(h.adapter.resume(job))
    if Capability.TRIGGER in caps:
        params = h.trigger_params() if Capability.TRIGGER_PARAMS in caps else {}
        run = await h.adapter.trigger(job, params)
        assert run.job_native_id == job
        assert run.state in {RunState.QUEUED, RunState.RUNNING, RunState.SUCCESS, RunState.WAITING}
        if Capability.CANCEL in caps and not run.state.terminal:
            await h.adapter.cancel(run.native_id)
    else:
        await _expect_unsupported(h.adapter.trigger(job, {}))
    if Capability.CANCEL not in caps:
        await _expect_unsupported(h.adapter.cancel("any"))


async def _expect_unsupported(aw: Awaitable[object]) -> None:
    try:
        await aw
    except ActionNotSupported as exc:
        assert str(exc), "say why"
        return
    raise AssertionError("an action outside the capability flags must raise ActionNotSupported")


async def check_not_found(h: ContractHarness) -> None:
    caps = h.adapter.capabilities
    for cap, call in (
        (Capability.TRIGGER, lambda: h.adapter.trigger("no-such-job-xyz", {})),
        (Capability.PAUSE, lambda: h.adapter.pause("no-such-job-xyz")),
    ):
        if cap not in caps:
            continue
        try:
            await call()
        except NotFound:
            continue
        raise AssertionError(f"{cap} of an unknown job must raise NotFound")


async def check_removed_job(h: ContractHarness) -> None:
    if _push_only(h):
        return await _check_push_only(h)
    job = sorted(h.job_ids())[-1]
    await h.remove_job(job)
    ids = {j.native_id for j in await _jobs(h)}
    assert job not in ids and ids == h.job_ids()


CHECKS: dict[str, Check] = {
    "info": check_info,
    "inventory": check_inventory,
    "runs_cursor": check_runs_cursor,
    "get_runs": check_get_runs,
    "actions": check_actions,
    "not_found": check_not_found,
    "removed_job": check_removed_job,
}
