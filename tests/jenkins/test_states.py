"""The Jenkins status vocabulary maps completely onto RunState."""

from __future__ import annotations

import pytest

from adapters.jenkins.states import (
    BUILD_STATES,
    BUILDING,
    NO_RESULT,
    QUEUE_STATES,
    RESULTS,
    STAGE_STATES,
    STAGE_STATUSES,
    build_state,
    queue_native_state,
    stage_state,
)
from gateway.model import RunState


def test_every_build_result_and_building_is_mapped() -> None:
    vocabulary = {*RESULTS, BUILDING, NO_RESULT}
    assert set(BUILD_STATES) == vocabulary
    for result in RESULTS:
        state, native = build_state(result, False)
        assert native == result
        assert state.terminal, result


def test_every_wfapi_status_is_mapped() -> None:
    assert set(STAGE_STATES) == set(STAGE_STATUSES)
    assert all(isinstance(v, RunState) for v in STAGE_STATES.values())


def test_every_queue_item_kind_is_mapped() -> None:
    kinds = {
        queue_native_state(f"hudson.model.Queue${c}", blocked=False, buildable=False)
        for c in ("WaitingItem", "BlockedItem", "BuildableItem")
    }
    assert kinds <= set(QUEUE_STATES)
    assert {QUEUE_STATES[k] for k in kinds} == {RunState.QUEUED}


@pytest.mark.parametrize(
    ("result", "building", "expected"),
    [
        ("SUCCESS", False, RunState.SUCCESS),
        ("UNSTABLE", False, RunState.FAILED),
        ("FAILURE", False, RunState.FAILED),
        ("NOT_BUILT", False, RunState.SKIPPED),
        ("ABORTED", False, RunState.CANCELLED),
        (None, True, RunState.RUNNING),
        (None, False, RunState.UNKNOWN),
        ("FAILURE", True, RunState.FAILED),  # post-production: the result is known
        ("SOMETHING_NEW", False, RunState.UNKNOWN),
    ],
)
def test_build_state(result: str | None, building: bool, expected: RunState) -> None:
    assert build_state(result, building)[0] == expected


def test_stage_states_pin_the_reference_mapping() -> None:
    assert stage_state("PAUSED_PENDING_INPUT") == RunState.WAITING
    assert stage_state("NOT_EXECUTED") == RunState.SKIPPED
    assert stage_state("FAILED") == RunState.FAILED
    assert stage_state("IN_PROGRESS") == RunState.RUNNING
    assert stage_state(None) == RunState.UNKNOWN
