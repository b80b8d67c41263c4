"""Bad SLA / Notifier documents at validate; the forecast and SLA APIs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import yaml

from gateway.config import load_documents
from tests.api.conftest import Api, apply_yaml

BAD = """
apiVersion: accord.dev/v1
kind: SLA
metadata: {name: late-report}
spec: {selector: {domains: [data]}, finishBy: "6h30", timezone: Europe/Berlin}
---
apiVersion: accord.dev/v1
kind: SLA
metadata: {name: moon-report}
spec: {selector: {domains: [data]}, startBy: "06:30", timezone: Moon/Base}
---
apiVersion: accord.dev/v1
kind: Notifier
metadata: {name: leaky}
spec: {type: slack, urlFrom: {env: HOME}}
"""


def test_bad_input_names_file_document_and_field() -> None:
    docs = [("slas.yaml", i, d) for i, d in enumerate(yaml.safe_load_all(BAD), 1)]
    res = load_documents(docs)
    errors = {(e.file, e.document, e.path): str(e) for e in res.errors}
    assert ("slas.yaml", 1, "spec.finishBy") in errors
    assert "not a time of day: '6h30'" in errors[("slas.yaml", 1, "spec.finishBy")]
    assert "SLA/late-report" in errors[("slas.yaml", 1, "spec.finishBy")]
    assert "unknown time zone 'Moon/Base'" in errors[("slas.yaml", 2, "spec.timezone")]
    leaky = errors[("slas.yaml", 3, "spec.urlFrom")]
    assert "Notifier/leaky" in leaky and "env:HOME is not allowed" in leaky


def test_forecast_and_sla_api_filtered_by_authorization(api: Api) -> None:
    api.systems["data"].jobs["etl_orders"]["schedule"] = "0 * * * *"
    api.systems["ops"].jobs["db-backup"]["schedule"] = "30 2 * * *"
    api.sync("fake-data")
    api.sync("fake-ops")
    anyio.run(api.client.app.state.evaluator.run_once)  # type: ignore[attr-defined]  # the loop's cycle
    r = api.get("admin", "/api/v1/forecast")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    uids = [i["job_uid"] for i in body["items"]]
    assert uids.count("fake-data/etl_orders") == 24
    assert uids.count("fake-ops/db-backup") == 1
    assert all(i["basis"] == "schedule" for i in body["items"])
    r = api.get("viewer-ops", "/api/v1/forecast")
    assert {i["job_uid"] for i in r.json()["items"]} == {"fake-ops/db-backup"}
    r = api.get("admin", "/api/v1/forecast", params={"source": "fake-data", "q": "etl"})
    assert {i["job_uid"] for i in r.json()["items"]} == {"fake-data/etl_orders"}
    now = datetime.now(UTC)
    r = api.get(
        "admin",
        "/api/v1/forecast",
        params={"from": (now + timedelta(days=2)).isoformat(), "to": now.isoformat()},
    )
    assert r.status_code == 422
    apply_yaml(
        api.engine,
        """
apiVersion: accord.dev/v1
kind: SLA
metadata: {name: fresh-orders, domain: data}
spec: {selector: {jobs: ["fake-data/etl_*"]}, maxAge: 1h}
""",
    )
    anyio.run(api.client.app.state.evaluator.run_once)  # type: ignore[attr-defined]
    slas = api.get("admin", "/api/v1/slas").json()
    assert [(s["sla"], s["job_uid"], s["state"]) for s in slas] == [
        ("fresh-orders", "fake-data/etl_orders", "breached")
    ]
    assert slas[0]["reason"] == "no successful run recorded"
    assert api.get("viewer-ops", "/api/v1/slas").json() == []
