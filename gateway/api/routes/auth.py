"""Single sign-on for the console: the gateway runs the OpenID Connect authorization code
flow with PKCE itself and gives the browser an HttpOnly session cookie.

    GET  /auth/login     → the provider's login page (state, nonce, PKCE challenge)
    GET  /auth/callback  ← the provider, with a code: checked, exchanged, a session begins
    POST /auth/logout    → the session ends; answers the provider's end-session URL
    GET  /auth/config    → whether single sign-on is on (the console's login page asks)

No token ever appears in a URL or in the console's scripts: the PKCE verifier lives in a
short-lived HttpOnly cookie scoped to /auth, the session in an HttpOnly cookie. Sessions
expire after ACCORD_OIDC_SESSION_TTL and can be revoked (DELETE /api/v1/sessions/{id}).
"""

from __future__ import annotations

import html
import secrets
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlmodel import col, select

from gateway.audit import AuditEntry, append, record
from gateway.sso import LOGIN_COOKIE, SESSION_COOKIE, OidcError, OidcProvider, TokenRejected
from gateway.store.engine import session_scope
from gateway.store.services.sso import (
    begin_login,
    create_session,
    record_identity,
    revoke_session,
    take_login,
)
from gateway.store.tables import SsoSession
from gateway.store.types import utcnow

from ..deps import Principal, SessionDep, require
from ..errors import ApiError
from ..params import INT64_MAX
from ..routing import Router

router = Router(tags=["auth"])
_LOGIN_TTL = timedelta(minutes=10)


class SsoConfig(BaseModel):
    enabled: bool
    login_url: str | None = None
    issuer: str | None = None


class LogoutResult(BaseModel):
    signed_out: bool
    logout_url: str | None = None


class SessionPublic(BaseModel):
    id: int
    subject: str
    name: str
    created_at: Any
    expires_at: Any
    revoked_at: Any = None


def _provider(request: Request) -> OidcProvider:
    provider: OidcProvider | None = getattr(request.app.state, "oidc", None)
    if provider is None:
        raise ApiError(404, "sso_disabled", "single sign-on is not configured (ACCORD_OIDC_*)")
    return provider


def _base_url(request: Request) -> str:
    public = request.app.state.settings.public_url
    return (public or str(request.base_url)).rstrip("/")


def _secure(request: Request) -> bool:
    return _base_url(request).startswith("https://")


def _safe_return(value: str | None) -> str:
    # Only paths of this gateway: an open redirect would hand the session to a stranger.
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _page(status: int, title: str, message: str) -> HTMLResponse:
    body = (
        "<!doctype html><meta charset=utf-8><title>Accord: "
        + html.escape(title)
        + "</title><main style='font-family:sans-serif;max-width:40em;margin:4em auto'>"
        + f"<h1>{html.escape(title)}</h1><p role=alert>{html.escape(message)}</p>"
        + "<p><a href='/auth/login'>Sign in again</a> · <a href='/'>Console</a></p></main>"
    )
    return HTMLResponse(body, status_code=status)


@router.get("/auth/config", response_model=SsoConfig)
def sso_config(request: Request) -> SsoConfig:
    provider: OidcProvider | None = getattr(request.app.state, "oidc", None)
    if provider is None:
        return SsoConfig(enabled=False)
    return SsoConfig(enabled=True, login_url="/auth/login", issuer=provider.issuer)


@router.get("/auth/login", include_in_schema=False)
def login(request: Request, return_to: str | None = Query(default=None)) -> Response:
    provider = _provider(request)
    nonce = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    with session_scope(request.app.state.engine) as session:
        state = begin_login(session, nonce=nonce, return_to=_safe_return(return_to), ttl=_LOGIN_TTL)
    try:
        url = provider.authorization_url(
            redirect_uri=_base_url(request) + "/auth/callback",
            state=state,
            nonce=nonce,
            code_verifier=verifier,
        )
    except OidcError as exc:
        return _page(503, "Single sign-on unavailable", str(exc))
    resp = RedirectResponse(url, status_code=302)
    resp.set_cookie(
        LOGIN_COOKIE,
        f"{state}.{verifier}",
        max_age=int(_LOGIN_TTL.total_seconds()),
        path="/auth",
        httponly=True,
        secure=_secure(request),
        samesite="lax",
    )
    return resp


@router.get("/auth/callback", include_in_schema=False)
def callback(
    request: Request,
    code: str | None = Query(default=None),
    state: str | None = Query(default=None),
    error: str | None = Query(default=None),
    error_description: str | None = Query(default=None),
) -> Response:
    provider = _provider(request)
    engine = request.app.state.engine
    settings = request.app.state.settings
    if error:
        return _refused(request, f"the provider answered {error}: {error_description or ''}")
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    started_state, _, verifier = cookie.partition(".")
    if not code or not state or not started_state or not verifier:
        return _refused(request, "this sign-in was not started here (or took too long)")
    if not secrets.compare_digest(state, started_state):
        return _refused(request, "the sign-in state does not match this browser's")
    with session_scope(engine) as session:
        pending = take_login(session, state=state)
        return_to = pending.return_to if pending else "/"
        nonce = pending.nonce if pending else None
    if nonce is None:
        return _refused(request, "this sign-in has expired or was already used; start again")
    redirect_uri = _base_url(request) + "/auth/callback"
    try:
        tokens = provider.exchange_code(
            redirect_uri=redirect_uri, code=code, code_verifier=verifier
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise TokenRejected("the provider answered no ID token (is 'openid' in the scopes?)")
        claims = provider.validate(id_token, audience=settings.oidc_client_id or "", nonce=nonce)
        subject = provider.subject_of(claims)
    except TokenRejected as exc:
        return _refused(request, str(exc))
    except OidcError as exc:
        return _page(503, "Single sign-on unavailable", str(exc))
    name = str(claims.get("name") or claims.get("preferred_username") or subject)
    ttl = timedelta(seconds=settings.oidc_session_ttl)
    with session_scope(engine) as session:
        record_identity(session, subject=subject, claims=claims)
        new = create_session(session, subject=subject, name=name, ttl=ttl)
        append(
            session,
            AuditEntry(
                subject=subject,
                channel="ui",
                action="login",
                target=f"session:{new.record.id}",
                domain="*",
                decision="allow",
                outcome="ok",
                request_id=request.state.request_id,
                details={"via": "oidc", "issuer": provider.issuer},
            ),
        )
    resp = RedirectResponse(return_to, status_code=302)
    resp.delete_cookie(LOGIN_COOKIE, path="/auth")
    resp.set_cookie(
        SESSION_COOKIE,
        new.token,
        max_age=settings.oidc_session_ttl,
        path="/",
        httponly=True,
        secure=_secure(request),
        samesite="lax",
    )
    return resp


def _refused(request: Request, reason: str) -> HTMLResponse:
    record(
        request.app.state.engine,
        AuditEntry(
            subject="anonymous",
            channel="ui",
            action="login",
            target="oidc",
            domain="*",
            decision="deny",
            outcome="rejected",
            reason=reason,
            request_id=request.state.request_id,
        ),
    )
    resp = _page(401, "Sign-in refused", reason)
    resp.delete_cookie(LOGIN_COOKIE, path="/auth")
    return resp


@router.post("/auth/logout", response_model=LogoutResult)
def logout(request: Request) -> JSONResponse:
    """End this browser's session (and answer where the provider ends its own)."""
    token = request.cookies.get(SESSION_COOKIE)
    ended = None
    if token:
        with session_scope(request.app.state.engine) as session:
            ended = revoke_session(session, token=token)
            if ended is not None:
                append(
                    session,
                    AuditEntry(
                        subject=ended.subject,
                        channel="ui",
                        action="logout",
                        target=f"session:{ended.id}",
                        domain="*",
                        decision="allow",
                        outcome="ok",
                        request_id=request.state.request_id,
                    ),
                )
    url = None
    provider: OidcProvider | None = getattr(request.app.state, "oidc", None)
    if provider is not None:
        try:
            url = provider.logout_url(
                post_logout_redirect_uri=_base_url(request) + "/", id_token_hint=None
            )
        except OidcError:
            url = None
    resp = JSONResponse(LogoutResult(signed_out=ended is not None, logout_url=url).model_dump())
    resp.delete_cookie(SESSION_COOKIE, path="/", httponly=True, secure=_secure(request))
    return resp


@router.get("/api/v1/sessions", response_model=list[SessionPublic], tags=["auth"])
def list_sessions(
    session: SessionDep,
    principal: Principal = Depends(require("apply-config")),
    active: bool = Query(default=True),
) -> list[SessionPublic]:
    """Single sign-on sessions (administrators: apply-config in every domain)."""
    _every_domain(principal)
    stmt = select(SsoSession).order_by(col(SsoSession.id).desc()).limit(500)
    if active:
        stmt = stmt.where(col(SsoSession.revoked_at).is_(None)).where(
            col(SsoSession.expires_at) > utcnow()
        )
    return [
        SessionPublic(
            id=r.id or 0,
            subject=r.subject,
            name=r.name,
            created_at=r.created_at,
            expires_at=r.expires_at,
            revoked_at=r.revoked_at,
        )
        for r in session.exec(stmt).all()
    ]


@router.delete("/api/v1/sessions/{session_id}", response_model=SessionPublic, tags=["auth"])
def revoke(
    session_id: Annotated[int, Path(ge=1, le=INT64_MAX, description="console session id")],
    request: Request,
    principal: Principal = Depends(require("apply-config")),
) -> SessionPublic:
    """Revoke a single sign-on session: its next request is refused."""
    _every_domain(principal)
    with session_scope(request.app.state.engine) as session:
        rec = revoke_session(session, session_id=session_id)
        if rec is None:
            raise ApiError(404, "not_found", f"no session {session_id}")
        append(
            session,
            AuditEntry(
                subject=principal.subject,
                channel=principal.channel,
                action="revoke-session",
                target=f"session:{session_id}",
                domain="*",
                decision="allow",
                outcome="ok",
                request_id=request.state.request_id,
                details={"session_subject": rec.subject},
            ),
        )
        out = SessionPublic(
            id=session_id,
            subject=rec.subject,
            name=rec.name,
            created_at=rec.created_at,
            expires_at=rec.expires_at,
            revoked_at=rec.revoked_at,
        )
    return out


def _every_domain(principal: Principal) -> None:
    if not principal.decide("*", "sessions", "apply-config").allowed:
        raise ApiError(403, "forbidden", "sessions are managed with apply-config in every domain")
