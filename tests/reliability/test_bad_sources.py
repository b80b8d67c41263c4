"""One real gateway, good sources and bad ones (slow, HTML, truncated, wrong types,
flapping, down), each a real Jenkins simulator behind a misbehaving hop.

Promises: the good sources' sync lag stays within one interval (plus the pass itself);
each bad source shows ``degraded``/``down`` with a reason a person can read in
``GET /api/v1/sources``; once the bad sources recover, a "Sync now" brings them back to
their normal interval (not a back-off), and catch-up has no gap: every build of every
simulator is stored exactly once, no state change twice. SQLite and PostgreSQL.
Short mode: one bad phase; ACCORD_LONG_TESTS=1: five bad phases in a row.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from adapters.testing.jenkins_sim import JenkinsSimulator, SimState, cause_timer
from tests.conftest import wait_until

from ._faulty import FaultyHop
from ._gateway import LONG, Gateway

GOOD = ["good-a", "good-b"]
BAD = {
    "slow": "slow",
    "html": "html",
    "truncated": "truncated",
    "types": "wrong_types",
    "flapping": "flapping",
    "down": "down",
}
JOBS = ["build", "deploy"]
RUNS_EVERY = 2.0
PASS_ALLOWANCE = 2.0  # seconds a pass of a good source may take on a busy machine
# What the reason shown for each bad source must say (lowercase substrings, any of).
REASONS = {
    "slow": ("no answer within", "did not answer in time"),
    "html": ("expected json",),
    "truncated": ("invalid json", "cannot reach", "incomplete", "truncated"),
    "types": ("unexpected", "expected", "invalid"),
    "flapping": ("cannot reach", "connect"),
    "down": ("cannot reach", "connect"),
}


@pytest.fixture
def estate() -> Iterator[tuple[dict[str, JenkinsSimulator], dict[str, FaultyHop], str]]:
    token = secrets.token_hex(16)
    sims: dict[str, JenkinsSimulator] = {}
    hops: dict[str, FaultyHop] = {}
    try:
        for name in [*GOOD, *BAD]:
            state = SimState(seed=random.randrange(1 << 30))
            for job in JOBS:
                state.add_job(job)
                state.run(job, "SUCCESS", cause=cause_timer())
            sims[name] = JenkinsSimulator(state, tokens={"accord": token}).start()
            if name in BAD:
                hops[name] = FaultyHop(sims[name].url, delay=10.0).start()
        yield sims, hops, token
    finally:
        for hop in hops.values():
            hop.stop()
        for sim in sims.values():
            sim.stop()


def _sources_yaml(
    path: Path, sims: dict[str, JenkinsSimulator], hops: dict[str, FaultyHop]
) -> Path:
    docs = []
    for name, sim in sims.items():
        url = hops[name].url if name in hops else sim.url
        timeout = "4s" if name == "slow" else "15s"
        docs.append(
            f"""apiVersion: accord.dev/v1
kind: Source
metadata: {{name: {name}, domain: default}}
spec:
  type: jenkins
  url: {url}
  username: accord
  token: {{env: ACCORD_SECRET_TEST_JENKINS_TOKEN}}
  maxBuildsPerJob: 100
  triggerWait: 0s
  sync: {{inventoryEvery: 10s, runsEvery: {RUNS_EVERY:g}s, timeout: {timeout}}}
"""
        )
    path.write_text("---\n".join(docs))
    return path


class _Producer:
    """Builds keep finishing at every simulator, good or bad, all along."""

    def __init__(self, sims: dict[str, JenkinsSimulator]) -> None:
        self.sims = sims
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        rng = random.Random()
        while not self.stop.wait(rng.uniform(0.05, 0.2)):
            sim = self.sims[rng.choice(list(self.sims))]
            sim.state.run(rng.choice(JOBS), rng.choice(["SUCCESS", "FAILURE"]), cause=cause_timer())

    def end(self) -> None:
        self.stop.set()
        self.thread.join(10)


def _expected(name: str, sim: JenkinsSimulator) -> set[str]:
    with sim.state.lock:
        return {
            f"{name}/{job.full_name}#{b.number}"
            for job in sim.state.jobs()
            for b in job.builds.values()
        }


def _stored(url: str) -> tuple[dict[str, set[str]], list[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            out: dict[str, set[str]] = {}
            for source, uid in c.execute(text("SELECT source, uid FROM run")):
                out.setdefault(source, set()).add(uid)
            dups = [
                r[0]
                for r in c.execute(
                    text(
                        "SELECT run_uid FROM run_event GROUP BY run_uid "
                        "HAVING COUNT(*) > COUNT(DISTINCT to_state)"
                    )
                )
            ]
    finally:
        engine.dispose()
    return out, dups


def _sources(gw: Gateway) -> dict[str, dict[str, object]]:
    r = httpx.get(f"{gw.url}/api/v1/sources", headers=gw.headers, timeout=30)
    assert r.status_code == 200, r.text
    return {s["name"]: s for s in r.json()}


def _bad_phase(
    gw: Gateway, hops: dict[str, FaultyHop], seconds: float, report: dict[str, object]
) -> None:
    for name, mode in BAD.items():
        hops[name].set(mode)
    seen: dict[str, set[str]] = {n: set() for n in BAD}
    reasons: dict[str, str] = {}
    max_lag = 0.0
    deadline = time.monotonic() + seconds
    settled = time.monotonic() + RUNS_EVERY + PASS_ALLOWANCE
    while time.monotonic() < deadline:
        now = time.monotonic()
        for name, s in _sources(gw).items():
            if name in GOOD and now > settled:
                lag = float(s["lag_seconds"])  # type: ignore[arg-type]
                max_lag = max(max_lag, lag)
                assert lag <= RUNS_EVERY + PASS_ALLOWANCE, (
                    f"{name} lagged {lag:.1f}s behind while the bad sources misbehaved: {s}"
                )
                assert s["health"] == "ok", s
            if name in BAD:
                seen[name].add(str(s["health"]))
                if s["health"] in ("degraded", "down"):
                    reasons[name] = str(s["health_message"])
        time.sleep(0.5)
    for name in BAD:
        assert seen[name] & {"degraded", "down"}, f"{name} never shown degraded/down: {seen[name]}"
        reason = reasons[name]
        assert reason and "Traceback" not in reason, (name, reason)
        assert any(w in reason.lower() for w in REASONS[name]), (name, reason)
    report["max_good_lag"] = max(float(report.get("max_good_lag", 0.0)), max_lag)  # type: ignore[arg-type]
    report.setdefault("reasons", []).append(reasons)  # type: ignore[union-attr]


def _sync_now(gw: Gateway, name: str) -> None:
    """ "Sync now" of a source that answers well. The slow source's budget is 4 s; on a
    loaded machine even its good answer may miss it once, so a person's second click
    (at most three) is allowed."""
    for _ in range(3 if name == "slow" else 1):
        r = httpx.post(f"{gw.url}/api/v1/sources/{name}/sync", headers=gw.headers, timeout=60)
        if r.status_code == 200 and r.json()["error"] is None:
            return
    raise AssertionError((name, r.text))


def _recover(gw: Gateway, sims: dict[str, JenkinsSimulator], hops: dict[str, FaultyHop]) -> None:
    for hop in hops.values():
        hop.set("ok")
    for name in BAD:
        # What a person does once the source is fixed: "Sync now".
        _sync_now(gw, name)
        assert _sources(gw)[name]["health"] == "ok", _sources(gw)[name]
    # Back on the normal interval: a build finished now is stored by the next scheduled
    # pass, without another "Sync now" (a source left in back-off would take minutes).
    fresh = {}
    for name in BAD:
        build = sims[name].state.run("build", "SUCCESS", cause=cause_timer())
        fresh[name] = f"{name}/build#{build.number}"
    url = gw.database_url or f"sqlite:///{gw.data_dir / 'accord.db'}"
    late: set[str] = set()

    def arrived() -> bool:
        stored = _stored(url)[0]
        late.clear()
        late.update(n for n, uid in fresh.items() if uid not in stored.get(n, set()))
        return not late

    assert wait_until(arrived, timeout=2 * RUNS_EVERY + 2 * PASS_ALLOWANCE, interval=0.25), (
        f"still on a back-off after a successful Sync now: {sorted(late)}"
    )


def test_bad_sources_do_not_hold_back_good_ones_and_catch_up_without_gap(
    tmp_path: Path,
    served_db: str | None,
    estate: tuple[dict[str, JenkinsSimulator], dict[str, FaultyHop], str],
) -> None:
    sims, hops, token = estate
    gw = Gateway(
        tmp_path / "data",
        served_db,
        extra_env={"ACCORD_SECRET_TEST_JENKINS_TOKEN": token},
        files=[_sources_yaml(tmp_path / "sources.yaml", sims, hops)],
    )
    producer = _Producer(sims)
    report: dict[str, object] = {}
    try:
        hops["down"].set("down")  # down from the gateway's start, before its first pass
        t0 = time.monotonic()
        gw.start()
        report["start_s"] = round(time.monotonic() - t0, 1)
        for name in [n for n in sims if n != "down"]:  # first sight of the others
            _sync_now(gw, name)
        producer.thread.start()
        for _ in range(5 if LONG else 1):
            t0 = time.monotonic()
            _bad_phase(gw, hops, 20.0 if LONG else 12.0, report)
            t1 = time.monotonic()
            _recover(gw, sims, hops)
            report.setdefault("recover_s", []).append(round(time.monotonic() - t1, 1))  # type: ignore[union-attr]
        producer.end()
        t0 = time.monotonic()
        url = gw.database_url or f"sqlite:///{gw.data_dir / 'accord.db'}"
        expected = {name: _expected(name, sim) for name, sim in sims.items()}
        assert wait_until(
            lambda: _stored(url)[0] == expected, timeout=4 * RUNS_EVERY + 10, interval=0.5
        )
        stored, dups = _stored(url)
        for name in sims:
            missing = expected[name] - stored.get(name, set())
            extra = stored.get(name, set()) - expected[name]
            assert not missing and not extra, (name, sorted(missing)[:5], sorted(extra)[:5])
        assert not dups, dups[:5]
        assert sum(len(v) for v in expected.values()) > 40
        report["catch_up_s"] = round(time.monotonic() - t0, 1)
        report["runs"] = sum(len(v) for v in expected.values())
        print("bad sources:", report)
    finally:
        producer.stop.set()
        gw.stop()
