"""Accord versus a tool's own API: the same questions, paired and interleaved.

    uv run python bench/versus_tools.py [--jobs 100] [--builds 100] [--rounds 10] [--quick]

Seeds the Jenkins simulator (real HTTP on 127.0.0.1) with ``--jobs`` jobs of ``--builds``
finished builds each, spread over the last 48 hours (one in eight failed), syncs them into
a fresh Accord store, starts the gateway in its own process and asks, round after round,
each question of Accord and then of Jenkins (the order alternates between rounds):

- ``failed_24h``: the builds that failed in the last 24 hours;
- ``all_24h``: every build of the last 24 hours;
- ``job_last_100``: one job's newest 100 builds.

Accord is asked through ``GET /api/v1/runs`` (filters, 100-run pages followed by cursor);
Jenkins through its JSON API as a client must (it has no query across jobs): the job list,
then each job's builds, 100 per request (``tree=allBuilds[...]{M,N}``, Jenkins' own cap
per list). Both answers are reduced to (job, build number) sets and must be equal.
Prints one JSON line: per question the p50 of each side, the ratio (tool / Accord), the
number of runs, and the machine load. ``--quick``: 20 jobs x 50 builds, 3 rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from read_path import start_server

from adapters.testing.jenkins_sim import JenkinsSimulator, SimState, cause_timer
from gateway.config import apply_plan, load_documents, plan
from gateway.secrets import SecretPolicy
from gateway.settings import Settings
from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.services.tokens import create_token
from gateway.sync import SyncManager

TOKEN_ENV = "ACCORD_SECRET_BENCH_JENKINS_TOKEN"
SOURCE = "bench-jenkins"
PAGE = 100
Key = tuple[str, int]


def seed(jobs: int, builds: int, now_ms: int) -> tuple[SimState, list[str]]:
    state = SimState()
    paths = []
    span = 48 * 3600 * 1000
    for j in range(jobs):
        path = f"job-{j:04d}"
        state.add_job(path)
        paths.append(path)
        for b in range(builds):
            at = now_ms - span + (b * span) // builds + (j * 7919) % (span // builds)
            result = "FAILURE" if (j + b) % 8 == 0 else "SUCCESS"
            state.run(path, result, cause=cause_timer(), at_ms=at, duration_ms=30_000)
    return state, paths


def sync_into_accord(url: str, sim_url: str) -> None:
    engine = create_db_engine(url)
    upgrade(engine)
    doc = {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {"name": SOURCE, "domain": "ci"},
        "spec": {
            "type": "jenkins",
            "url": sim_url,
            "username": "bench",
            "token": {"env": TOKEN_ENV},
            "maxBuildsPerJob": 100,
        },
    }
    res = load_documents([("bench", 1, doc)])
    if not res.ok:
        raise SystemExit(f"the source does not validate: {[str(e) for e in res.errors]}")
    with session_scope(engine) as s:
        apply_plan(s, plan(s, res.documents), subject="bench", channel="cli")
    manager = SyncManager(engine, secrets=SecretPolicy.from_settings(Settings()).resolve)
    report = anyio.run(manager.sync_now, SOURCE)
    if report.error is not None:
        raise SystemExit(f"the sync failed: {report.error}")
    engine.dispose()


def accord_runs(client: httpx.Client, token: str, params: dict[str, Any], most: int) -> set[Key]:
    headers = {"Authorization": f"Bearer {token}"}
    out: set[Key] = set()
    cursor = None
    while len(out) < most:
        q = {**params, "limit": min(PAGE, most - len(out))}
        if cursor:
            q["cursor"] = cursor
        resp = client.get("/api/v1/runs", params=q, headers=headers)
        resp.raise_for_status()
        body = resp.json()
        for item in body["items"]:
            path, _, number = item["uid"].removeprefix(SOURCE + "/").rpartition("#")
            out.add((path, int(number)))
        cursor = body["next_cursor"]
        if not cursor:
            break
    return out


def jenkins_builds(
    client: httpx.Client, paths: list[str] | None, since_ms: int, failed: bool, most: int
) -> set[Key]:
    """As a client of Jenkins' API must: list the jobs, then read each job's builds,
    newest first, 100 per request, until they are older than ``since_ms``."""
    if paths is None:
        root = client.get("/api/json", params={"tree": "jobs[name]"})
        root.raise_for_status()
        paths = [j["name"] for j in root.json()["jobs"]]
    out: set[Key] = set()
    for path in paths:
        start = 0
        while True:
            tree = f"allBuilds[number,result,timestamp]{{{start},{start + PAGE}}}"
            resp = client.get(f"/job/{path}/api/json", params={"tree": tree})
            resp.raise_for_status()
            builds = resp.json().get("allBuilds", [])
            old = False
            for b in builds:
                if b["timestamp"] < since_ms:
                    old = True
                    break
                if not failed or b["result"] == "FAILURE":
                    out.add((path, int(b["number"])))
                    if len(out) >= most:
                        return out
            if old or len(builds) < PAGE:
                break
            start += PAGE
    return out


def timed(fn: Callable[[], set[Key]]) -> tuple[float, set[Key]]:
    t0 = time.perf_counter()
    got = fn()
    return (time.perf_counter() - t0) * 1000, got


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--builds", type=int, default=100, help="per job, at most 100")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="20 jobs x 50 builds, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.builds, args.rounds = 20, 50, 3
    if not 1 <= args.builds <= 100:
        parser.error("--builds must be 1 to 100 (Accord reads at most 100 per job per pass)")
    started = time.perf_counter()
    now_ms = int(time.time() * 1000)
    since_ms = now_ms - 24 * 3600 * 1000
    since_iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since_ms / 1000)) + "Z"
    state, paths = seed(args.jobs, args.builds, now_ms)
    secret = "bench-jenkins-token"
    os.environ[TOKEN_ENV] = secret
    results: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp,
        JenkinsSimulator(state, tokens={"bench": secret}) as sim,
    ):
        url = f"sqlite:///{Path(tmp) / 'accord.db'}"
        sync_into_accord(url, sim.url)
        engine = create_db_engine(url)
        with session_scope(engine) as s:
            token = create_token(s, subject="bench-versus", role="admin", domain="*").token
        engine.dispose()
        proc, base = start_server(url, Path(tmp) / "data")
        job = paths[len(paths) // 2]
        questions: dict[str, tuple[Callable[..., set[Key]], Callable[..., set[Key]]]] = {}
        try:
            with (
                httpx.Client(base_url=base, timeout=120) as accord,
                httpx.Client(base_url=sim.url, auth=("bench", secret), timeout=120) as tool,
            ):
                big = 10**9
                questions = {
                    "failed_24h": (
                        lambda: accord_runs(
                            accord,
                            token,
                            {"source": SOURCE, "state": "failed", "since": since_iso},
                            big,
                        ),
                        lambda: jenkins_builds(tool, None, since_ms, True, big),
                    ),
                    "all_24h": (
                        lambda: accord_runs(
                            accord, token, {"source": SOURCE, "since": since_iso}, big
                        ),
                        lambda: jenkins_builds(tool, None, since_ms, False, big),
                    ),
                    "job_last_100": (
                        lambda: accord_runs(accord, token, {"job": f"{SOURCE}/{job}"}, 100),
                        lambda: jenkins_builds(tool, [job], 0, False, 100),
                    ),
                }
                samples: dict[str, tuple[list[float], list[float]]] = {
                    q: ([], []) for q in questions
                }
                sizes: dict[str, int] = {}
                for r in range(args.rounds + 1):  # round 0 warms both sides up
                    for name, (ask_accord, ask_tool) in questions.items():
                        if r % 2:
                            t_tool, b = timed(ask_tool)
                            t_acc, a = timed(ask_accord)
                        else:
                            t_acc, a = timed(ask_accord)
                            t_tool, b = timed(ask_tool)
                        if a != b:
                            raise SystemExit(
                                f"{name}: the answers differ: {len(a)} runs from Accord, "
                                f"{len(b)} from Jenkins, {len(a ^ b)} not in both"
                            )
                        sizes[name] = len(a)
                        if r:
                            samples[name][0].append(t_acc)
                            samples[name][1].append(t_tool)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for name, (acc, tool_ms) in samples.items():
        a50, t50 = statistics.median(acc), statistics.median(tool_ms)
        results[name] = {
            "runs": sizes[name],
            "accord_p50_ms": round(a50, 2),
            "jenkins_p50_ms": round(t50, 2),
            "ratio": round(t50 / a50, 1),
            "same_runs": True,
        }
    out = {
        "tool": "jenkins (simulator)",
        "jobs": args.jobs,
        "builds": args.jobs * args.builds,
        "rounds": args.rounds,
        "page_size": PAGE,
        "questions": results,
        "goal_ratio": 20,
        "seconds": round(time.perf_counter() - started, 1),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
