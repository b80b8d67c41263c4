"""API tokens: shown once, stored only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from ..engine import session_scope
from ..tables import ApiToken
from ..types import to_db, utcnow
from .meta import bump_policy_version

__all__ = [
    "TOKEN_KINDS",
    "TOKEN_PREFIX",
    "AlreadyRotated",
    "AuthFailure",
    "authenticate",
    "create_token",
    "hash_token",
    "list_tokens",
    "revoke_token",
    "rotate_token",
    "touch_token",
]

TOKEN_PREFIX = "acd_"
# A person's token, or an AI agent's: an agent token's calls are always recorded on the
# ``agent`` channel, and only agent tokens open the MCP door (see docs/agents.md).
TOKEN_KINDS = ("person", "agent")


class AuthFailure(Exception):
    """The presented token is unknown, revoked or expired (the message says which).
    ``subject`` is whom a known (revoked, expired) token belonged to."""

    def __init__(self, message: str, *, subject: str | None = None) -> None:
        super().__init__(message)
        self.subject = subject


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: str  # the only time the plaintext exists
    record: ApiToken


def create_token(
    session: Session,
    *,
    subject: str,
    role: str,
    domain: str = "*",
    description: str = "",
    expires_at: datetime | None = None,
    kind: str = "person",
) -> NewToken:
    if kind not in TOKEN_KINDS:
        raise ValueError(f"unknown token kind {kind!r}; known kinds: {', '.join(TOKEN_KINDS)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    rec = ApiToken(
        token_hash=hash_token(token),
        prefix=token[:10],
        subject=subject,
        role=role,
        domain=domain,
        kind=kind,
        description=description,
        expires_at=expires_at,
    )
    session.add(rec)
    session.flush()
    bump_policy_version(session)
    return NewToken(token, rec)


def list_tokens(session: Session, *, include_revoked: bool = False) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(col(ApiToken.id))
    if not include_revoked:
        stmt = stmt.where(col(ApiToken.revoked_at).is_(None))
    return list(session.exec(stmt).all())


def revoke_token(session: Session, *, token_id: int) -> ApiToken | None:
    rec = session.get(ApiToken, token_id)
    if rec is None:
        return None
    if rec.revoked_at is None:
        rec.revoked_at = utcnow()
        session.add(rec)
        session.flush()
        bump_policy_version(session)
    return rec


class AlreadyRotated(Exception):
    """The token was already replaced by a rotation (it lives only its grace period)."""


def rotate_token(
    session: Session,
    *,
    token_id: int,
    grace: timedelta,
    ttl: timedelta | None = None,
) -> tuple[NewToken, ApiToken] | None:
    """Replace a token by a new secret with the same subject, role, domain and kind.

    The old token stays valid for ``grace`` (0: revoked at once), never longer than it
    would have anyway, and cannot be rotated again: a stolen token in its grace period
    cannot buy itself a future. The new token lives ``ttl``, or as long as the old one
    was made to live (no expiry if it had none). ``None`` if there is no such token;
    raises :class:`AlreadyRotated` or :class:`AuthFailure` (revoked, expired)."""
    old = session.exec(
        select(ApiToken).where(col(ApiToken.id) == token_id).with_for_update()
    ).first()
    if old is None:
        return None
    now = utcnow()
    if old.replaced_by is not None:
        raise AlreadyRotated(
            f"token {token_id} was already rotated (replaced by token {old.replaced_by})"
        )
    if old.revoked_at is not None:
        raise AuthFailure(f"token {token_id} is revoked", subject=old.subject)
    if old.expires_at is not None and to_db(old.expires_at) <= to_db(now):  # type: ignore[operator]
        raise AuthFailure(f"token {token_id} has expired", subject=old.subject)
    if ttl is None and old.expires_at is not None:
        ttl = old.expires_at - old.created_at
    new = create_token(
        session,
        subject=old.subject,
        role=old.role,
        domain=old.domain,
        description=old.description,
        expires_at=now + ttl if ttl is not None else None,
        kind=old.kind,
    )
    old.replaced_by = new.record.id
    if grace.total_seconds() <= 0:
        old.revoked_at = now
    else:
        until = now + grace
        if old.expires_at is None or to_db(until) < to_db(old.expires_at):  # type: ignore[operator]
            old.expires_at = until
    session.add(old)
    session.flush()
    bump_policy_version(session)
    return new, old


def authenticate(session: Session, *, token: str) -> ApiToken:
    rec = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if rec is None:
        raise AuthFailure("unknown API token")
    if rec.revoked_at is not None:
        how = f" (rotated: replaced by token {rec.replaced_by})" if rec.replaced_by else ""
        raise AuthFailure(
            f"this API token (id {rec.id}) has been revoked{how}", subject=rec.subject
        )
    now = utcnow()
    if rec.expires_at is not None and to_db(rec.expires_at) <= to_db(now):  # type: ignore[operator]
        at = rec.expires_at.isoformat(timespec="seconds")
        if rec.replaced_by:
            raise AuthFailure(
                f"this API token (id {rec.id}) was rotated and its grace period ended at "
                f"{at}; use its replacement (token {rec.replaced_by})",
                subject=rec.subject,
            )
        raise AuthFailure(
            f"this API token (id {rec.id}) expired at {at}; ask an administrator for a new "
            "one ('accord tokens create') or rotate tokens before they expire",
            subject=rec.subject,
        )
    return rec


def touch_token(engine: Engine, *, token_id: int, at: datetime) -> None:
    """Record a token's last use (informative; its own short write transaction)."""
    with session_scope(engine) as session:
        session.execute(
            update(ApiToken).where(col(ApiToken.id) == token_id).values(last_used_at=at)
        )
