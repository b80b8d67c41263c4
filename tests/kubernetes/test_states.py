"""The Kubernetes state table is total and reads Job statuses as Kubernetes means them."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.kubernetes.states import (
    CONDITION_TYPES,
    NATIVE_STATES,
    POD_PHASES,
    STATES,
    job_native_state,
    job_state,
    pod_state,
)
from gateway.model import RunState


def test_every_native_state_is_mapped() -> None:
    assert set(STATES) == set(NATIVE_STATES)
    assert all(isinstance(v, RunState) for v in STATES.values())


@pytest.mark.parametrize("cond", CONDITION_TYPES)
def test_every_condition_type_names_a_mapped_state(cond: str) -> None:
    status = {"conditions": [{"type": cond, "status": "True"}], "startTime": "2025-01-01T00:00:00Z"}
    assert job_native_state(status) in STATES


def test_every_pod_phase_is_mapped() -> None:
    assert set(POD_PHASES) == {"Pending", "Running", "Succeeded", "Failed", "Unknown"}
    assert pod_state("Evicted?") == RunState.UNKNOWN


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, (RunState.QUEUED, "Pending")),
        ({"startTime": "2025-01-01T00:00:00Z", "active": 1}, (RunState.RUNNING, "Running")),
        ({"active": 1}, (RunState.RUNNING, "Running")),
        (
            {"conditions": [{"type": "Suspended", "status": "True"}]},
            (RunState.WAITING, "Suspended"),
        ),
        (
            {"conditions": [{"type": "Suspended", "status": "False"}], "startTime": "x"},
            (RunState.RUNNING, "Running"),
        ),
        (
            {
                "conditions": [
                    {"type": "FailureTarget", "status": "True"},
                    {"type": "Failed", "status": "True"},
                ]
            },
            (RunState.FAILED, "Failed"),
        ),
        (
            {"conditions": [{"type": "FailureTarget", "status": "True"}], "startTime": "x"},
            (RunState.RUNNING, "FailureTarget"),
        ),
        (
            {
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"},
                ]
            },
            (RunState.SUCCESS, "Complete"),
        ),
        (
            {"conditions": [{"type": "SomethingNew", "status": "True"}], "startTime": "x"},
            (RunState.RUNNING, "Running"),
        ),
    ],
)
def test_job_states(status: dict[str, Any], expected: tuple[RunState, str]) -> None:
    assert job_state(status) == expected


def test_terminal_states_are_final_ones() -> None:
    terminal = {n for n, s in STATES.items() if s.terminal}
    assert terminal == {"Complete", "Failed", "Deleted", "Missed", "Skipped"}
