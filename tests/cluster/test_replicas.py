"""Three gateway replicas on one PostgreSQL share 30 sources by leases, hand them over when
one dies or pauses, fence a paused replica's late writes, and pass events and webhook
hints to each other. The tests run in this order on one cluster (module fixture): the
failure tests come last and each leaves at least one replica serving."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from typing import Any

import httpx

from adapters.terraform.adapter import SIGNATURE_HEADER, signature
from tests.conftest import wait_until

from .conftest import LEASE, RUNS_EVERY, Cluster, sse_events


def _synced(cl: Cluster, sources: list[str]) -> bool:
    want = cl.builds()
    return all({n for n in cl.runs(s) if "#queue:" not in n} == want for s in sources if s != "tfc")


def test_leases_spread_over_the_replicas_and_every_source_syncs(cluster: Cluster) -> None:
    cl = cluster
    cap = math.ceil(len(cl.sources) / 3) + 2

    def spread() -> bool:
        holders = cl.holders()
        per = [sum(1 for h in holders.values() if h == r.id) for r in cl.replicas]
        return (
            len(holders) == len(cl.sources)
            and all(h is not None for h in holders.values())
            and all(0 < n <= cap for n in per)
        )

    # A bound, not a timing: replicas that start on a loaded machine settle later.
    assert wait_until(spread, timeout=20 * LEASE, interval=0.3), cl.get(
        cl.replicas[0], "/api/v1/cluster"
    ).json()
    view = cl.get(cl.replicas[1], "/api/v1/cluster").json()
    assert view["mode"] == "cluster" and view["replica"] == "r1"
    assert {r["id"] for r in view["replicas"] if r["alive"]} == {"r0", "r1", "r2"}
    assert sum(r["leases"] for r in view["replicas"]) == len(cl.sources)
    assert {s["name"] for s in view["singletons"]} >= {"approval-expiry", "compliance-sweep"}

    # Each replica reports what it holds in its metrics (leases still move while the
    # replicas settle on their fair share, so metric and table are compared until they agree).
    def metrics_agree() -> bool:
        holders = cl.holders()
        return all(
            abs(
                cl.metric(r, "accord_leases_held", replica=r.id)
                - sum(1 for h in holders.values() if h == r.id)
            )
            <= 1
            for r in cl.replicas
        )

    assert wait_until(metrics_agree, timeout=10 * LEASE, interval=0.5), cl.holders()
    assert wait_until(lambda: _synced(cl, cl.sources), timeout=90, interval=0.5)


def test_sse_on_one_replica_shows_an_action_through_another(cluster: Cluster) -> None:
    cl = cluster
    a, b = cl.replicas[0], cl.replicas[1]
    events: list[dict[str, Any]] = []
    ready = threading.Event()
    reader = threading.Thread(
        target=sse_events, args=(a.url, cl.token, events, ready, 30), daemon=True
    )
    reader.start()
    assert ready.wait(10)
    r = cl.post(b, "/api/v1/jobs/j03/deploy/trigger", json={"reason": "cluster test"})
    assert r.status_code == 200, r.text
    reader.join(timeout=30)
    actions = [e for e in events if e["type"] == "action"]
    assert actions, events
    assert actions[0]["data"]["target"] == "j03/deploy"
    assert actions[0]["data"]["action"] == "trigger"


def test_webhook_on_any_replica_syncs_on_the_lease_holder(cluster: Cluster) -> None:
    cl = cluster
    holder_id = cl.holders()["tfc"]
    holder = next(r for r in cl.replicas if r.id == holder_id)
    other = next(r for r in cl.replicas if r.id != holder_id)
    before = cl.metric(holder, "accord_sync_passes_total", source="tfc")
    others_before = cl.metric(other, "accord_sync_passes_total", source="tfc")
    run = cl.tfc.create_run(cl.workspace)
    body = json.dumps(
        {
            "payload_version": 1,
            "run_id": run.id,
            "workspace_id": cl.workspace,
            "notifications": [{"trigger": "run:created"}],
        }
    ).encode()
    r = httpx.post(
        other.url + "/hooks/tfc",
        content=body,
        headers={SIGNATURE_HEADER: signature(HOOK(), body), "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    assert r.json()["sync_scheduled"] is True
    # The source syncs every hour: only the forwarded hint makes the holder sync now.
    assert wait_until(
        lambda: cl.metric(holder, "accord_sync_passes_total", source="tfc") > before,
        timeout=10,
        interval=0.2,
    )
    assert wait_until(lambda: any(run.id in n for n in cl.runs("tfc")), timeout=10)
    assert cl.metric(other, "accord_sync_passes_total", source="tfc") == others_before
    # On-demand syncs on a replica that does not hold the source go to the holder.
    r = cl.post(other, "/api/v1/sources/tfc/sync")
    assert r.status_code == 200, r.text
    assert r.json()["forwarded_to"] == holder_id
    r = cl.post(holder, "/api/v1/sources/tfc/sync")
    assert r.status_code == 200 and r.json()["error"] is None, r.text


def HOOK() -> str:
    from .conftest import HOOK_TOKEN

    return HOOK_TOKEN


def test_a_paused_replica_that_lost_its_leases_writes_nothing(cluster: Cluster) -> None:
    cl = cluster
    victim = cl.replicas[2]
    # The victim holds its share before it is paused (replicas that just started are still
    # taking theirs).
    assert wait_until(
        lambda: any(h == victim.id for h in cl.holders().values()), timeout=10 * LEASE
    ), cl.holders()
    # Its sources and their fencing tokens from one answer: a source handed on after it
    # (shares still settling) only gets a larger token.
    view = cl.get(victim, "/api/v1/cluster").json()["sources"]
    mine = sorted(s["name"] for s in view if s["holder"] == victim.id)
    tokens = {s["name"]: s["token"] for s in view}
    assert mine, view
    os.kill(victim.proc.pid, signal.SIGSTOP)
    try:
        for job in ("build", "deploy"):
            cl.jenkins.run(job, "FAILURE")
        # Its sources move to the others and get the new builds there (how fast is the
        # SIGKILL test's and bench/scale.py's concern; this test is about fencing, so it
        # allows a loaded machine ten lease periods).
        assert wait_until(
            lambda: all(cl.holders().get(s) not in (None, victim.id) for s in mine),
            timeout=10 * LEASE,
            interval=0.3,
        ), cl.holders()
        assert wait_until(lambda: _synced(cl, mine), timeout=RUNS_EVERY + 30, interval=0.3)
        taken = {
            s["name"]: s["token"]
            for s in cl.get(cl.replicas[0], "/api/v1/cluster").json()["sources"]
        }
        assert all(taken[s] > tokens[s] for s in mine)
    finally:
        os.kill(victim.proc.pid, signal.SIGCONT)
    # Awake, it tries to go on with its old work; the leases refuse every write.
    assert wait_until(
        lambda: cl.metric(victim, "accord_fenced_writes_total") > 0, timeout=30, interval=0.3
    ), victim.log.read_text()[-3000:]
    time.sleep(RUNS_EVERY)
    assert _synced(cl, cl.sources)
    held_now = cl.holders()
    assert all(held_now[s] != victim.id or taken_token_grew(cl, s, tokens) for s in mine)


def taken_token_grew(cl: Cluster, source: str, old: dict[str, int]) -> bool:
    now = {s["name"]: s["token"] for s in cl.get(cl.live()[0], "/api/v1/cluster").json()["sources"]}
    return now[source] > old[source]


def test_sigkill_hands_the_sources_over_within_a_lease_period(cluster: Cluster) -> None:
    cl = cluster
    victim = cl.replicas[1]
    assert wait_until(
        lambda: any(h == victim.id for h in cl.holders().values()), timeout=4 * LEASE
    ), cl.holders()
    mine = sorted(s for s, h in cl.holders().items() if h == victim.id)
    cl.jenkins.run("build")
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(timeout=10)
    killed = time.monotonic()
    assert wait_until(
        lambda: (
            all(cl.holders().get(s) not in (None, victim.id) for s in mine) and _synced(cl, mine)
        ),
        timeout=LEASE + RUNS_EVERY + 20,
        interval=0.2,
    ), cl.holders()
    took = time.monotonic() - killed
    # One lease period, one tick of the others (a third of it), one runs interval, plus
    # the pass itself; the slack is for a loaded test machine.
    assert took < LEASE + LEASE / 3 + RUNS_EVERY + 8, took
    # Every build is there exactly once, in every source, whoever synced it (the sources
    # the others held all along get the new build on their own next pass).
    assert wait_until(lambda: _synced(cl, cl.sources), timeout=RUNS_EVERY + 20, interval=0.2)
    want = cl.builds()
    for s in cl.sources:
        if s == "tfc":
            continue
        got = [n for n in cl.runs(s) if "#queue:" not in n]
        assert sorted(got) == sorted(want), s
