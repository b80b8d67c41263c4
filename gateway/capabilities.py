"""What one source can do: its adapter's capabilities for that source's settings.

An adapter class declares every capability its type may have; one source may have fewer
(a cron source fed by ``accord agent`` cannot act on its host). The API offers, and
accepts, only the actions this source can do.
"""

from __future__ import annotations

from adapters.base import Registry, registry
from gateway.model import Capability
from gateway.store.tables import Source as SourceRow
from gateway.sync.manager import adapter_settings

__all__ = ["source_capabilities", "unsupported_action"]


def source_capabilities(row: SourceRow, reg: Registry = registry) -> frozenset[Capability]:
    """The capabilities of this source; none when its type is not installed or its stored
    settings no longer validate (such a source cannot be built either)."""
    try:
        return reg.capabilities(row.type, adapter_settings(row))
    except (LookupError, ValueError):
        return frozenset()


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
