"""Terraform Cloud sync cost: requests per sync for an organization of many workspaces,
against the Terraform Cloud simulator over real HTTP on 127.0.0.1.

    uv run python bench/tfc_sync.py [--workspaces 1000] [--runs 3] [--open 50]

Builds one organization with ``--workspaces`` workspaces (every third with a run trigger
from the one before), ``--runs`` finished runs each and ``--open`` runs waiting for
confirmation, then runs the adapter the way the gateway's sync worker does:

* inventory: ``list_jobs`` and ``lineage`` of every workspace (run triggers within the
  per-inventory budget, reused for ``runTriggersRefresh``);
* runs: ``list_runs`` from the cursor, then ``get_runs`` of every run the gateway would
  hold as non-final (its re-poll).

Cold = first sync; warm = the next one after 20 new runs were created and 10 open runs
were applied. The simulator's rate limits are off (they would only stretch the time);
``seconds_at_30_per_second`` is the floor the real API's general limit puts on each
figure, and ``per_workspace_polling_run_list_requests`` what polling every workspace's
run list would cost per sync (the run-list endpoints allow 30 per minute).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.terraform import TerraformAdapter, TerraformConfig
from adapters.testing.tfc_sim import SimState, TfcSimulator
from gateway.model import RunState

_TOKEN = "bench-token"
_ORG = "bench-org"


def _state(workspaces: int, runs: int, open_runs: int) -> tuple[SimState, list[str]]:
    state = SimState(seed=3)
    state.rate_per_second = None
    state.run_list_per_minute = None
    state.add_org(_ORG)
    ids: list[str] = []
    for i in range(workspaces):
        ws = state.add_workspace(
            _ORG, f"ws-{i:04d}", project=f"project-{i % 10}", tags=[f"team:t{i % 7}"]
        )
        ids.append(ws.id)
        if i % 3 == 2:
            state.add_run_trigger(ws.id, ids[i - 1])
        for r in range(runs):
            run = state.create_run(ws.id)
            state.plan(run.id, has_changes=r % 2 == 0)
            if state.runs[run.id].status == "planned":
                state.confirm(run.id, by="bench")
                state.finish_apply(run.id, ok=(i + r) % 9 != 0)
    for i in range(open_runs):
        run = state.create_run(ids[(i * 7) % workspaces])
        state.plan(run.id)
    return state, ids


async def _inventory(adapter: TerraformAdapter) -> tuple[int, int, int]:
    start = adapter.request_count
    jobs = [j async for j in adapter.list_jobs()]
    listed = adapter.request_count - start
    edges = 0
    for job in jobs:
        edges += len(await adapter.lineage(job))
    return listed, adapter.request_count - start - listed, edges


async def _runs(adapter: TerraformAdapter, cursor: str | None, held: set[str]) -> dict[str, Any]:
    start = adapter.request_count
    page = await adapter.list_runs(cursor)
    listed = adapter.request_count - start
    for r in page.runs:
        if r.state.terminal:
            held.discard(r.native_id)
        else:
            held.add(r.native_id)
    before = adapter.request_count
    repolled = await adapter.get_runs(sorted(held))
    for r in repolled:
        if r.state.terminal:
            held.discard(r.native_id)
    return {
        "cursor": page.cursor,
        "run_list_requests": listed,
        "repoll_requests": adapter.request_count - before,
        "runs_reported": len(page.runs),
        "held_non_final": len([r for r in repolled if not r.state.terminal]),
        "waiting": len([r for r in page.runs if r.state == RunState.WAITING]),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    state, ids = _state(args.workspaces, args.runs, args.open)
    with TfcSimulator(state, tokens={_TOKEN: "bench"}) as sim:
        config = TerraformConfig.model_validate(
            {"url": sim.url, "organizations": [_ORG], "token": {"env": "BENCH_TOKEN"}}
        )
        adapter = TerraformAdapter(
            AdapterContext(
                source="bench",
                domain="infra",
                secrets=lambda ref: SecretStr(_TOKEN),
                timeout=60.0,
            ),
            config,
        )
        try:
            t0 = time.perf_counter()
            inv_list, inv_triggers, edges = await _inventory(adapter)
            held: set[str] = set()
            cold = await _runs(adapter, None, held)
            cold_seconds = time.perf_counter() - t0
            syncs_to_learn_triggers = 1
            while True:
                _, extra, more_edges = await _inventory(adapter)
                if extra == 0:
                    break
                syncs_to_learn_triggers += 1
                edges = more_edges
            _, warm_triggers, _ = await _inventory(adapter)
            for i in range(20):
                state.create_run(ids[(i * 13) % len(ids)])
            waiting = [r for r in state.runs.values() if r.status == "planned"][:10]
            for r in waiting:
                state.confirm(r.id, by="bench")
                state.finish_apply(r.id)
            t1 = time.perf_counter()
            warm = await _runs(adapter, cold.pop("cursor"), held)
            warm.pop("cursor")
            warm_seconds = time.perf_counter() - t1
        finally:
            await adapter.aclose()
    workspace_pages = inv_list
    return {
        "workspaces": args.workspaces,
        "runs": len(state.runs),
        "inventory_workspace_requests": workspace_pages,
        "inventory_run_trigger_requests_first": inv_triggers,
        "inventories_to_read_all_run_triggers": syncs_to_learn_triggers,
        "inventory_run_trigger_requests_later": warm_triggers,
        "depends_on_edges": edges,
        "runs_cold": cold,
        "runs_warm": warm,
        "requests_per_runs_sync_warm": warm["run_list_requests"] + warm["repoll_requests"],
        "seconds_at_30_per_second": {
            "first_inventory": round((workspace_pages + inv_triggers) / 30, 1),
            "warm_runs_sync": round((warm["run_list_requests"] + warm["repoll_requests"]) / 30, 2),
        },
        "per_workspace_polling_run_list_requests": args.workspaces,
        "seconds_cold_sync": round(cold_seconds, 2),
        "seconds_warm_runs_sync": round(warm_seconds, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--open", type=int, default=50)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
