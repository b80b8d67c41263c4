from __future__ import annotations

from datetime import timedelta

from fastapi import Request

from gateway.audit import AuditEntry, append, record
from gateway.model import parse_duration
from gateway.model.resources import ACTIONS
from gateway.store.engine import session_scope
from gateway.store.services.tokens import AlreadyRotated, AuthFailure, rotate_token

from ..deps import PrincipalDep
from ..errors import ApiError
from ..routing import Router
from ..schemas import Me, TokenRotate, TokenRotated

router = Router(prefix="/api/v1", tags=["me"])


@router.get("/me", response_model=Me)
def me(principal: PrincipalDep) -> Me:
    return Me(
        subject=principal.subject,
        roles=[{"role": r, "domain": d} for r, d in principal.policy.roles_of(principal.subject)],
        can={a: principal.grants.can_anywhere(a) for a in ACTIONS if a != "*"},
        kind=principal.kind,
    )


@router.post("/login", response_model=Me)
def login(request: Request, principal: PrincipalDep) -> Me:
    """Start a console or CLI session with a token: recorded in the audit trail."""
    record(
        request.app.state.engine,
        AuditEntry(
            subject=principal.subject,
            channel=principal.channel,
            action="login",
            target=f"token:{principal.token_id}",
            domain="*",
            decision="allow",
            outcome="ok",
            request_id=request.state.request_id,
        ),
    )
    return me(principal)


def _duration(field: str, value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"{field}: {exc}") from None


@router.post("/me/token/rotate", response_model=TokenRotated)
def rotate_my_token(
    request: Request, principal: PrincipalDep, body: TokenRotate | None = None
) -> TokenRotated:
    """Replace the calling API token by a new secret with the same rights. The old one
    keeps working for the grace period (so running jobs can pick up the new one), or is
    revoked at once with grace '0s'."""
    body = body or TokenRotate()
    if principal.token_id is None:
        raise ApiError(
            409,
            "not_an_api_token",
            "only an Accord API token can be rotated (this call used "
            "a single sign-on session or an identity-provider token)",
        )
    grace = (
        _duration("grace", body.grace)
        if body.grace is not None
        else timedelta(seconds=request.app.state.settings.token_rotation_grace)
    )
    ttl = _duration("ttl", body.ttl) if body.ttl is not None else None
    try:
        with session_scope(request.app.state.engine) as s:
            done = rotate_token(s, token_id=principal.token_id, grace=grace, ttl=ttl)
            if done is None:  # revoked and deleted between authentication and now
                raise ApiError(401, "unauthorized", "this API token no longer exists")
            new, old = done
            append(
                s,
                AuditEntry(
                    subject=principal.subject,
                    channel=principal.channel,
                    action="token-rotate",
                    target=f"token:{old.id}",
                    domain="*",
                    decision="allow",
                    outcome="ok",
                    request_id=request.state.request_id,
                    details={
                        "new_token": new.record.id,
                        "grace_seconds": grace.total_seconds(),
                    },
                ),
            )
            assert new.record.id is not None and old.id is not None
            return TokenRotated(
                id=new.record.id,
                token=new.token,
                expires_at=new.record.expires_at,
                replaced=old.id,
                replaced_valid_until=old.revoked_at or old.expires_at,
            )
    except (AlreadyRotated, AuthFailure) as exc:
        raise ApiError(409, "already_rotated", str(exc)) from None
