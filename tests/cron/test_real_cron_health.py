"""Against the real Debian cron daemon: a user crontab with one invalid line.

Debian's cron ignores the whole file when one line is invalid. The crontab is written
into cron's spool directly (``crontab -`` refuses an invalid file, but files get there by
other ways: restores, configuration management, hand edits), for the user ``nobody`` (its
previous crontab, if any, is put back afterwards). A gateway syncs a local-mode cron source
of this host; the source's health names the ignored file and the line at fault in the API
and the CLI, the affected job says why it has no next run, and cron's own log confirms
that the daemon ignores the file.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from gateway.api.app import create_app
from gateway.cli.app import app as cli
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services.tokens import create_token
from gateway.sync import SyncManager
from tests.api.conftest import apply_yaml

pytestmark = pytest.mark.peer

REPO = Path(__file__).resolve().parents[2]
CRON_LOG = Path("/var/log/cron.log")
USER = "nobody"
CRONTAB = Path("/var/spool/cron/crontabs") / USER


@pytest.fixture
def broken_crontab() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("the real cron tests need root: run them as root, after scripts/cron-setup.sh")
    done = subprocess.run(
        [str(REPO / "scripts" / "cron-setup.sh")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tag = uuid.uuid4().hex[:8]
    previous = CRONTAB.read_bytes() if CRONTAB.exists() else None
    text = (
        f"# accord health test {tag}\n"
        f"* * * * * echo t{tag}-fine\n"
        f"61 * * * * echo t{tag}-never\n"  # line 3: minute 61 does not exist
    )
    CRONTAB.write_text(text)
    pw = pwd.getpwnam(USER)
    os.chown(CRONTAB, pw.pw_uid, pw.pw_gid)
    CRONTAB.chmod(0o600)
    # cron notices a new crontab by the spool directory's modification time
    os.utime(CRONTAB.parent)
    try:
        yield tag
    finally:
        if previous is None:
            CRONTAB.unlink(missing_ok=True)
        else:
            CRONTAB.write_bytes(previous)
        os.utime(CRONTAB.parent)


def test_an_invalid_line_in_a_user_crontab_shows_in_source_health(
    broken_crontab: str,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tag = broken_crontab
    started = time.time()
    apply_yaml(
        engine,
        f"""
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: cron-real, domain: ops}}
spec:
  type: cron
  mode: local
  root: /
  syslog: {CRON_LOG}
""",
    )
    with session_scope(engine) as s:
        token = create_token(s, subject="ops-viewer", role="viewer", domain="ops").token
    report = anyio.run(SyncManager(engine).sync_now, "cron-real")
    assert report.error is None, report.error

    app = create_app(Settings(data_dir=tmp_path / "data"), engine=engine, start_sync=False)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        src: dict[str, Any] = client.get("/api/v1/sources/cron-real", headers=headers).json()
        jobs = client.get(
            "/api/v1/jobs", headers=headers, params={"source": "cron-real", "q": f"t{tag}"}
        ).json()["items"]
    assert src["health"] == "degraded"
    assert f"user/{USER}" in src["health_message"] and "line 3" in src["health_message"]
    # one problem for the file, at the line that makes cron ignore it
    [problem] = [p for p in src["problems"] if p["file"] == str(CRONTAB)]
    assert problem["line"] == 3
    assert "61" in problem["message"] and "cron ignores all of" in problem["message"]
    fine = next(j for j in jobs if j["name"] == f"echo t{tag}-fine")
    assert fine["next_run_at"] is None
    assert fine["no_next_run_reason"].startswith("cron ignores this whole file: line 3")

    monkeypatch.setenv("ACCORD_DATABASE_URL", str(engine.url))
    monkeypatch.setenv("COLUMNS", "400")
    res = CliRunner().invoke(cli, ["sources", "list"])
    assert res.exit_code == 0, res.output
    assert f"cron-real: {CRONTAB}:3: cron ignores all of {CRONTAB}: line 3" in res.output
    assert "degraded" in res.output

    # The daemon agrees: it reports the file as ignored (it looks at the spool each minute).
    pattern = re.compile(rf"\({USER}\) ERROR \(Syntax error, this crontab file will be ignored\)")
    deadline = time.monotonic() + 130
    seen = False
    while time.monotonic() < deadline and not seen:
        seen = any(
            pattern.search(line) and _logged_after(line, started)
            for line in CRON_LOG.read_text(errors="replace").splitlines()[-500:]
        )
        if not seen:
            time.sleep(2)
    assert seen, f"cron never said it ignores {CRONTAB}"


def _logged_after(line: str, started: float) -> bool:
    """Whether a syslog line (RFC 3339 or classic time stamp) is from after ``started``."""
    stamp = line.split(" ", 1)[0]
    try:
        from datetime import datetime

        return datetime.fromisoformat(stamp).timestamp() >= started - 1
    except ValueError:
        return True  # a classic stamp has no year; the tag-specific file makes it ours
