from __future__ import annotations

import io
import json
import logging
import zipfile
from pathlib import Path

import pytest

from .conftest import Api


def test_api_export_zip_is_filtered_and_verifiable(api: Api, tmp_path: Path) -> None:
    from gateway.audit.export import generate_key, verify_export

    key = tmp_path / "k.pem"
    generate_key(key)
    api.client.app.state.settings.audit_signing_key_file = key  # type: ignore[attr-defined]
    api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger")
    api.post("admin", "/api/v1/jobs/fake-ops/db-backup/trigger")
    assert api.get("op-data", "/api/v1/audit/export").status_code == 403
    from gateway.store import session_scope
    from gateway.store.services.tokens import create_token

    with session_scope(api.engine) as s:
        api.tokens["auditor-ops"] = create_token(
            s, subject="aud", role="auditor", domain="ops"
        ).token
    r = api.get("auditor-ops", "/api/v1/audit/export", params={"format": "jsonl"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        names = sorted(z.namelist())
        z.extractall(tmp_path / "x")
    records = tmp_path / "x" / names[0]
    rows = [json.loads(x) for x in records.read_text().splitlines()]
    assert rows and {x["domain"] for x in rows} == {"ops"}, "an auditor of ops sees only ops"
    assert verify_export(records) == []


def test_secrets_never_leak(api: Api, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """Token values and secret values appear in no response, audit record, export or log."""
    from gateway.audit.export import generate_key
    from gateway.model import AdapterAuthError

    caplog.set_level(logging.DEBUG)
    secret_param = "pa55-w0rd-value"
    api.post(
        "admin",
        "/api/v1/jobs/fake-ops/db-backup/trigger",
        json={"params": {"password": secret_param}},
    )
    api.systems["data"].fault = AdapterAuthError("rejected")
    api.post("op-data", "/api/v1/jobs/fake-data/etl_orders/trigger")
    api.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {api.tokens['admin']}x"})
    key = tmp_path / "k.pem"
    generate_key(key)
    api.client.app.state.settings.audit_signing_key_file = key  # type: ignore[attr-defined]
    blobs = [
        api.get("admin", "/api/v1/audit", params={"limit": 1000}).text,
        api.get("admin", "/api/v1/sources").text,
        api.get("admin", "/api/v1/me").text,
        api.get("admin", "/api/v1/audit/export").content.decode("latin-1"),
        caplog.text,
    ]
    for blob in blobs:
        for tok in api.tokens.values():
            assert tok not in blob and tok[4:] not in blob
        assert secret_param not in blob
