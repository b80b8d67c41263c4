"""Webhooks under abuse: duplicated, reordered, replayed, forged, malformed, oversized.

A webhook is only a hint to sync sooner; what is stored comes from the source. So valid
deliveries, however often and in whatever order, change nothing but the timing, and every
refused delivery is answered with an error and audited."""

from __future__ import annotations

import hashlib
import hmac
import random

from sqlmodel import col, select

from gateway.store import session_scope
from gateway.store.tables import AuditRecord, Run

from .conftest import Api


def _sig(body: bytes) -> str:
    return hmac.new(b"fake-secret", body, hashlib.sha256).hexdigest()


def _runs(api: Api) -> dict[str, str]:
    with session_scope(api.engine, write=False) as s:
        return {r.uid: r.state for r in s.exec(select(Run))}


def _refusals(api: Api) -> list[tuple[str, str]]:
    with session_scope(api.engine, write=False) as s:
        rows = s.exec(
            select(AuditRecord)
            .where(col(AuditRecord.action) == "webhook")
            .order_by(col(AuditRecord.seq))
        )
        return [(r.outcome, r.decision) for r in rows]


def test_valid_deliveries_duplicated_reordered_and_replayed_change_nothing(api: Api) -> None:
    before = _runs(api)
    bodies = [f'{{"event": "run.finished", "n": {i}}}'.encode() for i in range(5)]
    deliveries = bodies * 3  # every one duplicated, then replayed later
    random.Random(7).shuffle(deliveries)
    for body in deliveries:
        r = api.client.post(
            "/hooks/fake-data", content=body, headers={"X-Fake-Signature": _sig(body)}
        )
        assert r.status_code == 202, r.text
    api.sync("fake-data")
    assert _runs(api) == before, "hints change nothing the source did not do"
    assert _refusals(api) == []


def test_forged_malformed_and_oversized_deliveries_are_refused_and_audited(api: Api) -> None:
    before = _runs(api)
    body = b'{"event": "run.finished"}'
    forged = api.client.post(
        "/hooks/fake-data", content=body, headers={"X-Fake-Signature": "0" * 64}
    )
    assert forged.status_code == 401
    # A signature of another body (a replayed signature on new content) is a forgery too.
    other = api.client.post(
        "/hooks/fake-data", content=body + b" ", headers={"X-Fake-Signature": _sig(body)}
    )
    assert other.status_code == 401
    empty = api.client.post(
        "/hooks/fake-data", content=b" ", headers={"X-Fake-Signature": _sig(b" ")}
    )
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "bad_webhook"
    big = b"x" * (64 * 1024 + 1)  # the api fixture's ACCORD_MAX_BODY_BYTES is 64 KiB
    too_big = api.client.post(
        "/hooks/fake-data", content=big, headers={"X-Fake-Signature": _sig(big)}
    )
    assert too_big.status_code == 413
    assert _refusals(api) == [
        ("bad_signature", "deny"),
        ("bad_signature", "deny"),
        ("malformed", "deny"),
        ("too_large", "deny"),
    ]
    assert _runs(api) == before
    # The refusals are visible to an admin in the audit trail, and the chain verifies.
    items = api.get("admin", "/api/v1/audit?action=webhook").json()["items"]
    assert {i["outcome"] for i in items} >= {"bad_signature", "malformed", "too_large"}
    assert api.get("admin", "/api/v1/audit/verify").json()["ok"] is True
