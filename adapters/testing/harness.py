"""How the contract suite drives an adapter against its fake, simulator or real system.

Every registered adapter type ``T`` ships a module ``adapters.testing.harness_T`` with a
function ``harness()`` returning an async context manager that yields a
:class:`ContractHarness`. The contract suite (``adapters.testing.contract``) fails for a
registered adapter without one: every adapter must pass the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from adapters.base import Adapter
from gateway.model import RunState

__all__ = ["ContractHarness", "HarnessFactory"]


class ContractHarness(Protocol):
    """A source the test controls, and an adapter connected to it."""

    @property
    def adapter(self) -> Adapter:
        """The adapter under test, connected to this source."""
        ...

    def job_ids(self) -> set[str]:
        """Native ids of every job the source holds right now (what list_jobs must yield)."""
        ...

    async def run_job(self, job_id: str, final: RunState) -> str:
        """Make the source run ``job_id`` to the terminal state ``final`` (one of success or
        failed); return the native run id once the source shows it finished."""
        ...

    async def remove_job(self, job_id: str) -> None:
        """Delete a job at the source, so it is no longer listed."""
        ...

    def trigger_params(self) -> Mapping[str, Any]:
        """Parameters a trigger of any job accepts (empty if the source takes none)."""
        ...


class HarnessFactory(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[ContractHarness]: ...
