"""The demo Airflow: recorded answers replayed, so a newcomer sees Airflow without Airflow."""

from __future__ import annotations

import json
import socket
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr

from adapters.airflow.demo import PASSWORD_ENV, SOURCE_NAME, start_demo
from adapters.base import AdapterContext, registry
from adapters.testing.airflow_replay import DEMO_DATA
from gateway.model import (
    AdapterUnavailable,
    EdgeKind,
    RunState,
    SecretRef,
)
from gateway.model.resources import Source

pytestmark = pytest.mark.anyio


async def test_demo_source_syncs_with_lineage(tmp_path: Path) -> None:
    part = start_demo(tmp_path)
    try:
        [doc] = part.documents
        source = Source.model_validate(doc)
        assert source.metadata.name == SOURCE_NAME
        assert source.metadata.labels == {"accord.dev/demo": "true"}
        assert source.spec.demo is True
        assert "demo" in source.metadata.annotations["accord.dev/description"].lower()
        assert set(part.env) == {PASSWORD_ENV}
        assert part.env[PASSWORD_ENV] not in json.dumps(doc), "the password is referenced only"

        def secrets(ref: SecretRef) -> SecretStr:
            assert ref.env is not None
            return SecretStr(part.env[ref.env])

        adapter = registry.create(
            "airflow",
            AdapterContext(source=SOURCE_NAME, domain="data", secrets=secrets),
            source.spec.adapter_config(),
        )
        jobs = {j.native_id: j async for j in adapter.list_jobs()}
        assert {"ingest_orders", "build_revenue_mart", "finance_report"} <= set(jobs)
        link = jobs["ingest_orders"].url
        assert link is not None
        page_text = await anyio.to_thread.run_sync(_fetch, link)
        assert "simulator" in page_text and "ingest_orders" in page_text
        lineage = await adapter.lineage(jobs["finance_report"])
        assert any(
            e.kind == EdgeKind.DEPENDS_ON and e.src.id == "build_revenue_mart" for e in lineage
        )
        page = await adapter.list_runs(None)
        assert any(e.kind == EdgeKind.TRIGGERED for e in page.edges)
        newest = max(r.ended_at for r in page.runs if r.ended_at is not None)
        assert datetime.now(UTC) - newest < timedelta(hours=2), "history is moved to the present"
        scheduled = [r for r in page.runs if r.native_id.startswith("ingest_orders/scheduled__")]
        assert scheduled and all(
            r.started_at is not None and r.started_at.minute == 0 for r in scheduled
        ), "scheduled runs start at their slot, as in production"

        run = await adapter.trigger("ingest_orders", {})
        with anyio.fail_after(30):
            while True:
                [now] = await adapter.get_runs([run.native_id])
                if now.state.terminal:
                    break
                await anyio.sleep(0.5)
        assert now.state == RunState.SUCCESS
        assert [s.state for s in now.steps or ()] == [RunState.SUCCESS, RunState.SUCCESS]
    finally:
        part.stop()
    with pytest.raises(AdapterUnavailable):
        await adapter.check()
    await adapter.aclose()


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def test_recording_names_no_machine() -> None:
    host = socket.gethostname()
    for path in sorted(DEMO_DATA.glob("*.json")):
        text = path.read_text()
        for marker in ("/tmp/", "/home/", "/root", "/Users/", '"vm"', f'"{host}"'):
            assert marker not in text, f"{path.name} mentions {marker}"
        doc = json.loads(text)
        for ti in doc.get("task_instances", []):
            assert ti.get("hostname") in ("", None, "airflow-worker-1")
            assert ti.get("pid") in (None, 4242)
        for dag in doc.get("dags", []):
            assert dag["fileloc"].startswith("/opt/airflow/dags/")
            assert dag["file_token"] == "demo-file-token"
