from __future__ import annotations

from fastapi import APIRouter

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
    )
