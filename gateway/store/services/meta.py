"""Small key/value facts about the installation (policy version, ...)."""

from __future__ import annotations

import secrets

from sqlalchemy import text
from sqlmodel import Session

from ..tables import Meta

__all__ = ["bump_policy_version", "get_meta", "policy_version", "set_meta"]


def get_meta(session: Session, key: str) -> str | None:
    row = session.get(Meta, key)
    return row.value if row else None


def set_meta(session: Session, key: str, value: str) -> None:
    row = session.get(Meta, key)
    if row is None:
        session.add(Meta(key=key, value=value))
    else:
        row.value = value
        session.add(row)
    session.flush()


_POLICY_VERSION = text("SELECT value FROM meta WHERE key = 'policy_version'")


def policy_version(session: Session) -> str:
    # Read on every authenticated request: a plain statement, without the ORM's identity
    # map (a quarter of a small list page's time went into ``session.get``).
    value = session.execute(_POLICY_VERSION).scalar()
    return str(value) if value is not None else "0"


def bump_policy_version(session: Session) -> None:
    """Any change to roles, bindings or tokens: every replica reloads its policy."""
    set_meta(session, "policy_version", secrets.token_hex(8))
