"""Typed FastAPI dependencies: sessions, the authenticated principal, authorization."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Request
from sqlalchemy import ColumnElement
from sqlmodel import Session

from gateway.authz import Decision, Grants, PolicyCache, PolicySet
from gateway.model import Channel
from gateway.settings import Settings
from gateway.store.services.tokens import AuthFailure, authenticate, touch_token
from gateway.store.types import utcnow

from .errors import ApiError

T = TypeVar("T")

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


def get_principal(request: Request, session: SessionDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "an API token is required: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        rec = authenticate(session, token=token.strip())
    except AuthFailure as exc:
        raise ApiError(
            401, "unauthorized", str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None
    cache: PolicyCache = request.app.state.policy
    policy = cache.current(session)
    # Last use is informative only; update it at most once a minute to keep reads cheap.
    now = utcnow()
    if rec.last_used_at is None or (now - rec.last_used_at).total_seconds() > 60:
        assert rec.id is not None
        touch_token(request.app.state.engine, token_id=rec.id, at=now)
    # Ends the authentication's transaction either way, so the connection goes back to the
    # pool before the route runs: a request must not hold one while it waits for a thread.
    session.commit()
    request.state.subject = rec.subject
    if rec.kind == "agent":
        # An agent's calls are on the agent channel whatever it claims.
        return Principal(
            rec.subject,
            rec.id,
            Channel.AGENT.value,
            policy,
            policy.grants(rec.subject),
            kind="agent",
            context=_agent_context(request),
        )
    return Principal(rec.subject, rec.id, _channel(request), policy, policy.grants(rec.subject))


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
