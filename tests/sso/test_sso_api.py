"""The API and the console's login flow against a real OpenID provider: the provider's JWT
access tokens beside Accord's own, key rotation, bad tokens, sessions that end."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from gateway.api.app import create_app
from gateway.store.tables import AuditRecord, SsoLogin
from tests.peers.oidc_provider import AUDIENCE, OTHER_AUDIENCE, browserless_login, start_provider

from .conftest import SsoApi, password, provider_config, sso_settings


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _domains(api: SsoApi, headers: dict[str, str] | None = None, **kw: Any) -> set[str]:
    r = api.client.get("/api/v1/jobs", params={"limit": 100}, headers=headers or {}, **kw)
    assert r.status_code == 200, r.text
    return {j["domain"] for j in r.json()["items"]}


def _audit(api: SsoApi, action: str) -> list[AuditRecord]:
    with Session(api.engine) as s:
        return list(
            s.exec(
                select(AuditRecord)
                .where(AuditRecord.action == action)
                .order_by(col(AuditRecord.seq))
            ).all()
        )


def _login(api: SsoApi, user: str, password: str, return_to: str = "/") -> httpx.Response:
    start = api.client.get("/auth/login", params={"return_to": return_to}, follow_redirects=False)

    def back(url: str) -> httpx.Response:
        assert url.startswith("http://testserver/auth/callback"), url
        return api.client.get(url, follow_redirects=False)

    return browserless_login(start, back, login=user, password=password)


def test_a_provider_jwt_is_accepted_and_its_groups_choose_the_domains(sso_api: SsoApi) -> None:
    token = sso_api.peer.client_token("ci-bot")
    me = sso_api.client.get("/api/v1/me", headers=_bearer(token)).json()
    assert me["subject"] == "oidc:ci-bot"
    assert {"role": "operator", "domain": "data"} in me["roles"]
    assert _domains(sso_api, _bearer(token)) == {"data"}
    # Accord's own tokens still work beside them.
    assert _domains(sso_api, sso_api.as_admin()) == {"data", "ops"}
    # A client whose groups no GroupBinding names sees nothing.
    stranger = sso_api.peer.client_token("stranger-bot")
    r = sso_api.client.get("/api/v1/jobs", headers=_bearer(stranger))
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "'oidc:stranger-bot' may not read anything"


def test_keys_rotated_at_the_provider_are_fetched_on_first_sight(sso_api: SsoApi) -> None:
    before = sso_api.peer.client_token("ci-bot")
    assert sso_api.client.get("/api/v1/me", headers=_bearer(before)).status_code == 200
    kid = sso_api.peer.rotate()
    after = sso_api.peer.client_token("ci-bot")
    header = json.loads(base64.urlsafe_b64decode(after.split(".")[0] + "=="))
    assert header["kid"] == kid
    r = sso_api.client.get("/api/v1/me", headers=_bearer(after))
    assert r.status_code == 200, r.text
    # The old key is still published during the rotation, so older tokens keep working.
    assert sso_api.client.get("/api/v1/me", headers=_bearer(before)).status_code == 200


def test_a_token_for_another_audience_is_refused_and_audited(sso_api: SsoApi) -> None:
    token = sso_api.peer.client_token("ci-bot", resource=OTHER_AUDIENCE)
    r = sso_api.client.get("/api/v1/jobs", headers=_bearer(token))
    assert r.status_code == 401
    msg = r.json()["error"]["message"]
    assert "audience" in msg and OTHER_AUDIENCE in msg and "urn:accord:api" in msg
    (rec,) = _audit(sso_api, "authenticate")
    assert rec.decision == "deny" and rec.details == {
        "claimed_subject": "ci-bot",
        "path": "/api/v1/jobs",
    }
    assert rec.reason is not None and "audience" in rec.reason


def test_an_unsigned_token_is_refused(sso_api: SsoApi) -> None:
    real = sso_api.peer.client_token("ci-bot")
    payload = real.split(".")[1]
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    r = sso_api.client.get("/api/v1/me", headers=_bearer(f"{header}.{payload}."))
    assert r.status_code == 401
    assert "not signed" in r.json()["error"]["message"]
    # Re-signing the payload with a key the provider never published fails too.
    forged = f"{real.split('.')[0]}.{payload}.{base64.urlsafe_b64encode(b'x' * 256).decode()}"
    r = sso_api.client.get("/api/v1/me", headers=_bearer(forged.rstrip("=")))
    assert r.status_code == 401 and "signature" in r.json()["error"]["message"]
    assert len(_audit(sso_api, "authenticate")) == 2


def test_an_expired_token_is_refused(sso_api: SsoApi, tmp_path: Path) -> None:
    # A provider whose access tokens live two seconds.
    config = provider_config("http://testserver")
    config["accessTokenTTL"] = 2
    config["resources"] = {AUDIENCE: {"accessTokenTTL": 2}}
    short = start_provider(config, tmp_path)
    try:
        token = short.client_token("ci-bot")
        app = create_app(
            sso_settings(short, tmp_path / "d2"), engine=sso_api.engine, start_sync=False
        )
        with TestClient(app) as client:
            assert client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
            time.sleep(3.2)
            r = client.get("/api/v1/me", headers=_bearer(token))
        assert r.status_code == 401
        assert r.json()["error"]["message"].endswith("the token has expired")
        (rec,) = _audit(sso_api, "authenticate")
        assert rec.reason == "the token has expired"
    finally:
        short.stop()


def test_a_jwt_is_refused_where_the_gateway_does_not_accept_them(sso_api: SsoApi) -> None:
    sso_api.client.app.state.oidc.settings.oidc_audience = None  # type: ignore[attr-defined]
    try:
        r = sso_api.client.get("/api/v1/me", headers=_bearer(sso_api.peer.client_token("ci-bot")))
    finally:
        sso_api.client.app.state.oidc.settings.oidc_audience = "urn:accord:api"  # type: ignore[attr-defined]
    assert r.status_code == 401 and "ACCORD_OIDC_AUDIENCE" in r.json()["error"]["message"]


def test_console_login_gives_a_cookie_session_with_the_groups_roles(sso_api: SsoApi) -> None:
    done = _login(sso_api, "alice", password("alice"), return_to="/#/jobs")
    assert done.status_code == 302 and done.headers["location"] == "/#/jobs"
    cookie = done.headers["set-cookie"]
    assert "accord_session=acs_" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "acs_" not in done.headers["location"]
    me = sso_api.client.get("/api/v1/me").json()
    assert me["subject"] == "oidc:alice"
    assert me["roles"] == [{"role": "operator", "domain": "data"}]
    assert _domains(sso_api) == {"data"}
    (login,) = _audit(sso_api, "login")
    assert login.subject == "oidc:alice" and login.decision == "allow"
    # A state-changing call needs the console's header besides the cookie (CSRF).
    r = sso_api.client.post("/api/v1/jobs/fake-data/etl_orders/trigger", json={})
    assert r.status_code == 403 and "cookie alone" in r.json()["error"]["message"]
    r = sso_api.client.post(
        "/api/v1/jobs/fake-data/etl_orders/trigger", json={}, headers={"X-Accord-Channel": "ui"}
    )
    assert r.status_code == 200, r.text
    # The pending login was used once and is gone.
    with Session(sso_api.engine) as s:
        assert s.exec(select(SsoLogin)).all() == []


def test_logout_and_revocation_end_a_session(sso_api: SsoApi) -> None:
    _login(sso_api, "bob", password("bob"))
    cookie = sso_api.client.cookies.get("accord_session")
    assert cookie and _domains(sso_api) == {"ops"}
    out = sso_api.client.post("/auth/logout", headers={"X-Accord-Channel": "ui"}).json()
    assert out["signed_out"] is True and out["logout_url"].startswith(sso_api.peer.issuer)
    r = sso_api.client.get("/api/v1/me", headers={"Cookie": f"accord_session={cookie}"})
    assert r.status_code == 401 and "signed out or revoked" in r.json()["error"]["message"]

    sso_api.client.cookies.clear()
    _login(sso_api, "bob", password("bob"))
    (listed,) = sso_api.client.get("/api/v1/sessions", headers=sso_api.as_admin()).json()
    assert listed["subject"] == "oidc:bob"
    r = sso_api.client.delete(f"/api/v1/sessions/{listed['id']}", headers=sso_api.as_admin())
    assert r.status_code == 200
    r = sso_api.client.get("/api/v1/me")
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert [a.action for a in _audit(sso_api, "revoke-session")] == ["revoke-session"]


def test_sessions_expire(sso_api: SsoApi) -> None:
    # Long enough for a slow machine to finish the login and the first request inside
    # it (a 1-second life once expired before the first request on a loaded CI host).
    ttl = 5
    sso_api.client.app.state.settings.oidc_session_ttl = ttl  # type: ignore[attr-defined]
    _login(sso_api, "alice", password("alice"))
    signed_in = time.monotonic()  # the session's life started before this
    cookie = sso_api.client.cookies.get("accord_session")
    assert sso_api.client.get("/api/v1/me").status_code == 200
    time.sleep(max(0.0, signed_in + ttl + 0.3 - time.monotonic()))
    # The browser drops the cookie at its Max-Age; the gateway refuses it anyway.
    r = sso_api.client.get("/api/v1/me", headers={"Cookie": f"accord_session={cookie}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


def test_a_wrong_password_or_a_forged_callback_gets_no_session(sso_api: SsoApi) -> None:
    refused = _login(sso_api, "alice", "not-her-password")
    assert refused.status_code == 403
    assert sso_api.client.cookies.get("accord_session") is None
    # A callback with another state than this browser's login: refused, audited.
    r = sso_api.client.get("/auth/callback", params={"code": "x", "state": "y"})
    assert r.status_code == 401 and "does not match this browser" in r.text
    # A callback this browser never started (no login cookie): refused, audited.
    sso_api.client.cookies.clear()
    r = sso_api.client.get("/auth/callback", params={"code": "x", "state": "y"})
    assert r.status_code == 401 and "not started here" in r.text
    assert [a.decision for a in _audit(sso_api, "login")] == ["deny", "deny"]
    # A return address elsewhere is never followed after login.
    start = sso_api.client.get(
        "/auth/login", params={"return_to": "//evil.example/"}, follow_redirects=False
    )
    done = browserless_login(
        start,
        lambda url: sso_api.client.get(url, follow_redirects=False),
        login="carol",
        password=password("carol"),
    )
    assert done.headers["location"] == "/"
    me = sso_api.client.get("/api/v1/me").json()
    assert me["subject"] == "oidc:carol" and me["roles"] == []
