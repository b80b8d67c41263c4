"""Contract harness for the cron adapter (local mode) on a crontab tree in a temp directory.

The crontabs are real files (``etc/crontab``, ``etc/cron.d/*`` and a user crontab) of the
current user; the lines run through ``accord exec --job NAME`` so their ids are known in
advance. ``run_job`` runs a line's command the way cron would — the real wrapper, writing
to the harness's spool — and ``remove_job`` deletes the line from its file. Triggers and
cancels act on real processes.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio.to_thread
from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.cron.adapter import CronAdapter
from adapters.cron.config import CronConfig
from adapters.cron.spool_read import running_info
from gateway.model import RunState, SecretRef

from .harness import ContractHarness

__all__ = ["accord_script", "harness"]


def accord_script() -> str:
    """The ``accord`` console script of this environment (what crontab lines call)."""
    candidate = Path(sys.executable).parent / "accord"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("accord")
    if found is None:
        raise RuntimeError("the accord console script is not installed (run uv sync)")
    return found


class _Harness:
    def __init__(self, root: Path, spool: Path, adapter: CronAdapter) -> None:
        self.root = root
        self.spool = spool
        self._adapter = adapter
        self._lines: dict[str, Path] = {}
        self._counter = 0

    @property
    def adapter(self) -> CronAdapter:
        return self._adapter

    def add(self, path: Path, job: str, schedule: str, command: str, user: str | None) -> None:
        who = f"{user} " if user else ""
        line = f"{schedule} {who}{accord_script()} exec --job {job} -- {command}\n"
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line)
        self._lines[job] = path

    def job_ids(self) -> set[str]:
        return set(self._lines)

    async def run_job(self, job_id: str, final: RunState) -> str:
        self._counter += 1
        run_id = f"contract-run-{os.getpid()}-{self._counter}"
        command = "true" if final == RunState.SUCCESS else "false"
        argv = [
            sys.executable,
            "-m",
            "adapters.cron.wrapper",
            "--job",
            job_id,
            "--trigger",
            "schedule",
            "--run-id",
            run_id,
            "--spool",
            str(self.spool),
            "--",
            command,
        ]
        await anyio.to_thread.run_sync(
            lambda: subprocess.run(argv, check=False, capture_output=True, timeout=30)
        )
        return run_id

    async def remove_job(self, job_id: str) -> None:
        path = self._lines.pop(job_id)
        kept = [x for x in path.read_text().splitlines(True) if f"--job {job_id} " not in x]
        path.write_text("".join(kept))

    def trigger_params(self) -> Mapping[str, Any]:
        return {}

    def stop_leftovers(self) -> None:
        for _, info in running_info(self.spool):
            pgid = info.get("pgid")
            if isinstance(pgid, int):
                with suppress(OSError):
                    os.killpg(pgid, signal.SIGKILL)


def _no_secrets(ref: SecretRef) -> SecretStr:
    raise LookupError("no secrets in this harness")


@asynccontextmanager
async def harness() -> AsyncIterator[ContractHarness]:
    tmp = Path(tempfile.mkdtemp(prefix="accord-cron-contract-"))
    user = pwd.getpwuid(os.geteuid()).pw_name
    root, spool = tmp / "root", tmp / "spool"
    (root / "etc" / "cron.d").mkdir(parents=True)
    (root / "var" / "spool" / "cron" / "crontabs").mkdir(parents=True)
    env = f"ACCORD_SPOOL_DIR={spool}\n"
    system = root / "etc" / "crontab"
    cron_d = root / "etc" / "cron.d" / "contract"
    personal = root / "var" / "spool" / "cron" / "crontabs" / user
    for path in (system, cron_d, personal):
        path.write_text(env)
    adapter = CronAdapter(
        AdapterContext(source="cron-contract", domain="default", secrets=_no_secrets),
        CronConfig(root=str(root), host="contract-host", spool=(str(spool),), syslog="off"),
    )
    h = _Harness(root, spool, adapter)
    # Schedules far from "now" so next_run_at does not move between two listings.
    h.add(system, "contract-a-backup", "0 3 * * *", "sleep 20", user)
    h.add(system, "contract-b-report", "30 4 * * 1", "true", user)
    h.add(cron_d, "contract-c-rotate", "@monthly", "true", user)
    h.add(personal, "contract-d-sync", "15 2 1 * *", "true", None)
    try:
        yield h
    finally:
        h.stop_leftovers()
        await adapter.aclose()
        shutil.rmtree(tmp, ignore_errors=True)
