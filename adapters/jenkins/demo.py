"""The demo Jenkins: a Jenkins simulator with folders, a build → test → deploy chain, a
nightly timer job, a failing job, a disabled job, a multibranch project, some days of
history and one item waiting in the build queue.

It runs on its own (queue items start after a short quiet period, builds finish after
their duration, timers fire on Jenkins' hashed schedule), so runs triggered from Accord
proceed to their end within seconds.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from adapters.base import DemoPart
from adapters.testing.jenkins_sim import (
    JenkinsSimulator,
    SimState,
    cause_scm,
    cause_timer,
    cause_user,
)

__all__ = ["SOURCE_NAME", "TOKEN_ENV", "build_demo_state", "start_demo"]

SOURCE_NAME = "demo-jenkins"
TOKEN_ENV = "ACCORD_SECRET_DEMO_JENKINS_TOKEN"
_USER = "accord-demo"
_DAY_MS = 86_400_000
_MIN_MS = 60_000


def _chain(state: SimState, start_ms: int, *, fail_test: bool, actor: str | None) -> None:
    """One pass of build → test → deploy; each downstream starts from an upstream cause."""
    cause = cause_user(actor) if actor else cause_scm()
    build = state.run(
        "platform/app/build", "SUCCESS", cause=cause, at_ms=start_ms, duration_ms=95_000
    )
    at = start_ms + 2 * _MIN_MS
    for path in ("platform/app/test", "platform/app/deploy"):
        item = next((q for q in state.queue.values() if q.job.full_name == path), None)
        if item is None:
            return
        started = state.start(item.id, at_ms=at)
        assert started is not None
        failed = fail_test and path == "platform/app/test"
        state.finish(
            path,
            started.number,
            "UNSTABLE" if failed else "SUCCESS",
            duration_ms=240_000 if path.endswith("test") else 130_000,
            failed_stage=1 if failed else None,
        )
        at += 5 * _MIN_MS
    del build


def build_demo_state(now_ms: int | None = None) -> SimState:
    """The demo's controller, with history over the past days (usable without a server)."""
    state = SimState(
        system_message="Demo Jenkins (Jenkins simulator): sample jobs and history for Accord"
    )
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    state.quiet_period_ms = 1500
    state.add_folder("platform", "Platform team")
    state.add_folder("platform/app", "The shop application")
    state.add_folder("ops", "Operations")
    state.add_job(
        "platform/app/build",
        description="Compile and package the shop application",
        downstream=["platform/app/test"],
        parameters={"BRANCH": "main"},
        duration_ms=6000,
    )
    state.add_job(
        "platform/app/test",
        description="Integration tests of the shop application",
        downstream=["platform/app/deploy"],
        duration_ms=8000,
        fail_rate=0.2,
    )
    state.add_job(
        "platform/app/deploy",
        "pipeline",
        description="Deploy the shop application to production",
        stages=["Plan", "Approve", "Apply", "Smoke test"],
        duration_ms=9000,
    )
    state.add_job(
        "finance/publish-pack",
        "pipeline",
        description="Publish the finance pack once the books are closed (started by Accord)",
        stages=["Collect", "Render", "Publish"],
        duration_ms=6000,
    )
    state.add_job(
        "ops/nightly-report",
        "pipeline",
        spec="H 2 * * *",
        description="Nightly business report (hashed 02:xx UTC)",
        stages=["Extract", "Render", "Publish"],
        duration_ms=7000,
    )
    state.add_job(
        "ops/flaky-integration",
        spec="H/30 * * * *",
        description="Calls a partner sandbox that is often down",
        duration_ms=5000,
        fail_rate=0.7,
    )
    state.add_job(
        "ops/db-maintenance",
        spec="TZ=Europe/Berlin\nH 4 * * 0",
        description="Weekly VACUUM; disabled during the database migration",
        disabled=True,
    )
    state.add_branch("platform/web", "main", stages=["Build", "Test"], duration_ms=5000)
    state.add_branch("platform/web", "feature/checkout", stages=["Build", "Test"], duration_ms=5000)
    # History: a chain each day, nightly reports, a flaky job failing more than not.
    for day in range(5, 0, -1):
        base = now - day * _DAY_MS
        _chain(state, base + 9 * 60 * _MIN_MS, fail_test=day == 3, actor="dana")
        _chain(state, base + 15 * 60 * _MIN_MS, fail_test=False, actor=None)
        state.run(
            "ops/nightly-report",
            "FAILURE" if day == 2 else "SUCCESS",
            cause=cause_timer(),
            at_ms=base + 2 * 60 * _MIN_MS + 17 * _MIN_MS,
            duration_ms=420_000,
            failed_stage=1 if day == 2 else None,
        )
        for half_hour in range(0, 24, 6):
            failed = (day + half_hour) % 3 != 0
            state.run(
                "ops/flaky-integration",
                "FAILURE" if failed else "SUCCESS",
                cause=cause_timer(),
                at_ms=base + half_hour * 60 * _MIN_MS + 11 * _MIN_MS,
                duration_ms=45_000,
            )
        state.run(
            "platform/web/main",
            "SUCCESS",
            cause=cause_scm(),
            at_ms=base + 11 * 60 * _MIN_MS,
            duration_ms=180_000,
        )
    state.run(
        "platform/web/feature%2Fcheckout",
        "ABORTED",
        cause=cause_user("lee"),
        at_ms=now - 3 * 60 * _MIN_MS,
        duration_ms=30_000,
        failed_stage=0,
    )
    # One item waits in the queue for an executor that never frees up.
    state.enqueue(
        "platform/web/feature%2Fcheckout",
        cause_user("sam"),
        why="Waiting for next available executor on 'macos-arm64'",
        blocked=True,
    )
    return state


def start_demo(workdir: Path) -> DemoPart:
    """Start the Jenkins simulator on 127.0.0.1 (a free port); return its Source document."""
    token = secrets.token_urlsafe(18)
    sim = JenkinsSimulator(build_demo_state(), tokens={_USER: token}, auto=True).start()
    document: dict[str, Any] = {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {
            "name": SOURCE_NAME,
            "domain": "platform",
            "labels": {"accord.dev/demo": "true"},
            "annotations": {
                "accord.dev/description": (
                    "Demo Jenkins (simulator): folders, a build → test → deploy chain, a "
                    "nightly timer job, a failing and a disabled job"
                )
            },
        },
        "spec": {
            "type": "jenkins",
            "demo": True,
            "url": sim.url,
            "username": _USER,
            "token": {"env": TOKEN_ENV},
            "sync": {"inventoryEvery": "1m", "runsEvery": "10s"},
        },
    }
    return DemoPart(documents=[document], env={TOKEN_ENV: token}, stop=sim.stop, simulated=True)
