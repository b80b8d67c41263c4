"""The vocabulary tables are total over Airflow's enums, and pinned."""

from __future__ import annotations

import pytest
from airflow_client.client.models.dag_run_state import DagRunState
from airflow_client.client.models.dag_run_triggered_by_type import DagRunTriggeredByType
from airflow_client.client.models.dag_run_type import DagRunType
from airflow_client.client.models.task_instance_state import TaskInstanceState

from adapters.airflow import states
from gateway.model import RunState, Trigger


def test_dag_run_table_is_total() -> None:
    assert set(states.DAG_RUN_STATES) == {s.value for s in DagRunState}


def test_task_instance_table_is_total_including_no_state() -> None:
    assert set(states.TASK_STATES) == {s.value for s in TaskInstanceState} | {None}


def test_run_type_and_triggered_by_tables_are_total() -> None:
    assert set(states.RUN_TYPES) == {t.value for t in DagRunType}
    assert set(states.TRIGGERED_BY) == {t.value for t in DagRunTriggeredByType} | {None}


def test_dag_run_states_pinned() -> None:
    assert dict(states.DAG_RUN_STATES) == {
        "queued": RunState.QUEUED,
        "running": RunState.RUNNING,
        "success": RunState.SUCCESS,
        "failed": RunState.FAILED,
    }


def test_task_states_pinned() -> None:
    assert dict(states.TASK_STATES) == {
        None: RunState.QUEUED,
        "scheduled": RunState.QUEUED,
        "queued": RunState.QUEUED,
        "running": RunState.RUNNING,
        "restarting": RunState.RUNNING,
        "deferred": RunState.WAITING,
        "up_for_retry": RunState.WAITING,
        "up_for_reschedule": RunState.WAITING,
        "awaiting_input": RunState.WAITING,
        "success": RunState.SUCCESS,
        "failed": RunState.FAILED,
        "upstream_failed": RunState.FAILED,
        "skipped": RunState.SKIPPED,
        "removed": RunState.SKIPPED,
    }


def test_values_airflow_adds_later_are_unknown() -> None:
    assert states.run_state("paused_forever") == RunState.UNKNOWN
    assert states.run_state(None) == RunState.UNKNOWN
    assert states.task_state("teleported") == RunState.UNKNOWN


@pytest.mark.parametrize(
    ("run_type", "triggered_by", "expected"),
    [
        ("scheduled", "timetable", Trigger.SCHEDULE),
        ("manual", "rest_api", Trigger.API),
        ("manual", "ui", Trigger.MANUAL),
        ("manual", "cli", Trigger.MANUAL),
        ("manual", None, Trigger.MANUAL),
        ("manual", "operator", Trigger.UPSTREAM),
        ("asset_triggered", "asset", Trigger.UPSTREAM),
        ("operator_triggered", "operator", Trigger.UPSTREAM),
        ("backfill", "backfill", Trigger.MANUAL),
        ("backfill", "rest_api", Trigger.MANUAL),
        ("asset_materialization", "ui", Trigger.MANUAL),
        ("asset_materialization", "rest_api", Trigger.API),
        ("something_new", "rest_api", Trigger.API),
        ("something_new", None, Trigger.UNKNOWN),
        (None, None, Trigger.UNKNOWN),
        ("manual", "something_new", Trigger.UNKNOWN),
    ],
)
def test_trigger_mapping(run_type: str | None, triggered_by: str | None, expected: Trigger) -> None:
    assert states.trigger_of(run_type, triggered_by) == expected
