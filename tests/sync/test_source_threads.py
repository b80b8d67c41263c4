"""A slow source waits on its own threads and starves nothing else (issue 11, item 7).

Blocking adapter calls (the Airflow client, cron's file reads) used to run on AnyIO's
default thread pool of 40, which also runs the API's synchronous routes and dependencies:
a source that stopped answering could take every thread, and the API froze. Each source
now has its own bounded threads (``spec.sync.concurrency``, default 4).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from adapters.base import SourceThreads
from gateway.api.app import create_app
from gateway.config import apply_plan, load_documents, plan
from gateway.settings import Settings
from gateway.store import session_scope
from gateway.store.services.tokens import create_token
from gateway.store.tables import Source as SourceRow
from tests.conftest import wait_until
from tests.httpserver import RecordingServer


class _Gate:
    """Blocking calls that wait for a gate, counting how many run at once."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.running = 0
        self.most = 0
        self.done = 0
        self._cond = threading.Condition()

    def call(self, _: object = None) -> str:
        with self._cond:
            self.running += 1
            self.most = max(self.most, self.running)
            self._cond.notify_all()
        try:
            assert self.open.wait(30), "the gate was never opened"
            return "ok"
        finally:
            with self._cond:
                self.running -= 1
                self.done += 1
                self._cond.notify_all()

    def wait_running(self, n: int) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.running >= n, timeout=30)


@pytest.mark.anyio
async def test_source_threads_are_bounded_and_apart_from_the_default_pool() -> None:
    slow, other = SourceThreads(2, "slow"), SourceThreads(2, "other")
    gate = _Gate()
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(50):  # more than AnyIO's default 40 threads
                tg.start_soon(slow.run, gate.call)
            assert await anyio.to_thread.run_sync(gate.wait_running, 2)
            # The slow source holds both of its threads; the rest of it waits its turn ...
            assert gate.running == 2
            # ... while another source and the default pool (the API's) still answer.
            assert await other.run(lambda: "other") == "other"
            assert await anyio.to_thread.run_sync(lambda: "api") == "api"
            gate.open.set()
        assert gate.done == 50 and gate.most == 2
    finally:
        slow.close()
        other.close()


@pytest.mark.anyio
async def test_a_call_given_up_keeps_its_thread_until_it_returns() -> None:
    threads = SourceThreads(1, "one")
    gate = _Gate()
    try:
        with anyio.move_on_after(0.2) as scope:  # the caller gives up (a sync timeout)
            await threads.run(gate.call)
        assert scope.cancelled_caught and gate.running == 1
        second = threading.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(threads.run, second.set)
            await anyio.sleep(0.2)
            # The only thread is still inside the abandoned call: no second thread.
            assert not second.is_set() and gate.most == 1
            gate.open.set()
        assert second.is_set()
    finally:
        threads.close()


def _apply(engine: Engine, doc: dict[str, Any]) -> None:
    res = load_documents([("test", 1, yaml.safe_load(yaml.safe_dump(doc)))])
    assert res.ok, [str(e) for e in res.errors]
    with session_scope(engine) as s:
        apply_plan(s, plan(s, res.documents), subject="test", channel="cli")


def test_a_slow_airflow_does_not_starve_the_api(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_SECRET_SLOW_AIRFLOW", "a-token")
    with RecordingServer(hold=True, max_hold=60) as airflow:
        _apply(
            engine,
            {
                "apiVersion": "accord.dev/v1",
                "kind": "Source",
                "metadata": {"name": "slow-airflow", "domain": "data"},
                "spec": {
                    "type": "airflow",
                    "url": airflow.url,
                    "auth": {"tokenFrom": {"env": "ACCORD_SECRET_SLOW_AIRFLOW"}},
                },
            },
        )
        with session_scope(engine) as s:
            token = create_token(s, subject="root", role="admin", domain="*").token
            row = s.get(SourceRow, "slow-airflow")
            assert row is not None
            s.expunge(row)
        app = create_app(Settings(data_dir=tmp_path / "gw"), engine=engine, start_sync=True)
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            portal = client.portal
            assert portal is not None
            manager = app.state.manager
            # The worker and the API share one adapter per source, hence one set of threads.
            assert wait_until(lambda: "slow-airflow" in manager.workers)
            adapter, close = manager.adapter_for(row)
            assert not close
            # Parallel load on the slow source: more blocking calls than AnyIO's default
            # pool has threads (40); none of them will be answered for now.
            calls: list[Future[Any]] = [portal.start_task_soon(adapter.check) for _ in range(60)]
            assert airflow.wait_in_flight(4), "the slow source never got busy"
            answered = threading.Event()
            seen: dict[str, Any] = {}

            def ask() -> None:
                seen["response"] = client.get("/api/v1/sources")
                seen["held"] = airflow.in_flight
                answered.set()

            asker = threading.Thread(target=ask, daemon=True)
            asker.start()
            in_time = answered.wait(30)
            airflow.release()
            asker.join(60)
            _, pending = wait(calls, timeout=60)
        assert in_time, "the API did not answer while the slow source held its threads"
        assert seen["response"].status_code == 200
        assert "slow-airflow" in seen["response"].text
        assert seen["held"] >= 4, "the slow source was still busy when the API answered"
        # The source itself was never sent more than its own bound at once.
        assert airflow.max_in_flight <= 4
        assert not pending
