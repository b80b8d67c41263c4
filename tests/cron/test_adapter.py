"""The cron adapter in local mode on crontab trees in temp directories (real files, real
wrapper processes, a cron log written in cron's format), and in agent mode."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from adapters.base import registry
from adapters.cron.adapter import CronAdapter, CronAgentAdapter
from adapters.cron.spool_read import running_info
from gateway.model import (
    ActionNotSupported,
    AdapterAuthError,
    Capability,
    HealthStatus,
    JobRecord,
    NotFound,
    RunRecord,
    RunState,
    Trigger,
)

from .conftest import Tree


async def jobs(adapter: CronAdapter) -> dict[str, JobRecord]:
    return {j.native_id: j async for j in adapter.list_jobs()}


async def all_runs(
    adapter: CronAdapter, cursor: str | None = None
) -> tuple[dict[str, RunRecord], str | None]:
    out: dict[str, RunRecord] = {}
    for _ in range(50):
        page = await adapter.list_runs(cursor)
        out.update((r.native_id, r) for r in page.runs)
        cursor = page.cursor
        if not page.more:
            break
    return out, cursor


def wrap(
    accord: str, tree: Tree, *command: str, job: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "ACCORD_SPOOL_DIR": str(tree.spool)}
    env.pop("ACCORD_GATEWAY_URL", None)
    opts = ["--job", job] if job else []
    return subprocess.run(
        [accord, "exec", *opts, "--", *command], env=env, capture_output=True, timeout=60
    )


def log_line(at: datetime, pid: int, user: str, event: str, detail: str) -> str:
    return f"{at.isoformat()} web-1 CRON[{pid}]: ({user}) {event} ({detail})\n"


@pytest.mark.anyio
async def test_inventory_of_a_host(tree: Tree, me: str) -> None:
    tree.crontab.write_text(
        "SHELL=/bin/sh\n# Nightly backup\n# owner: sre\n30 2 * * * root /usr/local/bin/backup\n"
    )
    tree.cron_d("reports").write_text("0 6 * * 1-5 www-data /srv/app/report --daily\n")
    tree.user(me).write_text("#accord:paused# */5 * * * * /home/me/sync\n@reboot /home/me/warm\n")
    adapter = tree.adapter()
    found = await jobs(adapter)
    assert len(found) == 4
    by_cmd = {j.attributes["command"]: j for j in found.values()}
    backup = by_cmd["/usr/local/bin/backup"]
    assert backup.owners == ("sre",) and backup.description == "Nightly backup"
    assert backup.schedule is not None and backup.schedule.text == "daily at 02:30"
    assert backup.next_run_at is not None and backup.next_run_at > datetime.now(UTC)
    assert backup.native_id.startswith("web-1:crontab:")
    assert by_cmd["/home/me/sync"].paused and by_cmd["/home/me/sync"].next_run_at is None
    assert by_cmd["/srv/app/report --daily"].attributes["user"] == "www-data"
    assert found == await jobs(adapter)  # stable on re-list
    health = await adapter.check()
    assert health.status == HealthStatus.OK, health.message
    assert health.details["jobs"] == 4


@pytest.mark.anyio
async def test_bad_lines_show_in_health_and_on_the_jobs(tree: Tree) -> None:
    tree.cron_d("app").write_text("0 1 * * * root /bin/good\n61 * * * * root /bin/bad\n")
    adapter = tree.adapter()
    found = await jobs(adapter)
    assert all(j.problems for j in found.values())
    health = await adapter.check()
    assert health.status == HealthStatus.DEGRADED
    assert "cron ignores all of cron.d/app" in health.message


@pytest.mark.anyio
async def test_wrapped_runs_come_from_the_spool(tree: Tree, accord: str) -> None:
    tree.crontab.write_text(
        f"*/5 * * * * root {accord} exec --job db-backup -- sh -c 'echo dumped; exit 0'\n"
        f"0 * * * * root {accord} exec -- /bin/sh -c 'exit 4'\n"
    )
    adapter = tree.adapter()
    ids = set(await jobs(adapter))
    unnamed = next(i for i in ids if i != "db-backup")
    _, cursor = await all_runs(adapter)
    assert wrap(accord, tree, "sh", "-c", "echo dumped; exit 0", job="db-backup").returncode == 0
    assert wrap(accord, tree, "/bin/sh", "-c", "exit 4").returncode == 4
    runs, cursor = await all_runs(adapter, cursor)
    by_job = {r.job_native_id: r for r in runs.values()}
    ok, bad = by_job["db-backup"], by_job[unnamed]  # the unnamed one is matched by its argv
    assert (ok.state, ok.native_state) == (RunState.SUCCESS, "exit 0")
    assert (bad.state, bad.native_state) == (RunState.FAILED, "exit 4")
    assert ok.started_at is not None and ok.ended_at is not None
    assert timedelta(0) <= ok.ended_at - ok.started_at < timedelta(seconds=30)
    assert "dumped" in (ok.message or "")
    assert ok.trigger == Trigger.MANUAL  # not started by cron
    again, _ = await all_runs(adapter, cursor)
    assert again == {}  # nothing changed after the cursor
    got = await adapter.get_runs([ok.native_id, "nope"])
    assert [r.native_id for r in got] == [ok.native_id]


@pytest.mark.anyio
async def test_unwrapped_runs_come_from_cron_log(tree: Tree, accord: str) -> None:
    tree.crontab.write_text(
        "* * * * * root /usr/local/bin/ok-job\n"
        "* * * * * root /usr/local/bin/bad-job --x\n"
        f"* * * * * root {accord} exec --job wrapped -- true\n"
    )
    adapter = tree.adapter()
    ids = {j.attributes["command"]: i for i, j in (await jobs(adapter)).items()}
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    with open(tree.log, "a") as fh:
        fh.write(log_line(t, 100, "root", "CMD", "[101] /usr/local/bin/ok-job"))
        fh.write(log_line(t, 102, "root", "CMD", "[103] /usr/local/bin/bad-job --x"))
        fh.write(log_line(t, 104, "root", "CMD", f"[105] {accord} exec --job wrapped -- true"))
        fh.write(log_line(t, 200, "root", "CMD", "[201] /not/in/any/crontab"))
        fh.write(
            log_line(t + timedelta(seconds=2), 100, "root", "END", "[101] /usr/local/bin/ok-job")
        )
    runs, cursor = await all_runs(adapter)
    by_job = {r.job_native_id: r for r in runs.values()}
    assert set(by_job) == {ids["/usr/local/bin/ok-job"], ids["/usr/local/bin/bad-job --x"]}
    ok = by_job[ids["/usr/local/bin/ok-job"]]
    assert (ok.state, ok.native_state, ok.trigger) == (RunState.SUCCESS, "exit 0", Trigger.SCHEDULE)
    assert ok.ended_at is not None and ok.started_at is not None
    assert ok.ended_at - ok.started_at == timedelta(seconds=2)
    running = by_job[ids["/usr/local/bin/bad-job --x"]]
    assert running.state == RunState.RUNNING
    with open(tree.log, "a") as fh:
        fh.write(
            log_line(
                t + timedelta(seconds=5),
                102,
                "CRON",
                "error",
                "grandchild #103 failed with exit status 2",
            )
        )
        fh.write(
            log_line(
                t + timedelta(seconds=5), 102, "root", "END", "[103] /usr/local/bin/bad-job --x"
            )
        )
    runs, _ = await all_runs(adapter, cursor)
    (ended,) = runs.values()
    assert ended.native_id == running.native_id
    assert (ended.state, ended.native_state) == (RunState.FAILED, "exit 2")


@pytest.mark.anyio
async def test_cron_logging_only_starts_is_said_in_health(tree: Tree) -> None:
    tree.crontab.write_text("* * * * * root /usr/local/bin/job\n")
    adapter = tree.adapter(logLevel=1)
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    tree.log.write_text(log_line(t, 300, "root", "CMD", "/usr/local/bin/job"))
    health = await adapter.check()
    assert health.status == HealthStatus.DEGRADED
    assert "cron logs only the start of jobs" in health.message
    runs, _ = await all_runs(adapter)
    (run,) = runs.values()
    assert (run.state, run.native_state) == (RunState.UNKNOWN, "start only")  # not guessed
    no_status = tree.adapter(logLevel=3)
    assert "does not log exit statuses" in (await no_status.check()).message
    off = tree.adapter(syslog="off")
    assert "their runs are not seen" in (await off.check()).message


@pytest.mark.anyio
async def test_missed_runs(tree: Tree, accord: str) -> None:
    tree.crontab.write_text(f"* * * * * root {accord} exec --job every-minute -- true\n")
    if datetime.now(UTC).second >= 50:  # keep the check inside one minute
        await anyio.sleep(61 - datetime.now(UTC).second)
    now = datetime.now(UTC)
    adapter = tree.adapter(grace="1m", watchFrom=(now - timedelta(minutes=6)).isoformat())
    await jobs(adapter)
    wrap(accord, tree, "true", job="every-minute")  # this minute ran
    runs, _ = await all_runs(adapter)
    missed = sorted(
        (r for r in runs.values() if r.native_state == "missed"), key=lambda r: r.native_id
    )
    expected = [
        (now - timedelta(minutes=m)).replace(second=0, microsecond=0) for m in range(5, 0, -1)
    ]
    expected = [t for t in expected if now - timedelta(minutes=6) < t <= now - timedelta(minutes=1)]
    assert [r.queued_at for r in missed] == expected
    assert all(r.state == RunState.FAILED and r.job_native_id == "every-minute" for r in missed)
    assert all(r.native_id == f"every-minute@missed:{r.queued_at:%Y-%m-%dT%H:%MZ}" for r in missed)  # type: ignore[union-attr]
    # A line seen only now is not blamed for the past.
    fresh = tree.adapter(grace="1m")
    await jobs(fresh)
    runs, _ = await all_runs(fresh)
    assert [r for r in runs.values() if r.native_state == "missed"] == []


@pytest.mark.anyio
async def test_damaged_spool_files_are_reported_and_their_intact_part_read(
    tree: Tree, accord: str
) -> None:
    """Local mode: a run file corrupted mid-record still gives its run, which says what
    was lost; a file with nothing readable is named in the source's health (degraded)
    until a person removes it. Nothing is skipped silently."""
    tree.crontab.write_text(f"0 1 * * * root {accord} exec --job nightly -- true\n")
    adapter = tree.adapter()
    _, cursor = await all_runs(adapter)
    assert wrap(accord, tree, "true", job="nightly").returncode == 0
    (path,) = list((tree.spool / "runs").glob("*.jsonl"))
    with path.open("ab") as fh:
        fh.write(b'{"event": "end", "corrupt\n{"half a rec')  # a bad line, a cut record
    garbage = tree.spool / "runs" / "0000000000000000001-garbage.jsonl"
    garbage.write_bytes(b"\x00\x17not a spool event\n")
    runs, cursor = await all_runs(adapter, cursor)
    (run,) = runs.values()
    assert run.state == RunState.SUCCESS
    assert "spool file is damaged" in (run.message or "")
    assert "not a spool event" in (run.message or "")
    health = await adapter.check()
    assert health.status == HealthStatus.DEGRADED, health
    assert "2 damaged spool file(s)" in (health.message or ""), health.message
    assert garbage.name in (health.message or "") and "no readable start event" in (
        health.message or ""
    )
    # Removed once inspected: the source is healthy again.
    garbage.unlink()
    path.unlink()
    health = await adapter.check()
    assert health.status == HealthStatus.OK, health.message


@pytest.mark.anyio
async def test_finished_runs_leave_the_spool_after_the_retention_period(
    tree: Tree, accord: str
) -> None:
    """Local mode: a finished run's spool file stays until the retention period has
    passed, then the adapter removes it and forgets it; its run was delivered once and is
    not reported again, and later runs are read as before."""
    tree.crontab.write_text(f"0 1 * * * root {accord} exec --job nightly -- true\n")
    adapter = tree.adapter(retention="2s")
    _, cursor = await all_runs(adapter)
    assert wrap(accord, tree, "true", job="nightly").returncode == 0
    runs, cursor = await all_runs(adapter, cursor)
    (first,) = runs.values()
    assert first.state == RunState.SUCCESS
    (path,) = list((tree.spool / "runs").glob("*.jsonl"))
    again, cursor = await all_runs(adapter, cursor)
    assert again == {} and path.exists(), "kept within the retention period"
    await anyio.sleep(2.6)
    again, cursor = await all_runs(adapter, cursor)
    assert again == {}, "a removed run is not reported again"
    assert not path.exists(), "removed after the retention period"
    assert wrap(accord, tree, "true", job="nightly").returncode == 0
    runs, cursor = await all_runs(adapter, cursor)
    assert [r.state for r in runs.values()] == [RunState.SUCCESS]
    assert first.native_id not in runs
    # A gateway started now finds only the later run's file.
    fresh, _ = await all_runs(tree.adapter(retention="2s"))
    assert set(fresh) == set(runs)


@pytest.mark.anyio
async def test_a_spool_file_the_gateway_cannot_remove_is_reported_once(
    tree: Tree, accord: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tree.crontab.write_text(f"0 1 * * * root {accord} exec --job nightly -- true\n")
    adapter = tree.adapter(retention="1s")
    _, cursor = await all_runs(adapter)
    assert wrap(accord, tree, "true", job="nightly").returncode == 0
    runs, cursor = await all_runs(adapter, cursor)
    assert len(runs) == 1

    def refuse(path: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("adapters.cron.adapter.os.unlink", refuse)
    await anyio.sleep(1.5)
    for _ in range(3):
        again, cursor = await all_runs(adapter, cursor)
        assert again == {}
        await anyio.sleep(0.4)
    said = [r for r in caplog.records if "cannot remove the finished spool file" in r.message]
    assert len(said) == 1, said
    assert list((tree.spool / "runs").glob("*.jsonl")), "still there"


@pytest.mark.anyio
async def test_a_vanished_wrapper_is_a_lost_run(tree: Tree, accord: str) -> None:
    tree.crontab.write_text(f"0 1 * * * root {accord} exec --job nightly -- sleep 60\n")
    adapter = tree.adapter()
    env = {**os.environ, "ACCORD_SPOOL_DIR": str(tree.spool)}
    with subprocess.Popen(
        [accord, "exec", "--job", "nightly", "--", "sleep", "60"], env=env
    ) as proc:
        deadline = time.monotonic() + 10
        infos: list[dict[str, object]] = []
        while time.monotonic() < deadline and not infos:
            infos = [info for _, info in running_info(tree.spool)]
            time.sleep(0.05)
        runs, cursor = await all_runs(adapter)
        (run,) = runs.values()
        assert run.state == RunState.RUNNING
        proc.kill()  # SIGKILL: the wrapper cannot record the end
        proc.wait()
        pgid = infos[0]["pgid"]
        assert isinstance(pgid, int)
        os.killpg(pgid, signal.SIGKILL)  # and its command, left behind
    runs, _ = await all_runs(adapter, cursor)
    (lost,) = runs.values()
    assert (lost.state, lost.native_state) == (RunState.FAILED, "lost")
    assert "without recording the end" in (lost.message or "")


@pytest.mark.anyio
async def test_pause_and_resume_edit_the_line_reversibly(tree: Tree) -> None:
    original = (
        "# keep me\nMAILTO=ops\n15 3 * * *\troot\t/usr/local/bin/vacuum --all\n"
        "0 4 * * * root /bin/other\n"
    )
    tree.cron_d("db").write_text(original)
    os.chmod(tree.cron_d("db"), 0o644)
    adapter = tree.adapter()
    job_id = next(
        i for i, j in (await jobs(adapter)).items() if "vacuum" in j.attributes["command"]
    )
    await adapter.pause(job_id)
    text = tree.cron_d("db").read_text()
    assert "#accord:paused# 15 3 * * *\troot\t/usr/local/bin/vacuum --all\n" in text
    assert "0 4 * * * root /bin/other\n" in text
    assert oct(tree.cron_d("db").stat().st_mode & 0o777) == oct(0o644)
    paused = (await jobs(adapter))[job_id]
    assert paused.paused and paused.next_run_at is None
    await adapter.pause(job_id)  # twice is fine
    await adapter.resume(job_id)
    assert tree.cron_d("db").read_text() == original
    assert not (await jobs(adapter))[job_id].paused
    with pytest.raises(NotFound):
        await adapter.pause("web-1:cron.d/db:000000000000")
    with pytest.raises(NotFound):
        await adapter.trigger("no-such-job", {})


@pytest.mark.anyio
async def test_trigger_runs_the_line_now_through_the_wrapper(
    tree: Tree, accord: str, me: str, tmp_path: Path
) -> None:
    out, named_out = tmp_path / "out.txt", tmp_path / "named.txt"
    tree.user(me).write_text(
        f'GREETING=hello from cron\n0 3 * * * echo "$GREETING $LOGNAME" > {out}; exit 3\n'
        f"0 4 * * * {accord} exec --job named -- sh -c 'echo named > {named_out}'\n"
    )
    adapter = tree.adapter()
    found = await jobs(adapter)
    plain = next(i for i in found if i != "named")
    run = await adapter.trigger(plain, {})
    assert (run.state, run.native_state, run.trigger) == (
        RunState.QUEUED,
        "triggered",
        Trigger.MANUAL,
    )
    named = await adapter.trigger("named", {})
    with anyio.fail_after(20):
        while True:
            got = {r.native_id: r for r in await adapter.get_runs([run.native_id, named.native_id])}
            if all(r.state.terminal for r in got.values()) and len(got) == 2:
                break
            await anyio.sleep(0.1)
    assert (got[run.native_id].state, got[run.native_id].native_state) == (
        RunState.FAILED,
        "exit 3",
    )
    assert got[run.native_id].job_native_id == plain
    assert got[run.native_id].trigger == Trigger.MANUAL
    assert got[named.native_id].state == RunState.SUCCESS
    assert got[named.native_id].job_native_id == "named"
    assert out.read_text() == f"hello from cron {me}\n"  # the crontab's environment
    assert named_out.read_text() == "named\n"
    with pytest.raises(ActionNotSupported, match="no trigger parameters"):
        await adapter.trigger(plain, {"x": 1})


@pytest.mark.anyio
async def test_trigger_runs_as_the_lines_user(tree: Tree) -> None:
    shared = Path(tempfile.mkdtemp(prefix="accord-cron-as-user-"))
    try:
        shared.chmod(0o777)  # the job's user writes here
        out = shared / "who"
        tree.cron_d("as-nobody").write_text(f"0 3 * * * nobody id -un > {out}\n")
        adapter = tree.adapter()
        (job_id,) = await jobs(adapter)
        if os.geteuid() != 0:
            with pytest.raises(AdapterAuthError, match="needs root"):
                await adapter.trigger(job_id, {})
            return
        run = await adapter.trigger(job_id, {})
        with anyio.fail_after(20):
            while True:
                (got,) = await adapter.get_runs([run.native_id]) or [run]
                if got.state.terminal:
                    break
                await anyio.sleep(0.1)
        assert (got.state, got.actor) == (RunState.SUCCESS, "nobody")
        assert out.read_text() == "nobody\n"
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.anyio
async def test_cancel_stops_a_running_wrapped_run(tree: Tree, me: str) -> None:
    tree.user(me).write_text("0 3 * * * sleep 60 | cat\n")
    adapter = tree.adapter()
    (job_id,) = await jobs(adapter)
    run = await adapter.trigger(job_id, {})
    started = time.monotonic()
    await adapter.cancel(run.native_id)
    with anyio.fail_after(20):
        while True:
            (got,) = await adapter.get_runs([run.native_id])
            if got.state.terminal:
                break
            await anyio.sleep(0.1)
    assert (got.state, got.native_state) == (RunState.CANCELLED, "signal 15")
    assert time.monotonic() - started < 15
    await adapter.cancel(run.native_id)  # it already ended: nothing to do
    with pytest.raises(NotFound):
        await adapter.cancel("web-1:never-ran")


@pytest.mark.anyio
async def test_agent_mode_pushes_and_refuses_actions(tree: Tree) -> None:
    tree.crontab.write_text("0 1 * * * root /bin/x\n")
    adapter = tree.adapter(mode="agent")
    assert isinstance(adapter, CronAgentAdapter)
    assert adapter.info.capabilities == frozenset({Capability.PUSH})
    assert adapter.polls is False and CronAdapter.polls is True
    for call in (
        adapter.pause("x"),
        adapter.resume("x"),
        adapter.trigger("x", {}),
        adapter.cancel("x"),
    ):
        with pytest.raises(ActionNotSupported, match="accord agent"):
            await call
    assert [j async for j in adapter.list_jobs()] == []
    assert (await adapter.list_runs(None)).runs == ()


def test_registered_under_cron() -> None:
    cls = registry.get("cron")
    assert cls is CronAdapter
    assert {Capability.PUSH, Capability.PAUSE, Capability.TRIGGER} <= cls.info.capabilities
    assert registry.validate_config("cron", {"mode": "agent"})
    with pytest.raises(ValueError, match="timezone"):
        registry.validate_config("cron", {"timezone": "Mars/Base"})


def test_python_used_for_triggers_is_this_one() -> None:
    # trigger runs the wrapper with this interpreter; it must be able to import it.
    done = subprocess.run(
        [sys.executable, "-m", "adapters.cron.wrapper", "--help"], capture_output=True, timeout=30
    )
    assert done.returncode == 0 and b"usage: accord exec" in done.stdout
