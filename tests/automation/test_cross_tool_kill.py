"""Cross-tool firing through real processes: a build finishing in the Jenkins simulator
triggers a run in the Terraform Cloud simulator, with ``accord serve`` SIGKILLed between
"upstream observed finished" and "downstream triggered"; after the restart the downstream
is triggered exactly once."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.testing.jenkins_sim import JenkinsSimulator
from adapters.testing.jenkins_sim import SimState as JenkinsState
from adapters.testing.tfc_sim import SimState as TfcState
from adapters.testing.tfc_sim import TfcSimulator, TokenInfo

JENKINS_TOKEN = secrets.token_hex(17)
TFC_TOKEN = secrets.token_urlsafe(24)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(pred: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = pred()
        except httpx.HTTPError:
            got = None
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Gateway:
    def __init__(self, data: Path, config: Path, env: dict[str, str]) -> None:
        self.data, self.config, self.env = data, config, env
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, dispatch: bool) -> None:
        env = {
            **os.environ,
            **self.env,
            "ACCORD_DATA_DIR": str(self.data),
            "ACCORD_LOG_LEVEL": "warning",
            "ACCORD_AUTOMATION_DISPATCH": "true" if dispatch else "false",
        }
        env.pop("ACCORD_DATABASE_URL", None)
        accord = Path(sys.executable).parent / "accord"
        self.proc = subprocess.Popen(
            [str(accord), "serve", "--port", str(self.port), "-f", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        _wait(lambda: httpx.get(f"{self.url}/healthz").status_code == 200, what="the gateway")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    @property
    def headers(self) -> dict[str, str]:
        token = (self.data / "admin-token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.url}{path}", headers=self.headers, timeout=10)
        r.raise_for_status()
        return r.json()


@pytest.fixture
def tools() -> Iterator[tuple[JenkinsState, TfcState, str]]:
    jenkins = JenkinsState()
    jenkins.add_job("build-warehouse", duration_ms=1000)
    tfc = TfcState()
    tfc.add_org("acme")
    ws = tfc.add_workspace("acme", "warehouse-infra")
    tokens = {TFC_TOKEN: TokenInfo("accord-bot", frozenset({"acme"}))}
    with (
        JenkinsSimulator(jenkins, tokens={"accord": JENKINS_TOKEN}) as jsim,
        TfcSimulator(tfc, tokens=tokens) as tsim,
    ):
        jenkins.url = jsim.url  # type: ignore[attr-defined]
        tfc.url = tsim.url  # type: ignore[attr-defined]
        yield jenkins, tfc, ws.id


def _config(jenkins_url: str, tfc_url: str, ws_id: str) -> str:
    return f"""
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: ci, domain: data}}
spec:
  type: jenkins
  url: {jenkins_url}
  username: accord
  token: {{env: ACCORD_SECRET_TEST_JENKINS}}
  triggerWait: 0s
  sync: {{inventoryEvery: 2s, runsEvery: 1s}}
---
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: infra, domain: platform}}
spec:
  type: terraform
  url: {tfc_url}
  organizations: [acme]
  token: {{env: ACCORD_SECRET_TEST_TFC}}
  sync: {{inventoryEvery: 2s, runsEvery: 1s}}
---
apiVersion: accord.dev/v1
kind: RoleBinding
metadata: {{name: chain}}
spec: {{role: operator, subjects: ["dependency:warehouse-chain"], domains: ["*"]}}
---
apiVersion: accord.dev/v1
kind: Dependency
metadata: {{name: warehouse-chain}}
spec:
  upstream: ci/build-warehouse
  downstream: infra/{ws_id}
  trigger: true
  params:
    message: "after {{{{ upstream.run_uid }}}} ({{{{ upstream.state }}}}) key {{{{ firing.key }}}}"
"""


def _finish_build(state: JenkinsState) -> str:
    item, _created = state.enqueue("build-warehouse")
    build = state.start(item.id)
    assert build is not None
    state.finish("build-warehouse", build.number, "SUCCESS")
    return f"ci/build-warehouse#{build.number}"


def test_jenkins_build_triggers_terraform_run_exactly_once_across_sigkill(
    tools: tuple[JenkinsState, TfcState, str], tmp_path: Path
) -> None:
    jenkins, tfc, ws_id = tools
    config = tmp_path / "chain.yaml"
    config.write_text(_config(jenkins.url, tfc.url, ws_id))  # type: ignore[attr-defined]
    env = {"ACCORD_SECRET_TEST_JENKINS": JENKINS_TOKEN, "ACCORD_SECRET_TEST_TFC": TFC_TOKEN}
    gw = Gateway(tmp_path / "data", config, env)

    def tfc_runs() -> list[Any]:
        return [r for r in tfc.runs.values() if r.ws_id == ws_id]

    # 1. A gateway that observes but does not dispatch: the firing is stored, then killed.
    gw.start(dispatch=False)
    try:
        _wait(
            lambda: (
                {j["uid"] for j in gw.get("/api/v1/jobs")["items"]}
                >= {"ci/build-warehouse", f"infra/{ws_id}"}
            ),
            what="both inventories",
        )
        upstream = _finish_build(jenkins)

        def pending() -> Any:
            [dep] = gw.get("/api/v1/dependencies")
            return dep["firings"] and dep["firings"][0]["status"] == "pending" and dep

        dep = _wait(pending, what="the firing to be recorded")
        assert dep["firings"][0]["upstream_runs"] == [upstream]
        lineage = gw.get("/api/v1/lineage?job=ci/build-warehouse&direction=down")
        assert any(
            e["kind"] == "depends_on" and e["evidence"] == "dependency warehouse-chain"
            for e in lineage["edges"]
        ), lineage
    finally:
        gw.kill()
    assert tfc_runs() == []

    # 2. Restarted (dispatching): the firing goes out, once.
    gw.start(dispatch=True)
    try:
        fired = _wait(
            lambda: [
                f for f in gw.get("/api/v1/firings?rule=warehouse-chain") if f["status"] == "fired"
            ],
            what="the firing",
        )
        assert len(tfc_runs()) == 1
        run = tfc_runs()[0]
        assert upstream in run.message and fired[0]["key"] in run.message
        # Observed through the API: the Terraform run, linked to the Jenkins build.
        down_uid = fired[0]["result_run_uid"]
        assert down_uid == f"infra/{run.id}"
        caused_by = _wait(
            lambda: gw.get(f"/api/v1/runs/{down_uid}")["upstream"], what="the triggered edge"
        )
        assert [(u["uid"], u["source"], u["evidence"]) for u in caused_by] == [
            (upstream, "ci", "dependency warehouse-chain")
        ]
    finally:
        gw.kill()

    # 3. Killed and restarted again: nothing fires a second time.
    gw.start(dispatch=True)
    try:
        time.sleep(3)  # several dispatch polls and run syncs
        assert len(tfc_runs()) == 1
        assert [f["status"] for f in gw.get("/api/v1/firings")] == ["fired"]
    finally:
        gw.kill()


def test_kill_at_random_points_never_fires_twice(
    tools: tuple[JenkinsState, TfcState, str], tmp_path: Path
) -> None:
    """Builds finish while the gateway is SIGKILLed at arbitrary moments; whatever point a
    kill lands on, no build ever causes more than one Terraform run."""
    import random

    jenkins, tfc, ws_id = tools
    config = tmp_path / "chain.yaml"
    config.write_text(_config(jenkins.url, tfc.url, ws_id))  # type: ignore[attr-defined]
    env = {"ACCORD_SECRET_TEST_JENKINS": JENKINS_TOKEN, "ACCORD_SECRET_TEST_TFC": TFC_TOKEN}
    gw = Gateway(tmp_path / "data", config, env)
    rng = random.Random(16)
    builds: list[str] = []
    for _ in range(3):
        gw.start(dispatch=True)
        builds.append(_finish_build(jenkins))
        time.sleep(rng.uniform(0.2, 2.5))
        gw.kill()
    gw.start(dispatch=True)
    try:
        firings = _wait(
            lambda: (
                fs := gw.get("/api/v1/firings?rule=warehouse-chain"),
                len(fs) == 3 and all(f["status"] in ("fired", "unknown") for f in fs) and fs,
            )[1],
            timeout=60,
            what="every firing settled",
        )
    finally:
        gw.kill()
    runs = [r for r in tfc.runs.values() if r.ws_id == ws_id]
    by_build: dict[str, int] = {}
    for r in runs:
        for b in builds:
            if f"after {b} " in r.message:
                by_build[b] = by_build.get(b, 0) + 1
    assert all(n == 1 for n in by_build.values()), by_build
    fired = [f for f in firings if f["status"] == "fired"]
    assert len(runs) == len(by_build) >= len(fired)
    assert sorted(f["upstream_runs"][0] for f in firings) == sorted(builds)
