"""The demo cluster: a Kubernetes API-server simulator with CronJobs in three namespaces,
some history (successes, an OOMKilled run, an image that cannot be pulled), a suspended
CronJob and one that declares a cross-tool dependency on the demo Airflow-style ETL.

The simulator follows the wall clock (``auto``): CronJobs fire on their schedules, Jobs
start after a second and finish after their plan, so runs triggered from Accord end within
seconds.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.base import DemoPart
from adapters.testing.kube_sim import ClusterState, KubeSimulator, Plan

__all__ = ["SOURCE_NAME", "TOKEN_ENV", "build_demo_state", "start_demo"]

SOURCE_NAME = "demo-k8s"
TOKEN_ENV = "ACCORD_SECRET_DEMO_K8S_TOKEN"


def build_demo_state(now: datetime | None = None) -> ClusterState:
    """The demo cluster with its history (usable without a server)."""
    state = ClusterState(now=now or datetime.now(UTC))
    st = state
    st.add_cronjob(
        "data",
        "refresh-dashboards",
        "*/2 * * * *",
        labels={"accord.dev/owner": "analytics", "env": "prod"},
        annotations={
            "description": "Refreshes BI extracts after the revenue mart is built",
            "accord.dev/after": "demo-etl/build_revenue_mart",
        },
    )
    st.plans[("data", "refresh-dashboards")] = Plan(seconds=20, fail_every=7)
    st.seed_history("data", "refresh-dashboards", [True, True, True])
    st.add_cronjob(
        "data",
        "train-recommender",
        "0 */6 * * *",
        time_zone="Europe/Berlin",
        concurrency="Forbid",
        labels={"accord.dev/owner": "ml-platform", "env": "prod"},
        annotations={"description": "Retrains the recommender on fresh features"},
        history=(3, 3),
    )
    st.plans[("data", "train-recommender")] = Plan(seconds=45, pod_reason="OOMKilled")
    st.seed_history("data", "train-recommender", [True, "BackoffLimitExceeded/OOMKilled", True])
    st.add_cronjob(
        "platform",
        "rotate-certs",
        "*/5 * * * *",
        labels={"accord.dev/owner": "sre"},
        annotations={"description": "Renews internal TLS certificates"},
        deadline=120,
    )
    st.plans[("platform", "rotate-certs")] = Plan(seconds=8)
    st.seed_history("platform", "rotate-certs", [True, True, True])
    st.add_cronjob(
        "platform",
        "scan-images",
        "*/3 * * * *",
        image="registry.internal/scanner:does-not-exist",
        labels={"accord.dev/owner": "security"},
        history=(1, 2),
    )
    st.plans[("platform", "scan-images")] = Plan(
        seconds=30, fail_every=1, reason="DeadlineExceeded", pod_reason="ImagePullBackOff"
    )
    st.seed_history("platform", "scan-images", ["DeadlineExceeded/ImagePullBackOff", True])
    st.add_cronjob(
        "batch",
        "legacy-export",
        "0 2 * * 0",
        suspend=True,
        annotations={"description": "Suspended since the CRM migration (no owner!)"},
    )
    return state


def start_demo(workdir: Path) -> DemoPart:
    """Start the API-server simulator on 127.0.0.1 (a free port); return its Source."""
    token = secrets.token_urlsafe(24)
    sim = KubeSimulator(build_demo_state(), tokens=[token], auto=True).start()
    document: dict[str, Any] = {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {
            "name": SOURCE_NAME,
            "domain": "platform",
            "labels": {"accord.dev/demo": "true"},
            "annotations": {
                "accord.dev/description": (
                    "Demo Kubernetes cluster (API-server simulator): CronJobs in three "
                    "namespaces, an OOMKilled run, an image pull failure, a suspended CronJob"
                )
            },
        },
        "spec": {
            "type": "kubernetes",
            "demo": True,
            "auth": {"server": sim.url, "tokenFrom": {"env": TOKEN_ENV}},
            "ownerLabel": "accord.dev/owner",
            "sync": {"inventoryEvery": "1m", "runsEvery": "10s"},
        },
    }
    return DemoPart(documents=[document], env={TOKEN_ENV: token}, stop=sim.stop, simulated=True)
