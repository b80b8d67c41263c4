"""The demo cron host: labelled demo, realistic lines and history, live and actionable."""

from __future__ import annotations

import os
import pwd
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters.base import AdapterContext, DemoPart, registry
from adapters.cron.adapter import CronAdapter
from adapters.cron.demo import _DemoCron, start_demo
from gateway.model import HealthStatus, RunRecord, RunState, SecretRef
from gateway.model.resources import Source


def _no_secrets(ref: SecretRef) -> SecretStr:
    raise LookupError("the demo needs no secrets")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[DemoPart, CronAdapter, Path]]:
    part = start_demo(tmp_path)
    source = Source.model_validate(part.documents[0])
    adapter = registry.create(
        "cron",
        AdapterContext(source=source.metadata.name, domain="platform", secrets=_no_secrets),
        source.spec.adapter_config(),
    )
    assert isinstance(adapter, CronAdapter)
    # The export that runs from the start shows up once its wrapper has started.
    spool = tmp_path / "cron-demo" / "spool" / "running"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(spool.glob("*.json")):
        time.sleep(0.05)
    try:
        yield part, adapter, tmp_path / "cron-demo"
    finally:
        part.stop()


async def _runs(adapter: CronAdapter) -> list[RunRecord]:
    out: list[RunRecord] = []
    cursor = None
    for _ in range(20):
        page = await adapter.list_runs(cursor)
        out.extend(page.runs)
        cursor = page.cursor
        if not page.more:
            break
    return out


@pytest.mark.anyio
async def test_demo_source_is_labelled_and_valid(demo: tuple[DemoPart, CronAdapter, Path]) -> None:
    part, _, base = demo
    (doc,) = part.documents
    source = Source.model_validate(doc)
    assert source.metadata.labels == {"accord.dev/demo": "true"}
    assert source.spec.demo and source.spec.type == "cron"
    assert "demo" in source.metadata.annotations["accord.dev/description"].lower()
    assert doc["spec"]["root"].startswith(str(base))  # its own files, not the host's
    assert part.env == {}


@pytest.mark.anyio
async def test_demo_jobs_history_and_health(demo: tuple[DemoPart, CronAdapter, Path]) -> None:
    _, adapter, _ = demo
    jobs = {j.native_id: j async for j in adapter.list_jobs()}
    assert {
        "db-backup",
        "finance-report",
        "warehouse-export",
        "tmp-cleanup",
        "cache-warmup",
    } <= set(jobs)
    assert len(jobs) == 8
    assert jobs["db-backup"].owners == ("sre",)
    broken = [j for j in jobs.values() if j.problems]
    assert len(broken) == 2 and all(j.attributes["crontab"] == "cron.d/legacy" for j in broken)
    health = await adapter.check()
    assert health.status == HealthStatus.DEGRADED and "cron.d/legacy" in health.message
    runs = await _runs(adapter)
    kinds = Counter(r.state for r in runs)
    assert kinds[RunState.SUCCESS] > 50 and kinds[RunState.FAILED] > 3
    missed = [r for r in runs if r.native_state == "missed"]
    assert [r.job_native_id for r in missed] == ["cache-warmup"]
    logged = [r for r in runs if ":cron:" in r.native_id]  # the unwrapped line, from the log
    assert logged and {r.job_native_id for r in logged} == {
        j.native_id for j in jobs.values() if j.name == "rotate-logs.sh"
    }
    running = [r for r in runs if r.state == RunState.RUNNING]
    assert [r.job_native_id for r in running] == ["warehouse-export"]
    await adapter.cancel(running[0].native_id)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        (now,) = await adapter.get_runs([running[0].native_id])
        if now.state.terminal:
            break
        time.sleep(0.1)
    assert now.state == RunState.CANCELLED


@pytest.mark.anyio
async def test_demo_cron_runs_due_lines_and_respects_pause(
    demo: tuple[DemoPart, CronAdapter, Path],
) -> None:
    _, adapter, base = demo
    paths = {"root": base / "root", "spool": base / "spool", "log": base / "cron.log"}
    user = pwd.getpwuid(os.geteuid()).pw_name
    cron = _DemoCron(paths, user)
    jobs = {j.name: j.native_id async for j in adapter.list_jobs()}
    rotate = jobs["rotate-logs.sh"]
    before = {r.native_id for r in await _runs(adapter)}
    # 10:10 (a day ago): only the log rotation (every 10 minutes) is due.
    cron.tick(datetime(2026, 3, 2, 10, 10, 3, tzinfo=UTC))
    for child in cron.children:
        child.wait(timeout=30)
    time.sleep(0.3)  # the END line is written by a thread once the child is reaped
    new = [r for r in await _runs(adapter) if r.native_id not in before]
    assert [r.job_native_id for r in new] == [rotate]
    assert new[0].native_state in ("exit 0", "exit 2")
    await adapter.pause(rotate)
    cron.tick(datetime(2026, 3, 2, 10, 20, 3, tzinfo=UTC))
    assert cron.children == []
    cron.stop()
