"""One sync pass per source at a time, concurrent requests coalesced, stop cancels."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from adapters.testing.fake import FakeSystem, systems
from gateway.model.errors import AdapterUnavailable
from gateway.store.tables import Source as SourceRow
from gateway.sync import SyncManager
from gateway.sync.manager import build_adapter
from gateway.sync.worker import SourceWorker, SyncCancelled, SyncReport
from tests.api.conftest import apply_yaml


def _source_yaml(name: str, system: str) -> str:
    return (
        f"apiVersion: accord.dev/v1\nkind: Source\nmetadata: {{name: {name}, domain: d}}\n"
        f"spec: {{type: fake, system: {system}, sync: {{inventoryEvery: 1h, runsEvery: 20ms}}}}\n"
    )


def _worker(engine: Engine) -> SourceWorker:
    with Session(engine) as s:
        row = s.get(SourceRow, "a")
        assert row is not None
        return SourceWorker(
            engine=engine,
            name="a",
            domain=row.domain,
            adapter=build_adapter(row),
            inventory_every=3600,
            runs_every=3600,
        )


class PassProbe:
    """Counts passes per source and the most that ever ran at once for one source."""

    def __init__(self) -> None:
        self.active: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.started: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()  # passes that ran to their end


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> PassProbe:
    seen = PassProbe()
    original = SourceWorker._pass

    async def watched(self: SourceWorker, *, inventory: bool) -> SyncReport:
        seen.started[self.name] += 1
        seen.active[self.name] += 1
        seen.most[self.name] = max(seen.most[self.name], seen.active[self.name])
        try:
            report = await original(self, inventory=inventory)
            seen.finished[self.name] += 1
            return report
        finally:
            seen.active[self.name] -= 1

    monkeypatch.setattr(SourceWorker, "_pass", watched)
    return seen


@pytest.fixture
def slow(engine: Engine) -> Iterator[FakeSystem]:
    sys = FakeSystem("flight-a")
    sys.delay = 0.05  # every adapter call takes a while, so passes would overlap if allowed
    for i in range(3):
        sys.add_job(f"j{i}")
    systems["flight-a"] = sys
    apply_yaml(engine, _source_yaml("a", "flight-a"))
    yield sys
    systems.pop("flight-a", None)


@pytest.mark.anyio
async def test_a_burst_of_requests_shares_the_running_pass(
    engine: Engine, slow: FakeSystem, probe: PassProbe
) -> None:
    worker = _worker(engine)
    first = asyncio.create_task(worker.sync_once(max_age=2))
    while probe.started["a"] == 0:
        await asyncio.sleep(0.005)
    later = [asyncio.create_task(worker.sync_once(max_age=2)) for _ in range(60)]
    reports = await asyncio.gather(first, *later)
    assert all(r.error is None for r in reports)
    assert probe.started["a"] == 1, "the pass that just started answers them all"
    assert len({id(r) for r in reports}) == 1
    # Just after it ended, a request is still answered by it (it started < 2 s ago) ...
    assert await worker.sync_once(inventory=False, max_age=2) is reports[0]
    assert probe.started["a"] == 1
    # ... unless the caller needs a pass that starts after its request (the default).
    runs_only = await worker.sync_once(inventory=False)
    assert runs_only.inventory is None and probe.started["a"] == 2
    # A recent pass that did less than asked (runs only; inventory wanted) does not answer.
    assert (await worker.sync_once(max_age=2)).inventory is not None
    assert probe.started["a"] == 3
    assert slow.calls.count("list_jobs") == 2


@pytest.mark.anyio
async def test_a_failed_earlier_pass_does_not_answer_a_later_request(
    engine: Engine, slow: FakeSystem, probe: PassProbe
) -> None:
    """A person fixes the source and clicks "Sync now" within the coalescing window of a
    pass that failed (or is failing): the answer comes from a pass that starts after the
    click, not the error the click was meant to clear."""
    worker = _worker(engine)
    slow.fault = AdapterUnavailable("connection refused")
    failed = await worker.sync_once(max_age=2)
    assert failed.error is not None and probe.started["a"] == 1
    slow.fault = None  # fixed
    fresh = await worker.sync_once(max_age=2)
    assert fresh.error is None, fresh.error
    assert probe.started["a"] == 2
    # Failing while requests wait on it: they get a pass of their own (started after
    # their requests), one shared by all of them.
    slow.fault = AdapterUnavailable("connection refused")
    first = asyncio.create_task(worker.sync_once(inventory=False))
    while probe.started["a"] == 2:
        await asyncio.sleep(0.005)
    waiting = [asyncio.create_task(worker.sync_once(inventory=False, max_age=2)) for _ in range(5)]
    reports = await asyncio.gather(first, *waiting)
    assert all(r.error is not None for r in reports)
    assert probe.started["a"] == 4, "the failing pass plus one shared follow-up"
    assert len({id(r) for r in reports[1:]}) == 1 and reports[1] is not reports[0]
    assert reports[1].started_at > reports[0].started_at
    assert probe.most["a"] == 1


@pytest.mark.anyio
async def test_requests_during_an_older_pass_share_one_follow_up(
    engine: Engine, slow: FakeSystem, probe: PassProbe
) -> None:
    mgr = SyncManager(engine, compliance_every=None)
    first = asyncio.create_task(mgr.sync_now("a"))
    while probe.started["a"] == 0:
        await asyncio.sleep(0.005)
    later = [asyncio.create_task(mgr.sync_now("a")) for _ in range(60)]
    reports = await asyncio.gather(first, *later)
    assert all(r.error is None for r in reports)
    assert probe.started["a"] == 2, "one running pass plus one shared follow-up"
    assert probe.most["a"] == 1, "passes of one source never overlap"
    assert len({id(r) for r in reports[1:]}) == 1, "the late requests share one report"
    assert reports[1] is not reports[0], "they wait for a pass that starts after them"
    assert reports[1].started_at and reports[0].started_at
    assert reports[1].started_at > reports[0].started_at
    assert slow.calls.count("list_jobs") == 2


@pytest.mark.anyio
async def test_worker_schedule_and_on_demand_passes_never_overlap(
    engine: Engine, slow: FakeSystem, probe: PassProbe
) -> None:
    mgr = SyncManager(engine, refresh_every=0.05, compliance_every=None)
    await mgr.start()
    try:
        while "a" not in mgr.workers:
            await asyncio.sleep(0.01)
        # The worker runs a pass every 20 ms on its own; requests come on top, in waves.
        for _ in range(5):
            reports = await asyncio.gather(*(mgr.sync_now("a") for _ in range(20)))
            assert all(r.error is None for r in reports)
    finally:
        await mgr.stop(timeout=5)
    assert probe.started["a"] >= 5
    assert probe.most["a"] == 1, "the worker's pass and an on-demand pass never interleave"


@pytest.mark.anyio
async def test_sources_without_a_worker_coalesce_too(
    engine: Engine, slow: FakeSystem, probe: PassProbe
) -> None:
    mgr = SyncManager(engine, compliance_every=None)  # not started: no worker runs
    reports = await asyncio.gather(*(mgr.sync_now("a", max_age=2) for _ in range(40)))
    assert all(r.error is None for r in reports)
    assert probe.started["a"] == 1 and probe.most["a"] == 1
    assert mgr._oneoff == {}, "the one-off worker is dropped once nobody waits for it"


@pytest.mark.anyio
async def test_stop_cancels_running_and_waiting_syncs_quickly(
    engine: Engine, slow: FakeSystem, probe: PassProbe
) -> None:
    slow.delay = 30.0  # a source that hangs
    mgr = SyncManager(engine, refresh_every=0.05, compliance_every=None)
    await mgr.start()
    while probe.started["a"] == 0:
        await asyncio.sleep(0.01)
    waiting = [asyncio.create_task(mgr.sync_now("a")) for _ in range(30)]
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await mgr.stop(timeout=5)
    outcomes: list[Any] = await asyncio.gather(*waiting, return_exceptions=True)
    assert loop.time() - began < 5, "stop does not wait for the hanging source"
    assert all(isinstance(o, SyncCancelled) for o in outcomes), outcomes
    with pytest.raises(SyncCancelled):
        await mgr.sync_now("a")
    assert mgr.workers == {}


@pytest.mark.anyio
async def test_a_cancelled_caller_does_not_cancel_the_shared_pass(
    engine: Engine, slow: FakeSystem, probe: PassProbe
) -> None:
    mgr = SyncManager(engine, compliance_every=None)
    impatient = asyncio.create_task(mgr.sync_now("a"))
    while probe.started["a"] == 0:
        await asyncio.sleep(0.005)
    patient = [asyncio.create_task(mgr.sync_now("a")) for _ in range(2)]
    await asyncio.sleep(0.01)
    impatient.cancel()  # e.g. its HTTP client went away
    patient[0].cancel()
    report = await patient[1]
    assert report.error is None and report.inventory is not None
    assert impatient.cancelled() and patient[0].cancelled()
    assert probe.started["a"] == 2 and probe.finished["a"] == 2, "both passes ran to the end"
