"""Errors an adapter may raise. They map to HTTP in one place (``gateway.api.errors``)."""

from __future__ import annotations

import email.utils
import time
from datetime import UTC

__all__ = [
    "ActionNotSupported",
    "AdapterAuthError",
    "AdapterError",
    "AdapterUnavailable",
    "Conflict",
    "InvalidResponse",
    "NotFound",
    "parse_retry_after",
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


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` value: delta-seconds or an HTTP date
    (RFC 9110 §10.2.3). Never negative; ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
