"""A cron source's capabilities follow its mode (issue 11, item 10)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from adapters.base import AdapterContext, registry
from adapters.cron.adapter import CronAdapter
from gateway.model import ActionNotSupported, Capability, SecretRef

LOCAL_ACTIONS = {Capability.TRIGGER, Capability.CANCEL, Capability.PAUSE, Capability.RESUME}


def _no_secrets(ref: SecretRef) -> SecretStr:
    raise LookupError("no secrets")


def test_the_type_declares_the_superset_and_each_mode_its_own() -> None:
    assert LOCAL_ACTIONS | {Capability.PUSH} == CronAdapter.info.capabilities
    assert registry.capabilities("cron", {"mode": "local"}) == CronAdapter.info.capabilities
    assert registry.capabilities("cron", {"mode": "agent"}) == {Capability.PUSH}


@pytest.mark.anyio
async def test_an_agent_mode_adapter_does_exactly_what_its_capabilities_say() -> None:
    ctx = AdapterContext(source="hosts", domain="ops", secrets=_no_secrets)
    adapter = registry.create("cron", ctx, {"mode": "agent"})
    try:
        assert adapter.capabilities == {Capability.PUSH}
        for call in (
            lambda: adapter.trigger("web-1:backup", {}),
            lambda: adapter.pause("web-1:backup"),
            lambda: adapter.resume("web-1:backup"),
            lambda: adapter.cancel("web-1:backup:1"),
        ):
            with pytest.raises(ActionNotSupported, match="accord agent"):
                await call()
    finally:
        await adapter.aclose()
