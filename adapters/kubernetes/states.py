"""Kubernetes Job states, mapped onto Accord's RunState.

A batch/v1 Job has no single status field: its state is read from ``status.conditions``
(types ``Suspended``, ``Complete``, ``Failed``, ``FailureTarget``, ``SuccessCriteriaMet``
with status ``"True"``), ``status.startTime`` and ``status.active``. Accord names the
result with one native state, kept beside the normalized one:

=======================  =================================================  ===========
native state             meaning                                            RunState
=======================  =================================================  ===========
``Pending``              created, not started yet (no ``startTime``)        queued
``Running``              started (``startTime`` set or pods active)         running
``Suspended``            condition ``Suspended`` (``spec.suspend: true``)   waiting
``SuccessCriteriaMet``   succeeded; the last pods are being cleaned up      running
``FailureTarget``        failing; the last pods are being terminated        running
``Complete``             condition ``Complete``                             success
``Failed``               condition ``Failed`` (reason in the message)       failed
``Deleted``              deleted before it finished (a cancel, or gone      cancelled
                         while Accord was not watching)
``Missed``               the schedule said a Job should have started and    failed
                         none did (starting deadline missed, controller
                         down, ``Forbid`` while one ran)
``Skipped``              a scheduled time passed while the CronJob was      skipped
                         suspended
=======================  =================================================  ===========

``Complete`` and ``Failed`` are final; a Job reports ``Failed`` only once its pods are
gone (``FailureTarget`` first), so ``FailureTarget`` and ``SuccessCriteriaMet`` stay
non-terminal. A condition type Kubernetes adds later is ignored (the Job is then read by
its other fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.model import RunState

__all__ = [
    "CONDITION_TYPES",
    "NATIVE_STATES",
    "POD_PHASES",
    "STATES",
    "job_native_state",
    "job_state",
    "pod_state",
]

CONDITION_TYPES = ("Suspended", "Complete", "Failed", "FailureTarget", "SuccessCriteriaMet")
"""Every Job condition type of batch/v1 (``k8s.io/api/batch/v1`` ``JobConditionType``)."""

NATIVE_STATES = (
    "Pending",
    "Running",
    "Suspended",
    "SuccessCriteriaMet",
    "FailureTarget",
    "Complete",
    "Failed",
    "Deleted",
    "Missed",
    "Skipped",
)

STATES: Mapping[str, RunState] = MappingProxyType(
    {
        "Pending": RunState.QUEUED,
        "Running": RunState.RUNNING,
        "Suspended": RunState.WAITING,
        "SuccessCriteriaMet": RunState.RUNNING,
        "FailureTarget": RunState.RUNNING,
        "Complete": RunState.SUCCESS,
        "Failed": RunState.FAILED,
        "Deleted": RunState.CANCELLED,
        "Missed": RunState.FAILED,
        "Skipped": RunState.SKIPPED,
    }
)

# Which native state a true condition of each type gives, by precedence (final first).
_BY_CONDITION = ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended")


def _true_conditions(status: Mapping[str, Any]) -> set[str]:
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return set()
    return {
        str(c.get("type"))
        for c in conditions
        if isinstance(c, dict) and str(c.get("status", "")).lower() == "true"
    }


def job_native_state(status: Mapping[str, Any] | None) -> str:
    """The native state of a Job from its ``status``."""
    status = status or {}
    true = _true_conditions(status)
    for cond in _BY_CONDITION:
        if cond in true:
            return cond
    active = status.get("active")
    if status.get("startTime") or (isinstance(active, int) and active > 0):
        return "Running"
    return "Pending"


def job_state(status: Mapping[str, Any] | None) -> tuple[RunState, str]:
    """RunState and native state of a Job from its ``status``."""
    native = job_native_state(status)
    return STATES[native], native


POD_PHASES: Mapping[str, RunState] = MappingProxyType(
    {
        "Pending": RunState.QUEUED,
        "Running": RunState.RUNNING,
        "Succeeded": RunState.SUCCESS,
        "Failed": RunState.FAILED,
        "Unknown": RunState.UNKNOWN,
    }
)
"""``PodPhase`` of core/v1: a pod's phase as the state of a run's step."""


def pod_state(phase: str | None) -> RunState:
    return POD_PHASES.get(phase or "", RunState.UNKNOWN)
