"""Builds the current PolicySet from default roles, applied resources and tokens."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from gateway.model.resources import GroupBinding, Role, RoleBinding
from gateway.store.services.meta import policy_version
from gateway.store.services.sso import claim_values
from gateway.store.tables import ApiToken, AppliedResource, SsoIdentity
from gateway.store.types import utcnow
from policies import POLICY_DIR

from .policy import Binding, PolicySet, Rule

__all__ = ["KnownToken", "PolicyCache", "default_roles", "load_policy", "role_rules"]


def default_roles() -> dict[str, Role]:
    docs = yaml.safe_load_all((POLICY_DIR / "roles.yaml").read_text())
    return {d["metadata"]["name"]: Role.model_validate(d) for d in docs if d}


def role_rules(role: Role) -> list[Rule]:
    out = []
    for rule in role.spec.rules:
        for act in rule.actions:
            for obj in rule.objects:
                out.append(Rule(role.metadata.name, "*", obj, act, rule.effect))
    return out


def load_policy(session: Session) -> PolicySet:
    roles: dict[str, Role] = default_roles()
    bindings: list[Binding] = []
    applied = session.exec(
        select(AppliedResource).where(
            col(AppliedResource.kind).in_(["Role", "RoleBinding", "GroupBinding"])
        )
    ).all()
    group_bindings: list[GroupBinding] = []
    for res in applied:
        doc: dict[str, Any] = res.document
        if res.kind == "Role":
            role = Role.model_validate(doc)
            roles[role.metadata.name] = role
        elif res.kind == "GroupBinding":
            group_bindings.append(GroupBinding.model_validate(doc))
        else:
            rb = RoleBinding.model_validate(doc)
            for sub in rb.spec.subjects:
                for dom in rb.spec.domains:
                    bindings.append(Binding(sub, rb.spec.role, dom))
    if group_bindings:
        # People known through single sign-on hold the roles their claims map to.
        for ident in session.exec(select(SsoIdentity)).all():
            for gb in group_bindings:
                if claim_values(ident.claims, gb.spec.claim) & set(gb.spec.values):
                    for dom in gb.spec.domains:
                        bindings.append(Binding(ident.subject, gb.spec.role, dom))
    now = utcnow()
    for tok in session.exec(select(ApiToken).where(col(ApiToken.revoked_at).is_(None))).all():
        if tok.expires_at is not None and tok.expires_at <= now:
            continue
        bindings.append(Binding(tok.subject, tok.role, tok.domain))
    rules = [r for role in roles.values() for r in role_rules(role)]
    return PolicySet(rules, bindings)


@dataclass(frozen=True)
class KnownToken:
    """What authentication needs of an API token that was valid at a policy version."""

    id: int
    subject: str
    kind: str
    expires_at: datetime | None
    last_used_at: datetime | None


class PolicyCache:
    """The current PolicySet, reloaded when the stored policy version changes; and the
    API tokens seen valid at that version (creating, revoking or rotating a token changes
    the version, so a revoked token is never taken from here, on any replica)."""

    MAX_TOKENS = 10_000

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._version: str | None = None
        self._policy: PolicySet | None = None
        self._tokens: dict[str, tuple[str, KnownToken]] = {}

    def current(self, session: Session, version: str | None = None) -> PolicySet:
        """``version``: the stored policy version if the caller has just read it in
        this transaction."""
        if version is None:
            version = policy_version(session)
        with self._lock:
            if self._policy is not None and version == self._version:
                return self._policy
        policy = load_policy(session)
        with self._lock:
            self._policy, self._version = policy, version
        return policy

    def known_token(self, digest: str, version: str) -> KnownToken | None:
        with self._lock:
            got = self._tokens.get(digest)
        return got[1] if got is not None and got[0] == version else None

    def remember_token(self, digest: str, version: str, token: KnownToken) -> None:
        with self._lock:
            if len(self._tokens) >= self.MAX_TOKENS:
                self._tokens.clear()
            self._tokens[digest] = (version, token)
