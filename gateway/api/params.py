"""Query and path parameter types shared by the routes: bounded integers, times that may
be relative (``24h``), and enum filters that name their allowed values when wrong."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from gateway.model import parse_duration

from .errors import ApiError

__all__ = ["INT64_MAX", "Time", "check_choices"]

INT64_MAX = 2**63 - 1


def _time(value: Any) -> Any:
    """``24h``, ``30m``, ``7d`` mean that long before now; anything else goes on to the
    ISO date-time parser. A time without a zone is UTC."""
    if isinstance(value, str):
        try:
            return datetime.now(UTC) - parse_duration(value)
        except ValueError:
            pass
        if value.strip().lstrip("-").isdigit():
            return value  # a Unix time, which pydantic reads as before
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is neither a duration before now (24h, 30m, 7d) nor an ISO date-time"
            ) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


Time = Annotated[
    datetime,
    BeforeValidator(_time),
    WithJsonSchema(
        {
            "type": "string",
            "description": "ISO 8601 date-time, or a duration before now: 30m, 24h, 7d",
            "examples": ["24h", "2025-01-31T00:00:00Z"],
        }
    ),
]


def check_choices(name: str, values: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The values, or a 422 in the standard shape naming the allowed ones."""
    known = list(allowed)
    out = list(values)
    bad = [v for v in out if v not in known]
    if bad:
        msg = f"unknown {name} {', '.join(repr(b) for b in bad)}; allowed: {', '.join(known)}"
        raise ApiError(
            422,
            "invalid_request",
            f"the request is invalid: query.{name}: {msg}",
            details=[{"loc": f"query.{name}", "msg": msg}],
        )
    return out
