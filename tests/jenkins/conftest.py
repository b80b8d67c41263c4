"""Fixtures of the Jenkins adapter tests: the Jenkins simulator over real HTTP and adapters
connected to it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.jenkins import JenkinsAdapter, JenkinsConfig
from adapters.testing.jenkins_sim import JenkinsSimulator, SimState

# Credentials of the local simulator, new for every test run.
TOKEN = secrets.token_hex(17)
PASSWORD = secrets.token_urlsafe(12)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Secrets:
    """A secret resolver over environment-variable names; counts reads."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)
        self.reads = 0

    def __call__(self, ref: Any) -> SecretStr:
        self.reads += 1
        if ref.env is None or ref.env not in self.values:
            raise LookupError(f"{ref.describe()} is not set")
        return SecretStr(self.values[ref.env])


@pytest.fixture
def state() -> SimState:
    return SimState()


@pytest.fixture
def sim(state: SimState) -> Iterator[JenkinsSimulator]:
    with JenkinsSimulator(state, users={"alice": PASSWORD}, tokens={"accord": TOKEN}) as server:
        yield server


AdapterFactory = Callable[..., JenkinsAdapter]


@pytest.fixture
async def make_adapter(sim: JenkinsSimulator) -> AsyncIterator[AdapterFactory]:
    made: list[JenkinsAdapter] = []

    def build(
        *, username: str = "accord", secret: str = TOKEN, url: str | None = None, **settings: Any
    ) -> JenkinsAdapter:
        config = JenkinsConfig.model_validate(
            {
                "url": url or sim.url,
                "username": username,
                "token": {"env": "JENKINS_TOKEN"},
                "triggerWait": "0s",
                **settings,
            }
        )
        adapter = JenkinsAdapter(
            AdapterContext(
                source="jenkins-test",
                domain="platform",
                secrets=Secrets({"JENKINS_TOKEN": secret}),
                timeout=10.0,
            ),
            config,
        )
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await adapter.aclose()
