"""``accord validate`` reports every problem in one pass with line numbers, and the help
output reads like other command-line tools."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.app import app

FIRST = """\
apiVersion: accord.dev/v1
kind: Source
metadata: {name: Bad_Name, domain: data}
spec:
  type: airflow
  sync:
    inventoryEvery: soon
---
apiVersion: accord.dev/v2
kind: Domain
metadata:
  name: ops
spec:
  owners: nope
  colour: red
"""

SECOND = """\
apiVersion: accord.dev/v1
kind: Domain
metadata: {name: fine}
---
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {name: g}
spec:
  type: freeze
  actions: [trigger, explode]
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    yield CliRunner()


def _problems(output: str) -> list[str]:
    return [line[2:] for line in output.splitlines() if line.startswith("✗ ")]


def test_validate_reports_every_error_of_every_document_sorted_with_lines(
    cli: CliRunner, tmp_path: Path
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "a.yaml").write_text(FIRST)
    (conf / "b.yaml").write_text(SECOND)
    res = cli.invoke(app, ["validate", "-f", str(conf)])
    assert res.exit_code == 1
    problems = _problems(res.output)
    a, b = str(conf / "a.yaml"), str(conf / "b.yaml")
    expected = [
        (a, 3, "metadata.name: String should match pattern '^[a-z0-9]"),
        (a, 4, "spec.auth: Field required"),  # the airflow adapter's own settings
        (a, 4, "spec.url: Field required"),
        (a, 7, "spec.sync.inventoryEvery: Value error, not a duration: 'soon'"),
        (a, 9, "apiVersion: must be 'accord.dev/v1'"),
        (a, 14, "spec.owners: Input should be a valid list"),
        (a, 15, "spec.colour: Extra inputs are not permitted"),
        (b, 10, "spec.actions: Value error, unknown action(s) ['explode']"),
    ]
    assert len(problems) == len(expected), problems
    for line, (file, number, text) in zip(problems, expected, strict=True):
        assert line.startswith(f"{file}:{number}: document "), line
        assert text in line, line
    assert "8 problem(s)" in " ".join(res.output.split())


def test_bad_utf8_is_reported_by_line_not_byte_offset(cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"apiVersion: accord.dev/v1\nkind: Domain\nmetadata: {name: caf\xe9}\n")
    res = cli.invoke(app, ["validate", "-f", str(path)])
    assert res.exit_code == 1
    (problem,) = _problems(res.output)
    assert problem == f"{path}:3: not UTF-8: byte 0xe9 at line 3, column 21"
    assert "position" not in res.output


def test_malformed_yaml_keeps_the_documents_before_it_and_names_the_line(
    cli: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "apiVersion: accord.dev/v1\nkind: Domain\nmetadata: {name: Bad}\n---\nkind: [unclosed\n"
    )
    res = cli.invoke(app, ["validate", "-f", str(path)])
    problems = _problems(res.output)
    assert problems[0].startswith(f"{path}:3: document 1 (Domain/Bad): metadata.name")
    assert problems[1].startswith(f"{path}:6: malformed YAML at line 6")


@pytest.mark.parametrize(
    "command", [[], ["apply"], ["jobs", "list"], ["runs", "list"], ["audit", "export"], ["sync"]]
)
def test_help_reads_like_other_clis(cli: CliRunner, command: list[str]) -> None:
    res = cli.invoke(app, [*command, "--help"], terminal_width=100)
    assert res.exit_code == 0
    out = res.output
    assert not re.search(r"<\w+>", out), out  # no <bool>, <str>, <int>
    help_line = next(line for line in out.splitlines() if "--help" in line)
    assert re.search(r"--help\s+Show this message", help_line), help_line
    if command == ["apply"]:
        assert re.search(r"--file\s+-f\s+PATH", out)
        dry = next(line for line in out.splitlines() if "--dry-run" in line)
        assert re.search(r"--dry-run\s+plan only", dry), dry  # a flag takes no value
    if command == ["jobs", "list"]:
        assert re.search(r"--limit\s+INTEGER", out) and re.search(r"--state\s+TEXT", out)
    if command == ["sync"]:
        assert re.search(r"source\s+TEXT", out)


def test_a_control_character_is_a_problem_with_its_line(cli: CliRunner, tmp_path: Path) -> None:
    # Found by tests/cli/test_validate_fuzz.py: the YAML reader refused it with a traceback.
    path = tmp_path / "ctl.yaml"
    path.write_text("apiVersion: accord.dev/v1\nkind: Domain\nmetadata: {name: a\x1f}\n")
    res = cli.invoke(app, ["validate", "-f", str(path)])
    assert res.exit_code == 1
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert f"{path}:3: " in res.output and "0x1f" in res.output, res.output
