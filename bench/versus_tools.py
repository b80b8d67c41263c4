"""Accord versus a tool's own API: the same questions, paired and interleaved.

    uv run python bench/versus_tools.py [--tools jenkins,airflow] [--jobs 100] [--builds 100]
        [--runs 10000] [--dags 12] [--rounds 10] [--quick]

For each tool, the benchmark fills the tool with finished runs spread over the last 48
hours (one in eight failed), syncs them into a fresh Accord store through the tool's
adapter, starts the gateway in its own process and asks, round after round, each question
of Accord and then of the tool (the order reverses every other round; round 0 warms both
up and is not counted):

- ``failed_24h``: the runs that failed in the last 24 hours;
- ``all_24h``: every run of the last 24 hours;
- ``job_last_100``: one job's newest 100 runs.

Accord is asked through ``GET /api/v1/runs`` (filters, 100-run pages followed by cursor).
Each answer is reduced to the runs' native ids (Accord's run uid less the source name) and
the tool's answer must hold the same runs, or the script stops.

``jenkins``: the Jenkins simulator (real HTTP on 127.0.0.1), ``--jobs`` jobs of
``--builds`` builds. Jenkins has no query across jobs, so a client reads the job list,
then each job's builds, 100 per request (``tree=allBuilds[...]{M,N}``, Jenkins' own cap).

``airflow``: a real Apache Airflow 3 (API server, scheduler, DAG processor; SQLite) started
from its virtualenv (``scripts/airflow-venv.sh``, or ``$ACCORD_AIRFLOW_VENV``) with the
``--dags`` hourly DAGs of ``bench/airflow_dags``, paused so the scheduler adds no runs.
``--runs`` DAG runs are written into Airflow's database with Airflow's own models
(``bench/_airflow_seed.py``, run by the Airflow virtualenv's Python), then read back
through its REST API to check they are all listed. A client asks
``GET /api/v2/dags/~/dagRuns`` with ``state``/``start_date_gte`` filters, 100 runs per
request (Airflow's ``api.maximum_page_limit``), both by ``offset`` (the classic way; each
page also counts the matches) and by keyset ``cursor`` (Airflow 3.3+); one DAG's newest
100 runs are one request, ``order_by=-logical_date``. Accord is also asked for 1000-run
pages (``accord_page1000``), for reference only: the ratios are at equal page sizes.

Prints one JSON line: per tool and question the p50 of each side, the ratios (tool /
Accord; for Airflow ``ratio`` is against the faster of its two ways), the number of runs,
and the machine's load averages at start and end. ``--quick``: Jenkins 20 jobs x 50
builds, Airflow 1,000 runs, 3 rounds. A missing Airflow virtualenv is an error unless
``--tools`` leaves Airflow out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
from read_path import start_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.testing.jenkins_sim import JenkinsSimulator, SimState, cause_timer
from gateway.config import apply_plan, load_documents, plan
from gateway.secrets import SecretPolicy
from gateway.settings import Settings
from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.services.tokens import create_token
from gateway.sync import SyncManager
from tests.airflow.deployment import PASSWORDS, AirflowDeployment, copy_dags, venv_path

BENCH = Path(__file__).resolve().parent
PAGE = 100
BIG = 10**9
TOOLS = ("jenkins", "airflow")
# One question asked of several sides: side name -> a call that answers with native run ids.
Ask = Callable[[], set[str]]


# -- shared -------------------------------------------------------------------------------
def sync_into_accord(url: str, source: str, spec: dict[str, Any], expect: int) -> float:
    """Register ``source`` in a fresh store at ``url`` and sync it until ``expect`` runs
    are stored (a pass reads at most 50 pages); returns the seconds it took."""
    t0 = time.perf_counter()
    engine = create_db_engine(url)
    upgrade(engine)
    doc = {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {"name": source, "domain": "ci"},
        "spec": spec,
    }
    res = load_documents([("bench", 1, doc)])
    if not res.ok:
        raise SystemExit(f"the source does not validate: {[str(e) for e in res.errors]}")
    with session_scope(engine) as s:
        apply_plan(s, plan(s, res.documents), subject="bench", channel="cli")
    manager = SyncManager(engine, secrets=SecretPolicy.from_settings(Settings()).resolve)
    created = 0
    for _ in range(expect // 1000 + 5):
        report = anyio.run(manager.sync_now, source)
        if report.error is not None:
            raise SystemExit(f"the sync of {source} failed: {report.error}")
        new = report.runs.get("created", 0)
        created += new
        if created >= expect or not new:
            break
    engine.dispose()
    if created != expect:
        raise SystemExit(f"the sync of {source} stored {created} runs, not {expect}")
    return time.perf_counter() - t0


@contextmanager
def accord_gateway(url: str, data_dir: Path) -> Iterator[tuple[str, str]]:
    """The gateway over the store at ``url`` in its own process: (base URL, admin token)."""
    engine = create_db_engine(url)
    with session_scope(engine) as s:
        token = create_token(s, subject="bench-versus", role="admin", domain="*").token
    engine.dispose()
    proc, base = start_server(url, data_dir)
    try:
        yield base, token
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def accord_runs(
    client: httpx.Client, source: str, params: dict[str, Any], most: int, page: int = PAGE
) -> set[str]:
    """Runs from ``GET /api/v1/runs``, ``page`` per request, followed by cursor."""
    prefix = source + "/"
    out: set[str] = set()
    cursor = None
    while len(out) < most:
        q = {**params, "limit": min(page, most - len(out))}
        if cursor:
            q["cursor"] = cursor
        resp = client.get("/api/v1/runs", params=q)
        resp.raise_for_status()
        body = resp.json()
        out.update(item["uid"].removeprefix(prefix) for item in body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            break
    return out


def timed(fn: Ask) -> tuple[float, set[str]]:
    t0 = time.perf_counter()
    got = fn()
    return (time.perf_counter() - t0) * 1000, got


def compare(tool: str, questions: dict[str, dict[str, Ask]], rounds: int) -> dict[str, Any]:
    """Ask every question of every side, ``rounds`` times plus a warm-up round, the order
    of the sides reversed every other round; every side must answer Accord's runs."""
    samples = {q: {side: [] for side in sides} for q, sides in questions.items()}
    sizes: dict[str, int] = {}
    for r in range(rounds + 1):
        for name, sides in questions.items():
            order = list(sides.items())
            if r % 2:
                order.reverse()
            answers: dict[str, set[str]] = {}
            for side, ask in order:
                ms, answers[side] = timed(ask)
                if r:
                    samples[name][side].append(ms)
            ref = answers["accord"]
            for side, got in answers.items():
                if got != ref:
                    raise SystemExit(
                        f"{tool} {name}: the answers differ: {len(ref)} runs from Accord, "
                        f"{len(got)} from {side}, {len(ref ^ got)} not in both"
                    )
            sizes[name] = len(ref)
    return {
        name: {
            "runs": sizes[name],
            **{f"{side}_p50_ms": round(statistics.median(ms), 2) for side, ms in sides.items()},
            "same_runs": True,
        }
        for name, sides in samples.items()
    }


def ratio(tool_ms: float, accord_ms: float) -> float:
    return round(tool_ms / accord_ms, 1)


# -- Jenkins (simulator) --------------------------------------------------------------------
JENKINS_SOURCE = "bench-jenkins"
JENKINS_TOKEN_ENV = "ACCORD_SECRET_BENCH_JENKINS_TOKEN"


def seed_jenkins(jobs: int, builds: int, now_ms: int) -> tuple[SimState, list[str]]:
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


def jenkins_builds(
    client: httpx.Client, paths: list[str] | None, since_ms: int, failed: bool, most: int
) -> set[str]:
    """As a client of Jenkins' API must: list the jobs, then read each job's builds,
    newest first, 100 per request, until they are older than ``since_ms``."""
    if paths is None:
        root = client.get("/api/json", params={"tree": "jobs[name]"})
        root.raise_for_status()
        paths = [j["name"] for j in root.json()["jobs"]]
    out: set[str] = set()
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
                    out.add(f"{path}#{int(b['number'])}")
                    if len(out) >= most:
                        return out
            if old or len(builds) < PAGE:
                break
            start += PAGE
    return out


def bench_jenkins(jobs: int, builds: int, rounds: int) -> dict[str, Any]:
    started = time.perf_counter()
    now_ms = int(time.time() * 1000)
    since_ms = now_ms - 24 * 3600 * 1000
    since_iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since_ms / 1000)) + "Z"
    state, paths = seed_jenkins(jobs, builds, now_ms)
    secret = "bench-jenkins-token"
    os.environ[JENKINS_TOKEN_ENV] = secret
    src = JENKINS_SOURCE
    with (
        tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp,
        JenkinsSimulator(state, tokens={"bench": secret}) as sim,
    ):
        url = f"sqlite:///{Path(tmp) / 'accord.db'}"
        spec = {
            "type": "jenkins",
            "url": sim.url,
            "username": "bench",
            "token": {"env": JENKINS_TOKEN_ENV},
            "maxBuildsPerJob": 100,
        }
        sync_s = sync_into_accord(url, src, spec, jobs * builds)
        job = paths[len(paths) // 2]
        with (
            accord_gateway(url, Path(tmp) / "data") as (base, token),
            httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
            ) as accord,
            httpx.Client(base_url=sim.url, auth=("bench", secret), timeout=120) as tool,
        ):
            questions: dict[str, dict[str, Ask]] = {
                "failed_24h": {
                    "accord": lambda: accord_runs(
                        accord, src, {"source": src, "state": "failed", "since": since_iso}, BIG
                    ),
                    "jenkins": lambda: jenkins_builds(tool, None, since_ms, True, BIG),
                },
                "all_24h": {
                    "accord": lambda: accord_runs(
                        accord, src, {"source": src, "since": since_iso}, BIG
                    ),
                    "jenkins": lambda: jenkins_builds(tool, None, since_ms, False, BIG),
                },
                "job_last_100": {
                    "accord": lambda: accord_runs(accord, src, {"job": f"{src}/{job}"}, 100),
                    "jenkins": lambda: jenkins_builds(tool, [job], 0, False, 100),
                },
            }
            results = compare("jenkins", questions, rounds)
    for r in results.values():
        r["ratio"] = ratio(r["jenkins_p50_ms"], r["accord_p50_ms"])
    return {
        "tool": "jenkins (simulator)",
        "jobs": jobs,
        "runs": jobs * builds,
        "rounds": rounds,
        "page_size": PAGE,
        "sync_seconds": round(sync_s, 1),
        "questions": results,
        "seconds": round(time.perf_counter() - started, 1),
    }


# -- Airflow (real) -------------------------------------------------------------------------
AIRFLOW_SOURCE = "bench-airflow"
AIRFLOW_SECRET_ENV = "ACCORD_SECRET_BENCH_AIRFLOW_PASSWORD"


def airflow_venv() -> Path:
    """The Airflow virtualenv; an error that says how to make it when it is missing."""
    venv = venv_path()
    if not ((venv / ".accord-airflow-ready").is_file() and (venv / "bin" / "airflow").is_file()):
        raise SystemExit(
            f"no Airflow virtualenv at {venv}: create it with scripts/airflow-venv.sh "
            "(or point ACCORD_AIRFLOW_VENV at one), or leave Airflow out with --tools jenkins"
        )
    return venv


def airflow_runs(
    client: httpx.Client, path: str, params: dict[str, Any], *, keyset: bool
) -> set[str]:
    """Every run the REST API lists for ``params``, 100 per request, by keyset cursor or
    by offset (an offset page also counts every match: ``total_entries``)."""
    out: set[str] = set()
    offset, cursor = 0, ""
    for _ in range(BIG):
        q = {**params, "limit": PAGE, **({"cursor": cursor} if keyset else {"offset": offset})}
        resp = client.get(path, params=q)
        resp.raise_for_status()
        body = resp.json()
        runs = body["dag_runs"]
        out.update(f"{r['dag_id']}/{r['dag_run_id']}" for r in runs)
        offset += len(runs)
        if keyset:
            cursor = body.get("next_cursor")
            if not cursor:
                break
        elif not runs or offset >= body["total_entries"]:
            break
    return out


def seed_airflow(dep: AirflowDeployment, runs: int, dags: list[str], now_s: int) -> float:
    t0 = time.perf_counter()
    python, script = dep.venv / "bin" / "python", BENCH / "_airflow_seed.py"
    done = subprocess.run(
        [str(python), str(script), str(runs), str(now_s), *dags],
        env=dep.env(),
        cwd=dep.home,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode:
        raise SystemExit(f"seeding Airflow failed:\n{done.stderr[-3000:]}")
    listed = dep.api("GET", "/api/v2/dags/~/dagRuns?limit=1")["total_entries"]
    if listed != runs:
        raise SystemExit(f"Airflow's REST API lists {listed} DAG runs, {runs} were written")
    return time.perf_counter() - t0


def bench_airflow(runs: int, dag_count: int, rounds: int) -> dict[str, Any]:
    venv = airflow_venv()
    started = time.perf_counter()
    dags = [f"bench_{i:02d}" for i in range(dag_count)]
    home = Path(tempfile.mkdtemp(prefix="accord-bench-airflow-"))
    # A copy: Airflow writes next to the DAG files it parses.
    dags_dir = copy_dags(home / "dags", BENCH / "airflow_dags")
    dep = AirflowDeployment(venv, home, dags_dir, extra_env={"ACCORD_BENCH_DAGS": str(dag_count)})
    src = AIRFLOW_SOURCE
    try:
        dep.start()
        dep.wait_parsed(set(dags))
        startup_s = time.perf_counter() - started
        now_s = int(time.time())
        since_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_s - 24 * 3600))
        seed_s = seed_airflow(dep, runs, dags, now_s)
        os.environ[AIRFLOW_SECRET_ENV] = PASSWORDS["admin"]
        spec = {
            "type": "airflow",
            "url": dep.url,
            "auth": {"username": "admin", "passwordFrom": {"env": AIRFLOW_SECRET_ENV}},
            "include": ["bench_*"],
        }
        with tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'accord.db'}"
            sync_s = sync_into_accord(url, src, spec, runs)
            dag = dags[len(dags) // 2]
            with (
                accord_gateway(url, Path(tmp) / "data") as (base, token),
                httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
                ) as accord,
                httpx.Client(
                    base_url=dep.url,
                    headers={"Authorization": f"Bearer {dep.token()}"},
                    timeout=120,
                ) as tool,
            ):
                failed = {"source": src, "state": "failed", "since": since_iso}
                every = {"source": src, "since": since_iso}
                af_failed = {"state": "failed", "start_date_gte": since_iso}
                af_every = {"start_date_gte": since_iso}
                everywhere = "/api/v2/dags/~/dagRuns"

                def across(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Ask]:
                    """A question over every DAG: Accord by 100 and by 1,000, Airflow by
                    offset and by keyset cursor."""
                    return {
                        "accord": lambda: accord_runs(accord, src, mine, BIG),
                        "accord_page1000": lambda: accord_runs(accord, src, mine, BIG, 1000),
                        "airflow_offset": lambda: airflow_runs(
                            tool, everywhere, theirs, keyset=False
                        ),
                        "airflow_cursor": lambda: airflow_runs(
                            tool, everywhere, theirs, keyset=True
                        ),
                    }

                questions: dict[str, dict[str, Ask]] = {
                    "failed_24h": across(failed, af_failed),
                    "all_24h": across(every, af_every),
                    "job_last_100": {
                        "accord": lambda: accord_runs(accord, src, {"job": f"{src}/{dag}"}, 100),
                        "airflow": lambda: airflow_one_page(tool, dag),
                    },
                }
                results = compare("airflow", questions, rounds)
    finally:
        dep.stop()
        shutil.rmtree(home, ignore_errors=True)
    for r in results.values():
        acc = r["accord_p50_ms"]
        if "airflow_p50_ms" in r:
            r["ratio"] = ratio(r["airflow_p50_ms"], acc)
        else:
            r["ratio_offset"] = ratio(r["airflow_offset_p50_ms"], acc)
            r["ratio_cursor"] = ratio(r["airflow_cursor_p50_ms"], acc)
            r["ratio"] = min(r["ratio_offset"], r["ratio_cursor"])
    return {
        "tool": "airflow (real, SQLite)",
        "version": airflow_version(venv),
        "dags": dag_count,
        "runs": runs,
        "rounds": rounds,
        "page_size": PAGE,
        "startup_seconds": round(startup_s, 1),
        "seed_seconds": round(seed_s, 1),
        "sync_seconds": round(sync_s, 1),
        "questions": results,
        "seconds": round(time.perf_counter() - started, 1),
    }


def airflow_one_page(client: httpx.Client, dag: str) -> set[str]:
    """One DAG's newest 100 runs: one request."""
    resp = client.get(
        f"/api/v2/dags/{dag}/dagRuns", params={"order_by": "-logical_date", "limit": PAGE}
    )
    resp.raise_for_status()
    return {f"{r['dag_id']}/{r['dag_run_id']}" for r in resp.json()["dag_runs"]}


def airflow_version(venv: Path) -> str:
    for meta in venv.glob("lib/python*/site-packages/apache_airflow-*.dist-info"):
        return meta.name.removeprefix("apache_airflow-").removesuffix(".dist-info")
    return "unknown"


# -- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tools", default=",".join(TOOLS), help="jenkins,airflow (default)")
    parser.add_argument("--jobs", type=int, default=100, help="Jenkins jobs")
    parser.add_argument("--builds", type=int, default=100, help="per Jenkins job, at most 100")
    parser.add_argument("--runs", type=int, default=10_000, help="Airflow DAG runs")
    parser.add_argument("--dags", type=int, default=12, help="Airflow DAGs, at most 100")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Jenkins 20 jobs x 50 builds, Airflow 1,000 runs, 3 rounds",
    )
    args = parser.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - set(TOOLS)
    if unknown or not tools:
        parser.error(f"--tools: choose from {', '.join(TOOLS)}")
    if args.quick:
        args.jobs, args.builds, args.runs, args.rounds = 20, 50, 1000, 3
    if not 1 <= args.builds <= 100:
        parser.error("--builds must be 1 to 100 (Accord reads at most 100 per job per pass)")
    if not 1 <= args.dags <= 100:
        parser.error("--dags must be 1 to 100")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if "airflow" in tools:
        airflow_venv()  # fail before the Jenkins part when Airflow cannot run
    started = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    out: dict[str, Any] = {}
    if "jenkins" in tools:
        out["jenkins_sim"] = bench_jenkins(args.jobs, args.builds, args.rounds)
    if "airflow" in tools:
        out["airflow"] = bench_airflow(args.runs, args.dags, args.rounds)
    out.update(
        {
            "goal_ratio": 20,
            "seconds": round(time.perf_counter() - started, 1),
            "loadavg_start": load_start,
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        }
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
