"""The read path: lists serialized from rows, conditional and compressed answers, and the
streamed export of runs (NDJSON and CSV), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session

from adapters.testing.fake import FakeSystem, systems
from gateway.actions import JOB_ACTIONS, RUN_ACTIONS
from gateway.api import export
from gateway.api.app import create_app
from gateway.api.convert import audit_public, job_public, run_public
from gateway.api.deps import Principal
from gateway.api.routes.common import allowed_actions_by_target
from gateway.api.schemas import LineagePublic
from gateway.audit import list_records
from gateway.authz import load_policy
from gateway.model import RunState, Trigger
from gateway.model.records import RunRecord
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services import queries
from gateway.store.services.ingest import upsert_runs
from gateway.store.services.tokens import create_token
from gateway.sync import SyncManager

from .conftest import SOURCES, Api, apply_yaml

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
MESSAGES = [None, 'quote " backslash \\ tab \t', "émoji ✓ 日本", "line\nbreak", "</script>"]


def _records(job: str, n: int, offset: int) -> list[RunRecord]:
    states = [RunState.SUCCESS, RunState.FAILED, RunState.RUNNING, RunState.QUEUED]
    out = []
    for i in range(n):
        state = states[i % len(states)]
        start = T0 + timedelta(minutes=offset + i, microseconds=(i * 137_001) % 1_000_000)
        if i % 5 == 0:
            start = start.replace(microsecond=0)  # whole seconds: no fraction in the JSON
        out.append(
            RunRecord(
                native_id=f"{job}-{i}",
                job_native_id=job,
                state=state,
                native_state=state.value.upper(),
                trigger=Trigger.SCHEDULE if i % 2 else Trigger.MANUAL,
                actor="ann" if i % 3 == 0 else None,
                queued_at=start - timedelta(seconds=3) if i % 4 else None,
                started_at=None if state == RunState.QUEUED else start,
                ended_at=start + timedelta(seconds=i % 7, microseconds=250_000 * (i % 4))
                if state in (RunState.SUCCESS, RunState.FAILED)
                else None,
                attempt=1 + i % 2,
                url=f"https://ci.example.com/{job}/{i}" if i % 2 else None,
                message=MESSAGES[i % len(MESSAGES)],
            )
        )
    return out


@pytest.fixture
def read_api(any_engine: Engine, tmp_path: Path) -> Iterator[Api]:
    data, ops = FakeSystem("api-data"), FakeSystem("api-ops")
    data.add_job("etl_orders", produces=["orders"])
    data.add_job("finance_report", upstream=["etl_orders"], consumes=["orders"])
    ops.add_job("db-backup")
    systems.update({"api-data": data, "api-ops": ops})
    apply_yaml(any_engine, SOURCES)
    # A role scoped to some jobs: its allowed actions differ between jobs of one domain.
    apply_yaml(
        any_engine,
        """apiVersion: accord.dev/v1
kind: Role
metadata: {name: orders-operator}
spec:
  rules:
    - {actions: [read], objects: ["*"]}
    - {actions: [cancel, retry, trigger], objects: ["fake-data/etl_*"]}
---
apiVersion: accord.dev/v1
kind: RoleBinding
metadata: {name: orders}
spec: {role: orders-operator, subjects: [olga], domains: [data]}
""",
    )
    tokens: dict[str, str] = {}
    with session_scope(any_engine) as s:
        for who, role, dom in [
            ("admin", "admin", "*"),
            ("op-data", "operator", "data"),
            ("viewer-ops", "viewer", "ops"),
            ("agent", "agent", "*"),
            ("olga", "viewer", "data"),
        ]:
            tokens[who] = create_token(s, subject=who, role=role, domain=dom).token
    settings = Settings(data_dir=tmp_path / "data")
    app = create_app(settings, engine=any_engine, start_sync=False)
    with TestClient(app) as client:
        import anyio

        mgr = SyncManager(any_engine)
        for src in ("fake-data", "fake-ops"):
            assert anyio.run(mgr.sync_now, src).error is None
        with session_scope(any_engine) as s:
            upsert_runs(
                s,
                source="fake-data",
                domain="data",
                records=_records("etl_orders", 40, 0) + _records("finance_report", 25, 7),
            )
            upsert_runs(s, source="fake-ops", domain="ops", records=_records("db-backup", 30, 3))
        yield Api(client, any_engine, tokens, {"data": data, "ops": ops})
    systems.pop("api-data", None)
    systems.pop("api-ops", None)


def _all_pages(api: Api, who: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {**params, "limit": 17, **({"cursor": cursor} if cursor else {})}
        body = api.get(who, "/api/v1/runs", params=q).json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def _principal(session: Session, who: str) -> Principal:
    """The subject as the current policy sees it (what the API authorizes with)."""
    policy = load_policy(session)
    return Principal(who, None, "api", policy, policy.grants(who))


def test_list_items_equal_the_response_model(read_api: Api) -> None:
    """Every field of every listed run is what RunPublic (the declared schema) gives."""
    for who in ("admin", "op-data", "viewer-ops", "olga"):
        items = _all_pages(read_api, who)
        assert items, who
        with Session(read_api.engine) as s:
            principal = _principal(s, who)
            rows = queries.list_runs(
                s, visible=principal.visible(), filt=queries.RunFilter(), limit=1000
            ).items
            allowed = allowed_actions_by_target(
                s, principal, ((r.uid, r.source, r.domain, r.job_uid) for r in rows), RUN_ACTIONS
            )
            expected = [run_public(r, allowed=allowed[r.uid]).model_dump(mode="json") for r in rows]
        assert items == expected, who
    # Roles see what their grants give: the ops viewer may do nothing, the data operator
    # may act on data runs only.
    assert {a for r in _all_pages(read_api, "viewer-ops") for a in r["allowed_actions"]} == set()
    op = _all_pages(read_api, "op-data")
    assert {r["domain"] for r in op} == {"data"} and any(r["allowed_actions"] for r in op)
    # A grant that names jobs decides per job, not per domain.
    by_job: dict[str, set[str]] = {}
    for r in _all_pages(read_api, "olga"):
        by_job.setdefault(r["job_uid"], set()).update(r["allowed_actions"])
    assert by_job["fake-data/finance_report"] == set()
    assert by_job["fake-data/etl_orders"] & {"cancel", "retry"}


def _pages(api: Api, who: str, path: str, cursor_param: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {"limit": 7, **({cursor_param: cursor} if cursor else {})}
        r = api.get(who, path, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_job_and_audit_lists_equal_the_response_model(read_api: Api) -> None:
    """The jobs and audit lists, serialized from rows, give every field the declared
    schemas (JobPublic, AuditRecordPublic) give, with the same allowed actions."""
    for who in ("admin", "op-data", "viewer-ops", "olga"):
        jobs = _pages(read_api, who, "/api/v1/jobs", "cursor")
        audit = _pages(read_api, who, "/api/v1/audit", "before")
        with Session(read_api.engine) as s:
            principal = _principal(s, who)
            rows = queries.list_jobs(
                s, visible=principal.visible(), filt=queries.JobFilter(), limit=1000
            ).items
            allowed = allowed_actions_by_target(
                s, principal, ((j.uid, j.source, j.domain, j.uid) for j in rows), JOB_ACTIONS
            )
            want_jobs = [job_public(j, allowed[j.uid]).model_dump(mode="json") for j in rows]
            grants = principal.grants
            records = list_records(
                s,
                read=lambda c, g=grants: g.predicate("read", c, None),
                export=lambda c, g=grants: g.predicate("export-audit", c, None),
                limit=1000,
            )
            want_audit = [audit_public(r).model_dump(mode="json") for r in records]
        assert jobs == want_jobs, who
        # Reading the audit trail may itself be audited: compare what both saw.
        seqs = {r["seq"] for r in audit}
        assert [r for r in want_audit if r["seq"] in seqs] == audit, who
        assert jobs or who == "viewer-ops"
    olga = {
        j["uid"]: set(j["allowed_actions"])
        for j in _pages(read_api, "olga", "/api/v1/jobs", "cursor")
    }
    assert olga["fake-data/finance_report"] == set() != olga["fake-data/etl_orders"]


def test_lineage_answers_are_what_the_schema_gives(read_api: Api) -> None:
    """The lineage graph, serialized from rows, is exactly its declared schema's form."""
    for who in ("admin", "op-data", "olga"):
        estate = read_api.get(who, "/api/v1/lineage").json()
        assert estate["nodes"], who
        assert LineagePublic.model_validate(estate).model_dump(mode="json") == estate
        job = estate["nodes"][0]["uid"]
        rooted = read_api.get(who, "/api/v1/lineage", params={"job": job}).json()
        assert rooted["root"] == job and job in {n["uid"] for n in rooted["nodes"]}
        assert LineagePublic.model_validate(rooted).model_dump(mode="json") == rooted
    assert {n["domain"] for n in read_api.get("op-data", "/api/v1/lineage").json()["nodes"]} <= {
        "data",
        None,
    }
    missing = read_api.get("admin", "/api/v1/lineage", params={"job": "no/such"})
    assert missing.status_code == 404 and "no job" in missing.json()["error"]["message"]


def test_etag_and_304(read_api: Api) -> None:
    first = read_api.get("admin", "/api/v1/runs", params={"limit": 5})
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    again = read_api.client.get(
        "/api/v1/runs",
        params={"limit": 5},
        headers={**read_api.as_("admin"), "If-None-Match": etag},
    )
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    # Details too; another page or another change gives another tag and a full answer.
    uid = first.json()["items"][0]["uid"]
    detail = read_api.get("admin", f"/api/v1/runs/{uid}")
    assert detail.status_code == 200 and detail.headers["etag"] != etag
    other = read_api.client.get(
        "/api/v1/runs",
        params={"limit": 6},
        headers={**read_api.as_("admin"), "If-None-Match": etag},
    )
    assert other.status_code == 200 and len(other.json()["items"]) == 6
    with session_scope(read_api.engine) as s:
        upsert_runs(s, source="fake-ops", domain="ops", records=_records("db-backup", 1, 10_000))
    changed = read_api.client.get(
        "/api/v1/runs",
        params={"limit": 5},
        headers={**read_api.as_("admin"), "If-None-Match": etag},
    )
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    # Errors carry no tag.
    assert "etag" not in read_api.get("admin", "/api/v1/runs/nope").headers


def test_large_lists_are_gzipped_small_ones_not(read_api: Api) -> None:
    big = read_api.client.get(
        "/api/v1/runs",
        params={"limit": 100},
        headers={**read_api.as_("admin"), "Accept-Encoding": "gzip"},
    )
    assert big.headers["content-encoding"] == "gzip"
    assert int(big.headers["content-length"]) < len(big.content) / 3
    small = read_api.client.get(
        "/api/v1/runs",
        params={"limit": 1},
        headers={**read_api.as_("admin"), "Accept-Encoding": "gzip"},
    )
    assert "content-encoding" not in small.headers
    export_resp = read_api.client.get(
        "/api/v1/runs/export", headers={**read_api.as_("admin"), "Accept-Encoding": "gzip"}
    )
    assert export_resp.status_code == 200 and "content-encoding" not in export_resp.headers
    assert "etag" not in export_resp.headers


@pytest.mark.parametrize("who", ["admin", "op-data", "viewer-ops", "olga"])
def test_export_ndjson_equals_the_list(
    read_api: Api, who: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CHUNK", 7)  # many chunks: the keyset must not skip or repeat
    listed = _all_pages(read_api, who)
    resp = read_api.get(who, "/api/v1/runs/export")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    lines = resp.text.splitlines()
    assert [json.loads(line) for line in lines] == listed
    # The same filters as the list.
    since = (T0 + timedelta(minutes=20)).isoformat()
    params = {"state": "failed,success", "since": since}
    filtered = read_api.get(who, "/api/v1/runs/export", params=params).text.splitlines()
    assert [json.loads(line) for line in filtered] == _all_pages(read_api, who, **params)
    for cap in (1, 7, 10, 14):  # within a chunk, at its end, across chunks
        capped = read_api.get(who, "/api/v1/runs/export", params={"limit": cap}).text
        assert [json.loads(line) for line in capped.splitlines()] == listed[:cap], cap


def test_export_decides_actions_for_runs_whose_job_moved(
    read_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the export's lines, actions included, are built by the database from the
    jobs' (source, domain) pairs; runs kept under a domain no job has any more (their jobs
    moved) are still exported with the actions the list gives them."""
    monkeypatch.setattr(export, "CHUNK", 11)
    with session_scope(read_api.engine) as s:
        s.execute(text("UPDATE job SET domain = 'platform' WHERE source = 'fake-ops'"))
    for who in ("admin", "op-data"):
        listed = _all_pages(read_api, who)
        lines = read_api.get(who, "/api/v1/runs/export").text.splitlines()
        assert [json.loads(line) for line in lines] == listed, who
    moved = [r for r in _all_pages(read_api, "admin") if r["source"] == "fake-ops"]
    assert moved and all(r["domain"] == "ops" and r["allowed_actions"] for r in moved)


def test_export_csv_equals_the_list(read_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "CHUNK", 9)
    listed = _all_pages(read_api, "op-data")
    resp = read_api.get("op-data", "/api/v1/runs/export", params={"format": "csv"})
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert len(rows) == len(listed)
    for row, item in zip(rows, listed, strict=True):
        assert row["uid"] == item["uid"]
        assert row["message"] == (item["message"] or "")
        assert row["allowed_actions"].split() == item["allowed_actions"]
        assert row["started_at"] == (item["started_at"] or "")
        got = float(row["duration_s"]) if row["duration_s"] else None
        assert got == item["duration_s"]
        assert row["cancelled_through_accord"] == str(item["cancelled_through_accord"]).lower()


def test_export_honours_domain_authorization(read_api: Api) -> None:
    ops = read_api.get("viewer-ops", "/api/v1/runs/export").text.splitlines()
    assert ops and {json.loads(line)["domain"] for line in ops} == {"ops"}
    # Asking for another domain gives nothing, not an error that says what is there.
    other = read_api.get("viewer-ops", "/api/v1/runs/export", params={"domain": "data"})
    assert other.status_code == 200 and other.text == ""
    assert read_api.client.get("/api/v1/runs/export").status_code == 401
    bad = read_api.get("admin", "/api/v1/runs/export", params={"format": "xml"})
    assert bad.status_code == 422


def test_export_is_gzip_free_even_when_large(read_api: Api) -> None:
    body = read_api.client.get(
        "/api/v1/runs/export", headers={**read_api.as_("admin"), "Accept-Encoding": "gzip"}
    ).content
    with pytest.raises(gzip.BadGzipFile):
        gzip.decompress(body)
    assert body.count(b"\n") == 95


def test_cli_streams_large_json_results(api: Api, live_url: str) -> None:
    """``accord runs list -o json --all`` streams the export: stdout is one JSON array
    equal to the paged list, the count goes to stderr."""
    from typer.testing import CliRunner

    from gateway.cli.app import app

    for i in range(30):
        api.systems["data"].start_run("etl_orders", at=T0 + timedelta(minutes=i))
    api.sync("fake-data")
    listed = _all_pages(api, "op-data")
    assert len(listed) > 30
    res = CliRunner().invoke(
        app,
        ["runs", "list", "--server", live_url, "--token", api.tokens["op-data"], "-o", "json",
         "--all"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == listed
    assert f"{len(listed)} runs" in res.stderr
    capped = CliRunner().invoke(
        app,
        ["runs", "list", "--server", live_url, "--token", api.tokens["op-data"], "-o", "json",
         "--limit", "1500", "--state", "running"],
    )  # fmt: skip
    assert capped.exit_code == 0, capped.output
    assert json.loads(capped.stdout) == [r for r in listed if r["state"] == "running"]
    denied = CliRunner().invoke(
        app, ["runs", "list", "--server", live_url, "--token", "acd_bad", "-o", "json", "--all"]
    )
    assert denied.exit_code == 1 and "401" in denied.output


@pytest.mark.parametrize("version", [(3, 37, 2), (3, 40, 1)])
def test_sqlite_durations_are_exact_with_and_without_unixepoch(
    version: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export's duration (SQLite builds it) equals Python's to the microsecond, with
    the expression for SQLite before 3.38 (no unixepoch) as with the newer one."""
    import sqlite3

    from sqlalchemy import column, select
    from sqlalchemy.dialects import sqlite

    monkeypatch.setattr(sqlite3, "sqlite_version_info", version)
    expr = export._micros_between(column("s"), column("e"))
    sql = str(
        select(expr).compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    )
    assert ("unixepoch" in sql) == (version >= (3, 38))
    pairs = [
        (T0, T0 + timedelta(seconds=1, microseconds=250_000)),
        (T0.replace(microsecond=999_999), T0 + timedelta(seconds=2)),
        (T0, T0 + timedelta(days=40, microseconds=1)),  # across months
        (datetime(2026, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ]
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (s TEXT, e TEXT)")
    fmt = "%Y-%m-%d %H:%M:%S.%f"  # as the store writes them
    db.executemany(
        "INSERT INTO t VALUES (?, ?)", [(a.strftime(fmt), b.strftime(fmt)) for a, b in pairs]
    )
    got = [row[0] for row in db.execute(sql + " FROM t")]
    assert got == [round((b - a).total_seconds() * 1_000_000) for a, b in pairs]
