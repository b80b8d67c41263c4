"""Notifiers against real local receivers: an SMTP server with STARTTLS (aiosmtpd) and
HTTP receivers that check each payload's shape and the webhook signature."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, select
from sqlmodel import col

from gateway.governance.notify import NotificationEvent, deliver_due, notify
from gateway.secrets import SecretPolicy
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.tables import AuditRecord, Notification
from tests.api.conftest import apply_yaml

SECRET = "s3cret-signing-key"


class Receiver:
    """Records POSTs on 127.0.0.1; answers ``fail_first`` requests with 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.bodies.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = 500 if len(outer.bodies) <= outer.fail_first else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # many senders at once must not meet a full backlog

        self.server = Server(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    rs = {"webhook": Receiver(fail_first=1), "slack": Receiver(), "teams": Receiver()}
    yield rs
    for r in rs.values():
        r.close()


def _resolver(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ACCORD_SECRET_TEST_HOOK_KEY", SECRET)
    return SecretPolicy.from_settings(Settings()).resolve


def _event(n: int = 1, severity: str = "warning") -> NotificationEvent:
    return NotificationEvent(
        type="run.failed",
        severity=severity,
        domain="data",
        title=f"Run failed: fake/etl #{n}",
        text="exit 1",
        incident=f"run.failed:fake/etl-{n}",
        job_uid="fake/etl",
        labels={"env": "prod"},
    )


def test_webhook_slack_teams_routed_deduplicated_signed_and_retried(
    engine: Engine, receivers: dict[str, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = _resolver(monkeypatch)
    apply_yaml(
        engine,
        f"""
apiVersion: accord.dev/v1
kind: Notifier
metadata: {{name: hook, domain: data}}
spec:
  type: webhook
  url: {receivers["webhook"].url}
  secretFrom: {{env: ACCORD_SECRET_TEST_HOOK_KEY}}
  route: {{events: [run.failed], domains: [data]}}
---
apiVersion: accord.dev/v1
kind: Notifier
metadata: {{name: chat, domain: data}}
spec:
  type: slack
  url: {receivers["slack"].url}
  route: {{events: [run.failed], labels: {{env: prod}}, minSeverity: warning}}
---
apiVersion: accord.dev/v1
kind: Notifier
metadata: {{name: msteams, domain: data}}
spec:
  type: teams
  url: {receivers["teams"].url}
  route: {{events: [sla.breached]}}
""",
    )
    # The same incident reported three times (three polls) is one message.
    assert [notify(engine, _event()) for _ in range(3)] == [2, 2, 2]
    notify(engine, _event(2, severity="info"))  # below chat's minSeverity: webhook only
    res = anyio.run(lambda: deliver_due(engine, secrets=secrets))
    assert res.sent == 2 + 1 - 1 and res.retried == 1  # the webhook's first POST got a 500
    slack = [json.loads(b) for _, b in receivers["slack"].bodies]
    assert len(slack) == 1
    assert slack[0]["text"].startswith("Run failed: fake/etl #1")
    assert slack[0]["blocks"][0]["type"] == "header"
    assert slack[0]["blocks"][1]["text"]["type"] == "mrkdwn"
    assert receivers["teams"].bodies == []  # not routed there
    # Retry after the backoff: the second attempt succeeds.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    res2 = anyio.run(lambda: deliver_due(engine, secrets=secrets, now=later))
    assert res2.sent == 1
    hooks = receivers["webhook"].bodies
    assert len(hooks) == 3  # 500, 200 (event 2), 200 (event 1 retried)
    for headers, body in hooks:
        mac = hmac.new(
            SECRET.encode(), headers["x-accord-timestamp"].encode() + b"." + body, hashlib.sha256
        )
        assert headers["x-accord-signature"] == "sha256=" + mac.hexdigest()
        payload = json.loads(body)
        assert payload["kind"] == "notification" and payload["type"] == "run.failed"
        assert payload["notifier"] == "hook" and payload["incident"].startswith("run.failed:")
    with session_scope(engine, write=False) as s:
        rows = (
            s.execute(
                select(Notification)
                .where(col(Notification.notifier) == "hook")
                .order_by(col(Notification.id))
            )
            .scalars()
            .all()
        )
        audit = (
            s.execute(select(AuditRecord).where(col(AuditRecord.action) == "notify"))
            .scalars()
            .all()
        )
    # Due notifications are delivered concurrently, so either event may meet the 500.
    assert sorted([d["ok"] for d in r.deliveries] for r in rows) == [[False, True], [True]]
    retried = next(r for r in rows if len(r.deliveries) == 2)
    assert retried.status == "sent" and all(r.status == "sent" for r in rows)
    assert "HTTP 500" in retried.deliveries[0]["detail"]
    assert sorted(a.outcome for a in audit) == ["error", "ok", "ok", "ok"]
    assert SECRET not in json.dumps([a.details for a in audit])


def test_teams_card_and_rate_limit_digest(
    engine: Engine, receivers: dict[str, Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = _resolver(monkeypatch)
    apply_yaml(
        engine,
        f"""
apiVersion: accord.dev/v1
kind: Notifier
metadata: {{name: msteams, domain: data}}
spec:
  type: teams
  url: {receivers["teams"].url}
  ratePerHour: 2
  route: {{events: [run.failed]}}
""",
    )
    for i in range(5):
        notify(engine, _event(i))
    res = anyio.run(lambda: deliver_due(engine, secrets=secrets))
    assert res.sent == 5 and res.digests == 1  # 5 due, 2 allowed: one digest message
    ((_headers, body),) = receivers["teams"].bodies
    card = json.loads(body)
    assert card["type"] == "message"
    att = card["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert att["content"]["type"] == "AdaptiveCard"
    assert att["content"]["body"][0]["text"] == "Accord digest: 5 notifications"
    assert att["content"]["body"][1]["text"].count("Run failed") == 5


def _cert(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    c, k = tmp / "cert.pem", tmp / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return c, k


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def test_email_over_smtp_with_starttls(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = _resolver(monkeypatch)
    cert, key = _cert(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    inbox = _Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True)
    ctl.start()
    try:
        apply_yaml(
            engine,
            f"""
apiVersion: accord.dev/v1
kind: Notifier
metadata: {{name: oncall-mail, domain: data}}
spec:
  type: email
  smtp:
    host: 127.0.0.1
    port: {port}
    from: accord@example.org
    to: [oncall@example.org]
    caFile: {cert}
  route: {{events: [run.failed, run.missed]}}
""",
        )
        notify(engine, _event(7))
        res = anyio.run(lambda: deliver_due(engine, secrets=secrets))
        assert res.sent == 1, res
        ((sender, rcpts, content),) = inbox.messages
        assert sender == "accord@example.org" and rcpts == ["oncall@example.org"]
        assert b"Subject: Run failed: fake/etl #7" in content
        assert b"exit 1" in content
    finally:
        ctl.stop()
    assert os.environ.get("ACCORD_SECRET_TEST_HOOK_KEY") == SECRET
