"""The run status table is total and pins what a user sees."""

from __future__ import annotations

import pytest

from adapters.terraform.states import (
    CONFIRM_DEPENDENT,
    PHASE_STATES,
    PHASE_STATUSES,
    RUN_STATES,
    RUN_STATUSES,
    phase_state,
    run_state,
)
from adapters.testing.tfc_sim.state import CANCELABLE, DISCARDABLE, FINAL
from gateway.model import RunState


def test_every_run_status_is_mapped() -> None:
    assert len(RUN_STATUSES) == len(set(RUN_STATUSES))
    assert set(RUN_STATES) == set(RUN_STATUSES), "the table and the vocabulary must agree"
    for status in RUN_STATUSES:
        assert isinstance(run_state(status), RunState)
        assert run_state(status) != RunState.UNKNOWN, status


def test_every_phase_status_is_mapped() -> None:
    assert set(PHASE_STATES) == set(PHASE_STATUSES)
    for status in PHASE_STATUSES:
        assert phase_state(status) != RunState.UNKNOWN, status


def test_the_simulators_statuses_are_all_known() -> None:
    for status in FINAL | DISCARDABLE | CANCELABLE:
        assert status in RUN_STATES, status


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", RunState.QUEUED),
        ("plan_queued", RunState.QUEUED),
        ("apply_queued", RunState.QUEUED),
        ("planning", RunState.RUNNING),
        ("applying", RunState.RUNNING),
        ("cost_estimating", RunState.RUNNING),
        ("policy_checking", RunState.RUNNING),
        ("post_plan_running", RunState.RUNNING),
        ("planned", RunState.WAITING),
        ("policy_override", RunState.WAITING),
        ("policy_checked", RunState.WAITING),
        ("cost_estimated", RunState.WAITING),
        ("post_plan_awaiting_decision", RunState.WAITING),
        ("errored", RunState.FAILED),
        ("policy_soft_failed", RunState.FAILED),
        ("discarded", RunState.CANCELLED),
        ("canceled", RunState.CANCELLED),
        ("force_canceled", RunState.CANCELLED),
        ("applied", RunState.SUCCESS),
        ("planned_and_finished", RunState.SUCCESS),
        ("planned_and_saved", RunState.SUCCESS),
    ],
)
def test_reference_mapping(status: str, expected: RunState) -> None:
    assert run_state(status) == expected


def test_final_statuses_are_terminal_and_the_rest_are_not() -> None:
    for status in RUN_STATUSES:
        assert run_state(status).terminal == (status in FINAL), status


def test_confirm_dependent_statuses_run_on_when_not_confirmable() -> None:
    for status in CONFIRM_DEPENDENT:
        assert run_state(status, confirmable=True) == RunState.WAITING
        assert run_state(status, confirmable=False) == RunState.RUNNING
    # A policy override waits for a person whatever the confirm flag says.
    assert run_state("policy_override", confirmable=False) == RunState.WAITING


def test_unknown_statuses_are_not_final() -> None:
    assert run_state("some_new_status") == RunState.UNKNOWN
    assert not run_state("some_new_status").terminal
    assert run_state(None) == RunState.UNKNOWN
    assert phase_state("new") == RunState.UNKNOWN
