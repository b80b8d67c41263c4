"""``accord apply`` on generated documents (hypothesis, the generator of
``test_validate_fuzz``): whatever the YAML, it is applied or answered with problems that
name the file and the document, never with a traceback, and a refused file changes
nothing. ``tests/api/test_apply_fuzz.py`` does the same to ``POST /api/v1/config/apply``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from sqlalchemy import func, select
from typer.testing import CliRunner

from gateway.cli.app import app
from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.tables import AppliedResource, AuditRecord

from .test_validate_fuzz import FUZZ, _files, assert_problems_name_file_and_document


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    return CliRunner()


def state_of(url: str) -> tuple[int, int]:
    engine = create_db_engine(url)
    try:
        upgrade(engine)  # (what ``accord apply`` does first; a no-op after)
        with session_scope(engine, write=False) as s:
            applied = s.execute(select(func.count()).select_from(AppliedResource)).scalar_one()
            audited = s.execute(select(func.count()).select_from(AuditRecord)).scalar_one()
    finally:
        engine.dispose()
    return int(applied), int(audited)


@FUZZ
@given(text=_files)
def test_apply_never_crashes_and_a_refused_file_changes_nothing(
    runner: CliRunner, tmp_path: Path, text: Any
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'data' / 'accord.db'}"
    before = state_of(url)
    res = runner.invoke(app, ["apply", "-f", str(path)])
    assert res.exit_code in (0, 1), (res.exit_code, res.output, text)
    assert res.exception is None or isinstance(res.exception, SystemExit), (res.output, text)
    assert "Traceback" not in res.output, (res.output, text)
    if res.exit_code == 1:
        assert_problems_name_file_and_document(res.output, path, text)
        assert state_of(url) == before, (res.output, text)
