"""Contract harness for the fake adapter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr

from adapters.base import AdapterContext
from gateway.model import RunState, SecretRef

from .fake import FakeAdapter, FakeConfig, FakeSystem, systems
from .harness import ContractHarness


class _Harness:
    def __init__(self, system: FakeSystem, adapter: FakeAdapter) -> None:
        self.system = system
        self.adapter = adapter

    def job_ids(self) -> set[str]:
        return set(self.system.jobs)

    async def run_job(self, job_id: str, final: RunState) -> str:
        rid = self.system.start_run(job_id)
        self.system.finish(rid, final)
        return rid

    async def remove_job(self, job_id: str) -> None:
        del self.system.jobs[job_id]

    def trigger_params(self) -> Mapping[str, Any]:
        return {"x": 1}


def _no_secrets(ref: SecretRef) -> SecretStr:
    raise LookupError("no secrets in this harness")


@asynccontextmanager
async def harness() -> AsyncIterator[ContractHarness]:
    name = f"contract-{uuid.uuid4().hex[:8]}"
    system = FakeSystem(name)
    for i in range(5):
        system.add_job(f"job-{i}", schedule="*/5 * * * *")
    systems[name] = system
    adapter = FakeAdapter(
        AdapterContext(source="fake", domain="default", secrets=_no_secrets),
        FakeConfig(system=name),
    )
    try:
        yield _Harness(system, adapter)
    finally:
        systems.pop(name, None)
