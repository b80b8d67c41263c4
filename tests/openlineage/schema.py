"""Validation of OpenLineage events against the vendored specification (``spec/``).

The core schema checks the event; each facet is also checked against the schema its
``_schemaURL`` names (the core schema leaves facets open), so a facet with a missing or
mistyped field fails too.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SPEC = Path(__file__).parent / "spec"
CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"

__all__ = ["CORE", "errors", "validate"]


@cache
def _registry() -> Registry:
    resources = []
    for path in [SPEC / "OpenLineage.json", *sorted((SPEC / "facets").glob("*.json"))]:
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def _validator(ref: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": ref}, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def _facets(event: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    found.extend((event.get("run") or {}).get("facets", {}).values())
    found.extend((event.get("job") or {}).get("facets", {}).values())
    for ds in [*(event.get("inputs") or []), *(event.get("outputs") or [])]:
        found.extend((ds.get("facets") or {}).values())
        found.extend((ds.get("inputFacets") or {}).values())
        found.extend((ds.get("outputFacets") or {}).values())
    return found


def errors(event: dict[str, Any]) -> list[str]:
    """Every way ``event`` breaks the schema (empty: it validates)."""
    out = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(f"{CORE}#/$defs/RunEvent").iter_errors(event)
    ]
    for facet in _facets(event):
        url = facet.get("_schemaURL", "")
        base = url.split("#", 1)[0]
        if not any(base == r for r in _registry()):
            out.append(f"facet schema {url!r} is not a known OpenLineage facet")
            continue
        out.extend(f"{url}: {e.message}" for e in _validator(url).iter_errors(facet))
    return out


def validate(event: dict[str, Any]) -> None:
    problems = errors(event)
    assert not problems, "\n".join(problems)
