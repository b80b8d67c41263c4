"""The demo Terraform Cloud organization: a Terraform Cloud simulator with an organization
of networking, platform and application workspaces chained by run triggers, a few days of
runs, one plan waiting for confirmation, a locked workspace and an auto-applying one.

It runs on its own (pending runs plan, confirmed applies finish, run triggers queue the
next workspace), so a plan applied from Accord finishes within seconds. Plans wait for
confirmation: that is the approval path to try with an approver's token.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.base import DemoPart
from adapters.testing.tfc_sim import SimState, TfcSimulator, TokenInfo

__all__ = ["ORGANIZATION", "SOURCE_NAME", "TOKEN_ENV", "build_demo_state", "start_demo"]

SOURCE_NAME = "demo-terraform"
ORGANIZATION = "acme-infra"
TOKEN_ENV = "ACCORD_SECRET_DEMO_TFC_TOKEN"
HOOK_ENV = "ACCORD_SECRET_DEMO_TFC_HOOK_TOKEN"
_USER = "accord-demo"


class _Clock:
    """Starts days ago for the history, then follows real time."""

    def __init__(self, start: datetime) -> None:
        self.at: datetime | None = start

    def __call__(self) -> datetime:
        return self.at if self.at is not None else datetime.now(UTC)


def build_demo_state(now: datetime | None = None) -> SimState:
    """The demo organization, with history over the past days (usable without a server)."""
    now = now or datetime.now(UTC)
    clock = _Clock(now - timedelta(days=4))
    state = SimState(seed=11, clock=clock)
    state.add_org(ORGANIZATION, "platform@example.com")
    network = state.add_workspace(
        ORGANIZATION,
        "network-prod",
        project="Core",
        tags=["env:prod", "layer:network"],
        vcs_repo={"identifier": "acme/infra-network", "branch": "main"},
        description="VPCs, subnets and peering",
    )
    cluster = state.add_workspace(
        ORGANIZATION,
        "k8s-cluster-prod",
        project="Core",
        tags=["env:prod", "layer:platform"],
        vcs_repo={"identifier": "acme/infra-k8s", "branch": "main"},
        description="The production Kubernetes cluster",
    )
    shop = state.add_workspace(
        ORGANIZATION,
        "shop-prod",
        project="Apps",
        tags=["env:prod", "team:shop"],
        description="Databases and queues of the shop",
    )
    staging = state.add_workspace(
        ORGANIZATION,
        "shop-staging",
        project="Apps",
        auto_apply=True,
        tags=["env:staging", "team:shop"],
        description="Staging applies automatically",
    )
    dns = state.add_workspace(
        ORGANIZATION, "dns-legacy", project="Core", description="Frozen during the DNS migration"
    )
    state.add_run_trigger(cluster.id, network.id)
    state.add_run_trigger(shop.id, cluster.id)
    people = ["dana", "lee", "sam"]
    for day in range(4, 0, -1):
        clock.at = now - timedelta(days=day, hours=-9)
        run = state.create_run(
            network.id,
            message=f"Merge pull request #{40 + day}",
            source="tfe-configuration-version",
            created_by=people[day % 3],
        )
        state.plan(run.id)
        state.confirm(run.id, by="lee")
        state.finish_apply(run.id)  # queues the cluster's run via the run trigger
        for downstream in (cluster, shop):
            pending = [
                r for r in state.runs.values() if r.ws_id == downstream.id and r.status == "pending"
            ]
            for r in pending:
                state.plan(r.id, has_changes=day % 2 == 0)
                if state.runs[r.id].status == "planned":
                    state.confirm(r.id, by="dana")
                    state.finish_apply(r.id, ok=not (downstream is shop and day == 2))
        spec = state.create_run(
            staging.id, message="Nightly drift check", plan_only=True, created_by="sam"
        )
        state.plan(spec.id)
        deploy = state.create_run(staging.id, message="Deploy shop 1.4", created_by="sam")
        state.plan(deploy.id)
        state.finish_apply(deploy.id, ok=day != 3)
    clock.at = now - timedelta(minutes=20)
    waiting = state.create_run(shop.id, message="Resize the orders database", created_by="dana")
    state.plan(waiting.id, cost_estimate=True)
    discarded = state.create_run(dns.id, message="Move zones to the new provider", created_by="lee")
    state.plan(discarded.id)
    state.discard(discarded.id)
    state.set_lock(dns.id, True, by="lee", reason="DNS migration in progress")
    clock.at = None  # from now on: real time
    return state


def start_demo(workdir: Path) -> DemoPart:
    """Start the Terraform Cloud simulator on 127.0.0.1 (a free port); return its Source."""
    token = secrets.token_urlsafe(24)
    hook = secrets.token_urlsafe(24)
    state = build_demo_state()
    sim = TfcSimulator(
        state, tokens={token: TokenInfo(_USER, frozenset({ORGANIZATION}))}, auto=True
    ).start()
    document: dict[str, Any] = {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {
            "name": SOURCE_NAME,
            "domain": "platform",
            "labels": {"accord.dev/demo": "true"},
            "annotations": {
                "accord.dev/description": (
                    "Demo Terraform Cloud organization (simulator): workspaces chained by run "
                    "triggers, a plan waiting for confirmation, a locked workspace"
                )
            },
        },
        "spec": {
            "type": "terraform",
            "demo": True,
            "url": sim.url,
            "organizations": [ORGANIZATION],
            "token": {"env": TOKEN_ENV},
            "notificationToken": {"env": HOOK_ENV},
            "sync": {"inventoryEvery": "1m", "runsEvery": "10s"},
        },
    }
    return DemoPart(
        documents=[document], env={TOKEN_ENV: token, HOOK_ENV: hook}, stop=sim.stop, simulated=True
    )
