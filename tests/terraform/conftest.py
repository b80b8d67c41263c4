"""Fixtures of the Terraform Cloud adapter tests: the simulator over real HTTP, a seeded
organization, and adapters connected to it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.terraform import TerraformAdapter, TerraformConfig
from adapters.testing.tfc_sim import SimState, TfcSimulator, TokenInfo, Workspace

# Credentials of the local simulator, new for every test run.
TOKEN = secrets.token_urlsafe(24)
HOOK_TOKEN = secrets.token_urlsafe(24)
NARROW_TOKEN = secrets.token_urlsafe(24)
ORG = "acme"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Secrets:
    """A secret resolver over environment-variable names."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)

    def __call__(self, ref: Any) -> SecretStr:
        if ref.env is None or ref.env not in self.values:
            raise LookupError(f"{ref.describe()} is not set")
        return SecretStr(self.values[ref.env])


@dataclass
class Org:
    network: Workspace
    app: Workspace
    staging: Workspace
    legacy: Workspace


@pytest.fixture
def state() -> SimState:
    return SimState()


@pytest.fixture
def org(state: SimState) -> Org:
    state.add_org(ORG)
    network = state.add_workspace(
        ORG,
        "network-prod",
        project="Core",
        tags=["env:prod", "network"],
        vcs_repo={"identifier": "acme/network", "branch": "main"},
        description="VPCs and peering",
    )
    app = state.add_workspace(ORG, "app-prod", project="Apps", tags=["env:prod"])
    staging = state.add_workspace(ORG, "app-staging", project="Apps", auto_apply=True)
    legacy = state.add_workspace(ORG, "legacy-local", execution_mode="local")
    state.add_run_trigger(app.id, network.id)
    state.add_org("other-org")
    state.add_workspace("other-org", "hidden")
    return Org(network, app, staging, legacy)


@pytest.fixture
def sim(state: SimState, org: Org) -> Iterator[TfcSimulator]:
    tokens = {
        TOKEN: TokenInfo("accord-bot", frozenset({ORG})),
        NARROW_TOKEN: TokenInfo("narrow", frozenset({ORG}), frozenset({org.app.id})),
    }
    with TfcSimulator(state, tokens=tokens) as server:
        yield server


AdapterFactory = Callable[..., TerraformAdapter]


@pytest.fixture
async def make_adapter(sim: TfcSimulator) -> AsyncIterator[AdapterFactory]:
    made: list[TerraformAdapter] = []

    def build(*, secret: str = TOKEN, **settings: Any) -> TerraformAdapter:
        config = TerraformConfig.model_validate(
            {
                "url": sim.url,
                "organizations": [ORG],
                "token": {"env": "TFC_TOKEN"},
                "notificationToken": {"env": "TFC_HOOK_TOKEN"},
                **settings,
            }
        )
        adapter = TerraformAdapter(
            AdapterContext(
                source="tfc-test",
                domain="infra",
                secrets=Secrets({"TFC_TOKEN": secret, "TFC_HOOK_TOKEN": HOOK_TOKEN}),
                timeout=10.0,
            ),
            config,
        )
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await adapter.aclose()
