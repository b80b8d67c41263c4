"""Read-only view of the authorization policy in force: roles and bindings."""

from __future__ import annotations

from typing import Literal

from fastapi import Depends
from pydantic import BaseModel
from sqlmodel import col, select

from gateway.authz.loader import default_roles
from gateway.model.resources import Role, RoleBinding
from gateway.store.tables import ApiToken, AppliedResource
from gateway.store.types import utcnow

from ..deps import Principal, SessionDep, require
from ..errors import ApiError
from ..routing import Router

router = Router(prefix="/api/v1/policy", tags=["policy"])


class RuleView(BaseModel):
    actions: list[str]
    objects: list[str]
    effect: str


class RoleView(BaseModel):
    name: str
    origin: Literal["default", "applied"]
    rules: list[RuleView]


class BindingView(BaseModel):
    name: str
    role: str
    subjects: list[str]
    domains: list[str]
    origin: Literal["applied", "token"]


class PolicyView(BaseModel):
    roles: list[RoleView]
    bindings: list[BindingView]


@router.get("", response_model=PolicyView)
def policy(session: SessionDep, principal: Principal = Depends(require("read"))) -> PolicyView:
    """Visible to those who administer or audit configuration (apply-config or export-audit)."""
    if not (
        principal.grants.can_anywhere("apply-config")
        or principal.grants.can_anywhere("export-audit")
    ):
        raise ApiError(
            403,
            "forbidden",
            "the policy is visible to subjects who may apply-config or export-audit",
        )
    roles: dict[str, RoleView] = {
        name: RoleView(
            name=name, origin="default", rules=[RuleView(**r.model_dump()) for r in role.spec.rules]
        )
        for name, role in default_roles().items()
    }
    bindings: list[BindingView] = []
    applied = session.exec(
        select(AppliedResource).where(col(AppliedResource.kind).in_(["Role", "RoleBinding"]))
    ).all()
    for res in applied:
        if res.kind == "Role":
            role = Role.model_validate(res.document)
            roles[role.metadata.name] = RoleView(
                name=role.metadata.name,
                origin="applied",
                rules=[RuleView(**r.model_dump()) for r in role.spec.rules],
            )
        else:
            rb = RoleBinding.model_validate(res.document)
            bindings.append(
                BindingView(
                    name=rb.metadata.name,
                    role=rb.spec.role,
                    subjects=rb.spec.subjects,
                    domains=rb.spec.domains,
                    origin="applied",
                )
            )
    now = utcnow()
    for tok in session.exec(select(ApiToken).where(col(ApiToken.revoked_at).is_(None))).all():
        if tok.expires_at is not None and tok.expires_at <= now:
            continue
        bindings.append(
            BindingView(
                name=f"token {tok.id} ({tok.prefix}…)",
                role=tok.role,
                subjects=[tok.subject],
                domains=[tok.domain],
                origin="token",
            )
        )
    return PolicyView(roles=sorted(roles.values(), key=lambda r: r.name), bindings=bindings)
