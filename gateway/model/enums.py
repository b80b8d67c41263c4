"""Enumerations shared by the gateway and every adapter.

``RunState`` is Accord's one status vocabulary. Every adapter maps its vendor's whole
vocabulary onto it (see each adapter's ``states.py``) and keeps the native value beside it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "TERMINAL_STATES",
    "Capability",
    "Channel",
    "EdgeKind",
    "HealthStatus",
    "NodeKind",
    "RunState",
    "Trigger",
]


class RunState(StrEnum):
    """The normalized state of a run, whatever tool ran it."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # held by a human or an external condition
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES: frozenset[RunState] = frozenset(
    {RunState.SUCCESS, RunState.FAILED, RunState.CANCELLED, RunState.SKIPPED}
)


class Trigger(StrEnum):
    """What started a run."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    UPSTREAM = "upstream"
    API = "api"
    RETRY = "retry"
    UNKNOWN = "unknown"


class Capability(StrEnum):
    """What an adapter can do; the console offers only what the source supports."""

    TRIGGER = "trigger"
    TRIGGER_PARAMS = "trigger_params"
    CANCEL = "cancel"
    PAUSE = "pause"
    RESUME = "resume"
    RETRY = "retry"
    APPLY = "apply"  # confirm a run that waits for approval (e.g. a Terraform plan)
    DISCARD = "discard"  # reject a run that waits for approval
    STEPS = "steps"
    LINEAGE = "lineage"
    WEBHOOKS = "webhooks"
    PUSH = "push"  # an agent pushes inventory and runs instead of the gateway polling


class EdgeKind(StrEnum):
    """Lineage edge kinds. Every edge points the way work flows: src is upstream, dst is
    downstream."""

    TRIGGERED = "triggered"  # run -> run: src's run started dst's run
    DEPENDS_ON = "depends_on"  # job -> job: dst depends on src (src upstream)
    PRODUCES = "produces"  # job -> dataset
    CONSUMES = "consumes"  # dataset -> job


class NodeKind(StrEnum):
    JOB = "job"
    RUN = "run"
    DATASET = "dataset"


class HealthStatus(StrEnum):
    """Health of a source as shown everywhere."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    STALE = "stale"
    UNKNOWN = "unknown"


class Channel(StrEnum):
    """How an actor reached the gateway (recorded in the audit log)."""

    API = "api"
    UI = "ui"
    CLI = "cli"
    AGENT = "agent"
    SYSTEM = "system"
