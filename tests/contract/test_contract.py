"""Every registered adapter passes the contract suite through its harness."""

from __future__ import annotations

import pytest

from adapters.base import registry
from adapters.testing.contract import CHECKS, harness_for


def _types() -> list[str]:
    return registry.types()


@pytest.mark.anyio
@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("adapter_type", _types())
async def test_contract(adapter_type: str, check: str) -> None:
    async with harness_for(adapter_type)() as h:
        await CHECKS[check](h)


def test_every_registered_type_has_a_harness() -> None:
    for t in _types():
        harness_for(t)
