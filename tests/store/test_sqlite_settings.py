"""The SQLite settings every connection of the store gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.store import create_db_engine
from gateway.store.checkpoint import SAFETY_PAGES


def _pragma(path: Path, name: str) -> int:
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as c:
            return int(c.execute(text(f"PRAGMA {name}")).scalar_one())
    finally:
        engine.dispose()


def test_page_cache_is_16_mib_unless_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCORD_SQLITE_CACHE_MIB", raising=False)
    assert _pragma(tmp_path / "a.db", "cache_size") == -16 * 1024
    monkeypatch.setenv("ACCORD_SQLITE_CACHE_MIB", "4")
    assert _pragma(tmp_path / "b.db", "cache_size") == -4 * 1024
    monkeypatch.setenv("ACCORD_SQLITE_CACHE_MIB", "lots")  # not a number: the default
    assert _pragma(tmp_path / "c.db", "cache_size") == -16 * 1024


def test_writers_checkpoint_only_as_a_safety_net(tmp_path: Path) -> None:
    assert _pragma(tmp_path / "a.db", "wal_autocheckpoint") == SAFETY_PAGES
