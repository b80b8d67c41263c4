"""Help output that reads like other command-line tools.

Typer's rich help prints each option's Python type in angle brackets, flags included
(``--help <bool>``, ``--dry-run <bool>``). Click's convention, which users know from
other tools, is a metavar only for options that take a value, in capitals:
``--limit INTEGER``, ``--file PATH``, and nothing after a flag. This module installs that
rendering on Typer's parameter classes (one function, used by both help renderers).
"""

from __future__ import annotations

from typing import Any

from typer import core

__all__ = ["install"]

_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN", "path": "PATH"}
_original = core._TyperParameter.display_type


def _metavar(self: Any, ctx: Any) -> str | None:
    if getattr(self, "is_flag", False) or getattr(self, "count", False):
        return None
    if self.metavar is not None:
        return str(self.metavar)
    label = str(_original(self, ctx))
    inner = label[1:-1] if label.startswith("<") and label.endswith(">") else label
    if "|" in inner:  # a choice: show the choices, as click does
        return f"[{inner}]"
    name = _NAMES.get(inner.lower(), inner.upper())
    if getattr(self, "nargs", 1) != 1:
        name += "..."
    return name


def install() -> None:
    """Render option and argument types the click way (idempotent)."""
    core._TyperParameter.display_type_rich = _metavar  # type: ignore[method-assign]
    core.TyperOption.display_type_rich = _metavar  # type: ignore[method-assign]
