"""Typed FastAPI dependencies: sessions, the authenticated principal, authorization."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from sqlalchemy import ColumnElement
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from gateway.audit import AuditEntry, record
from gateway.authz import Decision, Grants, PolicyCache, PolicySet
from gateway.authz.loader import KnownToken
from gateway.model import Channel
from gateway.settings import Settings
from gateway.sso import SESSION_COOKIE, OidcError, OidcProvider, TokenRejected, looks_like_jwt
from gateway.store.engine import session_scope
from gateway.store.services.meta import policy_version
from gateway.store.services.sso import (
    authenticate_session,
    claims_digest,
    identity_digest,
    record_identity,
)
from gateway.store.services.tokens import (
    TOKEN_PREFIX,
    AuthFailure,
    authenticate,
    hash_token,
    touch_token,
)
from gateway.store.types import to_db, utcnow

from .errors import ApiError
from .throttle import AuthThrottle, Throttled

T = TypeVar("T")
_log = logging.getLogger("accord.auth")

__all__ = [
    "PrincipalDep",
    "SessionDep",
    "get_session",
    "in_thread",
    "require",
]


def get_session(request: Request) -> Iterator[Session]:
    """A read session per request (sync routes run in worker threads). Writes go through
    services that open their own write transaction (``session_scope``)."""
    engine = request.app.state.engine
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise


async def in_thread(request: Request, fn: Callable[[Session], T]) -> T:
    """Run ``fn`` with a fresh read session in a worker thread (for async routes: no
    database call ever runs on the event loop)."""
    engine = request.app.state.engine

    def work() -> T:
        # Closing (not rolling back) ends the read transaction and keeps what was loaded.
        with Session(engine, expire_on_commit=False) as session:
            return fn(session)

    return await anyio.to_thread.run_sync(work)


SessionDep = Annotated[Session, Depends(get_session)]


@dataclass
class Principal:
    subject: str
    token_id: int | None
    channel: str
    policy: PolicySet
    grants: Grants
    kind: str = "person"  # the token's kind: person or agent
    # For agent tokens: the MCP tool that made the call and the person the agent says it
    # acts for. Recorded in the audit trail, never used to authorize.
    context: dict[str, str] = field(default_factory=dict)

    def decide(self, domain: str, obj: str, action: str) -> Decision:
        return self.policy.decide(self.subject, domain, obj, action)

    def visible(self, action: str = "read") -> Callable[[Any, Any], ColumnElement[bool]]:
        grants = self.grants

        def build(domain_col: Any, uid_col: Any) -> ColumnElement[bool]:
            return grants.predicate(action, domain_col, uid_col)

        return build


_CONTEXT_HEADERS = {"tool": "x-accord-tool", "on_behalf_of": "x-accord-on-behalf-of"}


def _agent_context(request: Request) -> dict[str, str]:
    """What an agent says about a call (its tool, the person it acts for): kept for the
    record, printable and bounded, never trusted for authorization."""
    out: dict[str, str] = {}
    for key, header in _CONTEXT_HEADERS.items():
        value = request.headers.get(header, "").strip()
        if value and value.isprintable():
            out[key] = value[:200]
    return out


def _channel(request: Request) -> str:
    raw = request.headers.get("x-accord-channel", "api").lower()
    return raw if raw in {c.value for c in Channel} - {"system"} else Channel.API.value


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def get_principal(request: Request, session: SessionDep) -> Principal:
    """Who is calling: an Accord API token, the identity provider's JWT access token
    (when ACCORD_OIDC_AUDIENCE is set), or the console's single sign-on session cookie.

    Failed attempts are limited per client address and per subject (``throttle``): a
    throttled caller gets 429 with Retry-After, whatever it presents."""
    throttle: AuthThrottle = request.app.state.auth_throttle
    address = "address:" + (request.client.host if request.client else "unknown")
    try:
        throttle.check(address)
        try:
            principal = _authenticate(request, session)
        except ApiError as exc:
            if exc.status == 401:
                keys = [address]
                if isinstance(exc.__cause__, AuthFailure) and exc.__cause__.subject:
                    keys.append("subject:" + exc.__cause__.subject)
                _audit_throttled(request, throttle.fail(*keys), throttle)
            raise
        throttle.check("subject:" + principal.subject)
    except Throttled as t:
        raise ApiError(
            429,
            "too_many_failed_logins",
            f"too many failed authentications for this {t.key.split(':', 1)[0]}; "
            f"retry in {max(1, round(t.retry_after))} s",
            headers={"Retry-After": str(max(1, round(t.retry_after)))},
        ) from None
    return principal


def _audit_throttled(request: Request, keys: list[str], throttle: AuthThrottle) -> None:
    """One audit record per burst and key, when the key becomes throttled."""
    for key in keys:
        kind, _, value = key.partition(":")
        _log.warning("authentication throttled for %s %s", kind, value)
        record(
            request.app.state.engine,
            AuditEntry(
                subject=value if kind == "subject" else "anonymous",
                channel=_channel(request),
                action="authenticate",
                target=key,
                domain="*",
                decision="deny",
                outcome="throttled",
                reason=f"{throttle.limit} failed authentications within {throttle.window:g} s",
                request_id=getattr(request.state, "request_id", None),
                details={"path": request.url.path},
            ),
        )


def _authenticate(request: Request, session: Session) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    token = raw.strip()
    if scheme.lower() == "bearer" and token:
        if not token.startswith(TOKEN_PREFIX) and looks_like_jwt(token):
            return _jwt_principal(request, session, token)
        return _token_principal(request, session, token)
    if header:
        raise _unauthorized("send 'Authorization: Bearer <token>'")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and getattr(request.app.state, "oidc", None) is not None:
        return _session_principal(request, session, cookie)
    raise _unauthorized("an API token is required: send 'Authorization: Bearer <token>'")


def _principal(
    request: Request,
    session: Session,
    subject: str,
    token_id: int | None,
    *,
    agent: bool = False,
    version: str | None = None,
) -> Principal:
    cache: PolicyCache = request.app.state.policy
    policy = cache.current(session, version)
    # Ends the authentication's transaction either way, so the connection goes back to the
    # pool before the route runs: a request must not hold one while it waits for a thread.
    session.commit()
    request.state.subject = subject
    if agent:
        # An agent's calls are on the agent channel whatever it claims.
        return Principal(
            subject,
            token_id,
            Channel.AGENT.value,
            policy,
            policy.grants(subject),
            kind="agent",
            context=_agent_context(request),
        )
    return Principal(subject, token_id, _channel(request), policy, policy.grants(subject))


def _token_principal(request: Request, session: Session, token: str) -> Principal:
    cache: PolicyCache = request.app.state.policy
    # One read of the policy version decides whether the token seen valid at it still is
    # (revoking or rotating a token changes the version), and whether the policy is.
    version = policy_version(session)
    digest = hash_token(token)
    now = utcnow()
    known = cache.known_token(digest, version)
    if known is None or (
        known.expires_at is not None and to_db(known.expires_at) <= to_db(now)  # type: ignore[operator]
    ):
        try:
            rec = authenticate(session, token=token)
        except AuthFailure as exc:
            # Chained (not shown to the caller) so that the throttle sees whose token it was.
            raise _unauthorized(str(exc)) from exc
        assert rec.id is not None
        known = KnownToken(rec.id, rec.subject, rec.kind, rec.expires_at, rec.last_used_at)
    # Last use is informative only; it is written at most once a minute, by the first
    # request that sees it older (the others find it refreshed here).
    touch = known.last_used_at is None or (now - known.last_used_at).total_seconds() > 60
    cache.remember_token(digest, version, replace(known, last_used_at=now) if touch else known)
    principal = _principal(
        request, session, known.subject, known.id, agent=known.kind == "agent", version=version
    )
    if touch:
        # After ``_principal`` ended this session's transaction: a request never holds
        # two pooled connections at once (under load, requests each holding one and
        # waiting for a second exhaust the pool and stall the gateway).
        try:
            touch_token(request.app.state.engine, token_id=known.id, at=now)
        except OperationalError as exc:
            # A read must not fail because a long write holds the database: the last
            # use is written on a later call.
            _log.warning("could not record the last use of token %s: %s", known.id, exc.orig)
            cache.remember_token(digest, version, known)
    return principal


def _session_principal(request: Request, session: Session, cookie: str) -> Principal:
    # A cookie travels with any request the browser makes; the console also sends this
    # header, which a cross-site form cannot, so state-changing calls need it.
    if request.method not in ("GET", "HEAD", "OPTIONS") and "x-accord-channel" not in (
        request.headers
    ):
        raise ApiError(403, "forbidden", "a session cookie alone cannot change anything")
    try:
        rec = authenticate_session(session, token=cookie)
    except AuthFailure as exc:
        raise _unauthorized(str(exc)) from None
    return _principal(request, session, rec.subject, None)


def _jwt_principal(request: Request, session: Session, token: str) -> Principal:
    provider: OidcProvider | None = getattr(request.app.state, "oidc", None)
    audience = provider.settings.oidc_audience if provider is not None else None
    if provider is None or not audience:
        raise _unauthorized(
            "this gateway does not accept identity-provider tokens "
            "(set ACCORD_OIDC_ISSUER and ACCORD_OIDC_AUDIENCE); use an Accord API token"
        )
    try:
        claims = provider.validate(token, audience=audience)
        subject = provider.subject_of(claims)
    except TokenRejected as exc:
        _audit_rejection(request, str(exc), token)
        raise _unauthorized(f"identity-provider token rejected: {exc}") from None
    except OidcError as exc:
        raise ApiError(503, "idp_unavailable", str(exc), headers={"Retry-After": "10"}) from None
    # The claims GroupBindings read are stored when they change, so that the policy (and
    # any decision made later for this person) sees the roles the provider gives now.
    if identity_digest(session, subject=subject) != claims_digest(claims):
        # Ends this read first (its connection goes back to the pool: a request never
        # holds two at once); the next read is fresh and sees the new policy version.
        session.rollback()
        with session_scope(request.app.state.engine) as write:
            record_identity(write, subject=subject, claims=claims)
    return _principal(request, session, subject, None)


def _audit_rejection(request: Request, reason: str, token: str) -> None:
    """A provider token that fails validation is an authorization event worth keeping;
    at most ``_REJECTIONS_PER_MINUTE`` are recorded per process so junk cannot flood the
    trail (the rest are logged)."""
    now = time.monotonic()
    with _rejections_lock:
        while _rejections and now - _rejections[0] > 60:
            _rejections.popleft()
        keep = len(_rejections) < _REJECTIONS_PER_MINUTE
        if keep:
            _rejections.append(now)
    claimed = _claimed_subject(token)
    if not keep:
        _log.warning("identity-provider token rejected (%s), claimed subject %s", reason, claimed)
        return
    record(
        request.app.state.engine,
        AuditEntry(
            subject="anonymous",
            channel=_channel(request),
            action="authenticate",
            target="oidc-token",
            domain="*",
            decision="deny",
            outcome="rejected",
            reason=reason,
            request_id=getattr(request.state, "request_id", None),
            details={"claimed_subject": claimed, "path": request.url.path},
        ),
    )


def _claimed_subject(token: str) -> str | None:
    """The unverified ``sub`` of a rejected token, for the record only."""
    try:
        part = token.split(".")[1]
        body = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    sub = body.get("sub") if isinstance(body, dict) else None
    return str(sub)[:200] if sub is not None else None


_REJECTIONS_PER_MINUTE = 60
_rejections: deque[float] = deque()
_rejections_lock = threading.Lock()


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(action: str) -> Callable[[Principal], Principal]:
    """Dependency: the subject holds ``action`` somewhere (lists then filter per row)."""

    def dep(principal: PrincipalDep) -> Principal:
        if not principal.grants.can_anywhere(action):
            raise ApiError(403, "forbidden", f"{principal.subject!r} may not {action} anything")
        return principal

    return dep


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings
