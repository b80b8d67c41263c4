"""The ``openlineage`` source type: jobs, runs and datasets arrive as OpenLineage
RunEvents that the tools send to ``POST /api/v1/sources/{name}/openlineage``.

The gateway never polls such a source and cannot act on it: OpenLineage is a one-way
report of what ran, so there is nothing to call back (no trigger, cancel, pause). The
mapping of events to jobs, runs and lineage is the gateway's (``gateway.openlineage.
receive``), since it is the wire format of an endpoint, not of a vendor API; this class
says what the type is and can do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from adapters.base import BaseAdapter
from gateway.model import (
    ActionNotSupported,
    AdapterInfo,
    Capability,
    HealthStatus,
    JobRecord,
    RunPage,
    RunRecord,
    SourceHealth,
)

from .config import OpenLineageConfig

__all__ = ["OpenLineageAdapter"]

_NO_ACTIONS = (
    "source {source!r} receives OpenLineage events: OpenLineage only reports what ran, so "
    "Accord cannot {action} through it. Act in the tool that sends the events"
)


class OpenLineageAdapter(BaseAdapter):
    info: ClassVar[AdapterInfo] = AdapterInfo(
        type="openlineage",
        display_name="OpenLineage (events sent by other tools)",
        capabilities=frozenset({Capability.PUSH, Capability.LINEAGE}),
        description="Tools that emit OpenLineage RunEvents (Airflow's provider, dbt, Spark)",
    )
    config_model: ClassVar[type[BaseModel]] = OpenLineageConfig
    polls: ClassVar[bool] = False

    def _refuse(self, action: str) -> ActionNotSupported:
        return ActionNotSupported(_NO_ACTIONS.format(source=self.ctx.source, action=action))

    async def check(self) -> SourceHealth:
        return SourceHealth(
            status=HealthStatus.UNKNOWN,
            message="jobs and runs arrive as OpenLineage events; the gateway does not poll",
        )

    async def list_jobs(self) -> AsyncIterator[JobRecord]:
        sent: tuple[JobRecord, ...] = ()  # jobs arrive with the events
        for job in sent:
            yield job

    async def list_runs(self, cursor: str | None) -> RunPage:
        return RunPage(runs=(), cursor=cursor)

    async def get_runs(self, native_ids: Sequence[str]) -> list[RunRecord]:
        return []

    async def trigger(self, job_id: str, params: Mapping[str, Any]) -> RunRecord:
        raise self._refuse("trigger a job")

    async def cancel(self, run_id: str) -> None:
        raise self._refuse("cancel a run")

    async def pause(self, job_id: str) -> None:
        raise self._refuse("pause a job")

    async def resume(self, job_id: str) -> None:
        raise self._refuse("resume a job")

    async def retry(self, run_id: str) -> RunRecord:
        raise self._refuse("retry a run")
