"""OpenLineage in: RunEvents sent to an ``openlineage`` source become jobs, runs and
lineage (SQLite and PostgreSQL)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from gateway.api.app import create_app
from gateway.config import apply_plan, load_documents, plan
from gateway.model import EdgeKind, EdgeRecord, JobRecord, NodeKind, NodeRef
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services import ingest
from gateway.store.services.tokens import create_token
from gateway.store.tables import Dataset, Edge, Job, Run, RunEvent

from .schema import errors, validate

SOURCES = """
apiVersion: accord.dev/v1
kind: Source
metadata: {name: lineage, domain: data}
spec: {type: openlineage}
---
apiVersion: accord.dev/v1
kind: Source
metadata: {name: af, domain: data}
spec: {type: demo, jobs: [{id: load_orders, schedule: "0 3 * * *"}]}
"""
URL = "/api/v1/sources/lineage/openlineage"
SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/2.3.0"


def event(
    event_type: str,
    run: str,
    *,
    job: str = "orders_dag.transform",
    at: str = "2026-05-01T03:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    e: dict[str, Any] = {
        "eventType": event_type,
        "eventTime": at,
        "producer": PRODUCER,
        "schemaURL": SCHEMA,
        "run": {"runId": run, "facets": {}},
        "job": {
            "namespace": "airflow-prod",
            "name": job,
            "facets": {
                "jobType": {
                    "_producer": PRODUCER,
                    "_schemaURL": "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
                    "processingType": "BATCH",
                    "integration": "AIRFLOW",
                    "jobType": "TASK",
                }
            },
        },
        "inputs": [{"namespace": "s3://raw", "name": "orders.csv"}],
        "outputs": [{"namespace": "postgres://db:5432", "name": "dw.public.orders"}],
    }
    e.update(extra)
    validate(e)  # every event the tests send is a valid OpenLineage event
    return e


class Client:
    def __init__(self, client: TestClient, engine: Engine, tokens: dict[str, str]) -> None:
        self.client = client
        self.engine = engine
        self.tokens = tokens

    def send(self, body: Any, who: str = "agent", url: str = URL) -> Any:
        return self.client.post(
            url, json=body, headers={"Authorization": f"Bearer {self.tokens[who]}"}
        )

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(
            path, headers={"Authorization": f"Bearer {self.tokens['admin']}"}, **kw
        )

    def counts(self) -> tuple[int, int, int, int]:
        with session_scope(self.engine, write=False) as s:
            return tuple(  # type: ignore[return-value]
                s.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (Job, Run, RunEvent, Edge)
            )


@pytest.fixture
def ol(any_engine: Engine, tmp_path: Path) -> Iterator[Client]:
    res = load_documents([("t", i, d) for i, d in enumerate(yaml.safe_load_all(SOURCES), 1)])
    assert res.ok, [str(e) for e in res.errors]
    tokens: dict[str, str] = {}
    with session_scope(any_engine) as s:
        apply_plan(s, plan(s, res.documents), subject="test", channel="cli")
        for who, role in [("admin", "admin"), ("agent", "agent"), ("viewer", "viewer")]:
            tokens[who] = create_token(s, subject=who, role=role, domain="data").token
    settings = Settings(data_dir=tmp_path / "data", max_body_bytes=16 * 1024)
    app = create_app(settings, engine=any_engine, start_sync=False)
    with TestClient(app) as client:
        yield Client(client, any_engine, tokens)


def test_events_appear_as_jobs_runs_and_lineage(ol: Client) -> None:
    dag_run, task_run = str(uuid.uuid4()), str(uuid.uuid4())
    parent = {
        "_producer": PRODUCER,
        "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
        "run": {"runId": dag_run},
        "job": {"namespace": "airflow-prod", "name": "orders_dag"},
    }
    r = ol.send(event("START", dag_run, job="orders_dag", inputs=[], outputs=[]))
    assert r.status_code == 200, r.text
    start = event("START", task_run)
    start["run"]["facets"]["parent"] = parent
    validate(start)
    r = ol.send(start)
    assert r.status_code == 200, r.text
    run_uid = f"lineage/{task_run}"
    job_uid = "lineage/airflow-prod/orders_dag.transform"
    assert r.json() == {
        "run": run_uid,
        "job": job_uid,
        "runs": {"received": 1, "created": 1, "changed": 0, "refreshed": 0, "ignored": 0},
    }
    r = ol.send(event("COMPLETE", task_run, at="2026-05-01T03:04:00Z"))
    assert r.json()["runs"]["changed"] == 1

    run = ol.get(f"/api/v1/runs/{quote(run_uid, safe='')}").json()
    assert run["state"] == "success" and run["native_state"] == "COMPLETE"
    assert run["trigger"] == "upstream"
    assert run["started_at"].startswith("2026-05-01T03:00:00")
    assert run["ended_at"].startswith("2026-05-01T03:04:00")
    events = ol.get(f"/api/v1/runs/{quote(run_uid, safe='')}/events").json()
    assert [(e["from_state"], e["to_state"]) for e in events] == [
        (None, "running"),
        ("running", "success"),
    ]
    job = ol.get(f"/api/v1/jobs/{quote(job_uid, safe='')}").json()
    assert job["name"] == "orders_dag.transform" and job["native_type"] == "task"
    assert job["source"] == "lineage" and job["domain"] == "data"
    # Accord cannot act on it, and says why.
    assert job["allowed_actions"] == []
    r = ol.client.post(
        f"/api/v1/jobs/{quote(job_uid, safe='')}/trigger",
        json={},
        headers={"Authorization": f"Bearer {ol.tokens['admin']}"},
    )
    assert r.status_code == 409 and "supports no actions" in r.json()["error"]["message"]

    # Parent facet -> triggered edge; datasets -> consumes/produces edges.
    lineage = ol.get(f"/api/v1/runs/{quote(run_uid, safe='')}/lineage").json()
    assert f"lineage/{dag_run}" in str(lineage)
    graph = ol.get("/api/v1/lineage", params={"job": job_uid, "depth": 2}).json()
    edges = {(e["kind"], e["src"], e["dst"]) for e in graph["edges"]}
    assert ("consumes", "s3://raw/orders.csv", job_uid) in edges
    assert ("produces", job_uid, "postgres://db:5432/dw.public.orders") in edges


def test_datasets_join_the_lineage_of_other_tools(ol: Client) -> None:
    # Another tool's job writes the file the OpenLineage job reads (an Airflow asset
    # s3://raw/orders.csv is named namespace s3://raw, name orders.csv).
    with session_scope(ol.engine) as s:
        ingest.apply_inventory(
            s,
            source="af",
            domain="data",
            records=[JobRecord(native_id="load_orders", name="load_orders", native_type="dag")],
        )
        ingest.record_edges(
            s,
            source="af",
            edges=[
                EdgeRecord(
                    kind=EdgeKind.PRODUCES,
                    src=NodeRef(kind=NodeKind.JOB, id="load_orders"),
                    dst=NodeRef(kind=NodeKind.DATASET, namespace="s3://raw", id="orders.csv"),
                )
            ],
        )
    assert ol.send(event("START", str(uuid.uuid4()))).status_code == 200
    graph = ol.get(
        "/api/v1/lineage",
        params={"job": "af/load_orders", "direction": "down", "depth": 3},
    ).json()
    assert "lineage/airflow-prod/orders_dag.transform" in {n["uid"] for n in graph["nodes"]}
    with session_scope(ol.engine, write=False) as s:
        names = s.execute(select(Dataset.uid)).scalars().all()
    assert sorted(names) == ["postgres://db:5432/dw.public.orders", "s3://raw/orders.csv"]


BAD = [
    ("run.runId", lambda e: e["run"].update(runId="not-a-uuid")),
    ("eventTime", lambda e: e.update(eventTime="yesterday")),
    ("eventTime", lambda e: e.pop("eventTime")),
    ("eventType", lambda e: e.update(eventType="FINISHED")),
    ("job.namespace", lambda e: e["job"].pop("namespace")),
    ("inputs.0.name", lambda e: e["inputs"][0].pop("name")),
    ("producer", lambda e: e.update(producer="nobody")),
    ("run.facets.parent", lambda e: e["run"]["facets"].update(parent={"run": {"runId": "x"}})),
]


@pytest.mark.parametrize(("field", "spoil"), BAD, ids=[b[0] + str(i) for i, b in enumerate(BAD)])
def test_an_invalid_event_is_refused_naming_the_field_and_nothing_is_stored(
    ol: Client, field: str, spoil: Any
) -> None:
    bad = copy.deepcopy(event("START", str(uuid.uuid4())))
    spoil(bad)
    assert errors(bad), "the OpenLineage schema refuses it too"
    before = ol.counts()
    r = ol.send(bad)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert any(d["loc"].startswith(f"body.{field}") for d in err["details"]), err
    assert ol.counts() == before


def test_duplicated_and_out_of_order_events_keep_runs_forward(ol: Client) -> None:
    rid = str(uuid.uuid4())
    uid = quote(f"lineage/{rid}", safe="")
    done = event("COMPLETE", rid, at="2026-05-01T03:09:00Z")
    assert ol.send(done).json()["runs"]["created"] == 1
    # START arrives late: the run stays done, and learns when it started.
    r = ol.send(event("START", rid, at="2026-05-01T03:01:00Z"))
    assert r.status_code == 200 and r.json()["runs"]["changed"] == 0
    assert ol.send(event("RUNNING", rid, at="2026-05-01T03:02:00Z")).json()["runs"]["changed"] == 0
    assert ol.send(done).json()["runs"] == {
        "received": 1,
        "created": 0,
        "changed": 0,
        "refreshed": 0,
        "ignored": 1,
    }
    # A second, different end does not replace the first.
    ol.send(event("FAIL", rid, at="2026-05-01T03:10:00Z"))
    run = ol.get(f"/api/v1/runs/{uid}").json()
    assert run["state"] == "success" and run["native_state"] == "COMPLETE"
    assert run["started_at"].startswith("2026-05-01T03:01:00")
    assert run["ended_at"].startswith("2026-05-01T03:09:00")
    assert [e["to_state"] for e in ol.get(f"/api/v1/runs/{uid}/events").json()] == ["success"]


def test_a_failure_carries_its_message(ol: Client) -> None:
    rid = str(uuid.uuid4())
    ol.send(event("START", rid))
    fail = event("FAIL", rid, at="2026-05-01T03:02:00Z")
    fail["run"]["facets"]["errorMessage"] = {
        "_producer": PRODUCER,
        "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
        "message": "relation dw.public.orders does not exist",
        "programmingLanguage": "python",
    }
    validate(fail)
    assert ol.send(fail).status_code == 200
    run = ol.get(f"/api/v1/runs/{quote(f'lineage/{rid}', safe='')}").json()
    assert run["state"] == "failed" and "does not exist" in run["message"]


def test_refusals(ol: Client) -> None:
    body = event("START", str(uuid.uuid4()))
    before = ol.counts()
    r = ol.send(body, who="viewer")
    assert r.status_code == 403
    r = ol.client.post(URL, json=body)
    assert r.status_code == 401
    r = ol.send(body, url="/api/v1/sources/nope/openlineage")
    assert r.status_code == 404 and "no source named 'nope'" in r.json()["error"]["message"]
    r = ol.send(body, url="/api/v1/sources/af/openlineage")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "not_an_openlineage_source"
    assert "of type 'demo'" in r.json()["error"]["message"]
    big = copy.deepcopy(body)
    big["job"]["facets"]["documentation"] = {
        "_producer": PRODUCER,
        "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/DocumentationJobFacet.json#/$defs/DocumentationJobFacet",
        "description": "x" * 20_000,
    }
    r = ol.send(big)
    assert r.status_code == 413
    assert ol.counts() == before


def test_the_demo_projects_events_validate_and_are_stored(ol: Client) -> None:
    from datetime import UTC, datetime

    from gateway.demo import openlineage_demo_events

    sent = openlineage_demo_events(5, datetime(2026, 5, 1, 3, 0, tzinfo=UTC))
    for e in sent:
        validate(e)
        r = ol.send(e)
        assert r.status_code == 200, r.text
    runs = ol.get("/api/v1/runs", params={"source": "lineage", "limit": 50}).json()["items"]
    states = {r["job_uid"]: r["state"] for r in runs}
    assert states == {
        "lineage/dbt-demo/dbt-run-analytics": "failed",  # one of its models failed
        "lineage/dbt-demo/analytics.finance_kpis": "failed",  # (5 + 0) % 5 == 0
        "lineage/dbt-demo/analytics.orders_enriched": "success",
    }


def test_a_sync_pass_leaves_the_received_jobs_alone(ol: Client) -> None:
    import anyio

    from gateway.sync import SyncManager

    assert ol.send(event("START", str(uuid.uuid4()))).status_code == 200
    report = anyio.run(SyncManager(ol.engine).sync_now, "lineage")
    assert report.error is None, report.error
    job = ol.get("/api/v1/jobs/" + quote("lineage/airflow-prod/orders_dag.transform", safe=""))
    assert job.json()["tombstoned_at"] is None


def test_the_documented_example_event_is_accepted(ol: Client) -> None:
    import json
    import re

    page = (Path(__file__).parents[2] / "docs" / "openlineage.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", page, flags=re.S)
    example = json.loads(
        "\n".join(ln.strip() for ln in next(b for b in blocks if '"START"' in b).splitlines())
    )
    validate(example)
    r = ol.send(example)
    assert r.status_code == 200, r.text
    assert r.json()["job"] == "lineage/dbt/analytics.orders"


def test_the_gateway_emits_what_it_receives_when_asked(any_engine: Engine, tmp_path: Path) -> None:
    """The emitter runs inside the gateway (its loop, woken by changes; on PostgreSQL
    under the cluster's ``openlineage-emitter`` lease)."""
    import asyncio
    import json

    from sqlalchemy import event as sa_event

    from tests.conftest import wait_until

    res = load_documents([("t", i, d) for i, d in enumerate(yaml.safe_load_all(SOURCES), 1)])
    with session_scope(any_engine) as s:
        apply_plan(s, plan(s, res.documents), subject="test", channel="cli")
        token = create_token(s, subject="agent", role="agent", domain="data").token
    settings = Settings(
        data_dir=tmp_path / "data",
        openlineage_transport="file",
        openlineage_start_at="beginning",
        openlineage_emit_received=True,
    )
    app = create_app(settings, engine=any_engine, start_sync=False)
    out = settings.openlineage_file_path
    on_loop: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # a worker thread: fine
        on_loop.append(statement[:80])

    sa_event.listen(any_engine, "before_cursor_execute", before)
    with TestClient(app) as client:
        c = Client(client, any_engine, {"agent": token})
        rid = str(uuid.uuid4())
        assert c.send(event("START", rid)).status_code == 200
        assert c.send(event("COMPLETE", rid, at="2026-05-01T03:04:00Z")).status_code == 200

        def lines() -> list[dict[str, Any]]:
            if not out.exists():
                return []
            return [json.loads(x) for x in out.read_text().splitlines() if x.strip()]

        assert wait_until(lambda: len(lines()) >= 2, timeout=30)
    sa_event.remove(any_engine, "before_cursor_execute", before)
    assert on_loop == [], "the emitter never touches the database on the event loop"
    sent = lines()
    for e in sent:
        validate(e)
    assert [e["eventType"] for e in sent] == ["START", "COMPLETE"]
    assert {e["job"]["namespace"] for e in sent} == {"accord://lineage"}
    assert {e["job"]["name"] for e in sent} == {"airflow-prod/orders_dag.transform"}
    assert [(d["namespace"], d["name"]) for d in sent[0]["inputs"]] == [("s3://raw", "orders.csv")]
