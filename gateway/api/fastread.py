"""The fast read path: one worker-thread hop per request, rows serialized straight to JSON.

A list page is read as plain rows and written with pydantic-core's JSON serializer (the
same encoder, hence the same datetime and number forms, as the response models), without
building a model per item. ``allowed_actions`` is decided once per distinct (source,
domain, job) of the page from the subject's compiled grants and the page's sources'
capabilities. The response schema stays the one the route declares (``response_model``):
tests compare both forms field by field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
from fastapi import Request, Response
from pydantic_core import to_json
from sqlalchemy import bindparam, text
from sqlmodel import Session

from gateway.actions import permission
from gateway.capabilities import capabilities_of

from .deps import Principal, get_principal
from .errors import ApiError

__all__ = [
    "ActionsOf",
    "json_response",
    "read_as",
    "reader",
    "run_item",
]

T = TypeVar("T")

_SOURCES = text("SELECT name, type, spec FROM source WHERE name IN :names").bindparams(
    bindparam("names", expanding=True)
)


def json_response(payload: Any, status_code: int = 200) -> Response:
    return Response(to_json(payload), status_code=status_code, media_type="application/json")


def _authorized(request: Request, session: Session, action: str) -> Principal:
    principal = get_principal(request, session)
    if not principal.grants.can_anywhere(action):
        raise ApiError(403, "forbidden", f"{principal.subject!r} may not {action} anything")
    return principal


def reader(action: str = "read") -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: the authenticated caller, resolved in ONE worker-thread hop (session,
    token, policy and the ``require(action)`` check together; ``deps.require`` takes
    three). The caller must hold ``action`` somewhere."""

    async def dep(request: Request) -> Principal:
        engine = request.app.state.engine

        def work() -> Principal:
            with Session(engine, expire_on_commit=False) as session:
                return _authorized(request, session, action)

        return await anyio.to_thread.run_sync(work)

    return dep


async def read_as(
    request: Request, fn: Callable[[Session, Principal], T], action: str = "read"
) -> T:
    """Authenticate the caller, check that it may ``action`` somewhere and run ``fn`` with
    a read session, all in ONE worker-thread hop: the hottest list routes use this instead
    of ``reader`` plus ``in_thread`` (a hop and a session fewer per request). The
    authentication's transaction ends before ``fn`` runs, so the request never holds two
    pooled connections."""
    engine = request.app.state.engine

    def work() -> T:
        with Session(engine, expire_on_commit=False) as session:
            return fn(session, _authorized(request, session, action))

    return await anyio.to_thread.run_sync(work)


class ActionsOf:
    """``allowed_actions`` for many rows: one query for the sources' capabilities, one
    decision per distinct (source, domain, job uid) and action, exactly as
    ``routes.common.allowed_actions_by_target`` decides them."""

    def __init__(self, session: Session, principal: Principal, actions: Sequence[str]) -> None:
        self._session = session
        self._principal = principal
        self._actions = tuple(actions)
        self._caps: dict[str, frozenset[str]] = {}
        self._memo: dict[tuple[str, str, str], list[str]] = {}
        # When no grant of the subject for these actions names jobs, a job's actions
        # depend on its source and domain only: a 1,000-run page then costs a handful of
        # decisions, not one per job.
        self._blind = all(principal.grants.object_blind(permission(a)) for a in self._actions)

    def load_sources(self, names: Iterable[str]) -> None:
        missing = {n for n in names if n not in self._caps}
        if not missing:
            return
        # A plain statement: the spec as stored (JSON text on SQLite) keys the memo of
        # capabilities without being parsed on every request.
        rows = self._session.execute(_SOURCES, {"names": sorted(missing)})
        for name, source_type, spec in rows:
            self._caps[name] = capabilities_of(source_type, spec)
        for name in missing:
            self._caps.setdefault(name, frozenset())

    @property
    def blind(self) -> bool:
        """The actions depend on the source and domain only, not on the job."""
        return self._blind

    def key(self, source: str, domain: str, uid: str) -> tuple[str, str, str]:
        """Rows with equal keys have equal ``allowed_actions``."""
        return (source, domain, "*" if self._blind else uid)

    def __call__(self, source: str, domain: str, uid: str) -> list[str]:
        key = (source, domain, "*" if self._blind else uid)
        got = self._memo.get(key)
        if got is None:
            have = self._caps.get(source, frozenset())
            decide = self._principal.decide
            got = [
                a for a in self._actions if a in have and decide(domain, uid, permission(a)).allowed
            ]
            self._memo[key] = got
        return got


def run_item(row: Mapping[Any, Any], allowed: list[str]) -> dict[str, Any]:
    """A run row as ``RunPublic`` serializes it in a list (no steps, no links)."""
    started, ended, state = row["started_at"], row["ended_at"], row["state"]
    duration = max(0.0, (ended - started).total_seconds()) if started and ended else None
    return {
        "uid": row["uid"],
        "source": row["source"],
        "job_uid": row["job_uid"],
        "domain": row["domain"],
        "state": state,
        "native_state": row["native_state"],
        "trigger": row["trigger"],
        "actor": row["actor"],
        "queued_at": row["queued_at"],
        "started_at": started,
        "ended_at": ended,
        "duration_s": duration,
        "attempt": row["attempt"],
        "url": row["url"],
        "message": row["message"],
        "observed_at": row["observed_at"],
        "steps": None,
        "allowed_actions": allowed,
        "cancelled_through_accord": row["cancel_requested_at"] is not None and state == "cancelled",
        "cancel_requested_by": row["cancel_requested_by"],
        "upstream": None,
        "downstream": None,
    }
