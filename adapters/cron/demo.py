"""The demo cron host: sample crontabs in a temporary directory, read in local mode.

A newcomer sees a host's crontab lines as jobs (backups, log rotation, reports, a cache
warm-up, and a file cron would ignore because of an invalid line), two days of history
(successes, failures, a missed run, one export still running), and new runs as time
passes: a small stand-in for the cron daemon runs the demo lines when they are due —
through ``accord exec`` like a real host, and writing cron's log for the line that is not
wrapped. Pausing a line in Accord stops its runs; the commands are harmless scripts in
the demo directory. Nothing here reads the machine's real crontabs.
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.base import DemoPart

from .parser import CronLine, discover
from .spool import RunWriter, new_run_id

__all__ = ["SOURCE_NAME", "start_demo"]

SOURCE_NAME = "demo-cron"
_HOST = "demo-cron-host"
_HISTORY = timedelta(hours=36)
_TICK = 5.0
_SECOND = timedelta(seconds=1)

_SCRIPTS = {
    "backup-db.sh": 'echo "pg_dump $1: 1.9 GB written"; sleep 4',
    "rotate-logs.sh": 'echo "rotated 12 files"; sleep 1',
    "revenue-report.sh": 'echo "report for $(date +%F) sent to finance@example.com"; sleep 3',
    "warehouse-export.sh": 'echo "exporting 48 partitions"; sleep 20',
    "cleanup.sh": 'echo "removed $(od -An -N1 -tu1 /dev/urandom | tr -d " ") files from $1"',
    "warm-cache.sh": 'echo "warmed 310 keys"; sleep 2',
    "send-kpis.sh": 'echo "KPIs sent"',
    "legacy-report.sh": 'echo "legacy report"',
}
# The export running from the start: it ends after 20 minutes, or as soon as the process
# that started the demo is gone (a gateway killed without stopping its demo).
_LONG_EXPORT = """#!/bin/sh
echo "exporting 480 partitions (full refresh)"
i=0
while [ $i -lt 240 ] && kill -0 "$1" 2>/dev/null; do sleep 5; i=$((i+1)); done
"""


def _accord() -> str:
    candidate = Path(sys.executable).parent / "accord"
    if candidate.exists():
        return str(candidate)
    return shutil.which("accord") or "accord"


def _write_tree(base: Path, user: str) -> dict[str, Path]:
    root, spool, bin_dir = base / "root", base / "spool", base / "bin"
    for d in (root / "etc" / "cron.d", root / "var" / "spool" / "cron" / "crontabs", bin_dir):
        d.mkdir(parents=True, exist_ok=True)
    for name, body in _SCRIPTS.items():
        path = bin_dir / name
        # about one run in ten fails, like real jobs do now and then
        path.write_text(
            "#!/bin/sh\n"
            f"{body}\n"
            'if [ "$(od -An -N1 -tu1 /dev/urandom | tr -d " ")" -lt 26 ]; then\n'
            '  echo "error: upstream not ready" >&2; exit 2\nfi\n'
        )
        path.chmod(0o755)
    (bin_dir / "full-export.sh").write_text(_LONG_EXPORT)
    (bin_dir / "full-export.sh").chmod(0o755)
    accord = _accord()
    env = f"SHELL=/bin/sh\nPATH={bin_dir}:/usr/bin:/bin\nACCORD_SPOOL_DIR={spool}\n"
    (root / "etc" / "crontab").write_text(
        "# /etc/crontab on the demo host\n"
        f"{env}\n"
        "# Nightly PostgreSQL backup of the orders database\n"
        "# owner: sre\n# label: tier=gold\n"
        f"15 2 * * * {user} {accord} exec --job db-backup -- backup-db.sh orders\n"
        "\n# Log rotation (not wrapped: its runs come from cron's log)\n# owner: sre\n"
        f"*/10 * * * * {user} rotate-logs.sh\n"
    )
    (root / "etc" / "cron.d" / "reports").write_text(
        f"{env}\n"
        "# Daily revenue report for finance\n# owner: finance-eng\n# label: env=prod\n"
        f"0 6 * * 1-5 {user} {accord} exec --job finance-report -- revenue-report.sh\n"
        "\n# Hourly warehouse export\n# owner: data-eng\n"
        f"0 * * * * {user} {accord} exec --job warehouse-export -- warehouse-export.sh\n"
    )
    (root / "etc" / "cron.d" / "legacy").write_text(
        f"{env}\n"
        "# Legacy reports, kept for the audit (someone typed hour 25)\n"
        f"0 25 * * * {user} legacy-report.sh\n"
        f"30 5 * * * {user} send-kpis.sh\n"
    )
    personal = root / "var" / "spool" / "cron" / "crontabs" / user
    personal.write_text(
        f"{env}\n"
        "# Clean temporary uploads\n# owner: web\n"
        f"30 * * * * {accord} exec --job tmp-cleanup -- cleanup.sh /tmp/uploads\n"
        "# Warm the product cache\n# owner: web\n"
        f"*/15 * * * * {accord} exec --job cache-warmup -- warm-cache.sh\n"
    )
    personal.chmod(0o600)
    log = base / "cron.log"
    log.touch()
    return {"root": root, "spool": spool, "log": log}


_OUTPUT = {
    "db-backup": ("pg_dump orders: 1.9 GB written", "pg_dump: error: connection to server failed"),
    "finance-report": ("report sent to finance@example.com", "ERROR: revenue_daily is empty"),
    "warehouse-export": ("exported 48 partitions", "export failed: bucket quota exceeded"),
    "tmp-cleanup": ("removed 212 files from /tmp/uploads", "rm: permission denied"),
    "cache-warmup": ("warmed 310 keys", "redis: connection refused"),
}


def _history(paths: dict[str, Path], user: str, now: datetime) -> datetime:
    """Write past runs of the demo lines (spool and cron's log); return where it begins."""
    rng = random.Random(20260301)
    start = now - _HISTORY
    found = discover(paths["root"], host=_HOST, timezone="UTC")
    missed_gap: datetime | None = None
    log_lines: list[str] = []
    pid = 41000
    for line in found.lines:
        if line.schedule is None or line.schedule.reboot or line.problems:
            continue
        # The current minute is left to the demo cron.
        times = line.schedule.between(start, now.replace(second=0, microsecond=0) - _SECOND)
        if line.native_id == "cache-warmup" and len(times) > 12:
            missed_gap = times[-12]  # three hours ago cron did not start it (host busy)
        for t in times:
            if t == missed_gap:
                continue
            failed = rng.random() < (0.35 if line.native_id == "finance-report" else 0.07)
            typical = {"db-backup": 840.0, "warehouse-export": 610.0}.get(line.native_id, 4.0)
            took = max(1.0, rng.gauss(typical, typical / 8))
            begin = t + timedelta(seconds=rng.uniform(0.2, 1.5))
            took = min(took, (now - begin).total_seconds())
            if line.wrapped is None:
                pid += 3
                end = begin + timedelta(seconds=took)
                log_lines.append(
                    f"{begin.isoformat()} {_HOST} CRON[{pid}]: ({user}) CMD "
                    f"([{pid + 1}] {line.shell_command})\n"
                )
                if failed:
                    log_lines.append(
                        f"{end.isoformat()} {_HOST} CRON[{pid}]: (CRON) error "
                        f"(grandchild #{pid + 1} failed with exit status 1)\n"
                    )
                log_lines.append(
                    f"{end.isoformat()} {_HOST} CRON[{pid}]: ({user}) END "
                    f"([{pid + 1}] {line.shell_command})\n"
                )
                continue
            _spooled_run(paths["spool"], line.native_id, user, begin, took, failed, line)
    log_lines.sort()
    with open(paths["log"], "a", encoding="utf-8") as fh:
        fh.writelines(log_lines)
    return start


def _spooled_run(
    spool: Path, job: str, user: str, begin: datetime, took: float, failed: bool, line: CronLine
) -> None:
    start_ns = int(begin.timestamp() * 1e9)
    writer = RunWriter(str(spool), start_ns, 1)
    run_id = new_run_id(_HOST, start_ns, 1)
    ok, bad = _OUTPUT.get(job, ("done", "failed"))
    argv = list(line.wrapped.argv) if line.wrapped and line.wrapped.argv else []
    writer.write(
        {
            "event": "start",
            "run": run_id,
            "job": job,
            "host": _HOST,
            "user": user,
            "argv": argv,
            "cwd": "/",
            "trigger": "schedule",
            "at": begin.isoformat(),
            "pid": 1,
            "pid_start": None,
            "child": 2,
            "pgid": 2,
        }
    )
    end = begin + timedelta(seconds=took)
    writer.write(
        {
            "event": "end",
            "run": run_id,
            "at": end.isoformat(),
            "exit": 1 if failed else 0,
            "signal": None,
            "duration": round(took, 3),
            "tail": bad if failed else ok,
            "error": None,
        }
    )
    writer.close()


class _DemoCron:
    """Runs the demo lines when due, like cron: through the shell, with the line's
    environment; writes cron's log lines for the lines that are not wrapped."""

    def __init__(self, paths: dict[str, Path], user: str) -> None:
        self.paths = paths
        self.user = user
        self.stop_event = threading.Event()
        self.children: list[subprocess.Popen[bytes]] = []
        self.done: set[tuple[str, datetime]] = set()
        self.thread = threading.Thread(target=self._loop, name="demo-cron", daemon=True)
        self.log_lock = threading.Lock()

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop_event.wait(_TICK):
            self.tick(datetime.now(UTC))

    def tick(self, now: datetime) -> None:
        minute = now.replace(second=0, microsecond=0)
        found = discover(self.paths["root"], host=_HOST, timezone="UTC")
        for line in found.lines:
            if line.paused or line.problems or line.schedule is None or line.schedule.reboot:
                continue
            if (line.native_id, minute) in self.done:
                continue
            if line.schedule.next_runs(minute - timedelta(seconds=1))[0] != minute:
                continue
            self.done.add((line.native_id, minute))
            self._run(line.shell_command, line.env_map, line.wrapped is None)
        self.children = [c for c in self.children if c.poll() is None]
        self.done = {d for d in self.done if d[1] >= minute - timedelta(minutes=2)}

    def _run(self, command: str, env: dict[str, str], log: bool) -> None:
        full = {
            "HOME": str(self.paths["root"].parent),
            "LOGNAME": self.user,
            "ACCORD_EXEC_TRIGGER": "schedule",  # what cron's runs are
            **env,
        }
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            env=full,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.children.append(proc)
        if log:
            self._log(f"({self.user}) CMD ([{proc.pid}] {command})")
            threading.Thread(target=self._ended, args=(proc, command), daemon=True).start()

    def _ended(self, proc: subprocess.Popen[bytes], command: str) -> None:
        code = proc.wait()
        if code != 0:
            self._log(f"(CRON) error (grandchild #{proc.pid} failed with exit status {code})")
        self._log(f"({self.user}) END ([{proc.pid}] {command})")

    def _log(self, text: str) -> None:
        stamp = datetime.now(UTC).isoformat()
        with self.log_lock, open(self.paths["log"], "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} {_HOST} CRON[{os.getpid()}]: {text}\n")

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.ident is not None:
            self.thread.join(timeout=10)
        for child in self.children:
            if child.poll() is None:
                try:
                    os.killpg(child.pid, 15)
                except OSError:
                    continue
                child.wait(timeout=10)


def start_demo(workdir: Path) -> DemoPart:
    """Write the demo host under ``workdir``, start its stand-in cron; return the Source."""
    base = workdir / "cron-demo"
    shutil.rmtree(base, ignore_errors=True)
    user = pwd.getpwuid(os.geteuid()).pw_name
    paths = _write_tree(base, user)
    since = _history(paths, user, datetime.now(UTC))
    cron = _DemoCron(paths, user)
    # One export is running right now (it can be cancelled from Accord).
    export = f"{_accord()} exec --job warehouse-export -- full-export.sh {os.getpid()}"
    path = f"{base / 'bin'}:/usr/bin:/bin"
    cron._run(export, {"ACCORD_SPOOL_DIR": str(paths["spool"]), "PATH": path}, False)
    cron.start()
    document: dict[str, Any] = {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {
            "name": SOURCE_NAME,
            "domain": "platform",
            "labels": {"accord.dev/demo": "true"},
            "annotations": {
                "accord.dev/description": "Demo cron host: sample crontabs in a temporary "
                "directory, run by a demo stand-in for cron"
            },
        },
        "spec": {
            "type": "cron",
            "demo": True,
            "mode": "local",
            "root": str(paths["root"]),
            "host": _HOST,
            "timezone": "UTC",
            "spool": [str(paths["spool"])],
            "syslog": str(paths["log"]),
            "logLevel": 15,
            "watchFrom": since.isoformat(),
            "sync": {"inventoryEvery": "1m", "runsEvery": "10s"},
        },
    }

    def stop() -> None:
        cron.stop()
        shutil.rmtree(base, ignore_errors=True)

    stop_fn: Callable[[], None] = stop
    return DemoPart(documents=[document], env={}, stop=stop_fn)
