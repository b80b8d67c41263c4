"""Cron's whole run vocabulary, mapped onto Accord's.

Cron itself has no run states: what Accord knows of a run comes from ``accord exec`` (the
wrapper), from the cron daemon's log, or from a run that should have happened and did
not. The native state kept beside the normalized one is one of:

==================  ==========================================================  =========
native state        meaning                                                     RunState
==================  ==========================================================  =========
``triggered``       Accord started the line's command; no report yet            queued
``started``         the wrapper (or cron's log) reported the start              running
``exit 0``          the command exited with status 0                            success
``exit N``          the command exited with status N (1-255)                    failed
``signal N``        a signal stopped it (TERM, INT, HUP, KILL, QUIT, ...)       cancelled
``signal N``        a signal crashed it (SEGV, ABRT, BUS, FPE, ILL, ...)         failed
``missed``          the schedule said it should have started, and it did not    failed
``lost``            the wrapper vanished without recording the end (killed      failed
                    with SIGKILL, host rebooted)
``ended``           cron logged the end but not the exit status (no ``-L 4``)   unknown
``start only``      cron logs only starts (no ``-L 2``): the end is not known   unknown
``unknown``         anything else                                               unknown
==================  ==========================================================  =========

This module only needs the standard library, because ``accord exec`` uses it on every
cron tick.
"""

from __future__ import annotations

import re
import signal as _signal
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.model import RunState

__all__ = [
    "CRASH_SIGNALS",
    "STATE_OF",
    "Kind",
    "kind_of",
    "native_state",
    "run_state",
    "signal_name",
    "state_value",
]


class Kind(StrEnum):
    """Every kind of native state a cron run can have."""

    TRIGGERED = "triggered"
    STARTED = "started"
    EXIT_ZERO = "exit 0"
    EXIT_NONZERO = "exit N"
    STOPPED_BY_SIGNAL = "signal N (stop)"
    CRASHED_BY_SIGNAL = "signal N (crash)"
    MISSED = "missed"
    LOST = "lost"
    ENDED = "ended"
    START_ONLY = "start only"
    UNKNOWN = "unknown"


# RunState values (this module must not import pydantic; ``run_state`` converts).
STATE_OF: Mapping[Kind, str] = MappingProxyType(
    {
        Kind.TRIGGERED: "queued",
        Kind.STARTED: "running",
        Kind.EXIT_ZERO: "success",
        Kind.EXIT_NONZERO: "failed",
        Kind.STOPPED_BY_SIGNAL: "cancelled",
        Kind.CRASHED_BY_SIGNAL: "failed",
        Kind.MISSED: "failed",
        Kind.LOST: "failed",
        Kind.ENDED: "unknown",
        Kind.START_ONLY: "unknown",
        Kind.UNKNOWN: "unknown",
    }
)

# Signals that mean the program crashed rather than someone stopping it.
CRASH_SIGNALS: frozenset[int] = frozenset(
    int(s)
    for s in (
        _signal.SIGSEGV,
        _signal.SIGBUS,
        _signal.SIGFPE,
        _signal.SIGILL,
        _signal.SIGABRT,
        _signal.SIGSYS,
        _signal.SIGTRAP,
        _signal.SIGXCPU,
        _signal.SIGXFSZ,
    )
)

_EXIT = re.compile(r"^exit (\d{1,3})$")
_SIGNAL = re.compile(r"^signal (\d{1,2})$")
_FIXED = {
    "triggered": Kind.TRIGGERED,
    "started": Kind.STARTED,
    "missed": Kind.MISSED,
    "lost": Kind.LOST,
    "ended": Kind.ENDED,
    "start only": Kind.START_ONLY,
    "unknown": Kind.UNKNOWN,
}


def native_state(exit_code: int | None, signal: int | None) -> str:
    """The native state of a finished command: ``exit N`` or ``signal N``."""
    if signal is not None:
        return f"signal {signal}"
    if exit_code is not None:
        return f"exit {exit_code}"
    return "unknown"


def kind_of(native: str | None) -> Kind:
    """Classify a native state string; anything unrecognised is ``Kind.UNKNOWN``."""
    if native is None:
        return Kind.UNKNOWN
    fixed = _FIXED.get(native)
    if fixed is not None:
        return fixed
    m = _EXIT.match(native)
    if m:
        code = int(m.group(1))
        if code == 0:
            return Kind.EXIT_ZERO
        return Kind.EXIT_NONZERO if code <= 255 else Kind.UNKNOWN
    m = _SIGNAL.match(native)
    if m:
        sig = int(m.group(1))
        if not 1 <= sig <= 64:
            return Kind.UNKNOWN
        return Kind.CRASHED_BY_SIGNAL if sig in CRASH_SIGNALS else Kind.STOPPED_BY_SIGNAL
    return Kind.UNKNOWN


def state_value(native: str | None) -> str:
    """The RunState value (a string) of a native state."""
    return STATE_OF[kind_of(native)]


def run_state(native: str | None) -> RunState:
    """The RunState of a native state."""
    from gateway.model import RunState

    return RunState(state_value(native))


def signal_name(sig: int) -> str:
    """``SIGTERM`` for 15; ``signal 99`` for a number without a name."""
    try:
        return _signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
