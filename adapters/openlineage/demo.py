"""The demo's ``openlineage`` source: ``accord serve --demo`` feeds it RunEvents of a
dbt-like project through the public endpoint (``gateway.demo.feed_openlineage``)."""

from __future__ import annotations

from pathlib import Path

from adapters.base import DemoPart

__all__ = ["SOURCE", "start_demo"]

SOURCE = "demo-lineage"


def start_demo(workdir: Path) -> DemoPart:
    doc = {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {
            "name": SOURCE,
            "domain": "data",
            "labels": {"accord.dev/demo": "true"},
        },
        "spec": {"type": "openlineage", "demo": True},
    }
    return DemoPart(documents=[doc], env={}, stop=lambda: None)
