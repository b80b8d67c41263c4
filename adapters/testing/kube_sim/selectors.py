"""Kubernetes label and field selectors, as the API server parses them
(``k8s.io/apimachinery/pkg/labels`` and ``.../fields``), for the simulator."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["SelectorError", "field_selector", "label_selector"]

Predicate = Callable[[Mapping[str, str]], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$")
_EQ = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>[-A-Za-z0-9_.]*)\s*$")
_EXISTS = re.compile(rf"^\s*(?P<neg>!?)\s*(?P<key>{_KEY})\s*$")


class SelectorError(ValueError):
    """A selector the API server would reject (400 BadRequest)."""


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _requirement(part: str) -> Predicate:
    m = _SET.match(part)
    if m:
        key = m.group("key")
        values = {v.strip() for v in m.group("values").split(",") if v.strip()}
        if m.group("op") == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    m = _EQ.match(part)
    if m:
        key, value = m.group("key"), m.group("value")
        if m.group("op") == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    m = _EXISTS.match(part)
    if m:
        key = m.group("key")
        if m.group("neg"):
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {part.strip()!r}")


def label_selector(text: str | None) -> Predicate:
    """A predicate over an object's labels; empty selects everything."""
    if not text or not text.strip():
        return lambda labels: True
    preds = [_requirement(p) for p in _split(text)]
    return lambda labels: all(p(labels) for p in preds)


_FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "metadata.name": lambda o: str(o["metadata"].get("name", "")),
    "metadata.namespace": lambda o: str(o["metadata"].get("namespace", "")),
}


def field_selector(text: str | None) -> Callable[[dict[str, Any]], bool]:
    """A predicate over an object; only ``metadata.name`` and ``metadata.namespace``."""
    if not text or not text.strip():
        return lambda obj: True
    preds: list[Callable[[dict[str, Any]], bool]] = []
    for part in _split(text):
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m or m.group(1) not in _FIELDS:
            raise SelectorError(f'"{part.strip()}" is not a known field selector')
        getter, neg, value = _FIELDS[m.group(1)], m.group(2) == "!=", m.group(3)
        preds.append(lambda o, g=getter, n=neg, v=value: (g(o) == v) != n)  # type: ignore[misc]
    return lambda obj: all(p(obj) for p in preds)
