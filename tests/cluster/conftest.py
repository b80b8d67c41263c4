"""Three real gateway processes (``accord serve``) on one fresh PostgreSQL database, with
29 Jenkins sources on the Jenkins simulator and one Terraform source on the Terraform
Cloud simulator (for signed webhooks), all on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from adapters.testing.jenkins_sim import JenkinsSimulator
from adapters.testing.jenkins_sim.state import SimState as JenkinsState
from adapters.testing.tfc_sim import SimState as TfcState
from adapters.testing.tfc_sim import TfcSimulator, TokenInfo
from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.services.tokens import create_token

from ..api.conftest import apply_yaml
from ..conftest import _fresh_pg_database

LEASE = 3.0  # seconds: ACCORD_LEASE_SECONDS of the replicas
RUNS_EVERY = 2.0  # seconds: the Jenkins sources' runs interval
N_JENKINS = 29
JOBS = ("build", "deploy")
ORG = "acme"
JENKINS_TOKEN = secrets.token_urlsafe(16)
TFC_TOKEN = secrets.token_urlsafe(16)
HOOK_TOKEN = secrets.token_urlsafe(16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    id: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Cluster:
    engine: Engine
    replicas: list[Replica]
    token: str
    jenkins: JenkinsState
    tfc: TfcState
    workspace: str
    sources: list[str] = field(default_factory=list)

    def get(self, replica: Replica, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(
            replica.url + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=30, **kw
        )

    def post(self, replica: Replica, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(
            replica.url + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=30, **kw
        )

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive()]

    def holders(self) -> dict[str, str | None]:
        """source -> holder, as a live replica's /api/v1/cluster says."""
        r = self.get(self.live()[0], "/api/v1/cluster")
        assert r.status_code == 200, r.text
        return {s["name"]: s["holder"] for s in r.json()["sources"]}

    def builds(self) -> set[str]:
        """What every Jenkins source should hold: job#number of every build."""
        with self.jenkins.lock:
            return {
                f"{job}#{b.number}" for job in JOBS for b in self.jenkins.job(job).builds.values()
            }

    def runs(self, source: str) -> list[str]:
        with session_scope(self.engine, write=False) as s:
            rows = s.execute(text("SELECT uid FROM run WHERE source = :s"), {"s": source}).all()
        return [str(r[0]).split("/", 1)[1] for r in rows]

    def metric(self, on: Replica, name: str, **labels: str) -> float:
        body = httpx.get(on.url + "/metrics", timeout=30).text
        total = 0.0
        for line in body.splitlines():
            if not line.startswith(name):
                continue
            m = re.match(r"^(\w+)(\{[^}]*\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(got.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total


def _sources(jenkins_url: str, tfc_url: str) -> str:
    docs = [
        f"""
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: j{i:02d}, domain: ci}}
spec:
  type: jenkins
  url: {jenkins_url}
  username: accord
  token: {{env: ACCORD_SECRET_TEST_JENKINS}}
  stages: false
  sync: {{runsEvery: {RUNS_EVERY:g}s, inventoryEvery: 1h, timeout: 120s}}
"""
        for i in range(N_JENKINS)
    ]
    docs.append(
        f"""
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: tfc, domain: infra}}
spec:
  type: terraform
  url: {tfc_url}
  organizations: [{ORG}]
  token: {{env: ACCORD_SECRET_TEST_TFC_TOKEN}}
  notificationToken: {{env: ACCORD_SECRET_TEST_TFC_HOOK}}
  sync: {{runsEvery: 1h, inventoryEvery: 1h, timeout: 120s}}
"""
    )
    return "---".join(docs)


def start_replica(
    index: int, db_url: str, tmp: Path, extra_env: dict[str, str] | None = None
) -> Replica:
    port = _free_port()
    rid = f"r{index}"
    env = {
        **os.environ,
        "ACCORD_DATABASE_URL": db_url,
        "ACCORD_DATA_DIR": str(tmp / rid),
        "ACCORD_LEASE_SECONDS": str(LEASE),
        "ACCORD_REPLICA_ID": rid,
        "ACCORD_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ACCORD_LOG_LEVEL": "warning",
        "ACCORD_SECRET_TEST_JENKINS": JENKINS_TOKEN,
        "ACCORD_SECRET_TEST_TFC_TOKEN": TFC_TOKEN,
        "ACCORD_SECRET_TEST_TFC_HOOK": HOOK_TOKEN,
        **(extra_env or {}),
    }
    log = tmp / f"{rid}.log"
    accord = Path(sys.executable).parent / "accord"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(accord), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return Replica(rid, f"http://127.0.0.1:{port}", proc, log)


def wait_ready(replica: Replica, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert replica.alive(), replica.log.read_text()[-3000:]
        try:
            if httpx.get(replica.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{replica.id} did not become ready: {replica.log.read_text()[-3000:]}")


def stop(replica: Replica) -> None:
    if replica.proc.poll() is None:
        os.kill(replica.proc.pid, signal.SIGCONT)
        replica.proc.terminate()
        try:
            replica.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            replica.proc.kill()
            replica.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def cluster(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    db_url = _fresh_pg_database(postgres_server)
    engine = create_db_engine(db_url)
    upgrade(engine)
    jstate = JenkinsState()
    for job in JOBS:
        jstate.add_job(job)
        for _ in range(3):
            jstate.run(job)
    tstate = TfcState()
    tstate.add_org(ORG)
    ws = tstate.add_workspace(ORG, "app-prod")
    jenkins = JenkinsSimulator(jstate, tokens={"accord": JENKINS_TOKEN}).start()
    tfc = TfcSimulator(tstate, tokens={TFC_TOKEN: TokenInfo("accord-bot", frozenset({ORG}))})
    tfc.start()
    apply_yaml(engine, _sources(jenkins.url, tfc.url))
    with session_scope(engine) as s:
        token = create_token(s, subject="admin", role="admin", domain="*").token
    replicas: list[Replica] = []
    try:
        for i in range(3):
            replicas.append(start_replica(i, db_url, tmp))
        for r in replicas:
            wait_ready(r)
        env = Cluster(engine, replicas, token, jstate, tstate, ws.id)
        env.sources = [f"j{i:02d}" for i in range(N_JENKINS)] + ["tfc"]
        yield env
    finally:
        for r in replicas:
            stop(r)
        jenkins.stop()
        tfc.stop()
        engine.dispose()


def sse_events(
    url: str, token: str, into: list[dict[str, Any]], ready: Any, stop_after: float
) -> None:
    """Read the event stream of one replica into ``into`` (run in a thread)."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + stop_after
    with httpx.stream(
        "GET", url + "/api/v1/events", headers=headers, timeout=httpx.Timeout(5, read=20)
    ) as r:
        kind = None
        for line in r.iter_lines():
            if line.startswith(":"):
                ready.set()
            elif line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                into.append({"type": kind, "data": json.loads(line[len("data: ") :])})
            if time.monotonic() > deadline or any(e["type"] == "action" for e in into):
                return
