"""PostgreSQL stopped and started again (``pg_ctl``) under a served gateway while syncs
and API calls run.

Promises: the gateway process stays up and reconnects by itself; ``/readyz`` answers 503
while the database is gone and 200 again after; the API serves again without a restart;
nothing is lost: every build of the Jenkins simulator is stored exactly once, no state
change twice. Short mode: 2 restarts; ACCORD_LONG_TESTS=1: 10.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from adapters.testing.jenkins_sim import cause_timer
from tests.conftest import _fresh_pg_database, _Postgres, wait_until

from ._gateway import Gateway, expected_builds, jenkins_source, kills

JOBS = ["build", "deploy", "nightly"]


class _Cluster(_Postgres):
    """A PostgreSQL cluster of this test's own (never a shared one: it is stopped)."""

    def __init__(self) -> None:
        super().__init__()
        self.url = None

    def _ctl(self, *args: str) -> None:
        assert self.proc_dir is not None
        subprocess.run(
            [*self._run_as, str(self._bindir / "pg_ctl"), "-D", str(self.proc_dir / "data"), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def halt(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def resume(self) -> None:
        assert self.proc_dir is not None and self.url is not None
        port = self.url.rsplit(":", 1)[1].split("/", 1)[0]
        self._ctl(
            "-l",
            str(self.proc_dir / "log"),
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {self.proc_dir} -F",
            "start",
        )


@pytest.fixture
def cluster() -> Iterator[_Cluster]:
    pg = _Cluster()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


class _Load:
    """API readers, on-demand syncs and a readiness probe, all the time."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.stop = threading.Event()
        self.ready: list[tuple[float, int]] = []
        self.answers: dict[int, int] = {}
        self.threads = [
            threading.Thread(target=self._probe, daemon=True),
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._sync, daemon=True),
        ]

    def start(self) -> _Load:
        for t in self.threads:
            t.start()
        return self

    def end(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _count(self, status: int) -> None:
        self.answers[status] = self.answers.get(status, 0) + 1

    def _probe(self) -> None:
        while not self.stop.wait(0.2):
            try:
                r = httpx.get(f"{self.gw.url}/readyz", timeout=5)
                self.ready.append((time.monotonic(), r.status_code))
            except httpx.HTTPError:
                self.ready.append((time.monotonic(), 0))

    def _read(self) -> None:
        while not self.stop.wait(0.05):
            for path in ("/api/v1/runs?limit=20", "/api/v1/sources", "/api/v1/jobs"):
                try:
                    r = httpx.get(self.gw.url + path, headers=self.gw.headers, timeout=15)
                    self._count(r.status_code)
                except httpx.HTTPError:
                    self._count(0)

    def _sync(self) -> None:
        while not self.stop.wait(0.3):
            try:
                r = httpx.post(
                    f"{self.gw.url}/api/v1/sources/ci/sync", headers=self.gw.headers, timeout=30
                )
                self._count(r.status_code)
            except httpx.HTTPError:
                self._count(0)


def _stored(url: str) -> tuple[set[str], list[str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            runs = {r[0] for r in c.execute(text("SELECT uid FROM run WHERE source = 'ci'"))}
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
    return runs, dups


def test_postgres_restarted_under_load(tmp_path: Path, cluster: _Cluster) -> None:
    assert cluster.url is not None
    db = _fresh_pg_database(cluster.url)
    sim, token, _config = jenkins_source(tmp_path, JOBS)
    state = sim.state
    gw = Gateway(
        tmp_path / "data",
        db,
        extra_env={"ACCORD_SECRET_TEST_JENKINS_TOKEN": token},
        files=[tmp_path / "ci.yaml"],
    )
    stop_builds = threading.Event()

    def builds() -> None:
        rng = random.Random()
        while not stop_builds.wait(rng.uniform(0.05, 0.15)):
            state.run(rng.choice(JOBS), rng.choice(["SUCCESS", "FAILURE"]), cause=cause_timer())

    producer = threading.Thread(target=builds, daemon=True)
    load: _Load | None = None
    figures: list[dict[str, float]] = []
    try:
        gw.start()
        producer.start()
        load = _Load(gw).start()
        for _ in range(kills(2, 10)):
            time.sleep(random.uniform(2, 4))
            down_at = time.monotonic()
            cluster.halt()
            time.sleep(random.uniform(3, 6))
            cluster.resume()
            up_at = time.monotonic()
            # Ready again by itself, and the API answers again, without a restart.
            assert wait_until(
                lambda: load is not None and load.ready and load.ready[-1][1] == 200, timeout=60
            ), load.ready[-5:]
            ready_at = load.ready[-1][0]
            assert gw.proc is not None and gw.proc.poll() is None, gw.text()[-3000:]
            seen = [s for t, s in load.ready if down_at + 0.5 < t < up_at]
            assert 503 in seen, f"/readyz never said the database was gone: {seen}"
            r = httpx.get(f"{gw.url}/api/v1/runs?limit=5", headers=gw.headers, timeout=30)
            assert r.status_code == 200, r.text
            figures.append({"down_s": up_at - down_at, "ready_after_s": ready_at - up_at})
        stop_builds.set()
        producer.join(10)
        load.end()
        expected = expected_builds(sim)
        assert wait_until(lambda: _stored(db)[0] == expected, timeout=60, interval=0.5), (
            f"lost {sorted(expected - _stored(db)[0])[:5]}"
        )
        runs, dups = _stored(db)
        assert runs == expected and not dups, dups[:5]
        errors = {k: v for k, v in load.answers.items() if k >= 500 or k == 0}
        print(f"pg restart: {figures}, answers {load.answers}, {len(runs)} runs; errors {errors}")
        assert load.answers.get(200, 0) > 0
        # While the database was gone: 503 with Retry-After, never an internal error.
        assert not load.answers.get(500), load.answers
    finally:
        stop_builds.set()
        if load is not None:
            load.end()
        gw.stop()
        sim.stop()
