"""Jenkins' ``tree=`` selector (Stapler's ``NamedPathPruner``) and ``depth=`` pruning.

Grammar (``org.kohsuke.stapler.export.NamedPathPruner``)::

    list  := node ("," list)?
    node  := NAME ("[" list "]")? ("{" range "}")?
    range := "," M | N | N "," | N "," M        -> [0,M) | [N,N+1) | [N,inf) | [N,M)

``*`` as a name selects every property. A property named without a sub-list that holds
an object yields that object with its ``_class`` only (Jenkins' behaviour). The range cuts
a list property (``builds[number]{0,10}``: the ten newest builds).

Objects to render are :class:`Exported` instances: a ``_class`` and a function giving
their properties (nested values may be further ``Exported`` objects, evaluated lazily so
that cyclic references such as upstream/downstream projects cost nothing unless asked).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Exported", "Tree", "TreeSyntaxError", "parse_tree", "render_depth", "render_tree"]

_MAX = 2**31 - 1
_SPECIAL = ",[]{}"


class TreeSyntaxError(ValueError):
    """A ``tree=`` value Jenkins would reject (it answers HTTP 400)."""


@dataclass
class Tree:
    children: dict[str, Tree] = field(default_factory=dict)
    start: int = 0
    end: int = _MAX


@dataclass
class Exported:
    """An exported bean: ``_class``, properties (lazily), and which of them show when the
    object is nested deeper than ``depth`` (``summary``)."""

    cls: str
    props: Callable[[], Mapping[str, Any]]
    summary: tuple[str, ...] = ()
    # Properties only rendered when named explicitly in ``tree`` (visibility < 0, like
    # ``allBuilds``).
    hidden: frozenset[str] = frozenset()
    # Properties rendered at the object's own depth (``@Exported(inline=true)``, like the
    # queue's ``items``).
    inline: frozenset[str] = frozenset()


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.next = 0

    def peek(self) -> str | None:
        """A one-character token, a name, or None at the end."""
        if self.pos == len(self.text):
            return None
        c = self.text[self.pos]
        if c in _SPECIAL:
            self.next = self.pos + 1
            return c
        ends = [i for i in (self.text.find(s, self.pos) for s in _SPECIAL) if i != -1]
        self.next = min(ends) if ends else len(self.text)
        return self.text[self.pos : self.next]

    def advance(self) -> None:
        self.pos = self.next

    def accept(self, token: str) -> bool:
        if self.peek() == token:
            self.advance()
            return True
        return False

    def expect(self, token: str | None) -> None:
        if self.peek() != token:
            raise TreeSyntaxError(f"expected {token or 'end'} at {self.pos}")
        self.advance()

    def number(self) -> int:
        t = self.peek()
        if t is None or t in _SPECIAL or not re.fullmatch(r"[0-9]+", t):
            raise TreeSyntaxError(f"expected number at {self.pos}")
        self.advance()
        return int(t)


def parse_tree(spec: str) -> Tree:
    """Parse a ``tree=`` value; raise :class:`TreeSyntaxError` like Stapler does."""
    reader = _Reader(spec)
    root = Tree()
    _list(reader, root)
    reader.expect(None)
    return root


def _list(r: _Reader, t: Tree) -> None:
    _node(r, t)
    if r.accept(","):
        _list(r, t)


def _node(r: _Reader, t: Tree) -> None:
    name = r.peek()
    if name is None or name in _SPECIAL:
        raise TreeSyntaxError(f"expected name at {r.pos}")
    r.advance()
    sub = Tree()
    t.children[name] = sub
    if r.accept("["):
        _list(r, sub)
        r.expect("]")
    if r.accept("{"):
        sub.start, sub.end = _range(r)
        r.expect("}")


def _range(r: _Reader) -> tuple[int, int]:
    if r.accept(","):
        return 0, r.number()  # {,M}
    low = r.number()
    if r.peek() == "}":
        return low, low + 1  # {N}
    r.expect(",")
    if r.peek() == "}":
        return low, _MAX  # {N,}
    return low, r.number()  # {N,M}


def render_tree(value: Any, tree: Tree) -> Any:
    """Render ``value`` keeping only what ``tree`` selects."""
    if isinstance(value, Exported):
        out: dict[str, Any] = {"_class": value.cls}
        if not tree.children:
            return out
        props = value.props()
        wildcard = tree.children.get("*")
        for name, sub_value in props.items():
            sub = tree.children.get(name)
            if sub is None and wildcard is not None and name not in value.hidden:
                sub = wildcard
            if sub is None:
                continue
            out[name] = _render_value(sub_value, sub)
        return out
    return _render_value(value, tree)


def _render_value(value: Any, tree: Tree) -> Any:
    if isinstance(value, list | tuple):
        return [render_tree(v, tree) for v in list(value)[tree.start : tree.end]]
    if isinstance(value, Exported):
        return render_tree(value, tree)
    return value


def render_depth(value: Any, depth: int, level: int = 0) -> Any:
    """Render without ``tree``: full objects down to ``depth`` levels of nesting, then a
    summary (the ``summary`` properties) one level further, then nothing."""
    if isinstance(value, list | tuple):
        return [render_depth(v, depth, level) for v in value]
    if not isinstance(value, Exported):
        return value
    out: dict[str, Any] = {"_class": value.cls}
    props = value.props()
    if level <= depth:
        for name, sub in props.items():
            if name in value.hidden:
                continue
            out[name] = render_depth(sub, depth, level if name in value.inline else level + 1)
    else:
        for name in value.summary:
            if name in props and not _is_object(props[name]):
                out[name] = props[name]
    return out


def _is_object(value: Any) -> bool:
    return isinstance(value, Exported) or (
        isinstance(value, list | tuple) and any(isinstance(v, Exported) for v in value)
    )
