from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.audit import AuditEntry, record
from gateway.model.resources import ACTIONS

from ..deps import PrincipalDep
from ..schemas import Me

router = APIRouter(prefix="/api/v1", tags=["me"])


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
