"""Cron's run vocabulary is mapped totally, and pinned."""

from __future__ import annotations

import signal

import pytest

from adapters.cron import states
from adapters.cron.states import Kind
from gateway.model import RunState


def test_every_kind_has_a_run_state() -> None:
    assert set(states.STATE_OF) == set(Kind)
    for value in states.STATE_OF.values():
        RunState(value)  # a valid RunState value


def test_kinds_pinned() -> None:
    assert {k: RunState(v) for k, v in states.STATE_OF.items()} == {
        Kind.TRIGGERED: RunState.QUEUED,
        Kind.STARTED: RunState.RUNNING,
        Kind.EXIT_ZERO: RunState.SUCCESS,
        Kind.EXIT_NONZERO: RunState.FAILED,
        Kind.STOPPED_BY_SIGNAL: RunState.CANCELLED,
        Kind.CRASHED_BY_SIGNAL: RunState.FAILED,
        Kind.MISSED: RunState.FAILED,
        Kind.LOST: RunState.FAILED,
        Kind.ENDED: RunState.UNKNOWN,
        Kind.START_ONLY: RunState.UNKNOWN,
        Kind.UNKNOWN: RunState.UNKNOWN,
    }


def test_whole_native_vocabulary_maps() -> None:
    """Every exit status and every signal a Linux process can end with has a state."""
    assert states.run_state("exit 0") == RunState.SUCCESS
    for code in range(1, 256):
        assert states.run_state(f"exit {code}") == RunState.FAILED, code
    for sig in range(1, 65):
        expected = RunState.FAILED if sig in states.CRASH_SIGNALS else RunState.CANCELLED
        assert states.run_state(f"signal {sig}") == expected, sig
    for native, state in {
        "triggered": RunState.QUEUED,
        "started": RunState.RUNNING,
        "missed": RunState.FAILED,
        "lost": RunState.FAILED,
        "ended": RunState.UNKNOWN,
        "start only": RunState.UNKNOWN,
    }.items():
        assert states.run_state(native) == state


@pytest.mark.parametrize(
    "junk",
    [
        None,
        "",
        "exit",
        "exit 256",
        "exit -1",
        "signal 0",
        "signal 99",
        "EXIT 0",
        "succeeded",
        "exit 0 ",
    ],
)
def test_anything_else_is_unknown(junk: str | None) -> None:
    assert states.kind_of(junk) == Kind.UNKNOWN
    assert states.run_state(junk) == RunState.UNKNOWN


def test_stop_and_crash_signals() -> None:
    assert states.run_state(f"signal {int(signal.SIGTERM)}") == RunState.CANCELLED
    assert states.run_state(f"signal {int(signal.SIGKILL)}") == RunState.CANCELLED
    assert states.run_state(f"signal {int(signal.SIGINT)}") == RunState.CANCELLED
    assert states.run_state(f"signal {int(signal.SIGSEGV)}") == RunState.FAILED
    assert states.run_state(f"signal {int(signal.SIGABRT)}") == RunState.FAILED


def test_native_state_of_an_ending() -> None:
    assert states.native_state(0, None) == "exit 0"
    assert states.native_state(3, None) == "exit 3"
    assert states.native_state(None, 15) == "signal 15"
    assert states.native_state(None, None) == "unknown"
    assert states.signal_name(15) == "SIGTERM"
    assert states.signal_name(99) == "signal 99"
