from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.app import app


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


@pytest.fixture
def keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    key = tmp_path / "signing.pem"
    code, out = run("audit", "keygen", "--output", str(key))
    assert code == 0 and "public key:" in out
    monkeypatch.setenv("ACCORD_AUDIT_SIGNING_KEY_FILE", str(key))
    for i in range(5):
        run(
            "tokens",
            "create",
            "--subject",
            f"user{i}",
            "--role",
            "viewer",
            "--domain",
            "data" if i % 2 else "ops",
        )
    return tmp_path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "ocsf"])
def test_export_verifies_offline_and_fails_after_one_byte_changes(keyed: Path, fmt: str) -> None:
    out_file = keyed / f"audit.{fmt}"
    code, out = run("audit", "export", "--format", fmt, "--output", str(out_file))
    assert code == 0, out
    manifest = json.loads(out_file.with_name(out_file.name + ".manifest.json").read_text())
    assert manifest["count"] == 5 and manifest["first_seq"] == 1 and manifest["last_seq"] == 5
    code, out = run("audit", "verify-export", str(out_file))
    assert code == 0 and "export verified" in out
    data = bytearray(out_file.read_bytes())
    i = data.index(b"user3")
    data[i + 4] = ord("9")
    out_file.write_bytes(bytes(data))
    code, out = run("audit", "verify-export", str(out_file))
    assert code == 2 and "SHA-256 does not match" in out


def test_changed_manifest_and_untrusted_key_are_detected(keyed: Path) -> None:
    out_file = keyed / "a.jsonl"
    run("audit", "export", "--output", str(out_file))
    mpath = out_file.with_name("a.jsonl.manifest.json")
    m = json.loads(mpath.read_text())
    code, out = run("audit", "verify-export", str(out_file), "--public-key", "AAAA")
    assert code == 2 and "key other than the trusted one" in out
    m["count"] = 4
    mpath.write_text(json.dumps(m))
    code, out = run("audit", "verify-export", str(out_file))
    assert code == 2 and "signature does not verify" in out


def test_export_by_domain_and_time(keyed: Path) -> None:
    out_file = keyed / "d.jsonl"
    code, _ = run("audit", "export", "--output", str(out_file), "--domain", "data")
    assert code == 0
    rows = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert {r["domain"] for r in rows} == {"data"} and len(rows) == 2
    code, _ = run("audit", "export", "--output", str(out_file), "--since", "2999-01-01")
    assert json.loads(out_file.with_name("d.jsonl.manifest.json").read_text())["count"] == 0


def _key_line(printed: str) -> str:
    """The printed key (stdout), without the note about it (stderr)."""
    [key] = [x.strip() for x in printed.splitlines() if x.strip() and "ed25519" not in x]
    return key


def test_a_fresh_installation_signs_with_its_own_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("ACCORD_DATA_DIR", str(data))
    monkeypatch.delenv("ACCORD_DATABASE_URL", raising=False)
    monkeypatch.delenv("ACCORD_AUDIT_SIGNING_KEY_FILE", raising=False)
    out_file = tmp_path / "x.jsonl"
    code, out = run("audit", "export", "--output", str(out_file))
    assert code == 0, out
    key_file = data / "audit-signing-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    code, printed = run("audit", "public-key")
    assert code == 0, printed
    public = _key_line(printed)
    assert json.loads(out_file.with_name("x.jsonl.manifest.json").read_text())["public_key"] == (
        public
    )
    assert str(key_file) in printed
    # the same key on the next use: it was made once
    assert _key_line(run("audit", "public-key")[1]) == public

    code, out = run("audit", "verify-export", str(out_file))
    assert code == 0 and "key embedded in its manifest" in out and "not against a key" in out
    code, out = run("audit", "verify-export", str(out_file), "--public-key", public)
    assert code == 0 and f"verified against the trusted key {public}" in out


def test_a_configured_key_is_used_instead_of_the_installation_key(keyed: Path) -> None:
    code, printed = run("audit", "public-key")
    assert code == 0 and "configured key" in printed
    assert not (keyed / "data" / "audit-signing-key.pem").exists()
    out_file = keyed / "c.jsonl"
    assert run("audit", "export", "--output", str(out_file))[0] == 0
    public = _key_line(printed)
    code, out = run("audit", "verify-export", str(out_file), "--public-key", public)
    assert code == 0, out


def test_an_unreadable_configured_key_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ACCORD_AUDIT_SIGNING_KEY_FILE", str(tmp_path / "missing.pem"))
    code, out = run("audit", "export", "--output", str(tmp_path / "x.jsonl"))
    assert code == 1 and "cannot load the audit signing key" in out
    assert not (tmp_path / "x.jsonl").exists()
