"""Kubernetes sync cost: the first sync of a large cluster, and the steady state after it,
against the API-server simulator through the official client.

    uv run python bench/kube_sync.py [--cronjobs 5000] [--namespaces 50] [--jobs 2]
                                     [--cycles 5] [--page-size 500]

Builds a simulated cluster with ``--cronjobs`` CronJobs spread over ``--namespaces``
namespaces, each with ``--jobs`` finished Jobs (every seventh failed), and one CronJob in
a hundred firing every minute. Then:

* first sync: what the gateway's worker does first — ``list_jobs``, ``lineage`` of every
  job, ``list_runs`` from no cursor until drained — timed, with the API requests it took
  (``first_inventory_seconds``: until the first ``list_jobs`` answered, which includes the
  client's one-time import of its API modules and the paged lists of CronJobs and Jobs);
* steady state: ``--cycles`` times, the cluster clock moves one minute (the minutely
  CronJobs start Jobs, earlier ones finish) and the adapter syncs as the worker would
  (inventory, lineage, runs from the cursor, re-poll of open runs). The requests made in
  this phase show that it is watch-driven: no list, no per-CronJob request, only watch
  streams (reconnects) and pods of newly failed Jobs.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.kubernetes import KubernetesAdapter, KubernetesConfig
from adapters.testing.kube_sim import ClusterState, KubeSimulator, Plan
from gateway.model import RunState, SecretRef


def _cluster(cronjobs: int, namespaces: int, jobs: int) -> ClusterState:
    st = ClusterState(now=datetime(2025, 3, 10, 12, 0, 30, tzinfo=UTC))
    for i in range(cronjobs):
        ns = f"team-{i % namespaces:02d}"
        name = f"cron-{i:05d}"
        minutely = i % 100 == 0
        st.add_cronjob(
            ns,
            name,
            "* * * * *" if minutely else f"{i % 60} {i % 24} * * *",
            labels={"accord.dev/owner": f"team-{i % namespaces:02d}"},
            history=(jobs, jobs),
        )
        for j in range(jobs):
            job = st.job_from_cronjob(ns, name, f"{name}-{28_000_000 + j}")
            st.finish_job(ns, job["metadata"]["name"], succeeded=(i + j) % 7 != 0)
        if minutely:
            st.plans[(ns, name)] = Plan(seconds=30, fail_every=5)
    st.auto = True
    return st


async def _sync(adapter: KubernetesAdapter, cursor: str | None, open_ids: set[str]) -> str | None:
    jobs = [j async for j in adapter.list_jobs()]
    for job in jobs:
        await adapter.lineage(job)
    while True:
        page = await adapter.list_runs(cursor)
        for r in page.runs:
            (open_ids.discard if r.state.terminal else open_ids.add)(r.native_id)
        cursor = page.cursor
        if not page.more:
            break
    if open_ids:
        for r in await adapter.get_runs(sorted(open_ids)):
            if r.state.terminal:
                open_ids.discard(r.native_id)
    return cursor


async def main(args: argparse.Namespace) -> dict[str, Any]:
    token = secrets.token_hex(16)
    built = time.perf_counter()
    state = _cluster(args.cronjobs, args.namespaces, args.jobs)
    build_seconds = time.perf_counter() - built
    sim = KubeSimulator(state, tokens=[token], bookmark_seconds=1.0).start()

    def resolve(ref: SecretRef) -> SecretStr:
        return SecretStr(token)

    config = KubernetesConfig.model_validate(
        {
            "auth": {"server": sim.url, "tokenFrom": {"env": "BENCH_K8S_TOKEN"}},
            "pageSize": args.page_size,
        }
    )
    adapter = KubernetesAdapter(
        AdapterContext(source="bench-k8s", domain="default", secrets=resolve, timeout=120),
        config,
        clock=lambda: state.now,
    )
    try:
        open_ids: set[str] = set()
        started = time.perf_counter()
        inventory_listed = len([j async for j in adapter.list_jobs()])
        first_inventory_seconds = time.perf_counter() - started
        cursor = await _sync(adapter, None, open_ids)
        first_seconds = time.perf_counter() - started
        first_requests = Counter(sim.requests)
        first_runs = len(adapter.cache.records)
        inventory = len(adapter.cache.cronjobs)

        steady: list[float] = []
        before = Counter(sim.requests)
        for _ in range(args.cycles):
            state.advance(60)
            await asyncio.sleep(0.5)  # let the watches deliver, as the sync interval would
            t = time.perf_counter()
            cursor = await _sync(adapter, cursor, open_ids)
            steady.append(time.perf_counter() - t)
        steady_requests = Counter(sim.requests) - before
        runs_after = adapter.cache.records
        new_runs = len(runs_after) - first_runs
        failed_new = sum(1 for _, r in runs_after.values() if r.state == RunState.FAILED)
    finally:
        await adapter.aclose()
        sim.stop()
    return {
        "cronjobs": inventory,
        "cronjobs_listed": inventory_listed,
        "namespaces": args.namespaces,
        "jobs_at_start": first_runs,
        "page_size": args.page_size,
        "build_cluster_seconds": round(build_seconds, 2),
        "first_inventory_seconds": round(first_inventory_seconds, 2),
        "first_sync_seconds": round(first_seconds, 2),
        "first_sync_requests": dict(sorted(first_requests.items())),
        "steady_cycles": args.cycles,
        "steady_sync_seconds_max": round(max(steady), 3) if steady else None,
        "steady_requests": dict(sorted(steady_requests.items())),
        "steady_list_requests": sum(
            v for k, v in steady_requests.items() if not k.startswith(("watch", "list pods"))
        ),
        "steady_new_runs_seen": new_runs,
        "failed_runs_total": failed_new,
        "open_runs_left": len(open_ids),
        "loadavg_1m": os.getloadavg()[0],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cronjobs", type=int, default=5000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2, help="finished Jobs per CronJob")
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--page-size", type=int, default=500)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
