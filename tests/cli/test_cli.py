from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.testing.fake import FakeSystem, systems
from gateway.cli.app import app

GOOD = """\
apiVersion: accord.dev/v1
kind: Source
metadata: {name: fake-one, domain: data}
spec: {type: fake, system: cli-sys, token: {env: ACCORD_SECRET_CLI_FAKE_TOKEN}}
---
apiVersion: accord.dev/v1
kind: Domain
metadata: {name: data}
spec: {description: Data platform}
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    monkeypatch.setenv("ACCORD_SECRET_CLI_FAKE_TOKEN", "t0ken-value")
    sys = FakeSystem("cli-sys", token="t0ken-value")
    sys.add_job("nightly")
    systems["cli-sys"] = sys
    yield CliRunner()
    systems.pop("cli-sys", None)


def run(cli: CliRunner, *args: str) -> tuple[int, str]:
    res = cli.invoke(app, list(args))
    return res.exit_code, res.output


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_validate_good(cli: CliRunner, tmp_path: Path) -> None:
    code, out = run(cli, "validate", "-f", write(tmp_path, GOOD))
    assert code == 0 and "2 document(s) valid" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kind: [unclosed\n", "malformed YAML at line"),
        (
            "apiVersion: accord.dev/v1\nkind: Widget\nmetadata: {name: w}\n",
            "unknown kind 'Widget'; known kinds: Source, Domain",
        ),
        (
            "apiVersion: accord.dev/v1\nkind: Source\nmetadata: {name: s}\nspec: {type: nope}\n",
            "unknown source type 'nope'; known types:",
        ),
        (
            "apiVersion: accord.dev/v1\nkind: Source\nmetadata: {name: s}\n"
            "spec: {type: fake, system: x, sync: {inventoryEvery: soon}}\n",
            "spec.sync.inventoryEvery",
        ),
        (
            "apiVersion: accord.dev/v1\nkind: Source\nmetadata: {name: s}\n"
            "spec: {type: fake, system: x, token: {env: NOT_SET_ANYWHERE_XYZ}}\n",
            "spec.token: secret reference env:NOT_SET_ANYWHERE_XYZ is not allowed: "
            "NOT_SET_ANYWHERE_XYZ does not start with an allowed prefix; references may name "
            "environment variables ACCORD_SECRET_*",
        ),
        (
            "apiVersion: accord.dev/v1\nkind: Source\nmetadata: {name: s}\n"
            "spec: {type: fake, system: x, token: {env: ACCORD_DATABASE_URL}}\n",
            "env:ACCORD_DATABASE_URL is not allowed: ACCORD_DATABASE_URL is one of the "
            "gateway's own settings",
        ),
        (
            "apiVersion: accord.dev/v1\nkind: Source\nmetadata: {name: s}\n"
            "spec: {type: fake, sytem: x}\n",
            "spec.system",
        ),
        (GOOD + "---\n" + GOOD.split("---")[1], "duplicate Domain named 'data'"),
        ("apiVersion: accord.dev/v2\nkind: Domain\nmetadata: {name: d}\n", "apiVersion"),
    ],
)
def test_bad_input_names_file_document_and_field(
    cli: CliRunner, tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    code, out = run(cli, "apply", "-f", path)
    assert code != 0
    flat = " ".join(out.split())
    assert expected in flat and "nothing was changed" in flat
    assert path in flat
    code, out = run(cli, "diff", "-f", write(tmp_path, GOOD, "good.yaml"))
    assert "+ Source/fake-one" in out, "the failed apply changed nothing"


def test_apply_dry_run_diff_prune(cli: CliRunner, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    code, out = run(cli, "apply", "-f", path, "--dry-run")
    assert code == 0 and "dry run" in out
    code, out = run(cli, "diff", "-f", path)
    assert "+ Source/fake-one" in out
    code, out = run(cli, "apply", "-f", path)
    assert code == 0 and "'create': 2" in out
    code, out = run(cli, "diff", "-f", path)
    assert "= Source/fake-one" in out
    only_domain = write(tmp_path, GOOD.split("---")[1], "d.yaml")
    code, out = run(cli, "apply", "-f", only_domain, "--prune")
    assert code == 0 and "- Source/fake-one" in out
    code, out = run(cli, "sources", "list", "--output", "json")
    assert json.loads(out) == []


def test_secret_values_never_reach_the_database(cli: CliRunner, tmp_path: Path) -> None:
    run(cli, "apply", "-f", write(tmp_path, GOOD))
    import sqlite3

    con = sqlite3.connect(tmp_path / "data" / "accord.db")
    dump = "\n".join(con.iterdump())
    con.close()
    assert "t0ken-value" not in dump and '"env": "ACCORD_SECRET_CLI_FAKE_TOKEN"' in dump


def test_sync_and_lists(cli: CliRunner, tmp_path: Path) -> None:
    systems["cli-sys"].start_run("nightly")
    run(cli, "apply", "-f", write(tmp_path, GOOD))
    code, out = run(cli, "sync", "fake-one")
    assert code == 0, out
    code, out = run(cli, "jobs", "list", "--output", "json")
    assert [j["uid"] for j in json.loads(out)] == ["fake-one/nightly"]
    code, out = run(cli, "runs", "list", "--output", "json", "--since", "1h")
    assert [r["state"] for r in json.loads(out)] == ["running"]
    code, out = run(cli, "sources", "list")
    assert code == 0 and "fake-one" in out and "ok" in out
    code, out = run(cli, "runs", "list", "--since", "yesterday-ish")
    assert code != 0 and "neither a duration" in out


def test_sync_with_a_wrong_secret_reports_auth_failure(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(cli, "apply", "-f", write(tmp_path, GOOD))
    monkeypatch.setenv("ACCORD_SECRET_CLI_FAKE_TOKEN", "wrong")
    code, out = run(cli, "sync", "fake-one")
    assert code == 1 and "AdapterAuthError" in out and "wrong" not in out


def test_tokens_lifecycle(cli: CliRunner) -> None:
    code, out = run(
        cli, "tokens", "create", "--subject", "ci-bot", "--role", "operator", "--domain", "data"
    )
    assert code == 0
    token = next(line for line in out.splitlines() if line.startswith("acd_"))
    code, out = run(cli, "tokens", "list", "--output", "json")
    rows = json.loads(out)
    assert rows[0]["subject"] == "ci-bot" and token not in out
    code, out = run(cli, "tokens", "revoke", str(rows[0]["id"]))
    assert code == 0
    code, out = run(cli, "tokens", "list", "--output", "json")
    assert json.loads(out) == []
    code, out = run(cli, "tokens", "create", "--subject", "x", "--role", "wizard")
    assert code != 0 and "unknown role 'wizard'" in out
    code, out = run(cli, "tokens", "revoke", "999")
    assert code != 0 and "no token with id 999" in out


def test_agent_tokens_have_their_kind(cli: CliRunner) -> None:
    code, out = run(
        cli,
        "tokens",
        "create",
        "--subject",
        "agent:copilot",
        "--role",
        "operator",
        "--kind",
        "agent",
    )
    assert code == 0 and "agent token 1 for agent:copilot" in out
    run(cli, "tokens", "create", "--subject", "alice", "--role", "viewer")
    code, out = run(cli, "tokens", "list", "--output", "json")
    assert {r["subject"]: r["kind"] for r in json.loads(out)} == {
        "agent:copilot": "agent",
        "alice": "person",
    }
    code, out = run(cli, "tokens", "create", "--subject", "x", "--role", "viewer", "--kind", "bot")
    assert code != 0 and "unknown token kind 'bot'; known kinds: person, agent" in out
    code, out = run(cli, "tokens", "list", "--output", "json")
    assert len(json.loads(out)) == 2  # nothing created


def test_audit_verify_detects_tampering(cli: CliRunner, tmp_path: Path) -> None:
    import sqlite3

    run(cli, "apply", "-f", write(tmp_path, GOOD))
    run(cli, "tokens", "create", "--subject", "a", "--role", "viewer")
    code, out = run(cli, "audit", "verify")
    assert code == 0 and "audit chain OK: 2 records" in out
    con = sqlite3.connect(tmp_path / "data" / "accord.db")
    con.execute("UPDATE audit_record SET outcome = 'error' WHERE seq = 1")
    con.commit()
    con.close()
    code, out = run(cli, "audit", "verify")
    assert code == 2 and "BROKEN at record 1" in out


def test_schema_and_db_upgrade(cli: CliRunner) -> None:
    code, out = run(cli, "schema")
    schemas = json.loads(out)
    assert code == 0 and {"Source", "Role", "RoleBinding", "Guardrail"} <= set(schemas)
    code, out = run(cli, "schema", "--kind", "Nope")
    assert code != 0 and "unknown kind" in out
    code, out = run(cli, "db", "upgrade")
    assert code == 0 and "up to date" in out


def test_unreachable_database_is_a_clear_error(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "ACCORD_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    )
    code, out = run(cli, "db", "upgrade")
    assert code == 1 and "cannot reach the database" in out
