"""SIGKILL the real gateway mid-sync, mid-apply and mid-export, then restart it.

Promises checked after every restart: no run lost or duplicated (against the Jenkins
simulator's own builds), a configuration apply is wholly there or wholly absent, the
audit chain verifies (``accord audit verify``), and no half-written export is published.
Short mode: a few kills per case; ACCORD_LONG_TESTS=1: 50 or more.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from adapters.testing.jenkins_sim import JenkinsSimulator, SimState, cause_timer
from tests.conftest import wait_until

from ._gateway import ACCORD, Gateway, accord, kills

JOBS = ["team/build", "team/deploy", "nightly", "ops/backup"]
RESULTS = {"SUCCESS": "success", "FAILURE": "failed", "ABORTED": "cancelled"}


@pytest.fixture
def jenkins() -> Iterator[tuple[JenkinsSimulator, str]]:
    token = secrets.token_hex(16)
    state = SimState(seed=random.randrange(1 << 30))
    for j in JOBS:
        state.add_job(j, concurrent=True) if "build" in j else state.add_job(j)
        state.run(j, "SUCCESS", cause=cause_timer())
    sim = JenkinsSimulator(state, tokens={"accord": token}).start()
    try:
        yield sim, token
    finally:
        sim.stop()


def _source_yaml(path: Path, sim_url: str) -> Path:
    path.write_text(
        f"""apiVersion: accord.dev/v1
kind: Source
metadata: {{name: ci, domain: default}}
spec:
  type: jenkins
  url: {sim_url}
  username: accord
  token: {{env: ACCORD_SECRET_TEST_JENKINS_TOKEN}}
  maxBuildsPerJob: 100
  triggerWait: 0s
  sync: {{inventoryEvery: 2s, runsEvery: 1s}}
"""
    )
    return path


def _db_url(gw: Gateway) -> str:
    return gw.database_url or f"sqlite:///{gw.data_dir / 'accord.db'}"


def _audit_verifies(gw: Gateway) -> None:
    done = accord(gw.env, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit chain OK" in done.stdout


class _Producer:
    """Builds keep happening at the source while the gateway lives and dies."""

    def __init__(self, sim: JenkinsSimulator, rng: random.Random) -> None:
        self.sim, self.rng = sim, rng
        self.running: list[tuple[str, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        state = self.sim.state
        while not self.stop.wait(self.rng.uniform(0.02, 0.1)):
            job = self.rng.choice(JOBS)
            roll = self.rng.random()
            if roll < 0.15 and self.running:  # a running build ends
                path, number = self.running.pop(self.rng.randrange(len(self.running)))
                state.finish(path, number, self.rng.choice(list(RESULTS)))
            elif roll < 0.3 and job == "team/build":  # a build starts and keeps running
                item, _ = state.enqueue(job, cause_timer())
                build = state.start(item.id)
                assert build is not None
                self.running.append((job, build.number))
            else:
                state.run(job, self.rng.choice(list(RESULTS)), cause=cause_timer())

    def finish_all(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for path, number in self.running:
            self.sim.state.finish(path, number, "SUCCESS")
        self.running.clear()


def _expected(sim: JenkinsSimulator) -> dict[str, str]:
    with sim.state.lock:
        return {
            f"ci/{job.full_name}#{b.number}": RESULTS[b.result or "ABORTED"]
            for job in sim.state.jobs()
            for b in job.builds.values()
        }


def _stored(url: str) -> tuple[dict[str, str], list[tuple[str, int]]]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            runs = {
                uid: state
                for uid, state in c.execute(text("SELECT uid, state FROM run WHERE source = 'ci'"))
            }
            dup_events = [
                (r[0], int(r[1]))
                for r in c.execute(
                    text(
                        "SELECT run_uid, COUNT(*) - COUNT(DISTINCT to_state) FROM run_event "
                        "WHERE run_uid LIKE 'ci/%' GROUP BY run_uid "
                        "HAVING COUNT(*) > COUNT(DISTINCT to_state)"
                    )
                )
            ]
    finally:
        engine.dispose()
    return runs, dup_events


def _hammer_sync(gw: Gateway, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            httpx.post(f"{gw.url}/api/v1/sources/ci/sync", headers=gw.headers, timeout=10)
        except httpx.HTTPError:
            return  # the gateway is gone


def test_sigkill_mid_sync_loses_and_duplicates_no_run(
    tmp_path: Path, served_db: str | None, jenkins: tuple[JenkinsSimulator, str]
) -> None:
    sim, token = jenkins
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    gw = Gateway(
        tmp_path / "data",
        served_db,
        extra_env={"ACCORD_SECRET_TEST_JENKINS_TOKEN": token},
        files=[_source_yaml(tmp_path / "ci.yaml", sim.url)],
    )
    producer = _Producer(sim, rng)
    n = kills(3)
    try:
        gw.start()
        # The first sight of a job reads its newest maxBuildsPerJob builds (history beyond
        # that window is not imported by design); from then on every build must arrive.
        first = httpx.post(f"{gw.url}/api/v1/sources/ci/sync", headers=gw.headers, timeout=60)
        assert first.status_code == 200 and first.json()["error"] is None, first.text
        producer.thread.start()
        for i in range(n):
            if i:
                gw.start()
            stop = threading.Event()
            hammer = threading.Thread(target=_hammer_sync, args=(gw, stop), daemon=True)
            hammer.start()
            time.sleep(rng.uniform(0.2, 2.5))  # the kill lands anywhere in the passes
            gw.kill()
            stop.set()
            hammer.join(15)
        producer.finish_all()
        expected = _expected(sim)
        gw.start()
        url = _db_url(gw)

        def caught_up() -> bool:
            httpx.post(f"{gw.url}/api/v1/sources/ci/sync", headers=gw.headers, timeout=30)
            return _stored(url)[0] == expected

        caught_up_in_time = wait_until(caught_up, timeout=60, interval=0.5)
        runs, dup_events = _stored(url)
        missing = sorted(set(expected) - set(runs))
        extra = sorted(set(runs) - set(expected))
        wrong = sorted(u for u in expected if u in runs and runs[u] != expected[u])
        assert caught_up_in_time, (
            f"seed {seed}: {len(missing)} lost {missing[:5]}, {len(extra)} extra {extra[:5]}, "
            f"{len(wrong)} in the wrong state {wrong[:5]}"
        )
        assert not dup_events, f"seed {seed}: a state change recorded twice: {dup_events[:5]}"
        assert len(runs) == len(expected) > 4 * n
        gw.stop()
        _audit_verifies(gw)
    finally:
        producer.stop.set()
        gw.kill()


def _documents(tag: str, n: int) -> str:
    docs = []
    for i in range(n):
        docs.append(
            f"apiVersion: accord.dev/v1\nkind: Domain\nmetadata: {{name: {tag}-{i}}}\n"
            f"spec: {{description: 'domain {i} of {tag}'}}\n"
        )
    return "---\n".join(docs)


def _applied(url: str, tag: str) -> tuple[int, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            resources = c.execute(
                text("SELECT COUNT(*) FROM applied_resource WHERE name LIKE :p"), {"p": f"{tag}-%"}
            ).scalar_one()
            audited = c.execute(
                text(
                    "SELECT COUNT(*) FROM audit_record WHERE action = 'apply-config' "
                    "AND CAST(details AS TEXT) LIKE :p"
                ),
                {"p": f"%{tag}-0%"},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(resources), int(audited)


def test_sigkill_mid_apply_applies_all_or_nothing(tmp_path: Path, served_db: str | None) -> None:
    n_docs = 300
    rng = random.Random()
    gw = Gateway(tmp_path / "data", served_db, sync=False)
    gw.start()
    url = _db_url(gw)
    try:
        # How long one apply of this size takes here, so the kills land inside it.
        began = time.monotonic()
        r = httpx.post(
            f"{gw.url}/api/v1/config/apply",
            headers={**gw.headers, "Content-Type": "application/yaml"},
            content=_documents("warmup", n_docs),
            timeout=120,
        )
        assert r.status_code == 200, r.text
        took = time.monotonic() - began
        outcomes = {"applied": 0, "absent": 0}
        for attempt in range(kills(3)):
            tag = f"k{attempt}"
            body = _documents(tag, n_docs)

            def send(body: str = body) -> None:
                with contextlib.suppress(httpx.HTTPError):  # killed under it
                    httpx.post(
                        f"{gw.url}/api/v1/config/apply",
                        headers={**gw.headers, "Content-Type": "application/yaml"},
                        content=body,
                        timeout=120,
                    )

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            time.sleep(rng.uniform(0.3 * took, 1.3 * took))
            gw.kill()
            sender.join(15)
            resources, audited = _applied(url, tag)
            assert resources in (0, n_docs), f"{resources} of {n_docs} documents applied"
            assert audited == (1 if resources else 0), (resources, audited)
            outcomes["applied" if resources else "absent"] += 1
            gw.start()
            assert _applied(url, tag)[0] == resources, "a restart changes nothing"
        gw.stop()
        _audit_verifies(gw)
        print(f"apply kills: {outcomes}")
    finally:
        gw.kill()


def test_sigkill_mid_export_publishes_no_half_written_file(tmp_path: Path) -> None:
    """``accord audit export`` killed at random points: the records file and its manifest
    appear complete and verifiable, or not at all."""
    from gateway.audit import AuditEntry, append
    from gateway.store import create_db_engine, session_scope, upgrade

    data = tmp_path / "data"
    data.mkdir()
    engine = create_db_engine(f"sqlite:///{data / 'accord.db'}")
    upgrade(engine)
    with session_scope(engine) as s:
        for i in range(5_000):
            append(
                s,
                AuditEntry(
                    subject="load",
                    channel="cli",
                    action="trigger",
                    target=f"src/job-{i}",
                    domain="default",
                    decision="allow",
                    outcome="ok",
                    details={"padding": "x" * 200},
                ),
            )
    engine.dispose()
    env = Gateway(data).env
    rng = random.Random()
    # How long one export takes here, so the kills land inside it.
    began = time.monotonic()
    done = accord(env, "audit", "export", "--output", str(tmp_path / "full.jsonl"))
    assert done.returncode == 0, done.stderr
    took = time.monotonic() - began
    published = absent = 0
    for attempt in range(kills(3)):
        out = tmp_path / f"export-{attempt}.jsonl"
        proc = subprocess.Popen(
            [str(ACCORD), "audit", "export", "--output", str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.0, took))
        proc.kill()
        proc.wait(30)
        manifest = out.with_name(out.name + ".manifest.json")
        if out.exists() or manifest.exists():
            assert out.exists() and manifest.exists(), "a records file without its manifest"
            check = accord(env, "audit", "verify-export", str(out))
            assert check.returncode == 0, check.stdout + check.stderr
            published += 1
        else:
            absent += 1
    print(f"export kills: published {published}, absent {absent}")
