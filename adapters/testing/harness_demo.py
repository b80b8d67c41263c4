"""Contract harness for the demo scheduler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.demo.adapter import DemoAdapter, DemoConfig, DemoJob, _Manual
from gateway.model import RunState, SecretRef, Trigger

from .harness import ContractHarness


class _Harness:
    def __init__(self, adapter: DemoAdapter) -> None:
        self.adapter = adapter
        self.n = 0

    def job_ids(self) -> set[str]:
        return set(self.adapter.jobs)

    async def run_job(self, job_id: str, final: RunState) -> str:
        self.n += 1
        now = datetime.now(UTC)
        m = _Manual(
            f"{job_id}@h{self.n}",
            job_id,
            now - timedelta(minutes=30),
            1,
            Trigger.MANUAL,
            outcome=final,
            changed_at=now,
        )
        self.adapter.manual[m.id] = m
        return m.id

    async def remove_job(self, job_id: str) -> None:
        del self.adapter.jobs[job_id]

    def trigger_params(self) -> Mapping[str, Any]:
        return {}


def _no_secrets(ref: SecretRef) -> SecretStr:
    raise LookupError("no secrets")


@asynccontextmanager
async def harness() -> AsyncIterator[ContractHarness]:
    cfg = DemoConfig(
        history_days=0.01,
        jobs=[
            DemoJob(id=f"job-{i}", schedule="0 3 * * *", minutes=1, fail_rate=0.0) for i in range(3)
        ],
    )
    yield _Harness(DemoAdapter(AdapterContext("demo", "default", _no_secrets), cfg))
