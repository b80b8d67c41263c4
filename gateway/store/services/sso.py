"""Single sign-on state: logins under way, console sessions, and the claims of people
known through the identity provider (which GroupBindings turn into roles)."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, text
from sqlmodel import Session, col, select

from ..tables import SsoIdentity, SsoLogin, SsoSession
from ..types import to_db, utcnow
from .meta import bump_policy_version
from .tokens import AuthFailure, hash_token

__all__ = [
    "SESSION_PREFIX",
    "NewSession",
    "authenticate_session",
    "begin_login",
    "binding_claims",
    "claim_values",
    "claims_digest",
    "create_session",
    "identity_digest",
    "record_identity",
    "revoke_session",
    "take_login",
]

SESSION_PREFIX = "acs_"
_IDENTITY_LOCK = 4242018
# Claims about the token itself, not the person: never part of role mapping.
_TOKEN_CLAIMS = frozenset(
    {"iss", "aud", "exp", "nbf", "iat", "jti", "nonce", "at_hash", "c_hash", "auth_time", "sid"}
    | {"azp", "acr", "amr", "scope", "client_id", "cnf", "s_hash", "sub_jwk"}
)


def binding_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """The claims a GroupBinding may read: strings and lists of strings (nested objects
    are kept, so ``realm_access.roles`` works), without the token's own bookkeeping."""

    def keep(value: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            items = [v for v in value if isinstance(v, str)]
            return items
        if isinstance(value, dict):
            inner = {k: keep(v) for k, v in value.items()}
            return {k: v for k, v in inner.items() if v is not None}
        return None

    out = {k: keep(v) for k, v in claims.items() if k not in _TOKEN_CLAIMS}
    return {k: v for k, v in out.items() if v is not None}


def claim_values(claims: dict[str, Any], path: str) -> set[str]:
    """The string values of a claim (``groups``) or nested claim (``realm_access.roles``)."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return set()
        value = value[part]
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    return set()


def _digest(claims: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).hexdigest()


def record_identity(session: Session, *, subject: str, claims: dict[str, Any]) -> bool:
    """Store what the provider says about ``subject`` now; True (and a new policy version)
    when it differs from what was stored. Runs in a write transaction."""
    kept = binding_claims(claims)
    digest = _digest(kept)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, hashtext(:subject))"),
            {"ns": _IDENTITY_LOCK, "subject": subject},
        )
    row = session.get(SsoIdentity, subject)
    now = utcnow()
    if row is not None and row.digest == digest:
        return False
    if row is None:
        row = SsoIdentity(subject=subject, claims=kept, digest=digest, seen_at=now)
    else:
        row.claims, row.digest, row.seen_at = kept, digest, now
    session.add(row)
    session.flush()
    bump_policy_version(session)
    return True


def identity_digest(session: Session, *, subject: str) -> str | None:
    row = session.get(SsoIdentity, subject)
    return row.digest if row else None


def claims_digest(claims: dict[str, Any]) -> str:
    return _digest(binding_claims(claims))


def begin_login(session: Session, *, nonce: str, return_to: str, ttl: timedelta) -> str:
    """Remember a login under way; returns its ``state`` (only its digest is stored)."""
    state = secrets.token_urlsafe(32)
    now = utcnow()
    # Logins never finished are dropped here, so the table stays small.
    session.execute(delete(SsoLogin).where(col(SsoLogin.expires_at) < to_db(now)))
    session.add(
        SsoLogin(
            state_hash=hash_token(state), nonce=nonce, return_to=return_to, expires_at=now + ttl
        )
    )
    session.flush()
    return state


def take_login(session: Session, *, state: str) -> SsoLogin | None:
    """The login under way for ``state``, consumed (a state works once), or None."""
    row = session.get(SsoLogin, hash_token(state))
    if row is None:
        return None
    session.delete(row)
    session.flush()
    if to_db(row.expires_at) <= to_db(utcnow()):  # type: ignore[operator]
        return None
    return row


@dataclass(frozen=True)
class NewSession:
    token: str  # the only time the plaintext exists (it goes into the cookie)
    record: SsoSession


def create_session(session: Session, *, subject: str, name: str, ttl: timedelta) -> NewSession:
    token = SESSION_PREFIX + secrets.token_urlsafe(32)
    rec = SsoSession(
        token_hash=hash_token(token), subject=subject, name=name, expires_at=utcnow() + ttl
    )
    session.add(rec)
    session.flush()
    return NewSession(token, rec)


def authenticate_session(session: Session, *, token: str) -> SsoSession:
    rec = session.exec(select(SsoSession).where(SsoSession.token_hash == hash_token(token))).first()
    if rec is None:
        raise AuthFailure("unknown session; sign in again")
    if rec.revoked_at is not None:
        raise AuthFailure("this session has ended (signed out or revoked); sign in again")
    if to_db(rec.expires_at) <= to_db(utcnow()):  # type: ignore[operator]
        raise AuthFailure("this session has expired; sign in again")
    return rec


def revoke_session(
    session: Session,
    *,
    token: str | None = None,
    session_id: int | None = None,
    at: datetime | None = None,
) -> SsoSession | None:
    """End a session (by its token, or by id for an administrator); None if unknown."""
    if token is not None:
        rec = session.exec(
            select(SsoSession).where(SsoSession.token_hash == hash_token(token))
        ).first()
    elif session_id is not None:
        rec = session.get(SsoSession, session_id)
    else:
        raise ValueError("revoke_session needs a token or a session id")
    if rec is None:
        return None
    if rec.revoked_at is None:
        rec.revoked_at = at or utcnow()
        session.add(rec)
        session.flush()
    return rec
