"""Secrets scan: a configured secret value never shows up anywhere a user or an operator
can read: the served process's output (debug logging), API responses, error messages, the
audit trail and its export, metrics, and the database itself (no plaintext at rest)."""

from __future__ import annotations

import base64
import io
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect, text

from adapters.testing.jenkins_sim import JenkinsSimulator, SimState, cause_timer
from tests.conftest import wait_until

from ._gateway import Gateway, accord


@pytest.fixture
def sim_and_secret() -> Iterator[tuple[JenkinsSimulator, str]]:
    secret = "s3cr3t-" + secrets.token_hex(12)
    state = SimState()
    state.add_job("team/build", parameters={"REASON": "x"})
    state.run("team/build", "SUCCESS", cause=cause_timer())
    sim = JenkinsSimulator(state, tokens={"accord": secret}).start()
    try:
        yield sim, secret
    finally:
        sim.stop()


def _forms(secret: str) -> list[str]:
    """The value and the encodings it travels in (HTTP Basic credentials)."""
    basic = base64.b64encode(f"accord:{secret}".encode()).decode()
    return [secret, basic, secret[7:]]


def test_a_configured_secret_appears_nowhere(
    tmp_path: Path, sim_and_secret: tuple[JenkinsSimulator, str]
) -> None:
    sim, secret = sim_and_secret
    config = tmp_path / "ci.yaml"
    config.write_text(
        f"""apiVersion: accord.dev/v1
kind: Source
metadata: {{name: ci, domain: default}}
spec:
  type: jenkins
  url: {sim.url}
  username: accord
  token: {{env: ACCORD_SECRET_TEST_JENKINS}}
  triggerWait: 0s
  sync: {{inventoryEvery: 1s, runsEvery: 1s}}
"""
    )
    gw = Gateway(
        tmp_path / "data",
        extra_env={"ACCORD_SECRET_TEST_JENKINS": secret, "ACCORD_LOG_LEVEL": "debug"},
        files=[config],
    )
    seen: list[str] = []  # every body a user could read
    gw.start()
    try:
        with gw.client() as c:

            def read(method: str, path: str, **kw: object) -> httpx.Response:
                r = c.request(method, path, **kw)  # type: ignore[arg-type]
                seen.append(f"{method} {path} -> {r.status_code}\n{r.headers}\n{r.text}")
                return r

            assert read("POST", "/api/v1/sources/ci/sync").json()["error"] is None
            # An action on the tool (authenticated with the secret), then its run.
            r = read("POST", "/api/v1/jobs/ci/team/build/trigger", json={"reason": "scan"})
            assert r.status_code == 200, r.text
            read("POST", "/api/v1/sources/ci/sync")
            # Errors: the tool rejects the credentials, then answers garbage.
            sim.state.faults.reject_all_credentials = True
            # (an on-demand sync may share a pass that started just before the fault)
            assert wait_until(
                lambda: read("POST", "/api/v1/sources/ci/sync").json()["error"], timeout=30
            ), seen[-1]
            read("POST", "/api/v1/jobs/ci/team/build/trigger", json={"reason": "scan"})
            sim.state.faults.reject_all_credentials = False
            sim.state.faults.html = 5
            read("POST", "/api/v1/sources/ci/sync")
            sim.state.faults.html = 0
            for path in (
                "/api/v1/sources",
                "/api/v1/sources/ci",
                "/api/v1/jobs",
                "/api/v1/runs",
                "/api/v1/audit?limit=500",
                "/api/v1/overview",
                "/api/v1/me",
                "/readyz",
                "/metrics",
            ):
                read("GET", path)
            export = c.get("/api/v1/audit/export")
            assert export.status_code == 200
            with zipfile.ZipFile(io.BytesIO(export.content)) as z:
                for name in z.namelist():
                    seen.append(f"export {name}\n{z.read(name).decode()}")
    finally:
        gw.stop()
    done = accord(gw.env, "audit", "verify")
    seen.append(done.stdout + done.stderr)
    local_export = tmp_path / "audit.jsonl"
    done = accord(gw.env, "audit", "export", "--output", str(local_export))
    assert done.returncode == 0, done.stderr
    seen.append(local_export.read_text())
    # The database, every table, every column, as text.
    engine = create_engine(f"sqlite:///{gw.data_dir / 'accord.db'}")
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                seen.append(f"db {table}: {row!r}")
    engine.dispose()
    for f in gw.data_dir.rglob("*"):
        if f.is_file() and f.suffix not in (".db", ".db-wal", ".db-shm"):
            seen.append(f"file {f.name}: {f.read_bytes().decode(errors='replace')}")
    output = gw.text()
    assert "401" in output or "credentials" in output.lower(), "the failures were logged"
    assert any("audit" in s for s in seen)
    for form in _forms(secret):
        assert form not in output, f"the secret is in the gateway's output: {form[:4]}…"
        hits = [s.split("\n", 1)[0] for s in seen if form in s]
        assert not hits, f"the secret appears in: {hits}"
