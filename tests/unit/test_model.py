from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from gateway.model import RunState, accept_transition, parse_duration
from gateway.model.records import RunRecord
from gateway.model.resources import KINDS, SecretRef, Source

TERMINAL = {RunState.SUCCESS, RunState.FAILED, RunState.CANCELLED, RunState.SKIPPED}


@pytest.mark.parametrize(("cur", "new"), list(itertools.product(list(RunState), list(RunState))))
def test_transitions_over_the_full_product(cur: RunState, new: RunState) -> None:
    allowed = accept_transition(cur, new)
    if cur == new:
        assert not allowed, "no event for a non-change"
    elif cur in TERMINAL:
        assert not allowed, "a terminal run never moves without a new attempt"
    elif new == RunState.UNKNOWN:
        assert not allowed, "unknown never overwrites what we know"
    else:
        assert allowed
    # a new attempt always starts over; an older one never wins
    assert accept_transition(cur, new, current_attempt=1, proposed_attempt=2)
    assert not accept_transition(cur, new, current_attempt=2, proposed_attempt=1)


def test_first_sighting_is_always_accepted() -> None:
    assert all(accept_transition(None, s) for s in RunState)


def test_terminal_flags() -> None:
    assert {s for s in RunState if s.terminal} == TERMINAL


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("2d", 172800),
        (45, 45),
        ("1.5m", 90),
        ("250ms", 0.25),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["5 minutes", "", "-1s", "m5", True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


def test_records_require_aware_times() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        RunRecord(
            native_id="r",
            job_native_id="j",
            state=RunState.RUNNING,
            started_at=datetime(2026, 1, 1),
        )


def test_secret_ref_needs_exactly_one_form() -> None:
    assert SecretRef(env="X").describe() == "env:X"
    for bad in ({}, {"env": "X", "file": "/y"}):
        with pytest.raises(ValidationError, match="exactly one"):
            SecretRef(**bad)


def test_source_keeps_adapter_settings_and_common_fields() -> None:
    doc = {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {"name": "airflow-prod", "domain": "data"},
        "spec": {"type": "airflow", "url": "http://x", "sync": {"inventoryEvery": "10m"}},
    }
    src = Source.model_validate(doc)
    assert src.spec.adapter_config() == {"url": "http://x"}
    assert src.spec.sync.inventory_every == timedelta(minutes=10)
    dumped = src.model_dump(mode="json", by_alias=True)
    assert dumped["spec"]["sync"]["inventoryEvery"] == "10m"


def test_names_are_slugs() -> None:
    with pytest.raises(ValidationError, match="pattern"):
        Source.model_validate(
            {
                "apiVersion": "accord.dev/v1",
                "kind": "Source",
                "metadata": {"name": "Bad Name"},
                "spec": {"type": "x"},
            }
        )


def test_every_kind_has_a_json_schema() -> None:
    for kind, model in KINDS.items():
        schema = model.model_json_schema(by_alias=True)
        json.dumps(schema)
        assert kind in json.dumps(schema["properties"]["kind"])
