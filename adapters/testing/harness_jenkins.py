"""Contract harness for the Jenkins adapter: the Jenkins simulator over real HTTP.

Jobs sit in folders and a multibranch project, so the contract's checks cover nested
paths. ``run_job`` drives the simulator's queue and executor as Jenkins would: the item is
queued, handed to an executor and the build finishes with the asked result.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.jenkins.adapter import JenkinsAdapter
from adapters.jenkins.config import JenkinsConfig
from gateway.model import RunState, SecretRef

from .harness import ContractHarness
from .jenkins_sim import JenkinsSimulator, SimState, cause_timer

__all__ = ["harness"]

_RESULTS = {RunState.SUCCESS: "SUCCESS", RunState.FAILED: "FAILURE"}


class _Harness:
    def __init__(self, sim: JenkinsSimulator, adapter: JenkinsAdapter) -> None:
        self.sim = sim
        self._adapter = adapter

    @property
    def adapter(self) -> JenkinsAdapter:
        return self._adapter

    def job_ids(self) -> set[str]:
        return self.sim.state.job_paths()

    async def run_job(self, job_id: str, final: RunState) -> str:
        state = self.sim.state
        item, _ = state.enqueue(job_id, cause_timer())
        build = state.start(item.id)
        assert build is not None
        state.finish(job_id, build.number, _RESULTS[final])
        return f"{job_id}#{build.number}"

    async def remove_job(self, job_id: str) -> None:
        self.sim.state.delete(job_id)

    def trigger_params(self) -> Mapping[str, Any]:
        return {"REASON": "contract check"}


def _seed(state: SimState) -> None:
    params = {"REASON": "scheduled"}
    state.add_job("ci/api/build", spec="H/15 * * * *", parameters=params)
    state.add_job("ci/api/deploy", "pipeline", parameters=params, stages=["Plan", "Apply"])
    state.add_job("ops/nightly-backup", spec="H 3 * * *", parameters=params)
    state.add_branch("ci/web", "main", parameters=params, stages=["Build"])
    state.add_branch("ci/web", "feature/login", parameters=params, stages=["Build"])
    state.run("ci/api/build", "SUCCESS", cause=cause_timer())


@asynccontextmanager
async def harness() -> AsyncIterator[ContractHarness]:
    token = secrets.token_hex(16)

    def resolve(ref: SecretRef) -> SecretStr:
        if ref.env == "CONTRACT_JENKINS_TOKEN":
            return SecretStr(token)
        raise LookupError(f"no secret {ref.describe()} in this harness")

    state = SimState()
    _seed(state)
    sim = JenkinsSimulator(state, tokens={"accord": token}).start()
    config = JenkinsConfig.model_validate(
        {
            "url": sim.url,
            "username": "accord",
            "token": {"env": "CONTRACT_JENKINS_TOKEN"},
            "triggerWait": "0s",
            "folderDepth": 1,  # deeper folders take requests of their own
        }
    )
    adapter = JenkinsAdapter(
        AdapterContext(source="contract-jenkins", domain="default", secrets=resolve), config
    )
    try:
        yield _Harness(sim, adapter)
    finally:
        await adapter.aclose()
        await anyio.to_thread.run_sync(sim.stop)
