"""``accord validate`` on generated documents (hypothesis): whatever the YAML, it answers
with problems that name the file and the document, never with a traceback."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gateway.cli.app import app
from gateway.model.resources import KINDS

# Compliance rules' CEL engine (celpy) sets the recursion limit to 2500 whenever it builds an
# environment; hypothesis warns when that happens during a test, so it is set up front.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 2500))

EXAMPLES = 1000 if os.environ.get("ACCORD_LONG_TESTS") == "1" else 150

_FIELDS = [
    "type",
    "url",
    "sync",
    "runsEvery",
    "inventoryEvery",
    "rules",
    "actions",
    "subjects",
    "role",
    "domain",
    "domains",
    "windows",
    "schedule",
    "when",
    "then",
    "owners",
    "token",
    "env",
    "file",
    "name",
    "labels",
    "enabled",
    "spec",
    "metadata",
    "kind",
    "apiVersion",
    "jobs",
    "maxRuns",
    "within",
    "severity",
    "match",
    "approvers",
    "description",
]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["30s", "5m", "soon", "-1s", "accord.dev/v1", "*", "fake", "airflow", ""]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(_FIELDS), st.text(max_size=8)), inner, max_size=5
        ),
    ),
    max_leaves=15,
)
_documents = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.one_of(st.just("accord.dev/v1"), _scalars),
        "kind": st.one_of(st.sampled_from(sorted(KINDS)), _values),
        "metadata": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.one_of(
                        st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), _scalars
                    ),
                    "domain": _scalars,
                },
            ),
            _values,
        ),
        "spec": _values,
    },
)
_files = st.one_of(
    st.lists(st.one_of(_documents, _values), min_size=1, max_size=4).map(
        lambda docs: yaml.safe_dump_all(docs, allow_unicode=True)
    ),
    st.text(max_size=200),  # anything at all, YAML or not
)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    return CliRunner()


# The settings of every test fed by ``_files`` (here and in the apply tests).
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


def assert_problems_name_file_and_document(output: str, path: Path, text: Any) -> None:
    """Each problem line (``✗ …``) of a refused file starts with the file and says which
    document (or that the YAML itself is broken, or empty)."""
    problems = [ln[2:] for ln in output.splitlines() if ln.startswith("✗ ")]
    assert problems, (output, text)
    for p in problems:
        assert p.startswith(f"{path}:"), (p, text)
        assert "document" in p or "YAML" in p or "empty" in p, (p, text)


@FUZZ
@given(text=_files)
def test_validate_never_crashes_and_names_file_and_document(
    runner: CliRunner, tmp_path: Path, text: Any
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    res = runner.invoke(app, ["validate", "-f", str(path)])
    assert res.exit_code in (0, 1), (res.exit_code, res.output, text)
    assert res.exception is None or isinstance(res.exception, SystemExit), (res.output, text)
    assert "Traceback" not in res.output, (res.output, text)
    if res.exit_code == 1:
        assert_problems_name_file_and_document(res.output, path, text)


@pytest.mark.parametrize("kind", ["[]", "[Source]", "{a: 1}", "7", "null"])
def test_a_kind_that_is_not_a_name_is_a_clear_error(
    runner: CliRunner, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "kinds.yaml"
    path.write_text(
        "apiVersion: accord.dev/v1\nkind: Domain\nmetadata: {name: ok}\n---\n"
        f"apiVersion: accord.dev/v1\nkind: {kind}\nmetadata: {{name: x}}\n",
        encoding="utf-8",
    )
    res = runner.invoke(app, ["validate", "-f", str(path)])
    assert (res.exit_code == 1 and res.exception is None) or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output
    problems = [ln[2:] for ln in res.output.splitlines() if ln.startswith("✗ ")]
    assert len(problems) == 1, res.output
    assert problems[0].startswith(f"{path}:") and "document 2" in problems[0], problems
    assert "kind" in problems[0] and "known kinds" in problems[0], problems
