"""A hostile domain admin and secret references (issue 11, item 1).

A domain admin may apply Sources in their own domain. The gateway reads a Source's secrets
with its own rights and sends them to the Source's URL, which the domain admin chose; so
a reference to the gateway's own secrets must be refused when it is applied, and — should
such a row be in the store anyway (an older database) — when the adapter connects, before
anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gateway.api.app import create_app
from gateway.config import apply_plan, load_documents, plan
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services.tokens import create_token
from tests.httpserver import RecordingServer

from .conftest import Api

ADMIN_TOKEN = "acd_the-gateways-own-admin-token-0123456789"
DB_URL = "postgresql+psycopg://accord:db-password-never-leaves@db.internal:5432/accord"


def _source(name: str, url: str, auth: dict[str, Any], kind: str = "airflow") -> str:
    spec: dict[str, Any] = {"type": kind, "url": url}
    if kind == "airflow":
        spec["auth"] = auth
    else:  # jenkins: basic auth with a user's API token
        spec.update(username="accord", token=auth["tokenFrom"])
    doc = {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {"name": name, "domain": "data"},
        "spec": spec,
    }
    return yaml.safe_dump(doc)


def _apply(api: Api, who: str, text: str, *, dry_run: bool = False) -> Any:
    return api.client.post(
        "/api/v1/config/apply",
        params={"dry_run": dry_run},
        content=text,
        headers={**api.as_(who), "Content-Type": "application/yaml"},
    )


@pytest.fixture
def hostile(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, Path]]:
    """The api fixture, a domain admin of ``data``, and the gateway's own secrets in place."""
    data_dir: Path = api.client.app.state.settings.data_dir  # type: ignore[attr-defined]
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "admin-token").write_text(ADMIN_TOKEN + "\n")
    monkeypatch.setenv("ACCORD_DATABASE_URL", DB_URL)
    with session_scope(api.engine) as s:
        api.tokens["data-admin"] = create_token(
            s, subject="data-admin", role="admin", domain="data"
        ).token
    yield api, data_dir


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ({"username": "me", "passwordFrom": {"file": "{data}/admin-token"}}, "passwordFrom"),
        ({"tokenFrom": {"env": "ACCORD_DATABASE_URL"}}, "tokenFrom"),
        ({"tokenFrom": {"env": "accord_database_url"}}, "tokenFrom"),
        ({"tokenFrom": {"file": "{data}/secrets/../admin-token"}}, "tokenFrom"),
        ({"tokenFrom": {"file": "{data}/accord.db"}}, "tokenFrom"),
        ({"tokenFrom": {"file": "/proc/self/environ"}}, "tokenFrom"),
        ({"tokenFrom": {"env": "HOME"}}, "tokenFrom"),
    ],
)
def test_a_domain_admin_cannot_aim_a_secret_reference_at_the_gateways_secrets(
    hostile: tuple[Api, Path], auth: dict[str, Any], field: str
) -> None:
    api, data_dir = hostile
    auth = yaml.safe_load(yaml.safe_dump(auth).replace("{data}", str(data_dir)))
    with RecordingServer() as theirs:
        r = _apply(api, "data-admin", _source("exfil", theirs.url, auth))
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_config" and "nothing was changed" in error["message"]
        (detail,) = error["details"]
        assert "Source/exfil" in detail and f"spec.auth.{field}:" in detail
        assert "is not allowed" in detail
        # ... and it says what is allowed
        assert "ACCORD_SECRET_*" in detail and f"{data_dir}/secrets/" in detail
        assert ADMIN_TOKEN not in r.text and "db-password" not in r.text
        assert "exfil" not in api.get("admin", "/api/v1/sources").text
        assert theirs.requests == []


def test_an_allowed_reference_applies_without_being_read(hostile: tuple[Api, Path]) -> None:
    api, data_dir = hostile
    for auth in (
        {"tokenFrom": {"env": "ACCORD_SECRET_AIRFLOW_NOT_SET_YET"}},
        {"tokenFrom": {"file": f"{data_dir}/secrets/airflow-token-not-there-yet"}},
    ):
        r = _apply(api, "data-admin", _source("fine", "http://127.0.0.1:9", auth), dry_run=True)
        assert r.status_code == 200, r.text


def test_the_refusal_does_not_tell_whether_the_secret_exists(
    hostile: tuple[Api, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, data_dir = hostile
    monkeypatch.setenv("SOME_SET_VARIABLE", "x")
    monkeypatch.delenv("SOME_UNSET_VARIABLE", raising=False)
    pairs = [
        ((f"{data_dir}/admin-token", "admin-token"), (f"{data_dir}/no-such-file", "no-such-file")),
        (
            ("SOME_SET_VARIABLE", "SOME_SET_VARIABLE"),
            ("SOME_UNSET_VARIABLE", "SOME_UNSET_VARIABLE"),
        ),
    ]
    for there, absent in pairs:
        answers = []
        for value, name in (there, absent):
            ref = {"file": value} if value.startswith("/") else {"env": value}
            doc = _source("probe", "http://127.0.0.1:9", {"tokenFrom": ref})
            r = _apply(api, "data-admin", doc, dry_run=True)
            assert r.status_code == 422, r.text
            answers.append(r.json()["error"]["details"][0].replace(name, "NAME"))
        assert answers[0] == answers[1], answers


@pytest.fixture
def gateway_with_stored_refs(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, str, RecordingServer]]:
    """Hostile Sources already in the store (an older database, written before references
    were confined), the gateway with its sync workers, and the server they point at."""
    data_dir = tmp_path / "gw"
    (data_dir / "secrets").mkdir(parents=True)
    (data_dir / "admin-token").write_text(ADMIN_TOKEN + "\n")
    # Allowed as written, but a link out of the secrets directory to the admin token.
    (data_dir / "secrets" / "airflow").symlink_to(data_dir / "admin-token")
    monkeypatch.setenv("ACCORD_DATABASE_URL", DB_URL)
    with RecordingServer() as theirs:
        text = "---\n".join(
            [
                _source("evil-env", theirs.url, {"tokenFrom": {"env": "ACCORD_DATABASE_URL"}}),
                _source(
                    "evil-file",
                    theirs.url,
                    {"username": "me", "passwordFrom": {"file": f"{data_dir}/admin-token"}},
                ),
                _source(
                    "evil-link",
                    theirs.url,
                    {"username": "me", "passwordFrom": {"file": f"{data_dir}/secrets/airflow"}},
                ),
                _source(
                    "evil-jenkins",
                    theirs.url,
                    {"tokenFrom": {"env": "ACCORD_DATABASE_URL"}},
                    kind="jenkins",
                ),
            ]
        )
        raw = [("old", i, d) for i, d in enumerate(yaml.safe_load_all(text), 1)]
        res = load_documents(raw, check_secrets=False)
        assert res.ok, [str(e) for e in res.errors]
        with session_scope(engine) as s:
            apply_plan(s, plan(s, res.documents), subject="older-release", channel="cli")
            token = create_token(s, subject="root", role="admin", domain="*").token
        settings = Settings(data_dir=data_dir, database_url=str(engine.url))
        app = create_app(settings, engine=engine, start_sync=True)
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            yield client, token, theirs


def test_a_stored_hostile_reference_is_refused_when_the_adapter_connects(
    gateway_with_stored_refs: tuple[TestClient, str, RecordingServer],
) -> None:
    client, _, theirs = gateway_with_stored_refs
    names = ("evil-env", "evil-file", "evil-link", "evil-jenkins")
    answers = {name: client.post(f"/api/v1/sources/{name}/sync") for name in names}
    seen = theirs.seen()
    assert ADMIN_TOKEN not in seen and "db-password-never-leaves" not in seen, seen
    # Nothing that could carry a credential went out at all.
    assert not any("authorization" in {k.lower() for k in r.headers} for r in theirs.requests)
    assert not any(r.path.startswith("/auth/token") for r in theirs.requests)
    for name, r in answers.items():
        assert r.status_code == 200, r.text
        error = r.json()["error"]
        assert error and "is not allowed" in error, (name, error)
        source = client.get(f"/api/v1/sources/{name}").json()
        assert "is not allowed" in (source["last_error"] or ""), source
        assert ADMIN_TOKEN not in r.text + str(source)
        assert "db-password" not in r.text + str(source)
