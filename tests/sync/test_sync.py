from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from adapters.testing.fake import FakeSystem, systems
from gateway.model import AdapterAuthError, AdapterUnavailable, InvalidResponse, RunState
from gateway.store import session_scope
from gateway.store.tables import Job, Run, RunEvent
from gateway.store.tables import Source as SourceRow
from gateway.sync import Backoff, SyncManager, health_of
from gateway.sync.manager import build_adapter
from gateway.sync.worker import SourceWorker
from tests.api.conftest import apply_yaml


def _source_yaml(name: str, system: str, domain: str = "d") -> str:
    return (
        f"apiVersion: accord.dev/v1\nkind: Source\nmetadata: {{name: {name}, domain: {domain}}}\n"
        f"spec: {{type: fake, system: {system}, sync: {{inventoryEvery: 1h, runsEvery: 50ms}}}}\n"
    )


@pytest.fixture
def fake(engine: Engine) -> Iterator[FakeSystem]:
    sys = FakeSystem("sync-a")
    for i in range(3):
        sys.add_job(f"j{i}")
    systems["sync-a"] = sys
    apply_yaml(engine, _source_yaml("a", "sync-a"))
    yield sys
    systems.pop("sync-a", None)


def _worker(engine: Engine, name: str = "a", timeout: float = 5.0) -> SourceWorker:
    with Session(engine) as s:
        row = s.get(SourceRow, name)
        assert row is not None
        return SourceWorker(
            engine=engine,
            name=name,
            domain=row.domain,
            adapter=build_adapter(row),
            inventory_every=3600,
            runs_every=0.05,
            timeout=timeout,
        )


def _runs(engine: Engine) -> dict[str, str]:
    with Session(engine) as s:
        return {r.uid: r.state for r in s.exec(select(Run)).all()}


@pytest.mark.anyio
async def test_inventory_runs_paging_and_cursor(engine: Engine, fake: FakeSystem) -> None:
    ids = [fake.start_run("j0") for _ in range(5)]
    w = _worker(engine)
    report = await w.sync_once()
    assert report.error is None and report.inventory == {
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "tombstoned": 0,
        "revived": 0,
    }
    assert set(_runs(engine)) == {f"a/{i}" for i in ids}, "all pages were read"
    list_calls = fake.calls.count("list_runs")
    assert list_calls == 3, "5 runs at 2 per page"
    fake.finish(ids[0], RunState.SUCCESS)
    fake.calls.clear()
    await w.sync_once(inventory=False)
    assert _runs(engine)[f"a/{ids[0]}"] == "success"
    assert fake.calls.count("list_runs") == 1, "the stored cursor skips what was read"


@pytest.mark.anyio
async def test_open_runs_are_repolled(engine: Engine, fake: FakeSystem) -> None:
    rid = fake.start_run("j1")
    w = _worker(engine)
    await w.sync_once()
    # The source changes the run without listing it as changed: only the re-poll sees it.
    fake.runs[rid].state = RunState.FAILED
    fake.runs[rid].ended = datetime.now(UTC)
    await w.sync_once(inventory=False)
    assert _runs(engine)[f"a/{rid}"] == "failed"
    with Session(engine) as s:
        events = s.exec(select(RunEvent).where(RunEvent.run_uid == f"a/{rid}")).all()
    assert [e.to_state for e in events] == ["running", "failed"]


@pytest.mark.anyio
async def test_gone_jobs_are_tombstoned(engine: Engine, fake: FakeSystem) -> None:
    w = _worker(engine)
    await w.sync_once()
    del fake.jobs["j2"]
    await w.sync_once()
    with Session(engine) as s:
        dead = {j.native_id for j in s.exec(select(Job)).all() if j.tombstoned_at}
    assert dead == {"j2"}


@pytest.mark.anyio
async def test_unavailable_source_backs_off_with_retry_after(
    engine: Engine, fake: FakeSystem
) -> None:
    fake.fault = AdapterUnavailable("503 from source", retry_after=42)
    w = _worker(engine)
    report = await w.sync_once()
    assert report.error and "503 from source" in report.error
    assert w._last_delay == 42
    with Session(engine) as s:
        row = s.get(SourceRow, "a")
        assert row is not None and row.health == "degraded"
    fake.fault = InvalidResponse("HTML instead of JSON")
    for _ in range(5):
        await w.sync_once()
    with Session(engine) as s:
        row = s.get(SourceRow, "a")
        assert row is not None and row.health == "down", "the circuit opened"
    fake.fault = None
    await w.sync_once()
    with Session(engine) as s:
        row = s.get(SourceRow, "a")
        assert row is not None and row.health == "ok" and row.consecutive_failures == 0


@pytest.mark.anyio
async def test_auth_errors_are_permanent(engine: Engine, fake: FakeSystem) -> None:
    fake.fault = AdapterAuthError("bad credentials")
    w = _worker(engine)
    await w.sync_once()
    assert w._last_delay == 300
    with Session(engine) as s:
        row = s.get(SourceRow, "a")
        assert row is not None and row.health == "down" and "bad credentials" in row.health_message


@pytest.mark.anyio
async def test_slow_source_times_out(engine: Engine, fake: FakeSystem) -> None:
    fake.delay = 1.0
    w = _worker(engine, timeout=0.2)
    report = await w.sync_once()
    assert report.error and "no answer within" in report.error


def test_backoff_grows_with_jitter_and_caps() -> None:
    b = Backoff(base=1, cap=60)
    delays = [b.failure() for _ in range(8)]
    assert 0.5 <= delays[0] <= 1.5 and 1 <= delays[1] <= 3
    assert b.circuit_open and all(d <= 90 for d in delays)
    b.success()
    assert not b.circuit_open


@pytest.mark.anyio
async def test_a_dead_or_slow_source_does_not_delay_the_others(
    engine: Engine, fake: FakeSystem
) -> None:
    slow = FakeSystem("sync-slow")
    slow.add_job("x")
    slow.delay = 20
    systems["sync-slow"] = slow
    apply_yaml(engine, _source_yaml("slow", "sync-slow"))
    rid = fake.start_run("j0")
    mgr = SyncManager(engine, refresh_every=0.1)
    await mgr.start()
    try:
        started = time.monotonic()
        with anyio.fail_after(5):
            while f"a/{rid}" not in _runs(engine):
                await anyio.sleep(0.05)
        assert time.monotonic() - started < 5
        fake.finish(rid, RunState.SUCCESS)
        with anyio.fail_after(5):
            while _runs(engine)[f"a/{rid}"] != "success":
                await anyio.sleep(0.05)
    finally:
        await mgr.stop()
        systems.pop("sync-slow", None)


@pytest.mark.anyio
async def test_manager_follows_config_changes(engine: Engine, fake: FakeSystem) -> None:
    mgr = SyncManager(engine, refresh_every=0.05)
    await mgr.refresh()
    assert set(mgr.workers) == {"a"}
    apply_yaml(engine, _source_yaml("a", "sync-a", domain="other"))
    await mgr.refresh()
    assert mgr.workers["a"].domain == "other", "a changed spec restarts the worker"
    await mgr.stop()


def test_stale_when_no_recent_success(engine: Engine, fake: FakeSystem) -> None:
    with session_scope(engine) as s:
        row = s.get(SourceRow, "a")
        assert row is not None
        row.health = "ok"
        row.last_success_at = datetime.now(UTC) - timedelta(hours=10)
        s.add(row)
    with Session(engine) as s:
        row = s.get(SourceRow, "a")
        assert row is not None
        assert health_of(row) == "stale"


@contextlib.asynccontextmanager
async def _running(w: SourceWorker) -> AsyncIterator[None]:
    """The worker's own loop runs for the block, and is stopped after it."""
    task = asyncio.create_task(w.run())
    try:
        yield
    finally:
        w.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.anyio
async def test_sync_now_that_succeeds_ends_the_back_off(engine: Engine, fake: FakeSystem) -> None:
    """A source found well again by an on-demand pass ("Sync now") goes back to its normal
    interval at once instead of waiting out the back-off its loop was in."""
    fake.fault = AdapterUnavailable("503 from source")
    w = _worker(engine)
    w.backoff = Backoff(base=120, cap=300)  # one failure backs off for minutes
    async with _running(w):
        with anyio.fail_after(5):
            while w.last_report is None or w.last_report.error is None:
                await anyio.sleep(0.02)
        assert w._last_delay >= 60
        fake.fault = None
        report = await w.sync_once()  # "Sync now"
        assert report.error is None
        rid = fake.start_run("j1")
        with anyio.fail_after(3):  # the next scheduled pass, runsEvery 50 ms
            while f"a/{rid}" not in _runs(engine):
                await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_a_health_check_that_finds_the_source_well_ends_the_back_off(
    engine: Engine, fake: FakeSystem
) -> None:
    """A source down for a long time is in the circuit's long back-off; once its health
    check answers well again the next pass comes at once (no gap of minutes), unless the
    source itself said when to come back (Retry-After)."""
    fake.fault = AdapterUnavailable("connection refused")
    w = _worker(engine)
    w.check_every = 0.2
    w.backoff = Backoff(base=120, cap=300)  # down for hours: minutes between attempts
    async with _running(w):
        with anyio.fail_after(5):
            while w.last_report is None or w.last_report.error is None:
                await anyio.sleep(0.02)
        assert w._last_delay >= 60
        failed = w.passes
        fake.fault = None  # back
        rid = fake.start_run("j1")
        with anyio.fail_after(5):  # a health check (every 0.2 s here), then a pass
            while f"a/{rid}" not in _runs(engine):
                await anyio.sleep(0.05)
        assert w.passes > failed
        # Rate limited with Retry-After: the health check answering well changes nothing.
        fake.fault = AdapterUnavailable("429 from source", retry_after=120)
        with anyio.fail_after(5):  # a pass ends on the 429 (maybe the one already running)
            while w.last_report is None or "429" not in (w.last_report.error or ""):
                await anyio.sleep(0.02)
        fake.fault = None
        waited = w.passes
        await anyio.sleep(1.5)  # several health checks, all well
        assert w.passes == waited, "the source's Retry-After was not honoured"


@pytest.mark.anyio
async def test_a_source_failing_from_the_start_is_not_retried_in_a_tight_loop(
    engine: Engine, fake: FakeSystem
) -> None:
    """Its first inventory is still pending, which must not override the back-off."""
    fake.fault = AdapterUnavailable("503 from source")
    w = _worker(engine)
    w.backoff = Backoff(base=2, cap=300)
    async with _running(w):
        await anyio.sleep(1.5)
        assert 1 <= w.passes <= 2, f"{w.passes} passes in 1.5 s against a failing source"
