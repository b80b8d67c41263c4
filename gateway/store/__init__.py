"""Persistence: SQLModel tables, the engine, migrations and services."""

from .engine import DatabaseUnavailable, create_db_engine, session_scope, upgrade

__all__ = ["DatabaseUnavailable", "create_db_engine", "session_scope", "upgrade"]
