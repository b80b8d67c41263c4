"""OpenLineage out: Accord's run state changes as RunEvents, through the client's
transports, validated against the OpenLineage schema (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from gateway.model import EdgeKind, EdgeRecord, JobRecord, NodeKind, NodeRef, RunRecord, RunState
from gateway.openlineage import Emitter, run_id
from gateway.settings import Settings
from gateway.store.engine import session_scope
from gateway.store.services import ingest
from gateway.store.tables import Meta, Source

from .schema import validate

T0 = datetime(2026, 5, 1, 3, 0, tzinfo=UTC)


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp_path,
        "openlineage_transport": "file",
        "openlineage_start_at": "beginning",
    }
    return Settings(**{**base, **kw})


def _seed(engine: Engine, source: str = "af") -> None:
    """A source with an ETL job that reads one dataset and writes another, and a report
    job whose run was triggered by the ETL run."""
    with session_scope(engine) as s:
        s.add(Source(name=source, type="airflow", domain="data", spec={}))
        s.flush()
        ingest.apply_inventory(
            s,
            source=source,
            domain="data",
            records=[
                JobRecord(native_id="etl", name="etl", native_type="dag"),
                JobRecord(native_id="report", name="report", native_type="dag"),
            ],
        )
        job = NodeRef(kind=NodeKind.JOB, id="etl")
        ingest.record_edges(
            s,
            source=source,
            edges=[
                EdgeRecord(
                    kind=EdgeKind.CONSUMES,
                    src=NodeRef(kind=NodeKind.DATASET, namespace="s3://raw", id="orders.csv"),
                    dst=job,
                ),
                EdgeRecord(
                    kind=EdgeKind.PRODUCES,
                    src=job,
                    dst=NodeRef(
                        kind=NodeKind.DATASET, namespace="postgres://db:5432", id="dw.orders"
                    ),
                ),
                EdgeRecord(
                    kind=EdgeKind.TRIGGERED,
                    src=NodeRef(kind=NodeKind.RUN, id="etl-1"),
                    dst=NodeRef(kind=NodeKind.RUN, id="report-1"),
                ),
            ],
        )


def _runs(engine: Engine, records: list[RunRecord], source: str = "af") -> None:
    with session_scope(engine) as s:
        ingest.upsert_runs(s, source=source, domain="data", records=records)


def _run(nid: str, job: str, state: RunState, **kw: Any) -> RunRecord:
    return RunRecord(native_id=nid, job_native_id=job, state=state, native_state=state.value, **kw)


def _lifecycle(engine: Engine) -> None:
    _seed(engine)
    _runs(engine, [_run("etl-1", "etl", RunState.QUEUED, queued_at=T0)])
    _runs(engine, [_run("etl-1", "etl", RunState.RUNNING, queued_at=T0, started_at=T0)])
    end = T0 + timedelta(minutes=5)
    _runs(
        engine,
        [
            _run("etl-1", "etl", RunState.SUCCESS, started_at=T0, ended_at=end),
            # First seen already ended.
            _run("report-1", "report", RunState.FAILED, started_at=end, ended_at=end),
            _run("etl-2", "etl", RunState.RUNNING, started_at=end),
        ],
    )
    _runs(engine, [_run("etl-2", "etl", RunState.CANCELLED, started_at=end, ended_at=end)])


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_runs_lifecycle_is_emitted_and_validates(any_engine: Engine, tmp_path: Path) -> None:
    _lifecycle(any_engine)
    settings = _settings(tmp_path)
    emitter = Emitter(any_engine, settings)
    assert emitter.run_once() == 6  # six stored state changes
    events = _lines(settings.openlineage_file_path)
    for e in events:
        validate(e)
    by_run: dict[str, list[str]] = {}
    for e in events:
        by_run.setdefault(e["run"]["runId"], []).append(e["eventType"])
    assert by_run[run_id("af/etl-1")] == ["START", "RUNNING", "COMPLETE"]
    assert by_run[run_id("af/report-1")] == ["START", "FAIL"]
    assert by_run[run_id("af/etl-2")] == ["START", "ABORT"]

    etl = next(e for e in events if e["run"]["runId"] == run_id("af/etl-1"))
    assert (etl["job"]["namespace"], etl["job"]["name"]) == ("accord://af", "etl")
    assert etl["job"]["facets"]["jobType"]["integration"] == "AIRFLOW"
    assert [(d["namespace"], d["name"]) for d in etl["inputs"]] == [("s3://raw", "orders.csv")]
    assert [(d["namespace"], d["name"]) for d in etl["outputs"]] == [
        ("postgres://db:5432", "dw.orders")
    ]
    report_start = next(e for e in events if e["run"]["runId"] == run_id("af/report-1"))
    parent = report_start["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == run_id("af/etl-1")
    assert (parent["job"]["namespace"], parent["job"]["name"]) == ("accord://af", "etl")
    # The START of a run first seen ended is dated when it started.
    assert report_start["eventType"] == "START"
    assert report_start["eventTime"] == "2026-05-01T03:05:00Z"

    # Nothing new: nothing sent again.
    assert emitter.run_once() == 0
    assert len(_lines(settings.openlineage_file_path)) == len(events)


def test_start_at_now_skips_history_and_keeps_its_position(engine: Engine, tmp_path: Path) -> None:
    _lifecycle(engine)
    settings = _settings(tmp_path, openlineage_start_at="now")
    assert Emitter(engine, settings).run_once() == 0
    _runs(engine, [_run("etl-3", "etl", RunState.RUNNING, started_at=T0)])
    # A new emitter (a restart) resumes from the stored position.
    assert Emitter(engine, settings).run_once() == 1
    events = _lines(settings.openlineage_file_path)
    assert [(e["eventType"], e["run"]["runId"]) for e in events] == [("START", run_id("af/etl-3"))]
    with session_scope(engine, write=False) as s:
        assert s.get(Meta, "openlineage.cursor") is not None


class _Receiver:
    """An OpenLineage HTTP receiver on 127.0.0.1 that records the events it accepts;
    ``failing`` makes it answer 503."""

    def __init__(self, port: int) -> None:
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.auth: list[str | None] = []
        self.failing = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.failing:
                    self.send_response(503)
                    self.end_headers()
                    return
                outer.events.append(json.loads(body))
                outer.paths.append(self.path)
                outer.auth.append(self.headers.get("Authorization"))
                self.send_response(201)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> Iterator[int]:
    yield _free_port()


def test_http_delivers_and_resumes_after_the_receiver_was_down(
    any_engine: Engine, tmp_path: Path, port: int
) -> None:
    settings = _settings(
        tmp_path,
        openlineage_transport="http",
        openlineage_url=f"http://127.0.0.1:{port}",
        openlineage_api_key="ol-key",
        openlineage_timeout=2.0,
    )
    _lifecycle(any_engine)
    emitter = Emitter(any_engine, settings)
    # Nobody listens yet: the pass fails and keeps its position.
    with pytest.raises(Exception, match=r"Connection|refused|Max retries"):
        emitter.run_once()
    receiver = _Receiver(port)
    try:
        receiver.failing = True
        with pytest.raises(Exception, match="503"):
            emitter.run_once()
        assert receiver.events == []
        receiver.failing = False
        # More changes while it was down.
        _runs(any_engine, [_run("etl-4", "etl", RunState.RUNNING, started_at=T0)])
        assert emitter.run_once() == 7
    finally:
        receiver.close()
    for e in receiver.events:
        validate(e)
    assert set(receiver.paths) == {"/api/v1/lineage"}
    assert set(receiver.auth) == {"Bearer ol-key"}
    seen = [(e["run"]["runId"], e["eventType"]) for e in receiver.events]
    # Everything once, in the order it happened per run.
    assert len(seen) == len(set(seen)) == 8
    assert [t for r, t in seen if r == run_id("af/etl-1")] == ["START", "RUNNING", "COMPLETE"]
    assert (run_id("af/etl-4"), "START") in seen


def test_a_failure_mid_batch_keeps_what_was_delivered(engine: Engine, tmp_path: Path) -> None:
    _lifecycle(engine)
    settings = _settings(tmp_path)

    class Flaky:
        kind = "flaky"

        def __init__(self) -> None:
            self.events: list[Any] = []
            self.fail_at = 4  # the second event of a change: START sent, FAIL not

        def emit(self, event: Any) -> None:
            if len(self.events) == self.fail_at:
                self.fail_at = -1
                raise ConnectionError("receiver went away")
            self.events.append(event)

        def close(self, timeout: float = -1) -> bool:
            return True

    flaky = Flaky()
    emitter = Emitter(engine, settings, transport=flaky)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        emitter.run_once()
    assert emitter.run_once() == 3  # the changes not yet wholly delivered
    keys = [(e.run.runId, e.eventType.value) for e in flaky.events]
    # At least once: nothing lost; the change that failed half-way is sent again whole,
    # so its START arrives twice.
    assert len(set(keys)) == 7
    assert [k for k in keys if keys.count(k) > 1] == [(run_id("af/report-1"), "START")] * 2


def test_runs_received_over_openlineage_are_not_sent_back(engine: Engine, tmp_path: Path) -> None:
    with session_scope(engine) as s:
        s.add(Source(name="ol", type="openlineage", domain="data", spec={}))
    _runs(engine, [_run("r1", "ns/job", RunState.RUNNING, started_at=T0)], source="ol")
    settings = _settings(tmp_path)
    assert Emitter(engine, settings).run_once() == 1
    assert (
        not settings.openlineage_file_path.exists() or _lines(settings.openlineage_file_path) == []
    )
    _runs(engine, [_run("r2", "ns/job", RunState.RUNNING, started_at=T0)], source="ol")
    again = _settings(tmp_path, openlineage_emit_received=True)
    assert Emitter(engine, again).run_once() == 1
    assert [e["job"]["namespace"] for e in _lines(again.openlineage_file_path)] == ["accord://ol"]


@pytest.fixture
def pg(postgres_server: str) -> Iterator[Engine]:
    from gateway.store import create_db_engine, upgrade

    from ..conftest import _fresh_pg_database

    engine = create_db_engine(_fresh_pg_database(postgres_server))
    upgrade(engine)
    yield engine
    engine.dispose()


def test_a_change_committed_late_is_not_jumped_over(pg: Engine, tmp_path: Path) -> None:
    """On PostgreSQL a transaction that took an id first may commit after one that took a
    later id: the emitter waits for it rather than pass it by (and passes a gap left by a
    rollback once nothing that could fill it is running)."""
    from sqlmodel import Session

    _seed(pg)
    with session_scope(pg) as s:
        s.add(Source(name="other", type="airflow", domain="data", spec={}))
    settings = _settings(tmp_path)
    emitter = Emitter(pg, settings)
    for outcome in ("commit", "rollback"):
        slow = Session(pg)
        try:
            ingest.upsert_runs(
                slow,
                source="other",
                domain="data",
                records=[_run(f"slow-{outcome}", "j", RunState.RUNNING, started_at=T0)],
            )
            _runs(pg, [_run(f"fast-{outcome}", "etl", RunState.RUNNING, started_at=T0)])
            # The later change is visible, the earlier one not yet: nothing is sent.
            assert emitter.run_once() == 0
            assert emitter.run_once() == 0
            getattr(slow, outcome)()
        finally:
            slow.close()
        assert emitter.run_once() == (2 if outcome == "commit" else 1)
    sent = [e["run"]["runId"] for e in _lines(settings.openlineage_file_path)]
    assert sent == [
        run_id("other/slow-commit"),
        run_id("af/fast-commit"),
        run_id("af/fast-rollback"),
    ]


def test_metrics_show_what_is_sent_and_what_waits(engine: Engine, tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from gateway.api.metrics import Metrics

    _lifecycle(engine)
    emitter = Emitter(engine, _settings(tmp_path))
    metrics = Metrics(engine)
    metrics.openlineage = emitter
    emitter.run_once()
    _runs(engine, [_run("etl-9", "etl", RunState.RUNNING, started_at=T0)])
    metrics.refresh()
    text = generate_latest(metrics.registry).decode()
    assert "accord_openlineage_events_sent 7.0" in text
    assert "accord_openlineage_backlog 1.0" in text
