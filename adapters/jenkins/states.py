"""Jenkins' whole status vocabulary and how it maps onto Accord's RunState.

Three vocabularies meet here:

* a build's ``result`` (``hudson.model.Result``: SUCCESS, UNSTABLE, FAILURE, NOT_BUILT,
  ABORTED) and ``null`` while ``building`` is true;
* the build queue: an item waits (``Queue$WaitingItem``: quiet period), is blocked
  (``$BlockedItem``), is buildable waiting for an executor (``$BuildableItem``), or has left
  (``$LeftItem``: cancelled, or handed over to a build with its own number);
* Pipeline Stage View (``wfapi``) statuses of runs and stages (``StatusExt``), which spell
  things differently (FAILED, NOT_EXECUTED, IN_PROGRESS, PAUSED_PENDING_INPUT).

Native states are kept beside the normalized one, spelled as Jenkins does (``SUCCESS``,
``BUILDING``, ``BLOCKED``, ...). A value Jenkins adds later maps to ``unknown``.
"""

from __future__ import annotations

from types import MappingProxyType

from gateway.model import RunState

__all__ = [
    "BUILDING",
    "BUILD_STATES",
    "NO_RESULT",
    "QUEUE_CANCELLED",
    "QUEUE_LEFT",
    "QUEUE_STATES",
    "QUEUE_VANISHED",
    "RESULTS",
    "STAGE_STATES",
    "STAGE_STATUSES",
    "build_state",
    "queue_native_state",
    "stage_state",
]

RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED")
"""``hudson.model.Result``, best to worst."""

BUILDING = "BUILDING"  # result null, building true
NO_RESULT = "NO_RESULT"  # result null and not building: a build Jenkins lost track of

BUILD_STATES: MappingProxyType[str, RunState] = MappingProxyType(
    {
        "SUCCESS": RunState.SUCCESS,
        "UNSTABLE": RunState.FAILED,  # tests failed: the run did not do its job
        "FAILURE": RunState.FAILED,
        "NOT_BUILT": RunState.SKIPPED,
        "ABORTED": RunState.CANCELLED,
        BUILDING: RunState.RUNNING,
        NO_RESULT: RunState.UNKNOWN,
    }
)

QUEUE_LEFT = "LEFT_QUEUE"  # the item became a build (reported under its own number)
QUEUE_CANCELLED = "CANCELLED"  # cancelled while queued
QUEUE_VANISHED = "VANISHED"  # gone from the queue without a trace of a build

QUEUE_STATES: MappingProxyType[str, RunState] = MappingProxyType(
    {
        "WAITING": RunState.QUEUED,  # Queue$WaitingItem: in its quiet period
        "BLOCKED": RunState.QUEUED,  # Queue$BlockedItem: e.g. a build already running
        "BUILDABLE": RunState.QUEUED,  # Queue$BuildableItem: waiting for an executor
        # The waiting is over and the build (``job#N``) carries on the work: this record of
        # the wait ends without having run anything itself.
        QUEUE_LEFT: RunState.SKIPPED,
        QUEUE_CANCELLED: RunState.CANCELLED,
        QUEUE_VANISHED: RunState.CANCELLED,
    }
)

STAGE_STATUSES = (
    "NOT_EXECUTED",
    "ABORTED",
    "SUCCESS",
    "IN_PROGRESS",
    "PAUSED_PENDING_INPUT",
    "FAILED",
    "UNSTABLE",
)
"""``com.cloudbees.workflow.rest.external.StatusExt``."""

STAGE_STATES: MappingProxyType[str, RunState] = MappingProxyType(
    {
        "NOT_EXECUTED": RunState.SKIPPED,
        "ABORTED": RunState.CANCELLED,
        "SUCCESS": RunState.SUCCESS,
        "IN_PROGRESS": RunState.RUNNING,
        "PAUSED_PENDING_INPUT": RunState.WAITING,  # an input step waits for a human
        "FAILED": RunState.FAILED,
        "UNSTABLE": RunState.FAILED,
    }
)

_QUEUE_CLASSES = {
    "hudson.model.Queue$WaitingItem": "WAITING",
    "hudson.model.Queue$BlockedItem": "BLOCKED",
    "hudson.model.Queue$BuildableItem": "BUILDABLE",
}


def build_state(result: str | None, building: bool) -> tuple[RunState, str]:
    """RunState and native state of a build from its ``result`` and ``building`` fields."""
    if building and result is None:
        return RunState.RUNNING, BUILDING
    if result is None:
        return RunState.UNKNOWN, NO_RESULT
    # A result may be set while post-build steps still run: the outcome is known.
    return BUILD_STATES.get(result, RunState.UNKNOWN), result


def queue_native_state(item_class: str | None, *, blocked: bool, buildable: bool) -> str:
    """Native state of an item still in the queue (by its ``_class``, else its flags)."""
    if item_class in _QUEUE_CLASSES:
        return _QUEUE_CLASSES[item_class]
    if blocked:
        return "BLOCKED"
    return "BUILDABLE" if buildable else "WAITING"


def stage_state(status: str | None) -> RunState:
    """RunState of a wfapi run or stage status."""
    if status is None:
        return RunState.UNKNOWN
    return STAGE_STATES.get(status, RunState.UNKNOWN)
