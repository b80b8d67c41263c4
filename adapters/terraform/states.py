"""Terraform Cloud's whole run status vocabulary and how it maps onto Accord's RunState.

Two vocabularies meet here:

* a run's ``status`` (``data.attributes.status``): the documented "Run States" of the runs
  API, plus the values the official clients know beyond the documentation (go-tfe:
  ``post_plan_awaiting_decision``, ``pre_apply_*``, ``post_apply_*``; python-tfe:
  ``queuing_apply``, ``tf_policy_*``). ``force_canceled`` is documented although go-tfe has
  no constant for it;
* the status of a run's plan and apply phases (``plans`` and ``applies`` resources), which
  Accord shows as the run's steps ``Plan`` and ``Apply``.

A run that waits for a person — a plan to confirm, a policy check to override — is
``waiting``: that is exactly what an approver needs to see. Some statuses only wait when the
run is confirmable (``cost_estimated``, ``policy_checked``, ...): a run in an auto-apply
workspace passes through them on its own, so :func:`run_state` reads them as ``running``
when the API says the run is not confirmable. A status Terraform Cloud adds later maps to
``unknown`` (not final: the run is polled again).
"""

from __future__ import annotations

from types import MappingProxyType

from gateway.model import RunState

__all__ = [
    "CONFIRM_DEPENDENT",
    "PHASE_STATES",
    "PHASE_STATUSES",
    "RUN_STATES",
    "RUN_STATUSES",
    "phase_state",
    "run_state",
]

RUN_STATUSES = (
    # documented (runs API, "Run States")
    "pending",
    "fetching",
    "fetching_completed",
    "pre_plan_running",
    "pre_plan_completed",
    "queuing",
    "plan_queued",
    "planning",
    "planned",
    "cost_estimating",
    "cost_estimated",
    "policy_checking",
    "policy_override",
    "policy_soft_failed",
    "policy_checked",
    "confirmed",
    "post_plan_running",
    "post_plan_completed",
    "planned_and_finished",
    "planned_and_saved",
    "apply_queued",
    "applying",
    "applied",
    "discarded",
    "errored",
    "canceled",
    "force_canceled",
    # known to the official clients beyond the documentation
    "post_plan_awaiting_decision",
    "pre_apply_running",
    "pre_apply_completed",
    "queuing_apply",
    "post_apply_running",
    "post_apply_completed",
    "tf_policy_checked",
    "tf_policy_override",
)
"""Every run status Terraform Cloud / Enterprise is known to report."""

RUN_STATES: MappingProxyType[str, RunState] = MappingProxyType(
    {
        "pending": RunState.QUEUED,  # created, waiting for its turn in the workspace queue
        "fetching": RunState.QUEUED,  # fetching the configuration from VCS
        "fetching_completed": RunState.QUEUED,
        "pre_plan_running": RunState.RUNNING,  # pre-plan run tasks
        "pre_plan_completed": RunState.RUNNING,
        "queuing": RunState.QUEUED,
        "plan_queued": RunState.QUEUED,
        "planning": RunState.RUNNING,
        "planned": RunState.WAITING,  # the plan awaits confirmation
        "cost_estimating": RunState.RUNNING,
        "cost_estimated": RunState.WAITING,  # awaiting confirmation after the estimate
        "policy_checking": RunState.RUNNING,
        "policy_override": RunState.WAITING,  # a soft-mandatory policy failed: override?
        "policy_soft_failed": RunState.FAILED,  # final: a plan-only run failed a policy
        "policy_checked": RunState.WAITING,  # awaiting confirmation after the checks
        "confirmed": RunState.QUEUED,  # confirmed, the apply is about to be queued
        "post_plan_running": RunState.RUNNING,  # post-plan run tasks
        "post_plan_completed": RunState.WAITING,  # awaiting confirmation after the tasks
        "post_plan_awaiting_decision": RunState.WAITING,  # a run task asks for a decision
        "planned_and_finished": RunState.SUCCESS,  # no changes, or a plan-only run
        "planned_and_saved": RunState.SUCCESS,  # a saved plan, ready to apply later
        "pre_apply_running": RunState.RUNNING,
        "pre_apply_completed": RunState.RUNNING,
        "queuing_apply": RunState.QUEUED,
        "apply_queued": RunState.QUEUED,
        "applying": RunState.RUNNING,
        "post_apply_running": RunState.RUNNING,
        "post_apply_completed": RunState.RUNNING,
        "applied": RunState.SUCCESS,
        "discarded": RunState.CANCELLED,  # final: the plan was not confirmed
        "errored": RunState.FAILED,
        "canceled": RunState.CANCELLED,
        "force_canceled": RunState.CANCELLED,
        "tf_policy_checked": RunState.WAITING,
        "tf_policy_override": RunState.WAITING,
    }
)

CONFIRM_DEPENDENT = frozenset(
    {"planned", "cost_estimated", "policy_checked", "post_plan_completed", "tf_policy_checked"}
)
"""Statuses that wait for a person only while the run is confirmable."""

PHASE_STATUSES = (
    "pending",
    "managed_queued",
    "queued",
    "running",
    "errored",
    "canceled",
    "finished",
    "unreachable",
)
"""Statuses of a plan or an apply (``plans`` / ``applies`` resources)."""

PHASE_STATES: MappingProxyType[str, RunState] = MappingProxyType(
    {
        "pending": RunState.QUEUED,
        "managed_queued": RunState.QUEUED,  # waiting for an agent or capacity
        "queued": RunState.QUEUED,
        "running": RunState.RUNNING,
        "errored": RunState.FAILED,
        "canceled": RunState.CANCELLED,
        "finished": RunState.SUCCESS,
        "unreachable": RunState.SKIPPED,  # will never run (no changes, discarded, plan only)
    }
)


def run_state(status: str | None, *, confirmable: bool | None = None) -> RunState:
    """RunState of a run status; ``confirmable`` is the run's ``actions.is-confirmable``."""
    if status is None:
        return RunState.UNKNOWN
    state = RUN_STATES.get(status, RunState.UNKNOWN)
    if status in CONFIRM_DEPENDENT and confirmable is False:
        return RunState.RUNNING  # an auto-applied run passing through on its own
    return state


def phase_state(status: str | None) -> RunState:
    """RunState of a plan's or an apply's status."""
    if status is None:
        return RunState.UNKNOWN
    return PHASE_STATES.get(status, RunState.UNKNOWN)
