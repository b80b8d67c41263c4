"""Records adapters return to the gateway.

Adapters speak only in these types. Times are timezone-aware UTC datetimes; ids are the
source's native ids (the gateway prefixes them with the source name to build uids).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .enums import Capability, EdgeKind, HealthStatus, NodeKind, RunState, Trigger

__all__ = [
    "AdapterInfo",
    "EdgeRecord",
    "HealthProblem",
    "JobRecord",
    "NodeRef",
    "RunPage",
    "RunRecord",
    "Schedule",
    "SourceHealth",
    "StepRecord",
    "SyncHint",
]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return value


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Schedule(_Record):
    """When a job is expected to run."""

    expression: str | None = None  # cron spec, "@daily", "Asset", ... as the tool shows it
    timezone: str | None = None
    text: str | None = None  # human description ("Every hour")


class JobRecord(_Record):
    """One schedulable thing in a source: a DAG, a crontab line, a Jenkins job, ..."""

    native_id: str = Field(min_length=1)
    name: str
    native_type: str
    schedule: Schedule | None = None
    next_run_at: datetime | None = None
    paused: bool = False
    owners: tuple[str, ...] = ()
    labels: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    description: str | None = None
    # Adapter-specific facts the rules engine may read (e.g. auto_apply for Terraform).
    attributes: dict[str, Any] = Field(default_factory=dict)
    # Problems the adapter found with this job's definition (an invalid cron line, ...).
    problems: tuple[str, ...] = ()

    @field_validator("next_run_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return _utc(v)


class StepRecord(_Record):
    """A task / stage / phase inside a run."""

    name: str
    state: RunState
    native_state: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempt: int = 1


class RunRecord(_Record):
    """One execution of a job."""

    native_id: str = Field(min_length=1)
    job_native_id: str = Field(min_length=1)
    state: RunState
    native_state: str | None = None
    trigger: Trigger = Trigger.UNKNOWN
    actor: str | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    attempt: int = 1
    url: str | None = None
    message: str | None = None
    # None: the adapter did not look at steps this time (keep what is stored).
    steps: tuple[StepRecord, ...] | None = None

    @field_validator("queued_at", "started_at", "ended_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return _utc(v)


class NodeRef(_Record):
    """A lineage node. ``source`` None means the reporting source itself."""

    kind: NodeKind
    id: str  # native job/run id, or the dataset name
    source: str | None = None
    namespace: str | None = None  # datasets only (OpenLineage-style)


class EdgeRecord(_Record):
    kind: EdgeKind
    src: NodeRef
    dst: NodeRef
    evidence: str = ""


class RunPage(_Record):
    """Runs changed since a cursor, and the cursor to continue from."""

    runs: tuple[RunRecord, ...]
    cursor: str | None
    more: bool = False
    edges: tuple[EdgeRecord, ...] = ()


class HealthProblem(_Record):
    """One thing wrong at a source, and where it is (a file and line, a job, ...)."""

    message: str
    file: str | None = None  # a path at the source (a crontab, a DAG file)
    line: int | None = None  # 1-based line in ``file``
    job: str | None = None  # native id of the job it affects

    @property
    def location(self) -> str:
        """``file:line`` (or what there is of it), for people."""
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or (f"job {self.job}" if self.job else "")


class SourceHealth(_Record):
    """What ``Adapter.check`` found: a status, a sentence for people, and the problems."""

    status: HealthStatus
    message: str = ""
    details: dict[str, Any] = Field(default_factory=dict)
    problems: tuple[HealthProblem, ...] = ()


class SyncHint(_Record):
    """What a webhook says changed; the gateway syncs that part early."""

    scope: Literal["inventory", "runs", "run"]
    ids: tuple[str, ...] = ()


class AdapterInfo(_Record):
    """What an adapter is and can do, as data."""

    type: str
    display_name: str
    capabilities: frozenset[Capability]
    simulator: bool = False
    description: str = ""
