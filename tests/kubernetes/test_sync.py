"""A Kubernetes Source in YAML, synced by the gateway's worker into the store."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from adapters.testing.kube_sim import KubeSimulator
from gateway.store.tables import Job, Run
from gateway.store.tables import Source as SourceRow
from gateway.sync.manager import build_adapter
from gateway.sync.worker import SourceWorker
from tests.api.conftest import apply_yaml

from .conftest import TOKEN

pytestmark = pytest.mark.anyio


async def test_a_cluster_source_syncs_cronjobs_and_keeps_collected_runs(
    engine: Engine, sim: KubeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_SECRET_K8S_TEST_TOKEN", TOKEN)
    st = sim.state
    cj = st.add_cronjob("etl", "often", "* * * * *", history=(1, 1))
    st.add_cronjob("ops", "nightly", "0 3 * * *", suspend=True)
    apply_yaml(
        engine,
        "apiVersion: accord.dev/v1\nkind: Source\nmetadata: {name: k8s, domain: d}\n"
        f"spec: {{type: kubernetes, auth: {{server: '{sim.url}', "
        "tokenFrom: {env: ACCORD_SECRET_K8S_TEST_TOKEN}}}\n",
    )
    with Session(engine) as s:
        row = s.get(SourceRow, "k8s")
        assert row is not None
        adapter = build_adapter(row)
    worker = SourceWorker(
        engine=engine, name="k8s", domain="d", adapter=adapter, inventory_every=60, runs_every=1
    )
    try:
        report = await worker.sync_once()
        assert report.error is None, report.error
        for _ in range(3):  # three runs; the cluster keeps only the newest
            st.advance(60)
            (job,) = [j for j in st.items("jobs", "etl") if not j["status"].get("conditions")]
            st.finish_job("etl", job["metadata"]["name"], succeeded=True)
            for _ in range(500):  # a bound (10 s) for a loaded machine, not a timing
                got = await adapter.get_runs(
                    [
                        f"etl/often@{cj['metadata']['uid'].replace('-', '')[:8]}/"
                        f"{job['metadata']['name']}@{job['metadata']['uid'].replace('-', '')[:8]}"
                    ]
                )
                if got and got[0].state.terminal:
                    break
                await anyio.sleep(0.02)
            report = await worker.sync_once(inventory=False)
            assert report.error is None, report.error
        assert len(st.items("jobs", "etl")) == 1
        with Session(engine) as s:
            jobs = {j.name: j for j in s.exec(select(Job)).all()}
            runs = s.exec(select(Run)).all()
        assert set(jobs) == {"etl/often", "ops/nightly"} and jobs["ops/nightly"].paused
        assert len(runs) == 3 and {r.state for r in runs} == {"success"}
        assert all(r.job_uid == jobs["etl/often"].uid for r in runs)
    finally:
        await adapter.aclose()
