"""Object patterns over job uids: ``*`` matches any run of characters (slashes too), ``?``
one character. The same semantics in Python (for Casbin's matcher and cached decisions)
and in SQL (``LIKE`` with an escape character) so both paths always agree."""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["obj_match", "to_like"]


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def obj_match(value: str, pattern: str) -> bool:
    return _regex(pattern).fullmatch(value) is not None


def to_like(pattern: str) -> str:
    """The LIKE pattern (escape character ``\\``) equivalent to a glob pattern."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)
