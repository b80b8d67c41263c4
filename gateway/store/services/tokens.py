"""API tokens: shown once, stored only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from ..engine import session_scope
from ..tables import ApiToken
from ..types import to_db, utcnow
from .meta import bump_policy_version

__all__ = [
    "TOKEN_KINDS",
    "TOKEN_PREFIX",
    "AuthFailure",
    "authenticate",
    "create_token",
    "hash_token",
    "list_tokens",
    "revoke_token",
    "touch_token",
]

TOKEN_PREFIX = "acd_"
# A person's token, or an AI agent's: an agent token's calls are always recorded on the
# ``agent`` channel, and only agent tokens open the MCP door (see docs/agents.md).
TOKEN_KINDS = ("person", "agent")


class AuthFailure(Exception):
    """The presented token is unknown, revoked or expired (the message says which)."""


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


def authenticate(session: Session, *, token: str) -> ApiToken:
    rec = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    if rec is None:
        raise AuthFailure("unknown API token")
    if rec.revoked_at is not None:
        raise AuthFailure("this API token has been revoked")
    now = utcnow()
    if rec.expires_at is not None and to_db(rec.expires_at) <= to_db(now):  # type: ignore[operator]
        raise AuthFailure("this API token has expired")
    return rec


def touch_token(engine: Engine, *, token_id: int, at: datetime) -> None:
    """Record a token's last use (informative; its own short write transaction)."""
    with session_scope(engine) as session:
        session.execute(
            update(ApiToken).where(col(ApiToken.id) == token_id).values(last_used_at=at)
        )
