"""Contract harness for the ``openlineage`` source type (push-only: tools send events to
the gateway; the adapter itself reports nothing and acts on nothing)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.openlineage.adapter import OpenLineageAdapter
from adapters.openlineage.config import OpenLineageConfig
from gateway.model import RunState, SecretRef

from .harness import ContractHarness


class _Harness:
    def __init__(self, adapter: OpenLineageAdapter) -> None:
        self.adapter = adapter

    def job_ids(self) -> set[str]:
        return set()  # jobs arrive with events, never from the adapter

    async def run_job(self, job_id: str, final: RunState) -> str:
        raise AssertionError("a push-only source has no runs the adapter could report")

    async def remove_job(self, job_id: str) -> None:
        return None

    def trigger_params(self) -> Mapping[str, Any]:
        return {}


def _no_secrets(ref: SecretRef) -> SecretStr:
    raise LookupError("an openlineage source has no secrets")


@asynccontextmanager
async def harness() -> AsyncIterator[ContractHarness]:
    adapter = OpenLineageAdapter(
        AdapterContext(source="lineage", domain="data", secrets=_no_secrets), OpenLineageConfig()
    )
    try:
        yield _Harness(adapter)
    finally:
        await adapter.aclose()
