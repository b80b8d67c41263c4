"""deploy/compose.yaml against the Compose Specification's JSON schema (vendored beside
this file, see compose-spec.NOTICE): it is a valid Compose file that starts PostgreSQL
and two gateway replicas sharing it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

HERE = Path(__file__).resolve().parent
COMPOSE = HERE.parents[1] / "deploy" / "compose.yaml"


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((HERE / "compose-spec.json").read_text(encoding="utf-8"))
    return loaded


def compose() -> dict[str, Any]:
    # YAML anchors and merge keys (<<: *gateway) resolve as Compose resolves them.
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(
        schema(), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_compose_file_is_valid_under_the_compose_specification() -> None:
    assert errors(compose()) == []


def test_the_schema_refuses_a_broken_compose_file() -> None:
    """Guards the test above: a misspelt service key and an unknown start condition are refused."""
    broken = copy.deepcopy(compose())
    broken["services"]["gateway"]["enviroment"] = broken["services"]["gateway"].pop("environment")
    broken["services"]["gateway-b"]["depends_on"]["db"]["condition"] = "service_ready"
    found = errors(broken)
    assert any("enviroment" in e for e in found), found
    assert any(e.startswith("services/gateway-b/depends_on") for e in found), found


def gateways(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in doc["services"].items()
        if svc.get("command", [])[:2] == ["accord", "serve"]
    }


def test_two_gateway_replicas_share_one_postgresql() -> None:
    doc = compose()
    db = doc["services"]["db"]
    assert db["image"].startswith("postgres:")
    assert db["healthcheck"]["test"][-1].startswith("pg_isready")
    replicas = gateways(doc)
    assert len(replicas) == 2, sorted(replicas)
    urls = {svc["environment"]["ACCORD_DATABASE_URL"] for svc in replicas.values()}
    assert len(urls) == 1
    (url,) = urls
    assert url.startswith("postgresql+psycopg://") and "@db:5432/" in url
    ids = [svc["environment"]["ACCORD_REPLICA_ID"] for svc in replicas.values()]
    assert len(set(ids)) == 2
    for name, svc in replicas.items():
        # A replica starts once PostgreSQL answers.
        assert svc["depends_on"]["db"]["condition"] == "service_healthy", name
        # Each has its own data volume; both read the same Accord documents.
        assert "./config:/etc/accord/config:ro" in svc["volumes"], name
    data = [
        v for svc in replicas.values() for v in svc["volumes"] if v.endswith(":/var/lib/accord")
    ]
    assert len(set(data)) == 2
    # Published on loopback only, on different host ports.
    ports = [p for svc in replicas.values() for p in svc["ports"]]
    assert all(p.startswith("127.0.0.1:") for p in ports)
    assert len({p.split(":")[1] for p in ports}) == 2


@pytest.mark.parametrize("name", ["db", "gateway", "gateway-b"])
def test_services_restart_unless_stopped(name: str) -> None:
    assert compose()["services"][name]["restart"] == "unless-stopped"
