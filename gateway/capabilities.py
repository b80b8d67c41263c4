"""What one source can do: its adapter's capabilities for that source's settings.

An adapter class declares every capability its type may have; one source may have fewer
(a cron source fed by ``accord agent`` cannot act on its host). The API offers, and
accepts, only the actions this source can do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.base import Adapter, Registry, registry
from gateway.model import Capability
from gateway.store.tables import Source as SourceRow
from gateway.sync.manager import adapter_settings

__all__ = ["capabilities_of", "source_capabilities", "unsupported_action"]


def source_capabilities(row: SourceRow, reg: Registry = registry) -> frozenset[Capability]:
    """The capabilities of this source; none when its type is not installed or its stored
    settings no longer validate (such a source cannot be built either)."""
    try:
        return reg.capabilities(row.type, adapter_settings(row))
    except (LookupError, ValueError):
        return frozenset()


_MEMO: dict[tuple[type[Adapter], str], frozenset[str]] = {}


def capabilities_of(source_type: str, spec: Mapping[str, Any] | str) -> frozenset[str]:
    """``source_capabilities`` from a stored source's type and spec (the mapping, or the
    JSON text as stored), as strings, memoized by the adapter class and the spec's content
    (list pages ask for the same few sources on every request; checking the settings each
    time cost more than reading the page). A type not installed has none and is not kept
    (it may be installed later)."""
    try:
        cls = registry.get(source_type)
    except LookupError:
        return frozenset()
    text = spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True, default=str)
    key = (cls, text)
    got = _MEMO.get(key)
    if got is None:
        parsed = json.loads(spec) if isinstance(spec, str) else dict(spec)
        row = SourceRow(name="-", type=source_type, domain="-", spec=parsed)
        got = frozenset(str(c) for c in source_capabilities(row))
        if len(_MEMO) >= 4096:
            _MEMO.clear()
        _MEMO[key] = got
    return got


def unsupported_action(row: SourceRow, action: str, reg: Registry = registry) -> str | None:
    """Why ``action`` cannot be taken on a job or run of this source, or None."""
    caps = {str(c) for c in source_capabilities(row, reg)}
    if action in caps:
        return None
    can = sorted(caps & {"trigger", "pause", "resume", "cancel", "retry"})
    return (
        f"source {row.name!r} cannot {action}: with its settings, this {row.type} source "
        f"supports {', '.join(can) if can else 'no actions'}"
    )
