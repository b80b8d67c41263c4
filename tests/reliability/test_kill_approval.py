"""SIGKILL the real gateway mid-approval: between the decision that completes an approval
request and the end of the action it releases (the tool's call in flight).

Promises checked after every restart: the source saw the action at most once (exactly
once when the request is recorded as done), the approval request is not left hanging
(pending, decided with an outcome, or settled as interrupted), and the audit chain
verifies. SQLite and PostgreSQL; short mode a few kills, ACCORD_LONG_TESTS=1 fifty.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.testing.jenkins_sim import JenkinsSimulator, SimState, cause_timer
from tests.conftest import wait_until

from ._gateway import Gateway, accord, kills

JOB = "prod-deploy"


class _CountingState(SimState):
    """Counts the builds Accord asks for (an identical queued item would absorb a second
    request, so the queue alone cannot tell)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.asked: list[str] = []

    def enqueue(self, path: str, cause: Any = None, **kw: Any) -> Any:
        if path == JOB:
            self.asked.append(path)
        return super().enqueue(path, cause, **kw)


def _config(path: Path, sim_url: str) -> Path:
    path.write_text(
        f"""apiVersion: accord.dev/v1
kind: Source
metadata: {{name: ci, domain: default}}
spec:
  type: jenkins
  url: {sim_url}
  username: accord
  token: {{env: ACCORD_SECRET_TEST_JENKINS_TOKEN}}
  triggerWait: 0s
  sync: {{inventoryEvery: 2s, runsEvery: 2s}}
---
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {{name: four-eyes}}
spec:
  type: approval
  selector: {{domains: [default]}}
  actions: [trigger]
  expiresAfter: 1h
"""
    )
    return path


def _token(gw: Gateway, subject: str, role: str) -> str:
    done = accord(gw.env, "tokens", "create", "--subject", subject, "--role", role)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _approval(gw: Gateway, token: str, ident: int) -> dict[str, Any]:
    rows = httpx.get(
        f"{gw.url}/api/v1/approvals",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    return next(r for r in rows if r["id"] == ident)


@pytest.mark.timeout(1200)  # gateway starts are slow on a loaded machine
def test_sigkill_mid_approval_runs_the_action_at_most_once_and_settles_the_request(
    tmp_path: Path, served_db: str | None
) -> None:
    jenkins_token = secrets.token_hex(16)
    state = _CountingState(seed=random.randrange(1 << 30))
    state.add_job(JOB)
    state.run(JOB, "SUCCESS", cause=cause_timer())
    sim = JenkinsSimulator(state, tokens={"accord": jenkins_token}).start()
    rng = random.Random()
    gw = Gateway(
        tmp_path / "data",
        served_db,
        extra_env={"ACCORD_SECRET_TEST_JENKINS_TOKEN": jenkins_token, "ACCORD_LEASE_SECONDS": "2"},
        files=[_config(tmp_path / "accord.yaml", sim.url)],
    )
    outcomes: dict[str, int] = {}
    try:
        gw.start(timeout=240)
        requester, approver = _token(gw, "olivia", "operator"), _token(gw, "alice", "approver")
        assert wait_until(
            lambda: (
                httpx.get(
                    f"{gw.url}/api/v1/jobs/ci/{JOB}", headers=gw.headers, timeout=30
                ).status_code
                == 200
            ),
            timeout=60,
        )
        for _ in range(kills(3)):
            asked_before = len(state.asked)
            held = httpx.post(
                f"{gw.url}/api/v1/jobs/ci/{JOB}/trigger",
                headers={"Authorization": f"Bearer {requester}"},
                timeout=30,
            )
            assert held.status_code == 200 and held.json()["outcome"] == "pending", held.text
            ident = int(held.json()["approval_id"])
            sim.latency = 1.0  # the trigger is in flight for a second

            def approve(ident: int = ident) -> None:
                with contextlib.suppress(httpx.HTTPError):  # killed under it
                    httpx.post(
                        f"{gw.url}/api/v1/approvals/{ident}/approve",
                        headers={"Authorization": f"Bearer {approver}"},
                        timeout=30,
                    )

            sender = threading.Thread(target=approve, daemon=True)
            sender.start()
            time.sleep(rng.uniform(0.0, 1.6))
            gw.kill()
            sender.join(15)
            time.sleep(1.2)  # a request the simulator had received is answered
            sim.latency = 0.0
            gw.start(timeout=240)

            def settled(ident: int = ident) -> bool:
                row = _approval(gw, approver, ident)
                outcome = row["outcome"]
                return row["status"] == "pending" or (
                    outcome is not None and not outcome.startswith("running")
                )

            assert wait_until(settled, timeout=60, interval=0.5), _approval(gw, approver, ident)
            row = _approval(gw, approver, ident)
            if row["status"] == "pending":  # killed before the decision: decide again now
                again = httpx.post(
                    f"{gw.url}/api/v1/approvals/{ident}/approve",
                    headers={"Authorization": f"Bearer {approver}"},
                    timeout=30,
                )
                assert again.status_code == 200, again.text
                row = _approval(gw, approver, ident)
                assert row["outcome"].startswith("ok"), row
            asked = len(state.asked) - asked_before
            assert asked <= 1, f"the source was asked {asked} times for one approval"
            if row["outcome"].startswith("ok"):
                assert asked == 1
            kind = row["outcome"].split(":")[0]
            outcomes[kind] = outcomes.get(kind, 0) + 1
            # One more decision on a decided request changes nothing.
            late = httpx.post(
                f"{gw.url}/api/v1/approvals/{ident}/approve",
                headers={"Authorization": f"Bearer {approver}"},
                timeout=30,
            )
            assert late.status_code == 409
            assert len(state.asked) - asked_before == asked
        gw.stop()
        done = accord(gw.env, "audit", "verify")
        assert done.returncode == 0 and "audit chain OK" in done.stdout, done.stdout + done.stderr
        print(f"approval kills: {outcomes}")
    finally:
        gw.kill()
        sim.stop()
