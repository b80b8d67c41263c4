"""Contract harness for the Airflow adapter: a replayed Airflow 3 (recorded answers).

The replay server answers like Airflow's API server and changes like it when asked
(trigger, pause, mark failed, clear); ``run_job`` and ``remove_job`` change its state
directly, as a DAG finishing or a DAG file deleted would. The real Airflow tests live in
``tests/airflow``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from pydantic import SecretStr

from adapters.airflow.adapter import AirflowAdapter
from adapters.airflow.config import AirflowConfig
from adapters.base import AdapterContext
from gateway.model import RunState, SecretRef

from .airflow_replay import ReplayServer, ReplayState
from .harness import ContractHarness

__all__ = ["harness"]


class _Harness:
    def __init__(self, server: ReplayServer, adapter: AirflowAdapter) -> None:
        self.server = server
        self._adapter = adapter

    @property
    def adapter(self) -> AirflowAdapter:
        return self._adapter

    def job_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.server.state.dag_list()}

    async def run_job(self, job_id: str, final: RunState) -> str:
        run = self.server.state.add_run(job_id, final.value)
        return f"{job_id}/{run['dag_run_id']}"

    async def remove_job(self, job_id: str) -> None:
        self.server.state.remove_dag(job_id)

    def trigger_params(self) -> Mapping[str, Any]:
        return {"full_refresh": True, "regions": ["emea"]}


@asynccontextmanager
async def harness() -> AsyncIterator[ContractHarness]:
    password = secrets.token_urlsafe(12)

    def resolve(ref: SecretRef) -> SecretStr:
        if ref.env == "CONTRACT_AIRFLOW_PASSWORD":
            return SecretStr(password)
        raise LookupError(f"no secret {ref.describe()} in this harness")

    state = ReplayState.load(shift_to_now=True)
    server = ReplayServer(state, users={"accord": password}).start()
    config = AirflowConfig.model_validate(
        {
            "url": server.url,
            "auth": {"username": "accord", "passwordFrom": {"env": "CONTRACT_AIRFLOW_PASSWORD"}},
            "pageSize": 7,  # several pages of runs and task instances
        }
    )
    adapter = AirflowAdapter(
        AdapterContext(source="contract-airflow", domain="default", secrets=resolve), config
    )
    try:
        yield _Harness(server, adapter)
    finally:
        await adapter.aclose()
        await anyio.to_thread.run_sync(server.stop)
