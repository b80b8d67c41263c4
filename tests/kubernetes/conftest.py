"""Fixtures of the Kubernetes adapter tests: the API-server simulator over real HTTP and
adapters connected to it through the official client."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.kubernetes import KubernetesAdapter
from adapters.testing.harness_kubernetes import connect
from adapters.testing.kube_sim import ClusterState, KubeSimulator

TOKEN = secrets.token_hex(16)  # new for every test run


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sim() -> Iterator[KubeSimulator]:
    state = ClusterState(now=datetime(2025, 3, 10, 12, 0, 30, tzinfo=UTC))
    simulator = KubeSimulator(state, tokens=[TOKEN], bookmark_seconds=0.2).start()
    try:
        yield simulator
    finally:
        simulator.stop()


Connect = Callable[..., KubernetesAdapter]


@pytest.fixture
async def adapter_for(sim: KubeSimulator) -> AsyncIterator[Connect]:
    made: list[KubernetesAdapter] = []

    def make(**settings: Any) -> KubernetesAdapter:
        adapter = connect(sim, settings.pop("_token", TOKEN), **settings)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()
