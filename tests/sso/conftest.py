"""Single sign-on against a real OpenID provider (node-oidc-provider) started here."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from adapters.testing.fake import FakeSystem, systems
from gateway.api.app import create_app
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services.tokens import create_token
from gateway.sync import SyncManager
from tests.api.conftest import SOURCES, apply_yaml
from tests.peers.oidc_provider import AUDIENCE, OTHER_AUDIENCE, OidcPeer, start_provider

CLIENT_ID = "accord-console"
# Credentials of the test provider are made per run; none is written in the repository.
CLIENT_SECRET = secrets.token_urlsafe(32)
BOT_SECRET = secrets.token_urlsafe(32)
STRANGER_SECRET = secrets.token_urlsafe(32)
USERS = {
    "alice": {"password": secrets.token_urlsafe(12), "groups": ["data-team"], "name": "Alice Data"},
    "bob": {"password": secrets.token_urlsafe(12), "groups": ["ops-team", "auditors"]},
    "carol": {"password": secrets.token_urlsafe(12), "groups": []},
}


def password(user: str) -> str:
    return str(USERS[user]["password"])


BINDINGS = """
apiVersion: accord.dev/v1
kind: GroupBinding
metadata: {name: data-team-operators}
spec: {claim: groups, values: [data-team], role: operator, domains: [data]}
---
apiVersion: accord.dev/v1
kind: GroupBinding
metadata: {name: ops-viewers}
spec: {values: [ops-team], role: viewer, domains: [ops]}
"""


def provider_config(redirect_base: str) -> dict[str, object]:
    return {
        "users": USERS,
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [redirect_base + "/auth/callback"],
                "post_logout_redirect_uris": [redirect_base + "/"],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            },
            {
                "client_id": "ci-bot",
                "client_secret": BOT_SECRET,
                "grant_types": ["client_credentials"],
                "redirect_uris": [],
                "response_types": [],
                "groups": ["data-team"],
            },
            {
                "client_id": "stranger-bot",
                "client_secret": STRANGER_SECRET,
                "grant_types": ["client_credentials"],
                "redirect_uris": [],
                "response_types": [],
                "groups": ["nobody"],
            },
        ],
        "resources": {AUDIENCE: {"accessTokenTTL": 60}, OTHER_AUDIENCE: {"accessTokenTTL": 60}},
        "accessTokenTTL": 60,
    }


@pytest.fixture(scope="module")
def oidc_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcPeer]:
    peer = start_provider(provider_config("http://testserver"), tmp_path_factory.mktemp("oidc"))
    yield peer
    peer.stop()


def sso_settings(peer: OidcPeer, data_dir: Path, **over: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "oidc_issuer": peer.issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": SecretStr(CLIENT_SECRET),
        "oidc_audience": AUDIENCE,
        "oidc_leeway": 0,
        **over,
    }
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class SsoApi:
    client: TestClient
    engine: Engine
    peer: OidcPeer
    admin: str

    def as_admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}


@pytest.fixture
def sso_api(oidc_peer: OidcPeer, engine: Engine, tmp_path: Path) -> Iterator[SsoApi]:
    data, ops = FakeSystem("api-data"), FakeSystem("api-ops")
    for n in ("etl_orders", "finance_report"):
        data.add_job(n)
    ops.add_job("db-backup")
    systems.update({"api-data": data, "api-ops": ops})
    apply_yaml(engine, SOURCES)
    apply_yaml(engine, BINDINGS)
    with session_scope(engine) as s:
        admin = create_token(s, subject="admin", role="admin", domain="*").token
    mgr = SyncManager(engine)
    for source in ("fake-data", "fake-ops"):
        assert anyio.run(mgr.sync_now, source).error is None
    app = create_app(sso_settings(oidc_peer, tmp_path / "data"), engine=engine, start_sync=False)
    try:
        with TestClient(app) as client:
            yield SsoApi(client, engine, oidc_peer, admin)
    finally:
        systems.pop("api-data", None)
        systems.pop("api-ops", None)
