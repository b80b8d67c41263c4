"""Login and token endpoints against real gateway processes.

- Brute force: failed authentications are limited per client address and per subject
  (429 + Retry-After, good credentials included), each burst audited once.
- Tokens expire (``accord tokens create --ttl``) with a clear 401, and can be rotated
  (``accord tokens rotate``, ``POST /api/v1/me/token/rotate``) with a grace period or at once.
- Revocation takes effect on every replica at once: two ``accord serve`` processes on one
  PostgreSQL database, revoke through A, the next request on B is refused.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import _fresh_pg_database, wait_until

from ._gateway import Gateway, accord

LIMIT = 5
# Seconds a failure counts: long enough that a burst of 40 requests on a loaded machine
# stays inside one window.
WINDOW = 8


def _new_token(gw: Gateway, subject: str, *extra: str) -> tuple[int, str]:
    done = accord(gw.env, "tokens", "create", "--subject", subject, "--role", "viewer", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    ident = int(re.search(r"token (\d+) for", done.stdout).group(1))  # type: ignore[union-attr]
    return ident, done.stdout.strip().splitlines()[-1]


def _me(gw: Gateway, token: str, address: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, timeout=30) as c:
        return c.get(f"{gw.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def _throttle_records(gw: Gateway) -> list[dict[str, object]]:
    with gw.client() as c:
        rows = c.get("/api/v1/audit", params={"action": "authenticate", "limit": 500}).json()
    items = rows["items"] if isinstance(rows, dict) else rows
    return [r for r in items if r["outcome"] == "throttled"]


@pytest.fixture
def throttled_gateway(tmp_path: Path) -> Gateway:
    gw = Gateway(
        tmp_path / "data",
        sync=False,
        extra_env={
            "ACCORD_AUTH_FAILURE_LIMIT": str(LIMIT),
            "ACCORD_AUTH_FAILURE_WINDOW": str(WINDOW),
        },
    ).start()
    yield gw  # type: ignore[misc]
    gw.stop()


def test_brute_force_from_one_address_is_throttled_and_audited_once_per_burst(
    throttled_gateway: Gateway,
) -> None:
    gw = throttled_gateway
    _, good = _new_token(gw, "alice")
    guesses = ["acd_" + secrets.token_urlsafe(32) for _ in range(40)]
    answers = [_me(gw, g, "127.0.0.2").status_code for g in guesses]
    # The first LIMIT guesses are told no; every later one is refused without being tried.
    assert answers[:LIMIT] == [401] * LIMIT
    assert set(answers[LIMIT:]) == {429}
    refused = _me(gw, good, "127.0.0.2")  # even a good token, from that address
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "too many failed authentications for this address" in refused.json()["error"]["message"]
    # Other addresses are not affected.
    assert _me(gw, good, "127.0.0.3").status_code == 200
    # One audit record for the whole burst of 35 refusals.
    records = _throttle_records(gw)
    assert [r["target"] for r in records] == ["address:127.0.0.2"]
    assert records[0]["decision"] == "deny"

    # After Retry-After the address may try again; a new burst, after a quiet window, is
    # audited again.
    assert wait_until(lambda: _me(gw, good, "127.0.0.2").status_code == 200, timeout=30)
    time.sleep(WINDOW + 0.2)
    for g in guesses[: LIMIT + 3]:
        _me(gw, g, "127.0.0.2")
    assert [r["target"] for r in _throttle_records(gw)] == ["address:127.0.0.2"] * 2


def test_a_subjects_old_tokens_tried_from_many_addresses_throttle_that_subject(
    throttled_gateway: Gateway,
) -> None:
    gw = throttled_gateway
    old_id, old = _new_token(gw, "alice")
    _, current = _new_token(gw, "alice")
    _, bobs = _new_token(gw, "bob")
    done = accord(gw.env, "tokens", "revoke", str(old_id))
    assert done.returncode == 0, done.stderr
    # The revoked token, from LIMIT addresses (none of them reaches the address limit).
    answers = [_me(gw, old, f"127.0.1.{i}") for i in range(1, LIMIT + 1)]
    assert [a.status_code for a in answers] == [401] * LIMIT
    assert "has been revoked" in answers[0].json()["error"]["message"]
    refused = _me(gw, current, "127.0.2.1")
    assert refused.status_code == 429
    assert "for this subject" in refused.json()["error"]["message"]
    assert _me(gw, bobs, "127.0.2.1").status_code == 200
    assert [r["target"] for r in _throttle_records(gw)] == ["subject:alice"]
    assert wait_until(lambda: _me(gw, current, "127.0.2.1").status_code == 200, timeout=30)


def test_a_token_made_with_a_ttl_expires_with_a_clear_401(tmp_path: Path) -> None:
    gw = Gateway(tmp_path / "data", sync=False).start()
    try:
        _, token = _new_token(gw, "carol", "--ttl", "3s")
        assert _me(gw, token).status_code == 200
        assert wait_until(lambda: _me(gw, token).status_code == 401, timeout=30)
        answer = _me(gw, token)
        assert answer.json()["error"]["code"] == "unauthorized"
        assert "expired at" in answer.json()["error"]["message"]
        listed = accord(gw.env, "tokens", "list", "--all", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        assert "carol" in listed.stdout and "expires_at" in listed.stdout
    finally:
        gw.stop()


def test_revocation_and_rotation_take_effect_on_every_replica_at_once(
    tmp_path: Path, postgres_server: str
) -> None:
    url = _fresh_pg_database(postgres_server)
    a = Gateway(tmp_path / "data", database_url=url, sync=False).start()
    b = Gateway(tmp_path / "data", database_url=url, sync=False).start()
    try:
        # Revoked with the CLI: refused by both replicas on the next request.
        ident, token = _new_token(a, "dave")
        assert _me(a, token).status_code == 200 and _me(b, token).status_code == 200
        assert accord(a.env, "tokens", "revoke", str(ident)).returncode == 0
        assert _me(b, token).status_code == 401
        assert _me(a, token).status_code == 401

        # Rotated through A at once (grace 0s): the old secret is refused on B at once,
        # the new one works on both.
        ident, token = _new_token(a, "erin")
        assert _me(b, token).status_code == 200
        with httpx.Client(base_url=a.url, timeout=30) as c:
            rotated = c.post(
                "/api/v1/me/token/rotate",
                json={"grace": "0s"},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert rotated.status_code == 200, rotated.text
        body = rotated.json()
        assert body["replaced"] == ident and body["token"] != token
        refused = _me(b, token)
        assert refused.status_code == 401
        assert f"replaced by token {body['id']}" in refused.json()["error"]["message"]
        assert _me(b, body["token"]).status_code == 200
        assert _me(b, body["token"]).json()["subject"] == "erin"

        # Rotated with a grace period (CLI): both secrets work until it ends; the old one
        # cannot be rotated again, so a stolen token cannot outlive its grace period.
        ident, token = _new_token(a, "frank", "--ttl", "30d")
        done = accord(a.env, "tokens", "rotate", str(ident), "--grace", "4s")
        assert done.returncode == 0, done.stderr
        new = done.stdout.strip().splitlines()[-1]
        assert _me(b, token).status_code == 200 and _me(b, new).status_code == 200
        with httpx.Client(base_url=b.url, timeout=30) as c:
            again = c.post("/api/v1/me/token/rotate", headers={"Authorization": f"Bearer {token}"})
        assert again.status_code == 409
        assert "already rotated" in again.json()["error"]["message"]
        assert wait_until(lambda: _me(b, token).status_code == 401, timeout=30)
        assert "grace period ended" in _me(a, token).json()["error"]["message"]
        assert _me(a, new).status_code == 200

        # Every change is in the audit trail.
        with a.client() as c:
            items = c.get("/api/v1/audit", params={"limit": 500}).json()
        items = items["items"] if isinstance(items, dict) else items
        actions = [r["action"] for r in items]
        assert actions.count("token-rotate") == 2 and actions.count("token-revoke") == 1
    finally:
        a.stop()
        b.stop()
