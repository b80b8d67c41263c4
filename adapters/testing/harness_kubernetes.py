"""Contract harness for the Kubernetes adapter: the API-server simulator over real HTTP,
reached through the official ``kubernetes`` client.

CronJobs sit in two namespaces. ``run_job`` creates a Job the way the CronJob controller
does for a scheduled time and finishes it; because the adapter learns of changes through
its watches, the harness waits (bounded) until the adapter has seen the outcome — what a
user would see a moment later.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.kubernetes.adapter import KubernetesAdapter
from adapters.kubernetes.config import KubernetesConfig
from gateway.model import RunState, SecretRef

from .harness import ContractHarness
from .kube_sim import ClusterState, KubeSimulator

__all__ = ["connect", "harness", "seed"]

_WAIT = 10.0


def _id(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}@{meta['uid'].replace('-', '')[:8]}"


def seed(state: ClusterState) -> None:
    # Schedules far from "now" so next_run_at does not move between two listings.
    state.add_cronjob("etl", "nightly-load", "0 3 * * *", labels={"accord.dev/owner": "data"})
    state.add_cronjob("etl", "weekly-report", "30 4 * * 1", time_zone="Europe/Berlin")
    state.add_cronjob("ops", "cert-check", "15 2 1 * *", concurrency="Forbid", deadline=600)


class _Harness:
    def __init__(self, sim: KubeSimulator, adapter: KubernetesAdapter) -> None:
        self.sim = sim
        self._adapter = adapter
        self._count = 0

    @property
    def adapter(self) -> KubernetesAdapter:
        return self._adapter

    def job_ids(self) -> set[str]:
        with self.sim.state.lock:
            return {_id(o) for o in self.sim.state.items("cronjobs")}

    async def run_job(self, job_id: str, final: RunState) -> str:
        ns, rest = job_id.split("/", 1)
        name = rest.split("@", 1)[0]
        state = self.sim.state
        self._count += 1
        with state.lock:
            job = state.job_from_cronjob(ns, name, f"{name}-{28_000_000 + self._count}")
            state.finish_job(ns, job["metadata"]["name"], succeeded=final == RunState.SUCCESS)
        run_id = f"{job_id}/{job['metadata']['name']}@{job['metadata']['uid'].replace('-', '')[:8]}"
        deadline = time.monotonic() + _WAIT
        while time.monotonic() < deadline:
            got = await self._adapter.get_runs([run_id])
            if got and got[0].state.terminal and got[0].native_state != "Deleted":
                break
            await anyio.sleep(0.02)
        return run_id

    async def remove_job(self, job_id: str) -> None:
        ns, rest = job_id.split("/", 1)
        name = rest.split("@", 1)[0]
        with self.sim.state.lock:
            self.sim.state.delete("cronjobs", ns, name)
        deadline = time.monotonic() + _WAIT
        while time.monotonic() < deadline:
            if job_id not in {j.native_id async for j in self._adapter.list_jobs()}:
                break
            await anyio.sleep(0.02)

    def trigger_params(self) -> Mapping[str, Any]:
        return {}


def connect(
    sim: KubeSimulator, token: str, source: str = "contract-kubernetes", **settings: Any
) -> KubernetesAdapter:
    """An adapter on the simulator with a bearer token (``auth.tokenFrom``)."""

    def resolve(ref: SecretRef) -> SecretStr:
        if ref.env == "ACCORD_SECRET_CONTRACT_K8S_TOKEN":
            return SecretStr(token)
        raise LookupError(f"no secret {ref.describe()} in this harness")

    clock = settings.pop("_clock", None)
    config = KubernetesConfig.model_validate(
        {
            "auth": {"server": sim.url, "tokenFrom": {"env": "ACCORD_SECRET_CONTRACT_K8S_TOKEN"}},
            **settings,
        }
    )
    return KubernetesAdapter(
        AdapterContext(source=source, domain="default", secrets=resolve, timeout=10.0),
        config,
        clock=clock or (lambda: sim.state.now),
    )


@asynccontextmanager
async def harness() -> AsyncIterator[ContractHarness]:
    token = secrets.token_hex(16)
    state = ClusterState()
    seed(state)
    sim = KubeSimulator(state, tokens=[token]).start()
    adapter = connect(sim, token, pageSize=2)
    try:
        yield _Harness(sim, adapter)
    finally:
        await adapter.aclose()
        await anyio.to_thread.run_sync(sim.stop)
