"""The SQLite database runs out of room while the gateway writes (its size capped with
``ACCORD_SQLITE_MAX_PAGES``, i.e. ``PRAGMA max_page_count``, a few pages above what it
holds), while a Jenkins simulator keeps producing builds.

Promises: a clear error — a write through the API answers 507 ``database_full`` and a
"Sync now" says the gateway's database is full — and nothing half-done (the refused
apply left nothing); the database stays consistent (``PRAGMA integrity_check``, ``accord
audit verify``); once there is room again (restarted without the cap) the gateway
catches up with every build, each stored once.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from adapters.testing.jenkins_sim import cause_timer
from tests.conftest import wait_until

from ._gateway import LONG, Gateway, accord, expected_builds, jenkins_source

JOBS = ["build", "deploy", "nightly"]


def _domains(tag: str, n: int) -> str:
    return "---\n".join(
        f"apiVersion: accord.dev/v1\nkind: Domain\nmetadata: {{name: {tag}-{i}}}\n"
        f"spec: {{description: 'domain {i} of {tag}, {'x' * 200}'}}\n"
        for i in range(n)
    )


def _stored(db: Path) -> tuple[set[str], list[str], int]:
    engine = create_engine(f"sqlite:///{db}")
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
            applied = c.execute(
                text("SELECT COUNT(*) FROM applied_resource WHERE name LIKE 'full-%'")
            ).scalar_one()
    finally:
        engine.dispose()
    return runs, dups, int(applied)


def test_sqlite_full_gives_a_clear_error_stays_consistent_and_recovers(tmp_path: Path) -> None:
    sim, token, _config = jenkins_source(tmp_path, JOBS)
    state = sim.state
    data = tmp_path / "data"
    db = data / "accord.db"
    env = {"ACCORD_SECRET_TEST_JENKINS_TOKEN": token}
    gw = Gateway(data, None, extra_env=env, files=[tmp_path / "ci.yaml"])
    stop = threading.Event()

    def builds() -> None:
        rng = random.Random()
        while not stop.wait(0.05):
            state.run(rng.choice(JOBS), rng.choice(["SUCCESS", "FAILURE"]), cause=cause_timer())

    producer = threading.Thread(target=builds, daemon=True)
    try:
        gw.start()
        r = httpx.post(f"{gw.url}/api/v1/sources/ci/sync", headers=gw.headers, timeout=60)
        assert r.status_code == 200 and r.json()["error"] is None, r.text
        gw.stop()
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        # Room for a few dozen pages more, then the database is full.
        gw.extra_env["ACCORD_SQLITE_MAX_PAGES"] = str(pages + 40)
        gw.start()
        producer.start()
        errors: list[str] = []

        def full() -> bool:
            r = httpx.post(f"{gw.url}/api/v1/sources/ci/sync", headers=gw.headers, timeout=60)
            assert r.status_code == 200, r.text
            if r.json()["error"]:
                errors.append(r.json()["error"])
            return bool(errors)

        assert wait_until(full, timeout=120, interval=0.5), "the database never filled"
        assert "database" in errors[-1] and "full" in errors[-1], errors[-1]
        assert "Traceback" not in errors[-1] and "SELECT" not in errors[-1], errors[-1]
        r = httpx.post(
            f"{gw.url}/api/v1/config/apply",
            headers={**gw.headers, "Content-Type": "application/yaml"},
            content=_domains("full", 200),
            timeout=120,
        )
        assert r.status_code == 507, r.text
        assert r.json()["error"]["code"] == "database_full", r.text
        # Reads still work.
        assert httpx.get(f"{gw.url}/api/v1/runs", headers=gw.headers, timeout=30).status_code == 200
        time.sleep(5 if LONG else 2)  # keep failing a while under the producer
        assert gw.proc is not None and gw.proc.poll() is None, "the gateway died"
        gw.stop()
        stop.set()
        producer.join(10)

        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        verify = accord(gw.env, "audit", "verify")
        assert verify.returncode == 0 and "audit chain OK" in verify.stdout, verify.stdout
        assert _stored(db)[2] == 0, "the refused apply left something behind"

        # Room again: the cap lifted (as when the disk is freed), the gateway catches up.
        del gw.extra_env["ACCORD_SQLITE_MAX_PAGES"]
        gw.start()
        expected = expected_builds(sim)

        def caught_up() -> bool:
            httpx.post(f"{gw.url}/api/v1/sources/ci/sync", headers=gw.headers, timeout=60)
            return _stored(db)[0] == expected

        assert wait_until(caught_up, timeout=90, interval=1), (
            f"lost {sorted(expected - _stored(db)[0])[:5]}"
        )
        runs, dups, _ = _stored(db)
        assert not dups, dups[:5]
        r = httpx.post(
            f"{gw.url}/api/v1/config/apply",
            headers={**gw.headers, "Content-Type": "application/yaml"},
            content=_domains("full", 200),
            timeout=120,
        )
        assert r.status_code == 200, r.text
        assert _stored(db)[2] == 200
        print(f"disk full: cap {pages + 40} pages, {len(runs)} runs, first error: {errors[0]}")
    finally:
        stop.set()
        gw.stop()
        sim.stop()
