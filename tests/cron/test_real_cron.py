"""Against the real Debian cron daemon (``scripts/cron-setup.sh`` installs and starts it
with ``-L 15`` and rsyslog).

One timeline, about three minute boundaries long, is shared by the tests of this module:
a root crontab (the previous one is restored afterwards) runs lines every minute through
``accord exec`` — one succeeding, one failing, one that is paused after its first run and
resumed after a minute without it — and two lines without the wrapper, seen in cron's
log. The local-mode adapter reads the real host (``/``), and an agent pushes the same host
to a stand-in of the gateway.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from adapters.base import AdapterContext
from adapters.cron.adapter import CronAdapter
from adapters.cron.agent import Agent, AgentOptions
from adapters.cron.config import CronConfig
from adapters.cron.syslog import cron_log_level
from gateway.model import HealthStatus, JobRecord, RunRecord, RunState, Trigger

from .conftest import _no_secrets
from .standin import StandIn, serve

pytestmark = pytest.mark.peer

REPO = Path(__file__).resolve().parents[2]
CRON_LOG = Path("/var/log/cron.log")


def _crontab(*args: str, text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["crontab", *args], input=text, capture_output=True, text=True, timeout=30
    )


@dataclass
class Timeline:
    """What the adapter showed over the timeline."""

    tag: str
    jobs: dict[str, JobRecord] = field(default_factory=dict)  # by name
    runs: dict[str, RunRecord] = field(default_factory=dict)
    minutes: list[datetime] = field(default_factory=list)  # the boundaries waited for
    paused_at: datetime | None = None
    resumed_at: datetime | None = None
    paused_listing: JobRecord | None = None
    health_level: int | None = None
    health: HealthStatus | None = None
    standin: StandIn | None = None

    def runs_of(self, name: str) -> list[RunRecord]:
        job = self.jobs[name].native_id
        return sorted(
            (r for r in self.runs.values() if r.job_native_id == job and r.started_at),
            key=lambda r: r.started_at or datetime.min.replace(tzinfo=UTC),
        )


def _setup_cron() -> None:
    if os.geteuid() != 0:
        pytest.fail(
            "the real cron tests need root: run them as root (CI does), after scripts/cron-setup.sh"
        )
    done = subprocess.run(
        [str(REPO / "scripts" / "cron-setup.sh")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _next_minute(after: datetime) -> datetime:
    return after.replace(second=0, microsecond=0) + timedelta(minutes=1)


async def _collect(adapter: CronAdapter, line: Timeline, cursor: str | None) -> str | None:
    for _ in range(100):
        page = await adapter.list_runs(cursor)
        line.runs.update((r.native_id, r) for r in page.runs)
        cursor = page.cursor
        if not page.more:
            break
    return cursor


async def _until(
    adapter: CronAdapter,
    line: Timeline,
    cursor: str | None,
    done: Callable[[Timeline], bool],
    limit: float,
) -> str | None:
    """Collect runs until ``done(line)`` or ``limit`` seconds passed."""
    deadline = time.monotonic() + limit
    while True:
        cursor = await _collect(adapter, line, cursor)
        if done(line) or time.monotonic() > deadline:
            return cursor
        await anyio.sleep(1)


def _ended_in(line: Timeline, name: str, minute: datetime) -> bool:
    return any(
        r.state.terminal
        and r.started_at
        and minute <= r.started_at < minute + timedelta(seconds=50)
        for r in line.runs_of(name)
    )


@pytest.fixture(scope="module")
def timeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Timeline]:
    _setup_cron()
    from adapters.testing.harness_cron import accord_script

    accord = accord_script()
    tag = uuid.uuid4().hex[:8]
    spool = tmp_path_factory.mktemp("real-cron-spool")
    before = _crontab("-l")
    previous = before.stdout if before.returncode == 0 else None
    crontab = (
        f"ACCORD_SPOOL_DIR={spool}\n"
        f"* * * * * {accord} exec --job t{tag}-ok -- sh -c 'echo all good; sleep 2'\n"
        f"* * * * * {accord} exec --job t{tag}-fail -- sh -c 'echo broken >&2; exit 3'\n"
        f"* * * * * {accord} exec --job t{tag}-pausable -- true\n"
        f"* * * * * sh -c 'echo t{tag}-plain-ok'\n"
        f"* * * * * sh -c 'echo t{tag}-plain-fail; exit 4'\n"
    )
    installed = _crontab("-", text=crontab)
    assert installed.returncode == 0, installed.stderr
    standin = StandIn(token="real-cron-token", source="cron-hosts")
    server, thread = serve(standin)
    try:
        yield anyio.run(_run_timeline, tag, spool, standin)
    finally:
        if previous is not None:
            _crontab("-", text=previous)
        else:
            _crontab("-r")
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def _run_timeline(tag: str, spool: Path, standin: StandIn) -> Timeline:
    line = Timeline(tag=tag, standin=standin)
    adapter = CronAdapter(
        AdapterContext(source="real-cron", domain="ops", secrets=_no_secrets),
        CronConfig(root="/", syslog=str(CRON_LOG)),
    )
    jobs = {j.name: j async for j in adapter.list_jobs()}
    line.jobs = {name: job for name, job in jobs.items() if f"t{tag}" in name}
    health = await adapter.check()
    line.health, line.health_level = health.status, health.details.get("cron_log_level")
    cursor = await _collect(adapter, line, None)  # whatever the log held before

    # Minute 1: every line runs.
    m1 = _next_minute(datetime.now(UTC))
    line.minutes.append(m1)
    await anyio.sleep(max(0.0, (m1 - datetime.now(UTC)).total_seconds()))
    names = [f"t{tag}-ok", f"t{tag}-fail", f"t{tag}-pausable"]
    cursor = await _until(
        adapter, line, cursor, lambda tl: all(_ended_in(tl, n, m1) for n in names), 40
    )
    pausable = line.jobs[f"t{tag}-pausable"].native_id
    await adapter.pause(pausable)
    line.paused_at = datetime.now(UTC)
    line.paused_listing = {j.native_id: j async for j in adapter.list_jobs()}[pausable]

    # Minute 2: the paused line does not run.
    m2 = _next_minute(line.paused_at)
    line.minutes.append(m2)
    await anyio.sleep(max(0.0, (m2 - datetime.now(UTC)).total_seconds()))
    cursor = await _until(adapter, line, cursor, lambda tl: _ended_in(tl, f"t{tag}-ok", m2), 40)
    await anyio.sleep(2)  # a paused run, if cron started one, would be in by now
    cursor = await _collect(adapter, line, cursor)
    await adapter.resume(pausable)
    line.resumed_at = datetime.now(UTC)

    # Minute 3: it runs again.
    m3 = _next_minute(line.resumed_at)
    line.minutes.append(m3)
    await anyio.sleep(max(0.0, (m3 - datetime.now(UTC)).total_seconds()))
    cursor = await _until(
        adapter, line, cursor, lambda tl: all(_ended_in(tl, n, m3) for n in names), 40
    )

    # The agent sees the same host.
    agent = Agent(
        AgentOptions(
            server=standin.url,
            source=standin.source,
            token=standin.token,
            config=CronConfig(mode="agent", root="/", syslog=str(CRON_LOG), spool=(str(spool),)),
            state_path=spool.parent / "agent-state.json",
        )
    )
    result = await anyio.to_thread.run_sync(agent.step)
    assert result.ok, result.error
    agent.close()
    await adapter.aclose()
    return line


def test_cron_runs_with_full_logging(timeline: Timeline) -> None:
    assert cron_log_level() == 15
    assert timeline.health_level == 15


def test_wrapped_lines_are_jobs(timeline: Timeline) -> None:
    tag = timeline.tag
    for name in (f"t{tag}-ok", f"t{tag}-fail", f"t{tag}-pausable"):
        job = timeline.jobs[name]
        assert job.native_id == name
        assert job.schedule is not None and job.schedule.text == "every minute"
        assert job.attributes["crontab"] == "user/root"


def test_runs_arrive_with_exit_codes_and_durations(timeline: Timeline) -> None:
    tag = timeline.tag
    m1 = timeline.minutes[0]
    ok = [r for r in timeline.runs_of(f"t{tag}-ok") if r.started_at and r.started_at >= m1]
    fail = [r for r in timeline.runs_of(f"t{tag}-fail") if r.started_at and r.started_at >= m1]
    assert len(ok) >= 3 and len(fail) >= 3  # one per minute
    for run in ok:
        assert (run.state, run.native_state) == (RunState.SUCCESS, "exit 0")
        assert run.trigger == Trigger.SCHEDULE  # cron started it
        assert run.started_at is not None and run.ended_at is not None
        assert timedelta(seconds=2) <= run.ended_at - run.started_at < timedelta(seconds=20)
        assert run.started_at - run.started_at.replace(second=0, microsecond=0) < timedelta(
            seconds=30
        )
        assert "all good" in (run.message or "")
    for run in fail:
        assert (run.state, run.native_state) == (RunState.FAILED, "exit 3")
        assert "broken" in (run.message or "")
        assert run.actor == "root"


def test_pause_stops_the_next_run_and_resume_restarts_it(timeline: Timeline) -> None:
    tag = timeline.tag
    m1, m2, m3 = timeline.minutes
    assert timeline.paused_listing is not None and timeline.paused_listing.paused
    starts = [r.started_at for r in timeline.runs_of(f"t{tag}-pausable") if r.started_at]
    assert any(m1 <= s < m1 + timedelta(seconds=50) for s in starts), starts
    assert not any(m2 <= s < m3 for s in starts), starts  # paused: no run at minute 2
    assert any(m3 <= s < m3 + timedelta(seconds=50) for s in starts), starts
    ok_starts = [r.started_at for r in timeline.runs_of(f"t{tag}-ok") if r.started_at]
    assert any(m2 <= s < m3 for s in ok_starts)  # cron did run at minute 2


def test_unwrapped_lines_are_seen_in_cron_log(timeline: Timeline) -> None:
    tag = timeline.tag
    plain_ok = timeline.jobs[f"sh -c 'echo t{tag}-plain-ok'"]
    plain_fail = timeline.jobs[f"sh -c 'echo t{tag}-plain-fail; exit 4'"]
    assert ":user/root:" in plain_ok.native_id  # <host>:<crontab>:<hash>
    oks = [r for r in timeline.runs_of(plain_ok.name) if r.state.terminal]
    fails = [r for r in timeline.runs_of(plain_fail.name) if r.state.terminal]
    assert len(oks) >= 2 and len(fails) >= 2
    assert all((r.state, r.native_state) == (RunState.SUCCESS, "exit 0") for r in oks)
    assert all((r.state, r.native_state) == (RunState.FAILED, "exit 4") for r in fails)
    assert all(":cron:" in r.native_id and r.trigger == Trigger.SCHEDULE for r in oks + fails)
    # wrapped lines appear in cron's log too, but their runs are reported once (spool)
    ids = [timeline.jobs[n].native_id for n in (f"t{tag}-ok", f"t{tag}-fail")]
    assert not any(
        ":cron:" in r.native_id for r in timeline.runs.values() if r.job_native_id in ids
    )


def test_the_agent_pushes_this_host(timeline: Timeline) -> None:
    standin = timeline.standin
    assert standin is not None
    tag = timeline.tag
    assert {f"t{tag}-ok", f"t{tag}-fail", f"t{tag}-pausable"} <= set(standin.jobs)
    pushed = [r for r in standin.runs.values() if r.job_native_id == f"t{tag}-fail"]
    assert len(pushed) >= 3 and all(r.native_state == "exit 3" for r in pushed)
    assert standin.health is not None
