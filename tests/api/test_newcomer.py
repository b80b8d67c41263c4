"""What a newcomer notices first: offline API docs, list items that say what is allowed,
filters that refuse nonsense, the README's API promises (lineage, relative times), and
the metrics token setting."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.settings import Settings

from .conftest import Api

_URL = re.compile(
    r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)|(https?://[^\s"'<>]+)"""
)


def _references(html: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in _URL.finditer(html)]


def test_api_docs_pages_load_everything_from_the_gateway(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        res = api.client.get(page)
        assert res.status_code == 200, page
        refs = _references(res.text)
        external = [r for r in refs if r.startswith(("http:", "https:", "//"))]
        assert not external, f"{page} loads from other hosts: {external}"
        scripts = re.findall(r"<script[^>]*src=['\"]([^'\"]+)", res.text)
        assert scripts, f"{page} has no script of its own"
        for ref in refs:
            if ref.startswith("/"):
                asset = api.client.get(ref)
                assert asset.status_code == 200, ref
                assert len(asset.content) > 100, ref
    js = api.client.get("/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"]
    assert len(js.content) > 500_000  # the real Swagger UI bundle, not a placeholder
    # The page points Swagger UI at this gateway's own OpenAPI document.
    assert "'/openapi.json'" in api.client.get("/docs").text


def test_list_items_carry_the_same_allowed_actions_as_details(api: Api) -> None:
    for who in ("admin", "op-data", "viewer-ops"):
        jobs = api.get(who, "/api/v1/jobs").json()["items"]
        assert jobs
        for job in jobs:
            detail = api.get(who, f"/api/v1/jobs/{job['uid']}").json()
            assert job["allowed_actions"] == detail["allowed_actions"], (who, job["uid"])
        runs = api.get(who, "/api/v1/runs").json()["items"]
        for run in runs:
            detail = api.get(who, f"/api/v1/runs/{run['uid']}").json()
            assert run["allowed_actions"] == detail["allowed_actions"], (who, run["uid"])
    admin_jobs = api.get("admin", "/api/v1/jobs").json()["items"]
    assert all(j["allowed_actions"] == ["trigger", "pause", "resume"] for j in admin_jobs)
    admin_runs = api.get("admin", "/api/v1/runs").json()["items"]
    assert admin_runs and all(r["allowed_actions"] for r in admin_runs)
    viewer = api.get("viewer-ops", "/api/v1/jobs").json()["items"]
    assert viewer and all(j["allowed_actions"] == [] for j in viewer)


def test_unknown_filter_values_answer_422_naming_the_allowed_ones(api: Api) -> None:
    for path, params, allowed in (
        ("/api/v1/jobs", {"state": "exploded"}, "queued"),
        ("/api/v1/runs", {"state": "failed,exploded"}, "cancelled"),
        ("/api/v1/audit", {"decision": "maybe"}, "deny"),
        ("/api/v1/approvals", {"status": "lost"}, "expired"),
        ("/api/v1/violations", {"severity": "apocalyptic"}, "critical"),
        ("/api/v1/lineage", {"direction": "sideways"}, "down"),
    ):
        res = api.get("admin", path, params=params)
        assert res.status_code == 422, (path, res.text)
        err = res.json()["error"]
        assert err["code"] == "invalid_request"
        assert allowed in err["message"], err
        bad_value = next(iter(params.values())).split(",")[-1]
        assert bad_value in err["message"], err

    ok = api.get("admin", "/api/v1/runs", params={"state": "failed,running"})
    assert ok.status_code == 200 and ok.json()["items"]


def test_integers_beyond_64_bits_answer_422_not_500(api: Api) -> None:
    res = api.get("admin", "/api/v1/audit", params={"before": "3246627002283745601388544"})
    assert res.status_code == 422 and res.json()["error"]["code"] == "invalid_request"
    res = api.post("admin", "/api/v1/approvals/12345678901234567890123456789/approve")
    assert res.status_code == 422 and "request_id" in res.json()["error"]["message"]
    last = api.get("admin", "/api/v1/audit", params={"before": 2**63 - 1})
    assert last.status_code == 200


def test_every_integer_parameter_has_a_64_bit_range(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    unbounded = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                schema = p["schema"]
                options = schema.get("anyOf", [schema])
                for s in options:
                    if s.get("type") != "integer":
                        continue
                    lo, hi = s.get("minimum"), s.get("maximum")
                    if lo is None or hi is None or lo < -(2**63) or hi > 2**63 - 1:
                        unbounded.append(f"{method.upper()} {path} {p['name']}")
    assert not unbounded, unbounded


def test_lineage_without_a_job_is_the_whole_estate_with_a_node_limit(api: Api) -> None:
    res = api.get("admin", "/api/v1/lineage")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["root"] is None and body["truncated"] is False
    assert {n["uid"] for n in body["nodes"]} >= {"fake-data/finance_report", "fake-data/etl_orders"}
    assert {(e["src"], e["dst"], e["kind"]) for e in body["edges"]} >= {
        ("fake-data/etl_orders", "fake-data/finance_report", "depends_on")
    }
    small = api.get("admin", "/api/v1/lineage", params={"limit": 1}).json()
    assert small["truncated"] is True and len(small["nodes"]) <= 1 and small["edges"] == []
    # A subject who cannot read the data domain sees none of its edges.
    hidden = api.get("viewer-ops", "/api/v1/lineage").json()
    assert not any(n["uid"].startswith("fake-data/") for n in hidden["nodes"])
    rooted = api.get("admin", "/api/v1/lineage", params={"job": "fake-data/finance_report"})
    assert rooted.json()["root"] == "fake-data/finance_report"


def test_since_accepts_durations_like_the_cli(api: Api) -> None:
    recent = api.get("admin", "/api/v1/runs", params={"since": "24h"})
    assert recent.status_code == 200, recent.text
    assert len(recent.json()["items"]) == 3
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert api.get("admin", "/api/v1/runs", params={"since": future}).json()["items"] == []
    naive = api.get("admin", "/api/v1/runs", params={"since": "2000-01-01T00:00:00"})
    assert len(naive.json()["items"]) == 3
    assert api.get("admin", "/api/v1/runs", params={"until": "1m"}).json()["items"] == []
    epoch = api.get("admin", "/api/v1/runs", params={"since": "946684800"})  # 2000-01-01
    assert epoch.status_code == 200 and len(epoch.json()["items"]) == 3
    bad = api.get("admin", "/api/v1/runs", params={"since": "yesterday"})
    assert bad.status_code == 422
    assert "24h" in bad.json()["error"]["message"]
    audit = api.get("admin", "/api/v1/audit", params={"since": "7d"})
    assert audit.status_code == 200
    stats = api.get("admin", "/api/v1/stats/runs", params={"since": "24h"})
    assert stats.status_code == 200 and sum(r["count"] for r in stats.json()) == 3


def test_metrics_can_require_a_token(api: Api, tmp_path: Path) -> None:
    assert api.client.get("/metrics").status_code == 200
    settings = Settings(data_dir=tmp_path / "locked", metrics_token_required=True)
    app = create_app(settings, engine=api.engine, start_sync=False)
    with TestClient(app) as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        bad = client.get("/metrics", headers={"Authorization": "Bearer acd_nope"})
        assert bad.status_code == 401
        ok = client.get("/metrics", headers=api.as_("viewer-ops"))
        assert ok.status_code == 200 and "accord_jobs" in ok.text
        assert client.get("/healthz").status_code == 200
