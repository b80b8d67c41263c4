"""The one function through which a run's state changes.

State only moves forward: a terminal run never returns to a non-terminal state unless the
source reports a new attempt. Among non-terminal states any move is allowed (a run may go
from waiting back to running); between terminal states a later observation may correct
an earlier one only when the source says so through a new attempt.
"""

from __future__ import annotations

from .enums import RunState

__all__ = ["accept_transition"]


def accept_transition(
    current: RunState | None,
    proposed: RunState,
    *,
    current_attempt: int = 1,
    proposed_attempt: int = 1,
) -> bool:
    """Return True when ``proposed`` may replace ``current`` for a run.

    ``current`` is None for a run not seen before. An older attempt never overrides a
    newer one; a newer attempt always starts over.
    """
    if current is None:
        return True
    if proposed_attempt > current_attempt:
        return True
    if proposed_attempt < current_attempt:
        return False
    if current == proposed:
        return False
    if current.terminal:
        return False
    # UNKNOWN never overwrites something we know.
    return proposed != RunState.UNKNOWN
