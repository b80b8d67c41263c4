"""The CLI against a live gateway: approvals, lists, remote apply, policy explanations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.app import app
from gateway.store import session_scope
from gateway.store.services.tokens import create_token

from .conftest import Api, apply_yaml


def cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def test_approvals_through_the_cli(api: Api, live_url: str) -> None:
    apply_yaml(
        api.engine,
        """
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {name: four-eyes}
spec: {type: approval, selector: {domains: [data]}, actions: [pause]}
""",
    )
    with session_scope(api.engine) as s:
        bob = create_token(s, subject="bob", role="approver", domain="data").token
    r = api.post("op-data", "/api/v1/jobs/fake-data/nightly-vacuum/pause")
    req = r.json()["approval_id"]
    code, out = cli("approvals", "list", "--server", live_url, "--token", bob, "-o", "json")
    assert code == 0 and [x["id"] for x in json.loads(out)] == [req]
    code, out = cli(
        "approvals",
        "approve",
        str(req),
        "--reason",
        "ok",
        "--server",
        live_url,
        "--token",
        api.tokens["op-data"],
    )
    assert code == 1 and "403" in out
    code, out = cli("approvals", "approve", str(req), "--server", live_url, "--token", bob)
    assert code == 0 and "approved" in out and "action: ok" in out
    assert api.systems["data"].jobs["nightly-vacuum"]["paused"] is True
    code, out = cli("approvals", "list")
    assert code == 1 and "--server" in out


def test_remote_lists_and_apply(api: Api, live_url: str, tmp_path: Path) -> None:
    tok = api.tokens["viewer-ops"]
    code, out = cli("jobs", "list", "--server", live_url, "--token", tok, "-o", "json")
    assert [j["uid"] for j in json.loads(out)] == ["fake-ops/db-backup"]
    code, out = cli("runs", "list", "--server", live_url, "--token", tok, "-o", "json")
    assert code == 0 and {r["domain"] for r in json.loads(out)} == {"ops"}
    doc = tmp_path / "d.yaml"
    doc.write_text("apiVersion: accord.dev/v1\nkind: Domain\nmetadata: {name: risk}\n")
    code, out = cli("apply", "-f", str(doc), "--server", live_url, "--token", tok)
    assert code == 1 and "403" in out
    code, out = cli("apply", "-f", str(doc), "--server", live_url, "--token", api.tokens["admin"])
    assert code == 0 and "+ Domain/risk" in out
    code, out = cli("jobs", "list", "--server", live_url, "--token", "acd_bad")
    assert code == 1 and "401" in out
    code, out = cli("jobs", "list", "--server", "http://127.0.0.1:9", "--token", "x")
    assert code == 1 and "cannot reach" in out


def test_policy_check_explains(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(api.engine.url)
    monkeypatch.setenv("ACCORD_DATABASE_URL", url)
    code, out = cli("policy", "check", "op-data", "trigger", "fake-data/etl_orders")
    assert code == 0 and "ALLOW" in out and "p, operator, *, *, trigger, allow" in out
    assert "casbin enforce agrees: yes" in out
    code, out = cli("policy", "check", "viewer-ops", "trigger", "fake-ops/db-backup")
    assert code == 3 and "DENY" in out and "no rule allows" in out
    code, out = cli("violations", "list", "-o", "json")
    assert code == 0 and json.loads(out) == []
    code, out = cli("compliance-check")
    assert code == 0 and "0 rules over 4 jobs" in out
