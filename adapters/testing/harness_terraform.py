"""Contract harness for the Terraform Cloud adapter: the Terraform Cloud simulator over
real HTTP.

Workspaces sit in two projects of one organization, with a run trigger between two of
them. ``run_job`` drives a run as Terraform Cloud would: created through the API's state,
planned, confirmed, applied (success) or errored in its apply (failed).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.terraform.adapter import TerraformAdapter
from adapters.terraform.config import TerraformConfig
from gateway.model import RunState, SecretRef

from .harness import ContractHarness
from .tfc_sim import SimState, TfcSimulator

__all__ = ["harness"]

ORG = "contract-org"


class _Harness:
    def __init__(self, sim: TfcSimulator, adapter: TerraformAdapter) -> None:
        self.sim = sim
        self._adapter = adapter

    @property
    def adapter(self) -> TerraformAdapter:
        return self._adapter

    def job_ids(self) -> set[str]:
        return set(self.sim.state.workspaces)

    async def run_job(self, job_id: str, final: RunState) -> str:
        state = self.sim.state
        run = state.create_run(job_id, message="contract run", created_by="contract")
        state.plan(run.id)
        state.confirm(run.id, by="contract")
        state.finish_apply(run.id, ok=final == RunState.SUCCESS)
        return run.id

    async def remove_job(self, job_id: str) -> None:
        self.sim.state.delete_workspace(job_id)

    def trigger_params(self) -> Mapping[str, Any]:
        return {"plan_only": True, "message": "contract check"}


def _seed(state: SimState) -> None:
    state.add_org(ORG)
    network = state.add_workspace(ORG, "network-prod", project="Core", tags=["env:prod"])
    app = state.add_workspace(ORG, "app-prod", project="Apps", tags=["env:prod", "team:web"])
    state.add_workspace(ORG, "app-staging", project="Apps", auto_apply=True)
    state.add_run_trigger(app.id, network.id)
    run = state.create_run(network.id, message="initial", created_by="seed")
    state.plan(run.id, has_changes=False)


@asynccontextmanager
async def harness() -> AsyncIterator[ContractHarness]:
    token = secrets.token_urlsafe(24)

    def resolve(ref: SecretRef) -> SecretStr:
        if ref.env == "CONTRACT_TFC_TOKEN":
            return SecretStr(token)
        raise LookupError(f"no secret {ref.describe()} in this harness")

    state = SimState()
    _seed(state)
    state.rate_per_second = None  # the contract checks are not about rate limits
    sim = TfcSimulator(state, tokens={token: "contract"}).start()
    config = TerraformConfig.model_validate(
        {"url": sim.url, "organizations": [ORG], "token": {"env": "CONTRACT_TFC_TOKEN"}}
    )
    adapter = TerraformAdapter(
        AdapterContext(source="contract-terraform", domain="default", secrets=resolve), config
    )
    try:
        yield _Harness(sim, adapter)
    finally:
        await adapter.aclose()
        await anyio.to_thread.run_sync(sim.stop)
