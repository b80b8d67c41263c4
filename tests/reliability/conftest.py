"""Fixtures of the reliability suite: a database URL for a served gateway on each backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import _fresh_pg_database


@pytest.fixture(params=["sqlite", "postgres"])
def served_db(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None for the gateway's own SQLite file, else a fresh PostgreSQL database URL."""
    if request.param == "sqlite":
        return None
    return _fresh_pg_database(request.getfixturevalue("postgres_server"))
