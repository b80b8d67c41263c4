"""Jenkins sync cost: requests and time of a full sync against the Jenkins simulator.

    uv run python bench/jenkins_sync.py [--jobs 1000] [--builds 5] [--window 20]

Builds a Jenkins simulator with ``--jobs`` jobs spread over folders three levels deep
(freestyle and Pipeline, every fourth with a timer spec) and ``--builds`` finished builds
each, then runs the adapter over real HTTP on 127.0.0.1:

* a cold sync: inventory (``list_jobs``) then runs (``list_runs`` from no cursor);
* a warm sync: inventory again, then runs from the cursor after 25 new builds.

Prints one JSON line: ``jobs``, ``builds``, ``requests_inventory`` and ``requests_runs``
(cold), ``seconds`` (cold, both phases), and the warm figures beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.jenkins import JenkinsAdapter, JenkinsConfig
from adapters.testing.jenkins_sim import JenkinsSimulator, SimState, cause_timer, cause_user

_TOKEN = "bench-token"


def _state(jobs: int, builds: int) -> tuple[SimState, list[str]]:
    state = SimState()
    paths: list[str] = []
    for i in range(jobs):
        path = f"team-{i % 10}/app-{i // 10 % 10}/job-{i}"
        kind = "pipeline" if i % 2 else "freestyle"
        spec = "H H(0-5) * * *" if i % 4 == 0 else None
        state.add_job(path, kind, spec=spec, stages=["Build", "Test"] if kind == "pipeline" else ())
        paths.append(path)
        for b in range(builds):
            cause = cause_timer() if b % 2 else cause_user("dev")
            state.run(path, "FAILURE" if (i + b) % 7 == 0 else "SUCCESS", cause=cause)
    return state, paths


def _kinds(requests: list[tuple[str, str]]) -> dict[str, int]:
    """What the requests were for (as the simulator saw them)."""
    out: dict[str, int] = {}
    for _, path in requests:
        if "config.xml" in path:
            kind = "config_xml"
        elif "wfapi" in path:
            kind = "wfapi"
        elif path.startswith("/queue"):
            kind = "queue"
        else:
            kind = "tree"
        out[kind] = out.get(kind, 0) + 1
    return out


async def _sync(adapter: JenkinsAdapter, cursor: str | None) -> tuple[int, int, int, str | None]:
    start = adapter.request_count
    jobs = [j async for j in adapter.list_jobs()]
    inventory = adapter.request_count - start
    page = await adapter.list_runs(cursor)
    runs = adapter.request_count - start - inventory
    return len(jobs), inventory, runs, page.cursor


async def main(args: argparse.Namespace) -> dict[str, object]:
    state, paths = _state(args.jobs, args.builds)
    with JenkinsSimulator(state, tokens={"bench": _TOKEN}) as sim:
        config = JenkinsConfig.model_validate(
            {
                "url": sim.url,
                "username": "bench",
                "token": {"env": "BENCH_TOKEN"},
                "maxBuildsPerJob": args.window,
            }
        )
        adapter = JenkinsAdapter(
            AdapterContext(
                source="bench-jenkins",
                domain="bench",
                secrets=lambda ref: SecretStr(_TOKEN),
                timeout=120.0,
            ),
            config,
        )
        try:
            started = time.perf_counter()
            jobs, inventory, runs, cursor = await _sync(adapter, None)
            cold = time.perf_counter() - started
            kinds = _kinds(sim.requests)
            for path in paths[:25]:
                state.run(path, "SUCCESS")
            started = time.perf_counter()
            _, warm_inventory, warm_runs, _ = await _sync(adapter, cursor)
            warm = time.perf_counter() - started
        finally:
            await adapter.aclose()
    return {
        "jobs": jobs,
        "builds": sum(len(j.builds) for j in state.jobs()),
        "requests_inventory": inventory,
        "requests_runs": runs,
        "seconds": round(cold, 3),
        "requests_cold_by_kind": kinds,
        "requests_inventory_warm": warm_inventory,
        "requests_runs_warm": warm_runs,
        "seconds_warm": round(warm, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--builds", type=int, default=5)
    parser.add_argument("--window", type=int, default=20)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
