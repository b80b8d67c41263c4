"""``accord exec``: the command runs unchanged, and every run lands in the spool."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from adapters.cron.spool_read import iter_runs, read_run, running_info

from .standin import StandIn

_DELIVERY = ("ACCORD_GATEWAY_URL", "ACCORD_TOKEN", "ACCORD_SOURCE", "ACCORD_TOKEN_FILE")


def run(
    accord: str, spool: Path, *command: str, job: str | None = "job-x", **kw: Any
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in _DELIVERY}
    env.update({"ACCORD_SPOOL_DIR": str(spool), **kw.pop("env", {})})
    opts = ["--job", job] if job else []
    return subprocess.run(
        [accord, "exec", *opts, "--", *command], env=env, capture_output=True, timeout=60, **kw
    )


def spooled(spool: Path) -> list[dict[str, Any]]:
    """(start, end) of every run in the spool, oldest first."""
    out = []
    for path in iter_runs(spool):
        r = read_run(path)
        assert r is not None
        out.append({"start": r.start, "end": r.end, "events": r.events})
    return out


@pytest.mark.parametrize("code", [0, 1, 3, 255])
def test_exit_status_is_the_commands_own(accord: str, tmp_path: Path, code: int) -> None:
    done = run(accord, tmp_path, sys.executable, "-c", f"import sys; sys.exit({code})")
    assert done.returncode == code
    (entry,) = spooled(tmp_path)
    assert entry["events"] == 2
    start, end = entry["start"], entry["end"]
    assert start["job"] == "job-x" and start["argv"][0] == sys.executable
    assert start["run"] == end["run"]
    assert (end["exit"], end["signal"], end["error"]) == (code, None, None)
    assert 0 <= end["duration"] < 30


def test_output_passes_through_unchanged_and_the_tail_is_kept(accord: str, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "for i in range(5000): print(f'line {i}')\n"
        "sys.stdout.flush()\n"
        "sys.stderr.write('warning: \\xff bytes follow\\n')\n"
        "sys.stdout.buffer.write(bytes(range(256)))\n"
    )
    done = run(accord, tmp_path, sys.executable, "-c", script)
    expected = "".join(f"line {i}\n" for i in range(5000)).encode() + bytes(range(256))
    assert done.stdout == expected
    assert done.stderr == "warning: \xff bytes follow\n".encode()
    (entry,) = spooled(tmp_path)
    tail = entry["end"]["tail"]
    assert "line 4999" in tail and "line 0\n" not in tail
    assert len(tail) <= 1500 and tail.count("\n") <= 20


def test_stdin_reaches_the_command(accord: str, tmp_path: Path) -> None:
    done = run(accord, tmp_path, "cat", input=b"from stdin\n")
    assert done.stdout == b"from stdin\n" and done.returncode == 0


def test_killed_by_a_signal_exits_128_plus_n(accord: str, tmp_path: Path) -> None:
    done = run(accord, tmp_path, sys.executable, "-c", "import os; os.kill(os.getpid(), 15)")
    assert done.returncode == 128 + 15
    crash = run(accord, tmp_path, sys.executable, "-c", "import os; os.kill(os.getpid(), 11)")
    assert crash.returncode == 128 + 11
    ends = [e["end"] for e in spooled(tmp_path)]
    assert [(e["exit"], e["signal"]) for e in ends] == [(None, 15), (None, 11)]


def test_command_not_found_and_not_executable(accord: str, tmp_path: Path) -> None:
    missing = run(accord, tmp_path, str(tmp_path / "no-such-command"))
    assert missing.returncode == 127
    assert b"command not found" in missing.stderr
    plain = tmp_path / "plain.txt"
    plain.write_text("not a program\n")
    denied = run(accord, tmp_path, str(plain))
    assert denied.returncode == 126
    ends = [e["end"] for e in spooled(tmp_path)]
    assert [e["exit"] for e in ends] == [127, 126]
    assert "command not found" in ends[0]["error"]


def test_usage_errors(accord: str, tmp_path: Path) -> None:
    done = subprocess.run([accord, "exec"], capture_output=True, timeout=30)
    assert done.returncode == 2 and b"no command given" in done.stderr
    done = subprocess.run(
        [accord, "exec", "--bogus", "--", "true"], capture_output=True, timeout=30
    )
    assert done.returncode == 2 and b"unknown option --bogus" in done.stderr


def _wait_running(spool: Path, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        infos = [info for _, info in running_info(spool)]
        if infos:
            return infos[0]
        time.sleep(0.02)
    raise AssertionError("the wrapper did not record its running state")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signals_are_forwarded_to_the_command(accord: str, tmp_path: Path, sig: int) -> None:
    env = {**os.environ, "ACCORD_SPOOL_DIR": str(tmp_path)}
    with subprocess.Popen(
        [accord, "exec", "--job", "sleeper", "--", "sleep", "30"],
        env=env,
        stdin=subprocess.DEVNULL,
    ) as proc:
        try:
            info = _wait_running(tmp_path)
            assert info["pid"] == proc.pid and info["pgid"] == info["child"]
            started = time.monotonic()
            proc.send_signal(sig)
            assert proc.wait(timeout=10) == 128 + sig
            assert time.monotonic() - started < 5
        finally:
            if proc.poll() is None:
                proc.kill()
    (entry,) = spooled(tmp_path)
    assert entry["end"]["signal"] == sig
    assert list(running_info(tmp_path)) == []  # the running-state file is gone


def test_a_command_handling_the_signal_keeps_its_own_status(accord: str, tmp_path: Path) -> None:
    script = "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
    script += "print('ready', flush=True)\ntime.sleep(30)\n"
    env = {**os.environ, "ACCORD_SPOOL_DIR": str(tmp_path)}
    with subprocess.Popen(
        [accord, "exec", "--", sys.executable, "-c", script],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 7
    (entry,) = spooled(tmp_path)
    assert (entry["end"]["exit"], entry["end"]["signal"]) == (7, None)


def test_spool_failure_never_fails_the_command(accord: str, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    done = run(accord, blocker, "sh", "-c", "echo still runs; exit 5")
    assert done.returncode == 5
    assert done.stdout == b"still runs\n"
    assert b"cannot write the run to the spool" in done.stderr


def test_a_background_child_holding_the_output_does_not_hold_the_wrapper(
    accord: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    done = run(accord, tmp_path, "sh", "-c", "sleep 20 & echo parent done")
    assert done.returncode == 0 and done.stdout.startswith(b"parent done")
    assert time.monotonic() - started < 10


def test_a_closed_stdout_does_not_change_the_outcome(accord: str, tmp_path: Path) -> None:
    env = {**os.environ, "ACCORD_SPOOL_DIR": str(tmp_path)}
    with subprocess.Popen(
        [accord, "exec", "--", sys.executable, "-c", "print('x' * 500000); raise SystemExit(4)"],
        env=env,
        stdout=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        proc.stdout.close()  # like `| head -c 10`
        assert proc.wait(timeout=30) == 4
    (entry,) = spooled(tmp_path)
    assert entry["end"]["exit"] == 4


def test_the_hot_path_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from gateway.cli.main import main\n"
        "try:\n"
        "    main(['exec', '--', 'true'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = ('pydantic', 'typer', 'httpx', 'fastapi', 'sqlalchemy', 'gateway.model')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    env = {**os.environ, "ACCORD_SPOOL_DIR": str(tmp_path)}
    env.pop("ACCORD_GATEWAY_URL", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == b"[]"


def test_direct_delivery_when_configured(accord: str, tmp_path: Path, standin: StandIn) -> None:
    env = {
        "ACCORD_GATEWAY_URL": standin.url,
        "ACCORD_SOURCE": standin.source,
        "ACCORD_TOKEN": standin.token,
    }
    done = run(accord, tmp_path, "sh", "-c", "echo boom >&2; exit 3", job="db-backup", env=env)
    assert done.returncode == 3
    (run_rec,) = standin.runs.values()
    assert run_rec.job_native_id == "db-backup"
    assert (run_rec.state.value, run_rec.native_state) == ("failed", "exit 3")
    assert run_rec.started_at is not None and run_rec.ended_at is not None
    assert run_rec.ended_at >= run_rec.started_at
    assert "boom" in (run_rec.message or "")
    assert spooled(tmp_path) == []  # acknowledged: nothing left for the agent


def test_direct_delivery_to_a_dead_gateway_keeps_the_spool(accord: str, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    env = {
        "ACCORD_GATEWAY_URL": f"http://127.0.0.1:{port}",
        "ACCORD_SOURCE": "cron-hosts",
        "ACCORD_TOKEN": "t",
    }
    started = time.monotonic()
    done = run(accord, tmp_path, "true", job="db-backup", env=env)
    assert done.returncode == 0
    assert time.monotonic() - started < 10
    (entry,) = spooled(tmp_path)
    assert entry["end"]["exit"] == 0


def test_run_ids_are_unique_and_files_are_json_lines(accord: str, tmp_path: Path) -> None:
    for _ in range(5):
        run(accord, tmp_path, "true")
    entries = spooled(tmp_path)
    assert len({e["start"]["run"] for e in entries}) == 5
    for path in iter_runs(tmp_path):
        lines = path.read_text().splitlines()
        assert [json.loads(x)["event"] for x in lines] == ["start", "end"]
