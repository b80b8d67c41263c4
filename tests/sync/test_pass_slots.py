"""The per-process cap on sync passes (ACCORD_SYNC_CONCURRENCY) serves the neediest pass
first: the first pass of a source just taken over from a stopped replica goes before the
queue of a saturated replica, then the pass due the longest; and a taken-over source
resumes from its stored cursor without listing its jobs again when the stored listing is
recent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from adapters.testing.fake import FakeSystem, systems
from gateway.store.tables import Run
from gateway.store.tables import Source as SourceRow
from gateway.sync import SyncManager
from gateway.sync.manager import build_adapter
from gateway.sync.slots import PassSlots
from gateway.sync.worker import SourceWorker, SyncReport
from tests.api.conftest import apply_yaml

BUSY = [f"busy{i}" for i in range(5)]


def _yaml(name: str, system: str, runs_every: str = "10ms") -> str:
    return (
        f"apiVersion: accord.dev/v1\nkind: Source\nmetadata: {{name: {name}, domain: d}}\n"
        f"spec: {{type: fake, system: {system}, "
        f"sync: {{inventoryEvery: 1h, runsEvery: {runs_every}}}}}\n"
    )


def _worker(engine: Engine, name: str, slots: PassSlots | None) -> SourceWorker:
    with Session(engine) as s:
        row = s.get(SourceRow, name)
        assert row is not None
        return SourceWorker(
            engine=engine,
            name=name,
            domain=row.domain,
            adapter=build_adapter(row),
            inventory_every=row.inventory_every_s,
            runs_every=row.runs_every_s,
            slots=slots,
        )


@pytest.mark.anyio
async def test_a_free_slot_goes_to_the_urgent_then_the_longest_due_then_the_first() -> None:
    slots = PassSlots(1)
    order: list[str] = []
    release = asyncio.Event()

    async def pass_(name: str, due: float, urgent: bool = False) -> None:
        async with slots.take(due=due, urgent=urgent):
            order.append(name)
            if name == "holder":
                await release.wait()

    holder = asyncio.create_task(pass_("holder", 0.0))
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(pass_("due-50", 50.0)),
        asyncio.create_task(pass_("due-20-first", 20.0)),
        asyncio.create_task(pass_("gives-up", 1.0)),
        asyncio.create_task(pass_("due-20-second", 20.0)),
        asyncio.create_task(pass_("taken-over", 99.0, urgent=True)),
    ]
    await asyncio.sleep(0.01)
    assert order == ["holder"] and slots.free == 0 and slots.waiting == 5
    waiting[2].cancel()  # a waiter that is cancelled does not take (or lose) a slot
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(holder, *waiting, return_exceptions=True)
    assert order == ["holder", "taken-over", "due-20-first", "due-20-second", "due-50"]
    assert slots.free == 1 and slots.waiting == 0
    # The slot is free again: the next pass runs at once.
    await asyncio.wait_for(pass_("later", 0.0), timeout=1)


@pytest.mark.anyio
async def test_a_slot_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    slots = PassSlots(1)
    got: list[str] = []
    async with slots.take(due=0.0):
        first = asyncio.create_task(slots._acquire(1.0, False))
        second = asyncio.create_task(slots._acquire(2.0, False))
        await asyncio.sleep(0)
    # The slot went to ``first``; it is cancelled before it ran: ``second`` gets it.
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, timeout=1)
    got.append("second")
    slots._release()
    assert got == ["second"] and slots.free == 1


@pytest.fixture
def systems_for_takeover(engine: Engine) -> Iterator[tuple[FakeSystem, FakeSystem]]:
    busy = FakeSystem("slots-busy")
    # Each call to the scheduler takes a while: the replica is saturated. A pass lasts
    # well over the worker's shortest wait between passes (50 ms), so at any moment every
    # source but the one running waits for the slot, on a fast machine too.
    busy.delay = 0.1
    busy.add_job("build")
    taken = FakeSystem("slots-taken")
    for job in ("a", "b", "c"):
        taken.add_job(job)
        taken.start_run(job)
    systems["slots-busy"], systems["slots-taken"] = busy, taken
    for name in BUSY:
        apply_yaml(engine, _yaml(name, "slots-busy"))
    apply_yaml(engine, _yaml("taken", "slots-taken", runs_every="2s"))
    yield busy, taken
    systems.pop("slots-busy", None)
    systems.pop("slots-taken", None)


@pytest.mark.anyio
async def test_a_taken_over_source_is_synced_next_on_a_saturated_replica_from_its_cursor(
    engine: Engine,
    systems_for_takeover: tuple[FakeSystem, FakeSystem],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _busy, taken = systems_for_takeover
    # The replica that held "taken" synced it (listing and runs), then died; a run started
    # since.
    first = await _worker(engine, "taken", None).sync_once()
    assert first.error is None and first.inventory is not None
    taken.start_run("a")
    listings = taken.calls.count("list_jobs")

    started: list[str] = []
    original = SourceWorker._pass

    async def watched(self: SourceWorker, *, inventory: bool) -> SyncReport:
        started.append(self.name)
        return await original(self, inventory=inventory)

    monkeypatch.setattr(SourceWorker, "_pass", watched)
    slots = PassSlots(1)
    busy_workers = [_worker(engine, name, slots) for name in BUSY]
    tasks = [asyncio.create_task(w.run()) for w in busy_workers]
    try:
        # Saturated: one pass runs, the other sources wait for the slot.
        for _ in range(500):
            if len(started) >= 2 * len(BUSY) and slots.waiting >= len(BUSY) - 1:
                break
            await asyncio.sleep(0.01)
        assert slots.waiting >= len(BUSY) - 1, "the replica is not saturated"

        # This replica takes "taken" over, as the manager does on a new lease.
        mgr = SyncManager(engine, compliance_every=None)
        points = await asyncio.to_thread(mgr._resume_points, ["taken"])
        overdue_for, inventory_age = points["taken"]
        assert inventory_age is not None and inventory_age < 60
        worker = _worker(engine, "taken", slots)
        worker.resume(overdue_for=overdue_for, inventory_age=inventory_age, urgent=True)
        before = len(started)
        tasks.append(asyncio.create_task(worker.run()))
        for _ in range(500):
            if "taken" in started[before:]:
                break
            await asyncio.sleep(0.01)
        ahead = started[before:].index("taken")
        # At most the pass that already held the slot when it asked (a FIFO would have
        # made it wait for every queued pass of the busy sources).
        assert ahead <= 1, started[before:]
        for _ in range(500):
            if worker.last_report is not None:
                break
            await asyncio.sleep(0.01)
        report = worker.last_report
        assert report is not None and report.error is None
        assert report.inventory is None, "the stored listing is recent: not listed again"
        assert taken.calls.count("list_jobs") == listings
    finally:
        for w in [*busy_workers]:
            w.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # Every run of the source is stored once, the new one included (read from the cursor).
    with Session(engine) as s:
        stored = [r.uid for r in s.exec(select(Run).where(Run.source == "taken")).all()]
    assert len(stored) == len(set(stored)) == len(taken.runs) == 4


def test_resume_points_come_from_the_stored_sync_and_listing(any_engine: Engine) -> None:
    sys = FakeSystem("slots-resume")
    sys.add_job("a")
    systems["slots-resume"] = sys
    try:
        apply_yaml(any_engine, _yaml("r", "slots-resume", runs_every="30s"))
        mgr = SyncManager(any_engine, compliance_every=None)
        assert mgr._resume_points(["r"]) == {"r": (None, None)}, "never synced: list first"
        report = asyncio.run(_worker(any_engine, "r", None).sync_once())
        assert report.error is None
        overdue_for, age = mgr._resume_points(["r"])["r"]
        assert overdue_for is not None and -30 <= overdue_for < -25  # due in about 30 s
        assert age is not None and 0 <= age < 5
        # A changed definition (another URL, say) makes the stored listing unusable.
        apply_yaml(any_engine, _yaml("r", "slots-resume", runs_every="20s"))
        assert mgr._resume_points(["r"])["r"][1] is None
    finally:
        systems.pop("slots-resume", None)
