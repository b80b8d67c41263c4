"""Airflow's whole vocabularies, mapped onto Accord's.

Each table covers every value of the corresponding enum of Airflow's REST API v2 (the
``apache-airflow-client`` package's ``DagRunState``, ``TaskInstanceState``, ``DagRunType`` and
``DagRunTriggeredByType``); a test keeps them total. A value Airflow adds later maps to
``unknown`` and the native value is kept beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.model import RunState, Trigger

__all__ = [
    "DAG_RUN_STATES",
    "RUN_TYPES",
    "TASK_STATES",
    "TRIGGERED_BY",
    "run_state",
    "task_state",
    "trigger_of",
]

DAG_RUN_STATES: Mapping[str, RunState] = MappingProxyType(
    {
        "queued": RunState.QUEUED,
        "running": RunState.RUNNING,
        "success": RunState.SUCCESS,
        # Airflow has no "cancelled": stopping a run marks it failed.
        "failed": RunState.FAILED,
    }
)

# ``None`` is a task instance without a state yet (its upstream has not finished).
TASK_STATES: Mapping[str | None, RunState] = MappingProxyType(
    {
        None: RunState.QUEUED,
        "scheduled": RunState.QUEUED,
        "queued": RunState.QUEUED,
        "running": RunState.RUNNING,
        "restarting": RunState.RUNNING,
        "deferred": RunState.WAITING,  # handed to the triggerer, waits for an external event
        "up_for_retry": RunState.WAITING,
        "up_for_reschedule": RunState.WAITING,  # a sensor in reschedule mode
        "awaiting_input": RunState.WAITING,  # human-in-the-loop: a person must answer
        "success": RunState.SUCCESS,
        "failed": RunState.FAILED,
        "upstream_failed": RunState.FAILED,
        "skipped": RunState.SKIPPED,
        "removed": RunState.SKIPPED,  # the task left the DAG after the run was created
    }
)

# What started a run, by ``run_type``; ``None`` defers to ``triggered_by``.
RUN_TYPES: Mapping[str, Trigger | None] = MappingProxyType(
    {
        "scheduled": Trigger.SCHEDULE,
        "asset_triggered": Trigger.UPSTREAM,  # another DAG updated an asset it is scheduled on
        "operator_triggered": Trigger.UPSTREAM,  # TriggerDagRunOperator in another DAG
        # A backfill is a person asking for past intervals: manual, not a retry of a failure.
        "backfill": Trigger.MANUAL,
        "manual": None,  # by a person in the UI/CLI, or by a program through the REST API
        "asset_materialization": None,  # "materialize" pressed in the UI or called by API
    }
)

TRIGGERED_BY: Mapping[str | None, Trigger] = MappingProxyType(
    {
        "rest_api": Trigger.API,
        "ui": Trigger.MANUAL,
        "cli": Trigger.MANUAL,
        "test": Trigger.MANUAL,
        "backfill": Trigger.MANUAL,
        "operator": Trigger.UPSTREAM,
        "asset": Trigger.UPSTREAM,
        "timetable": Trigger.SCHEDULE,
        None: Trigger.MANUAL,
    }
)


def run_state(native: str | None) -> RunState:
    """Accord's state of a DAG run in Airflow state ``native``."""
    return DAG_RUN_STATES.get(native or "", RunState.UNKNOWN)


def task_state(native: str | None) -> RunState:
    """Accord's state of a task instance in Airflow state ``native`` (None: no state yet)."""
    return TASK_STATES.get(native, RunState.UNKNOWN)


def trigger_of(run_type: str | None, triggered_by: str | None) -> Trigger:
    """What started a DAG run, from its ``run_type`` and ``triggered_by``."""
    by_type = RUN_TYPES.get(run_type or "", Trigger.UNKNOWN)
    if by_type is not None and (by_type != Trigger.UNKNOWN or triggered_by is None):
        return by_type
    return TRIGGERED_BY.get(triggered_by, Trigger.UNKNOWN)
