"""Notifications: route events to ``Notifier`` documents through a persisted outbox.

``notify(engine, event)`` (or ``enqueue(session, event)`` inside a caller's write
transaction) writes one outbox row per matching notifier, keyed by the event's
``incident``: the same incident reported on every poll stays one row, so one message.
:func:`deliver_due` sends what is due: each attempt and its outcome is appended to the
row and audited; a failure is retried with exponential backoff (10 s doubling, at most
1 h, ``maxAttempts`` in all). ``ratePerHour`` caps messages per notifier: when more are
due than the hour allows, they go out as one digest message; ``digest: 15m`` always
collects for that long and sends one digest.

Channels: a generic JSON webhook signed with HMAC-SHA256 (``X-Accord-Signature:
sha256=<hex>`` over ``<X-Accord-Timestamp>.<body>``), Slack incoming webhooks (``text`` +
Block Kit ``blocks``), Microsoft Teams incoming webhooks / Workflows (a ``message`` with an
Adaptive Card attachment), and email over SMTP with STARTTLS (stdlib ``smtplib`` in a
worker thread). Secrets (webhook URLs, signing keys, SMTP passwords) are references,
resolved only when a message is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import random
import secrets as secrets_mod
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import anyio
import httpx
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine, func, select, update
from sqlmodel import Session, col

from gateway.audit import AuditEntry, append
from gateway.model.resources import SEVERITIES, NotifierSpec, SecretRef
from gateway.store.engine import session_scope
from gateway.store.services.ingest import _insert_ignoring_duplicates
from gateway.store.tables import AppliedResource, Job, Notification, Run
from gateway.store.types import to_db, utcnow

__all__ = [
    "DeliveryResult",
    "NotificationEvent",
    "deliver_due",
    "enqueue",
    "enqueue_many",
    "notifiers",
    "notify",
    "run_failures",
    "sign",
    "withdraw",
]

_log = logging.getLogger(__name__)
_BASE_BACKOFF = 10.0
_MAX_BACKOFF = 3600.0
# A failure older than this when first stored is history (a new source's past), not news.
HISTORY = timedelta(hours=24)
# How long a claimed row stays with its sender before another may send it.
_LEASE = timedelta(minutes=5)
SecretResolver = Callable[[SecretRef], SecretStr]


@dataclass(frozen=True)
class NotificationEvent:
    """Something a person may need to hear about.

    ``incident`` identifies it for deduplication: two events with the same incident are
    one message (e.g. ``run.failed:<run uid>``, ``sla.breached:<sla>:<job>:<day>``)."""

    type: str  # one of gateway.model.resources.EVENT_TYPES
    severity: str  # info | warning | critical
    domain: str
    title: str
    incident: str
    text: str = ""
    job_uid: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Notifier:
    name: str
    domain: str
    spec: NotifierSpec


@dataclass
class DeliveryResult:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    digests: int = 0
    postponed: int = 0


def notifiers(session: Session) -> list[_Notifier]:
    """The applied Notifier documents (invalid stored ones are skipped with a log line)."""
    out: list[_Notifier] = []
    rows = session.execute(
        select(
            col(AppliedResource.name), col(AppliedResource.domain), col(AppliedResource.document)
        )
        .where(col(AppliedResource.kind) == "Notifier")
        .order_by(col(AppliedResource.name))
    ).all()
    for name, domain, doc in rows:
        try:
            spec = NotifierSpec.model_validate((doc or {}).get("spec") or {})
        except ValidationError as exc:
            _log.error("stored Notifier %s is invalid: %s", name, exc)
            continue
        out.append(_Notifier(name, domain, spec))
    return out


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def matches(spec: NotifierSpec, event: NotificationEvent) -> bool:
    """Does the notifier's route take this event?"""
    route = spec.route
    if "*" not in route.events and event.type not in route.events:
        return False
    if route.domains and event.domain not in route.domains:
        return False
    if any(event.labels.get(k) != v for k, v in route.labels.items()):
        return False
    return _rank(event.severity) >= _rank(route.min_severity)


def enqueue(session: Session, event: NotificationEvent, *, now: datetime | None = None) -> int:
    """Add the event to the outbox of every matching notifier, in the caller's write
    transaction. Returns how many notifiers matched (duplicates are ignored)."""
    return enqueue_many(session, [event], now=now)


def enqueue_many(
    session: Session, events: Sequence[NotificationEvent], *, now: datetime | None = None
) -> int:
    """:func:`enqueue` for several events (the notifiers are read once)."""
    if not events:
        return 0
    now = now or utcnow()
    ns = notifiers(session)
    if not ns:
        return 0
    rows: list[dict[str, Any]] = [
        {
            "notifier": n.name,
            "incident": event.incident[:500],
            "event_type": event.type,
            "severity": event.severity,
            "domain": event.domain,
            "job_uid": event.job_uid,
            "title": event.title,
            "text": event.text,
            "data": dict(event.data),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": to_db(now),
            "deliveries": [],
            "created_at": to_db(now),
        }
        for event in events
        for n in ns
        if matches(n.spec, event)
    ]
    if rows:
        _insert_ignoring_duplicates(session, Notification.__table__, rows)  # type: ignore[attr-defined]
    return len(rows)


def run_failures(session: Session, changes: Sequence[Any], *, now: datetime | None = None) -> int:
    """Queue ``run.failed`` / ``run.missed`` for the runs among ``changes`` (``RunChange``)
    that just became ``failed``, in the write transaction that stored them: whichever
    replica observed the failure, the message is in the shared outbox when it commits.
    A missed run is a failed run with native state ``missed``. One incident per run. A
    run that ended more than :data:`HISTORY` before it was stored (the history of a source
    just added) is not news and not notified."""
    failed = {c.uid: c for c in changes if c.to_state == "failed"}
    if not failed or not notifiers(session):
        return 0
    history = to_db((now or utcnow()) - HISTORY)
    runs = {
        uid: (message, native, actor)
        for uid, message, native, actor, ended in session.execute(
            select(
                col(Run.uid),
                col(Run.message),
                col(Run.native_state),
                col(Run.actor),
                col(Run.ended_at),
            ).where(col(Run.uid).in_(list(failed)))
        ).all()
        if ended is None or history is None or to_db(ended) >= history  # type: ignore[operator]
    }
    failed = {uid: c for uid, c in failed.items() if uid in runs}
    if not failed:
        return 0
    labels = dict(
        session.execute(
            select(col(Job.uid), col(Job.labels)).where(
                col(Job.uid).in_({c.job_uid for c in failed.values()})
            )
        ).all()
    )
    events: list[NotificationEvent] = []
    for uid, ch in failed.items():
        message, native, actor = runs.get(uid, (None, None, None))
        missed = (native or "").lower() == "missed"
        kind = "run.missed" if missed else "run.failed"
        events.append(
            NotificationEvent(
                type=kind,
                severity="warning",
                domain=ch.domain,
                title=f"{'Missed run' if missed else 'Run failed'}: {ch.job_uid}",
                text=message or "",
                incident=f"{kind}:{uid}",
                job_uid=ch.job_uid,
                labels=dict(labels.get(ch.job_uid) or {}),
                data={"run": uid, "actor": actor},
            )
        )
    return enqueue_many(session, events, now=now)


def withdraw(session: Session, incidents: Sequence[str]) -> int:
    """Suppress the not-yet-sent messages of incidents that no longer hold (a missed run a
    late run cancelled out). Compare-and-set on ``pending``: a message being sent stays."""
    if not incidents:
        return 0
    res = session.execute(
        update(Notification)
        .where(
            col(Notification.incident).in_(list(incidents)),
            col(Notification.status) == "pending",
        )
        .values(status="suppressed")
    )
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def notify(engine: Engine, event: NotificationEvent) -> int:
    """Enqueue ``event`` in its own write transaction (blocking: call from a thread)."""
    with session_scope(engine) as session:
        return enqueue(session, event)


# -- payloads -------------------------------------------------------------------------------
def _item(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "type": n.event_type,
        "severity": n.severity,
        "domain": n.domain,
        "job": n.job_uid,
        "title": n.title,
        "text": n.text,
        "incident": n.incident,
        "data": n.data,
        "at": to_db(n.created_at).isoformat() + "Z" if n.created_at else None,  # type: ignore[union-attr]
    }


def _summary(items: Sequence[Notification]) -> tuple[str, str]:
    if len(items) == 1:
        return items[0].title, items[0].text
    title = f"Accord digest: {len(items)} notifications"
    lines = [f"- [{n.severity}] {n.title}" for n in items]
    return title, "\n".join(lines)


def webhook_body(items: Sequence[Notification], notifier: str) -> dict[str, Any]:
    if len(items) == 1:
        return {"notifier": notifier, "kind": "notification", **_item(items[0])}
    return {"notifier": notifier, "kind": "digest", "items": [_item(n) for n in items]}


def slack_body(items: Sequence[Notification]) -> dict[str, Any]:
    title, text = _summary(items)
    return {
        "text": f"{title}\n{text}".strip(),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": (text or title)[:3000]}},
        ],
    }


def teams_body(items: Sequence[Notification]) -> dict[str, Any]:
    title, text = _summary(items)
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": title,
                            "weight": "Bolder",
                            "size": "Medium",
                            "wrap": True,
                        },
                        {"type": "TextBlock", "text": text or title, "wrap": True},
                    ],
                },
            }
        ],
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Accord-Signature`` value: HMAC-SHA256 over ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _SendError(Exception):
    pass


async def _post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> str:
    try:
        resp = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise _SendError(f"{type(exc).__name__}: {exc}") from None
    if resp.status_code >= 300:
        raise _SendError(f"HTTP {resp.status_code}: {resp.text[:200]}")
    return f"HTTP {resp.status_code}"


def _send_email(spec: NotifierSpec, password: str | None, items: Sequence[Notification]) -> str:
    smtp = spec.smtp
    assert smtp is not None
    title, text = _summary(items)
    msg = EmailMessage()
    msg["Subject"] = title
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(smtp.to)
    msg.set_content(text or title)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout.total_seconds()) as conn:
            conn.ehlo()
            if smtp.starttls:
                ctx = ssl.create_default_context(cafile=smtp.ca_file)
                conn.starttls(context=ctx)
                conn.ehlo()
            if smtp.username:
                conn.login(smtp.username, password or "")
            refused = conn.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise _SendError(f"{type(exc).__name__}: {exc}") from None
    if refused:
        raise _SendError(f"recipients refused: {sorted(refused)}")
    return f"accepted for {len(smtp.to)} recipient(s)"


async def _send(
    n: _Notifier,
    items: Sequence[Notification],
    client: httpx.AsyncClient,
    secrets: SecretResolver,
) -> str:
    spec = n.spec
    try:
        if spec.type == "email":
            smtp = spec.smtp
            assert smtp is not None
            password = (
                secrets(smtp.password_from).get_secret_value() if smtp.password_from else None
            )
            return await anyio.to_thread.run_sync(_send_email, spec, password, items)
        url = spec.url or secrets(spec.url_from).get_secret_value()  # type: ignore[arg-type]
    except LookupError as exc:
        raise _SendError(f"secret: {exc}") from None
    headers = {"Content-Type": "application/json", "User-Agent": "accord-notifier"}
    if spec.type == "slack":
        payload = slack_body(items)
    elif spec.type == "teams":
        payload = teams_body(items)
    else:
        payload = webhook_body(items, n.name)
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    if spec.type == "webhook":
        ts = str(int(time.time()))
        headers["X-Accord-Timestamp"] = ts
        headers["X-Accord-Event"] = payload.get("type") or "digest"
        if spec.secret_from is not None:
            try:
                key = secrets(spec.secret_from).get_secret_value()
            except LookupError as exc:
                raise _SendError(f"secret: {exc}") from None
            headers["X-Accord-Signature"] = sign(key, ts, body)
    return await _post(client, url, body, headers)


def _backoff(attempts: int) -> timedelta:
    base = min(_MAX_BACKOFF, _BASE_BACKOFF * 2 ** max(0, attempts - 1))
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def _due(
    engine: Engine, now: datetime
) -> tuple[list[_Notifier], dict[str, list[Notification]], dict[str, int]]:
    """What is due (read only): the notifiers, their due rows, messages sent last hour.

    A row left ``sending`` by a sender that died (its lease ended) is due again."""
    with session_scope(engine, write=False) as session:
        ns = notifiers(session)
        due = list(
            session.execute(
                select(Notification)
                .where(
                    col(Notification.status).in_(("pending", "sending")),
                    col(Notification.next_attempt_at) <= to_db(now),
                )
                .order_by(col(Notification.id))
                .limit(2000)
            ).scalars()
        )
        hour_ago = to_db(now - timedelta(hours=1))
        sent = dict(
            session.execute(
                select(
                    col(Notification.notifier),
                    func.count(
                        func.distinct(
                            func.coalesce(col(Notification.digest_id), col(Notification.id))
                        )
                    ),
                )
                .where(col(Notification.status) == "sent", col(Notification.sent_at) >= hour_ago)
                .group_by(col(Notification.notifier))
            ).all()
        )
    by: dict[str, list[Notification]] = {}
    for row in due:
        by.setdefault(row.notifier, []).append(row)
    return ns, by, sent


def _claim(engine: Engine, rows: Sequence[Notification], token: str, now: datetime) -> set[int]:
    """Claim ``rows`` for one sending by compare-and-set on the state each was read in
    (``pending``, or ``sending`` with its lease over): of several racing senders exactly
    one gets each row. Returns the ids this claim won."""
    if not rows:
        return set()
    lease = to_db(now + _LEASE)
    with session_scope(engine) as session:
        for r in sorted(rows, key=lambda r: r.id or 0):  # one lock order for every sender
            session.execute(
                update(Notification)
                .where(
                    col(Notification.id) == r.id,
                    col(Notification.status) == r.status,
                    col(Notification.attempts) == r.attempts,
                    col(Notification.next_attempt_at) <= to_db(now),
                )
                .values(status="sending", claimed_by=token, next_attempt_at=lease)
            )
        won = session.execute(
            select(col(Notification.id)).where(
                col(Notification.id).in_([r.id for r in rows]),
                col(Notification.status) == "sending",
                col(Notification.claimed_by) == token,
            )
        ).scalars()
        return {int(i) for i in won}


async def deliver_due(
    engine: Engine,
    *,
    secrets: SecretResolver,
    client: httpx.AsyncClient | None = None,
    now: datetime | None = None,
) -> DeliveryResult:
    """Send every due outbox row (database work in worker threads).

    Safe to run in several places at once (threads, processes, replicas): each row is
    claimed by compare-and-set before it is sent, so each message goes out once. A sender
    that dies between its claim and its record leaves the row ``sending`` until the lease
    ends (:data:`_LEASE`); then it is sent again (a message may repeat after a crash, it
    is never lost)."""
    now = now or utcnow()
    result = DeliveryResult()
    ns, by, sent_last_hour = await anyio.to_thread.run_sync(_due, engine, now)
    own = client is None
    http = client or httpx.AsyncClient(timeout=httpx.Timeout(15.0), follow_redirects=False)
    try:
        batches: list[tuple[_Notifier, list[Notification]]] = []
        for n in ns:
            rows = by.get(n.name, [])
            if not rows:
                continue
            budget = n.spec.rate_per_hour - sent_last_hour.get(n.name, 0)
            if n.spec.digest is not None:
                oldest = min(to_db(r.created_at) for r in rows)  # type: ignore[type-var]
                if oldest + n.spec.digest > to_db(now):  # type: ignore[operator]
                    continue
                batches.append((n, rows))
            elif budget <= 0:
                result.postponed += len(rows)
                await anyio.to_thread.run_sync(_postpone, engine, rows, now)
            elif len(rows) > budget:
                # More is due than the hour allows: one digest carries it all.
                batches.append((n, rows))
            else:
                batches.extend((n, [r]) for r in rows)
        token = f"{os.getpid()}-{secrets_mod.token_hex(8)}"
        won = await anyio.to_thread.run_sync(
            _claim, engine, [r for _, rows in batches for r in rows], token, now
        )
        batches = [(n, [r for r in rows if r.id in won]) for n, rows in batches]
        batches = [(n, rows) for n, rows in batches if rows]

        async def one(n: _Notifier, rows: list[Notification]) -> None:
            started = time.perf_counter()
            try:
                detail = await _send(n, rows, http, secrets)
                ok, error = True, None
            except _SendError as exc:
                ok, error, detail = False, str(exc), str(exc)
            took = round(time.perf_counter() - started, 3)
            outcome = await anyio.to_thread.run_sync(
                _record, engine, n, [r.id for r in rows], token, ok, detail, error, took
            )
            if outcome == "skipped":
                return
            if ok:
                result.sent += len(rows)
                result.digests += 1 if len(rows) > 1 else 0
            elif outcome == "failed":
                result.failed += len(rows)
            else:
                result.retried += len(rows)

        await asyncio.gather(*(one(n, rows) for n, rows in batches))
    finally:
        if own:
            await http.aclose()
    return result


def _postpone(engine: Engine, rows: Sequence[Notification], now: datetime) -> None:
    with session_scope(engine) as session:
        for r in rows:
            session.execute(
                update(Notification)
                .where(
                    col(Notification.id) == r.id,
                    col(Notification.status) == r.status,
                    col(Notification.attempts) == r.attempts,
                    col(Notification.next_attempt_at) <= to_db(now),
                )
                .values(status="pending", next_attempt_at=to_db(now + timedelta(minutes=5)))
            )


def _record(
    engine: Engine,
    n: _Notifier,
    ids: list[int | None],
    token: str,
    ok: bool,
    detail: str,
    error: str | None,
    took: float,
) -> str:
    now = utcnow()
    with session_scope(engine) as session:
        rows = list(
            session.execute(
                select(Notification)
                .where(
                    col(Notification.id).in_(ids),
                    col(Notification.status) == "sending",
                    col(Notification.claimed_by) == token,
                )
                .with_for_update()
            ).scalars()
        )
        if not rows:  # the lease ended and another sender took the rows over
            return "skipped"
        digest_id = rows[0].id if len(rows) > 1 else None
        status = "sent"
        for r in rows:
            r.attempts += 1
            r.deliveries = [
                *r.deliveries,
                {
                    "at": now.isoformat(),
                    "attempt": r.attempts,
                    "ok": ok,
                    "detail": detail[:500],
                    "seconds": took,
                    "digest_of": len(rows) if digest_id else None,
                },
            ]
            if ok:
                r.status, r.sent_at, r.last_error, r.digest_id = "sent", now, None, digest_id
            else:
                r.last_error = error
                if r.attempts >= n.spec.max_attempts:
                    r.status = "failed"
                else:
                    r.status = "pending"
                    r.next_attempt_at = now + _backoff(r.attempts)
            status = r.status if not ok else "sent"
            session.add(r)
        append(
            session,
            AuditEntry(
                subject="system:notifier",
                channel="system",
                action="notify",
                target=f"notifier/{n.name}",
                domain=n.domain,
                decision="allow",
                outcome="ok" if ok else "error",
                reason=None if ok else error,
                details={
                    "notifier_type": n.spec.type,
                    "incidents": [r.incident for r in rows][:50],
                    "event_types": sorted({r.event_type for r in rows}),
                    "attempt": max(r.attempts for r in rows),
                    "digest": len(rows) > 1,
                    "status": status,
                    "detail": detail[:300],
                },
            ),
        )
    return status
