"""Errors an adapter may raise. They map to HTTP in one place (``gateway.api.errors``)."""

from __future__ import annotations

__all__ = [
    "ActionNotSupported",
    "AdapterAuthError",
    "AdapterError",
    "AdapterUnavailable",
    "Conflict",
    "InvalidResponse",
    "NotFound",
]


class AdapterError(Exception):
    """Base of every adapter error."""


class AdapterUnavailable(AdapterError):
    """Temporary: the system is down, slow or rate limiting. The sync backs off."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AdapterAuthError(AdapterError):
    """Permanent until reconfigured: credentials are wrong, expired or lack permission."""


class NotFound(AdapterError):
    """The job or run does not exist at the source."""


class ActionNotSupported(AdapterError):
    """The system cannot do this action (the capability flags say so too)."""


class InvalidResponse(AdapterError):
    """The system answered something that is not what its API documents."""


class Conflict(AdapterError):
    """The action does not fit the current state (cancelling a run that has finished)."""
