from __future__ import annotations

import threading
import time

import httpx
import pytest

from gateway.api.routes import stream
from gateway.store import session_scope
from gateway.store.services.tokens import create_token, revoke_token

from .conftest import Api


def _collect(url: str, token: str, out: list[str], stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{url}/api/v1/events", headers=headers, timeout=10) as r:
        for line in r.iter_lines():
            out.append(line)
            if stop.is_set():
                return


def test_event_stream_delivers_visible_changes_only(api: Api, live_url: str) -> None:
    seen_ops: list[str] = []
    seen_admin: list[str] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_collect, args=(live_url, api.tokens[w], out, stop), daemon=True)
        for w, out in (("viewer-ops", seen_ops), ("admin", seen_admin))
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (seen_ops and seen_admin):
        time.sleep(0.02)
    assert seen_ops and seen_admin, "connected"
    api.post("admin", "/api/v1/jobs/fake-data/etl_orders/trigger")
    api.post("admin", "/api/v1/jobs/fake-ops/db-backup/trigger")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum("db-backup" in x for x in seen_ops) < 1:
        time.sleep(0.05)
    stop.set()
    api.post("admin", "/api/v1/jobs/fake-ops/db-backup/pause")  # wake the streams to end
    assert any("fake-ops/db-backup" in x for x in seen_ops)
    assert not any("fake-data" in x for x in seen_ops), "no events from another domain"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("etl_orders" in x for x in seen_admin):
        time.sleep(0.05)
    assert any("etl_orders" in x for x in seen_admin)


def test_pause_events_stay_in_their_domain(api: Api, live_url: str) -> None:
    seen: list[str] = []
    stop = threading.Event()
    t = threading.Thread(
        target=_collect, args=(live_url, api.tokens["viewer-ops"], seen, stop), daemon=True
    )
    t.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not seen:
        time.sleep(0.02)
    api.post("admin", "/api/v1/jobs/fake-data/etl_orders/pause")
    api.post("admin", "/api/v1/jobs/fake-ops/db-backup/pause")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("db-backup" in x for x in seen):
        time.sleep(0.05)
    stop.set()
    api.post("admin", "/api/v1/jobs/fake-ops/db-backup/resume")
    assert any("db-backup" in x for x in seen)
    assert not any("etl_orders" in x for x in seen)


def test_a_revoked_token_stops_receiving_events(
    api: Api, live_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream outlives its request; revoking the token ends it, and nothing more of the
    estate reaches it."""
    monkeypatch.setattr(stream, "RECHECK_SECONDS", 0.3)
    with session_scope(api.engine) as s:
        tok = create_token(s, subject="watcher", role="viewer", domain="ops")
    seen: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=_collect, args=(live_url, tok.token, seen, stop), daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not seen:
        time.sleep(0.02)
    assert seen, "connected"
    api.post("admin", "/api/v1/jobs/fake-ops/db-backup/trigger")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("db-backup" in x for x in seen):
        time.sleep(0.02)
    assert any("db-backup" in x for x in seen), "events flow while the token is valid"
    assert tok.record.id is not None
    with session_scope(api.engine) as s:
        assert revoke_token(s, token_id=tok.record.id) is not None
    # within the re-check interval the gateway ends the stream and says why
    t.join(timeout=5)
    assert not t.is_alive(), "the gateway ended the stream"
    assert any("event: unauthorized" in x for x in seen)
    assert any("revoked" in x for x in seen)
