"""Every client reads Retry-After the same way: seconds or an HTTP date (RFC 9110)."""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

import httpx
import pytest
import respx
from kubernetes.client.exceptions import ApiException

from adapters.cron.agent import Agent, AgentOptions, PushError
from adapters.cron.agent import _retry_after as agent_retry_after
from adapters.cron.config import CronConfig
from adapters.jenkins.client import _retry_after as jenkins_retry_after
from adapters.kubernetes.client import _retry_after as kube_retry_after
from gateway.model import parse_retry_after


def _date_in(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


def _readers() -> list[tuple[str, object]]:
    def agent(v: str) -> float | None:
        return agent_retry_after(httpx.Response(503, headers={"Retry-After": v}))

    def kube(v: str) -> float | None:
        exc = ApiException(status=429, reason="Too Many Requests")
        exc.headers = {"Retry-After": v}
        return kube_retry_after(exc)

    return [
        ("model", parse_retry_after),
        ("jenkins", jenkins_retry_after),
        ("agent", agent),
        ("kube", kube),
    ]


@pytest.mark.parametrize("name,read", _readers())
def test_seconds_and_http_dates_are_read_alike(name: str, read: object) -> None:
    assert read("7") == 7.0, name  # type: ignore[operator]
    got = read(_date_in(120))  # type: ignore[operator]
    assert got is not None and 110 <= got <= 121, (name, got)
    assert read(_date_in(-60)) == 0.0, name  # type: ignore[operator]  # past dates: no wait
    assert read("soon") is None, name  # type: ignore[operator]


@respx.mock
def test_the_cron_agent_waits_as_long_as_the_gateway_asks(tmp_path: Path) -> None:
    """The agent's own httpx client, against a gateway answering 503 with an HTTP date."""
    respx.post("https://gw.example/api/v1/sources/host-a/push").mock(
        return_value=httpx.Response(
            503,
            headers={"Retry-After": _date_in(300)},
            json={"error": {"code": "unavailable", "message": "maintenance"}},
        )
    )
    agent = Agent(
        AgentOptions(
            server="https://gw.example",
            source="host-a",
            token="acd_test",
            config=CronConfig(mode="agent", root=str(tmp_path)),
            state_path=tmp_path / "state.json",
        ),
        client=httpx.Client(),
    )
    try:
        with pytest.raises(PushError) as caught:
            agent._post({"runs": []})
    finally:
        agent.close()
    assert caught.value.status == 503
    assert caught.value.retry_after is not None and 290 <= caught.value.retry_after <= 301
