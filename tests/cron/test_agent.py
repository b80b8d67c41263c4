"""``accord agent`` against a stand-in of the push endpoint and against the real gateway:
delivery in order, idempotent, durable through a gateway outage and a SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from adapters.cron.agent import Agent, AgentOptions, main
from adapters.cron.config import CronConfig
from adapters.cron.spool_read import iter_runs
from gateway.model import HealthStatus, RunState

from .conftest import Tree
from .standin import StandIn


def options(
    tree: Tree, url: str, token: str, source: str = "cron-hosts", **kw: Any
) -> AgentOptions:
    config = CronConfig.model_validate(
        {
            "mode": "agent",
            "root": str(tree.root),
            "host": "web-1",
            "timezone": "UTC",
            "spool": [str(tree.spool)],
            "syslog": str(tree.log),
            "logLevel": 15,
        }
    )
    return AgentOptions(
        server=url,
        source=source,
        token=token,
        config=config,
        state_path=tree.spool / "agent-state.json",
        **kw,
    )


def wrap(accord: str, tree: Tree, code: int, job: str = "nightly") -> None:
    env = {**os.environ, "ACCORD_SPOOL_DIR": str(tree.spool)}
    env.pop("ACCORD_GATEWAY_URL", None)
    done = subprocess.run(
        [accord, "exec", "--job", job, "--", "sh", "-c", f"exit {code}"],
        env=env,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == code


def spool_files(tree: Tree) -> list[Path]:
    return list(iter_runs(tree.spool))


@pytest.fixture
def host(tree: Tree, accord: str) -> Tree:
    tree.crontab.write_text(
        f"0 1 * * * root {accord} exec --job nightly -- /usr/local/bin/backup\n"
        "*/10 * * * * root /usr/local/bin/unwrapped\n"
    )
    return tree


def test_push_inventory_runs_and_health(host: Tree, accord: str, standin: StandIn) -> None:
    wrap(accord, host, 0)
    wrap(accord, host, 3)
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    host.log.write_text(
        f"{t.isoformat()} web-1 CRON[10]: (root) CMD ([11] /usr/local/bin/unwrapped)\n"
        f"{(t + timedelta(seconds=4)).isoformat()} web-1 CRON[10]: (CRON) error "
        "(grandchild #11 failed with exit status 1)\n"
        f"{(t + timedelta(seconds=4)).isoformat()} web-1 CRON[10]: (root) END "
        "([11] /usr/local/bin/unwrapped)\n"
    )
    agent = Agent(options(host, standin.url, standin.token))
    result = agent.step()
    assert result.ok, result.error
    assert result.inventory_sent and result.runs_sent == 3
    assert set(standin.jobs) == {"nightly", next(j for j in standin.jobs if j != "nightly")}
    unwrapped = next(j for j in standin.jobs if j != "nightly")
    states = sorted((r.job_native_id, r.native_state) for r in standin.runs.values())
    assert states == sorted([("nightly", "exit 0"), ("nightly", "exit 3"), (unwrapped, "exit 1")])
    assert standin.health is not None and standin.health.status == HealthStatus.OK
    assert spool_files(host) == []  # acknowledged runs leave the spool
    # Next round: nothing new; a heartbeat push without inventory keeps the source fresh.
    pushes, received = standin.pushes, list(standin.received)
    again = agent.step()
    assert again.ok and again.runs_sent == 0 and not again.inventory_sent
    assert standin.pushes == pushes + 1 and standin.received == received
    assert standin.inventories == 1
    # A changed crontab sends the full inventory again (the gateway tombstones the rest).
    host.crontab.write_text(
        f"0 1 * * * root {accord} exec --job nightly -- /usr/local/bin/backup\n"
    )
    assert agent.step().inventory_sent
    assert set(standin.jobs) == {"nightly"}
    agent.close()


def test_outage_then_catch_up_in_order(host: Tree, accord: str, standin: StandIn) -> None:
    standin.down = True
    agent = Agent(options(host, standin.url, standin.token, batch=4))
    for code in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9):
        wrap(accord, host, code)
        result = agent.step()
        assert not result.ok and "503" in (result.error or "")
    assert len(spool_files(host)) == 10  # kept while the gateway is down
    standin.down = False
    result = agent.step()
    assert result.ok and result.runs_sent == 10
    natives = [standin.runs[r].native_state for r in standin.received]
    assert natives == [f"exit {c}" for c in range(10)]  # oldest first
    assert len(standin.received) == len(set(standin.received)) == 10
    assert spool_files(host) == []
    agent.close()


def test_a_running_run_is_sent_once_then_its_end(host: Tree, accord: str, standin: StandIn) -> None:
    env = {**os.environ, "ACCORD_SPOOL_DIR": str(host.spool)}
    agent = Agent(options(host, standin.url, standin.token))
    with subprocess.Popen(
        [accord, "exec", "--job", "nightly", "--", "sh", "-c", "read x; exit 5"],
        env=env,
        stdin=subprocess.PIPE,
    ) as proc:
        deadline = time.monotonic() + 10
        while not spool_files(host) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert agent.step().runs_sent == 1
        assert agent.step().runs_sent == 0  # the start is not sent again
        (run,) = standin.runs.values()
        assert run.state == RunState.RUNNING
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        assert proc.wait(timeout=10) == 5
    assert agent.step().runs_sent == 1
    (run,) = standin.runs.values()
    assert (run.state, run.native_state) == (RunState.FAILED, "exit 5")
    assert standin.received == [run.native_id, run.native_id]
    assert spool_files(host) == []
    agent.close()


def test_too_large_pushes_are_split(host: Tree, accord: str, standin: StandIn) -> None:
    agent = Agent(options(host, standin.url, standin.token, batch=500))
    assert agent.step().ok  # inventory and health, no runs
    for code in range(6):
        wrap(accord, host, code)
    standin.max_body = standin.sizes[0] + 800  # room for two or so runs, not six
    result = agent.step()
    assert result.ok, result.error
    assert agent.batch < 6
    assert sorted(standin.runs[r].native_state or "" for r in standin.runs) == [
        f"exit {c}" for c in range(6)
    ]
    assert 413 in standin.statuses
    agent.close()


def test_bad_token_and_unknown_source_keep_the_spool(
    host: Tree, accord: str, standin: StandIn
) -> None:
    wrap(accord, host, 0)
    bad = Agent(options(host, standin.url, "wrong-token"))
    result = bad.step()
    assert not result.ok and result.permanent
    assert "refused the token (401)" in (result.error or "")
    assert "wrong-token" not in (result.error or "")
    bad.close()
    unknown = Agent(options(host, standin.url, standin.token, source="nope"))
    result = unknown.step()
    assert not result.ok and "no source 'nope' (404)" in (result.error or "")
    unknown.close()
    assert len(spool_files(host)) == 1 and standin.runs == {}


def test_unreachable_gateway(host: Tree, accord: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wrap(accord, host, 0)
    agent = Agent(options(host, f"http://127.0.0.1:{port}", "t", timeout=2.0))
    result = agent.step()
    assert not result.ok and "cannot reach" in (result.error or "")
    assert len(spool_files(host)) == 1
    agent.close()


def _agent_cli(host: Tree, url: str, token_file: Path, *extra: str) -> list[str]:
    from adapters.testing.harness_cron import accord_script

    return [
        accord_script(),
        "agent",
        "--server",
        url,
        "--token-file",
        str(token_file),
        "--source",
        "cron-hosts",
        "--crontab-root",
        str(host.root),
        "--spool",
        str(host.spool),
        "--syslog",
        str(host.log),
        "--log-level",
        "15",
        "--host",
        "web-1",
        "--timezone",
        "UTC",
        "--interval",
        "1s",
        *extra,
    ]


def test_sigkill_mid_delivery_loses_nothing_and_stores_each_run_once(
    host: Tree, accord: str, standin: StandIn, tmp_path: Path
) -> None:
    codes = list(range(30))
    for code in codes:
        wrap(accord, host, code % 7)
    token_file = tmp_path / "token"
    token_file.write_text(standin.token + "\n")
    standin.delay = 1.0  # each push is stored, then answered a second later
    with subprocess.Popen(
        _agent_cli(host, standin.url, token_file, "--batch", "5"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        deadline = time.monotonic() + 30
        while standin.pushes < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert standin.pushes == 2  # the second batch is stored, its answer not yet sent
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert 0 < len(spool_files(host)) < 30
    standin.delay = 0.0
    done = subprocess.run(
        _agent_cli(host, standin.url, token_file, "--batch", "5", "--once"),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert len(standin.runs) == 30  # every run arrived
    assert all(n == 1 for n in standin.changes.values())  # and was stored exactly once
    assert len(standin.received) > len(set(standin.received))  # the cut batch came twice
    assert spool_files(host) == []


def test_once_exits_non_zero_when_the_gateway_refuses(
    host: Tree, standin: StandIn, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("not-the-token")
    args = _agent_cli(host, standin.url, token_file, "--once")[2:]
    assert main(args) == 1


# -- against the real gateway --------------------------------------------------------


@pytest.fixture
def gateway(engine: Engine, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """The real gateway on 127.0.0.1 with a cron source in agent mode; its URL, an agent
    token (push only) and a viewer token."""
    import uvicorn

    from gateway.api.app import create_app
    from gateway.config import apply_plan, load_documents, plan
    from gateway.settings import Settings
    from gateway.store import session_scope
    from gateway.store.services.tokens import create_token

    source = {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {"name": "cron-hosts", "domain": "ops"},
        "spec": {"type": "cron", "mode": "agent"},
    }
    docs = load_documents([("test", 1, yaml.safe_load(yaml.safe_dump(source)))])
    assert docs.ok, [str(e) for e in docs.errors]
    with session_scope(engine) as s:
        apply_plan(s, plan(s, docs.documents), subject="test", channel="cli")
        token = create_token(s, subject="agent:web-1", role="agent", domain="*").token
        viewer = create_token(s, subject="ops-viewer", role="viewer", domain="*").token
    app = create_app(Settings(data_dir=tmp_path / "data"), engine=engine, start_sync=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", token, viewer
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_end_to_end_with_the_gateway(
    host: Tree, accord: str, gateway: tuple[str, str, str], tmp_path: Path
) -> None:
    url, token, viewer = gateway
    wrap(accord, host, 0)
    wrap(accord, host, 2)
    copy = tmp_path / "spool-copy"
    shutil.copytree(host.spool, copy)
    agent = Agent(options(host, url, token))
    result = agent.step()
    assert result.ok, result.error
    # An agent that lost its state sends the same runs again: nothing changes.
    again = Agent(
        replace(
            options(host, url, token),
            config=CronConfig.model_validate(
                {**agent.options.config.model_dump(), "spool": [str(copy)]}
            ),
            state_path=copy / "state.json",
        )
    )
    assert again.step().ok
    assert list(iter_runs(copy)) == []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {viewer}"}) as client:
        jobs = client.get("/api/v1/jobs", params={"source": "cron-hosts"}).json()["items"]
        assert len(jobs) == 2 and "cron-hosts/nightly" in {j["uid"] for j in jobs}
        runs = client.get("/api/v1/runs", params={"source": "cron-hosts"}).json()["items"]
        assert sorted((r["state"], r["native_state"]) for r in runs) == [
            ("failed", "exit 2"),
            ("success", "exit 0"),
        ]
        for r in runs:
            events = client.get(f"/api/v1/runs/{r['uid']}/events").json()
            assert len(events) == 1, events  # stored once, though delivered twice
        src = client.get("/api/v1/sources/cron-hosts").json()
        assert src["health"] == "ok"
        # a viewer may read but not push
        body = {"agent": {"id": "web-1"}, "inventory": None, "runs": [], "health": None}
        assert client.post("/api/v1/sources/cron-hosts/push", json=body).status_code == 403
    bad = Agent(options(host, url, "wrong"))
    assert "401" in (bad.step().error or "")
    for a in (bad, agent, again):
        a.close()
