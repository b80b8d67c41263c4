"""Two cron hosts whose clocks are off, one 10 min ahead of the gateway and one 10 min
behind (``accord exec`` and ``accord agent`` given a skewed clock through
``ACCORD_TEST_CLOCK_SKEW``), pushing to a real gateway with SLAs on their jobs.

Promises: each host's runs keep the times the host recorded and are ordered by them; the
gateway measures each host's offset from its pushes and says so in the source's health;
SLAs do not misfire — a run that has just started on the host that is behind is not
"running 10 minutes", and its fresh success is not "10 minutes old". SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from adapters.cron.spool_read import iter_runs
from tests.conftest import wait_until

from ._gateway import ACCORD, Gateway, accord

SKEWS = {"ahead": 600, "behind": -600}
SLA = """apiVersion: accord.dev/v1
kind: SLA
metadata: {name: nightly-fresh-and-short, domain: default}
spec:
  selector: {jobs: ["*/nightly"]}
  maxDuration: 5m
  maxAge: 8m
"""


def _env(spool: Path, skew: int) -> dict[str, str]:
    env = {**os.environ, "ACCORD_SPOOL_DIR": str(spool), "ACCORD_TEST_CLOCK_SKEW": str(skew)}
    env.pop("ACCORD_GATEWAY_URL", None)
    return env


def _exec(spool: Path, skew: int, *command: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(ACCORD), "exec", "--job", "nightly", "--", *command],
        env=_env(spool, skew),
        capture_output=True,
        timeout=60,
    )


def _agent(name: str, root: Path, spool: Path, skew: int, url: str, token: Path) -> None:
    done = subprocess.run(
        [
            str(ACCORD),
            "agent",
            "--server",
            url,
            "--source",
            name,
            "--token-file",
            str(token),
            "--crontab-root",
            str(root),
            "--spool",
            str(spool),
            "--syslog",
            "off",
            "--host",
            name,
            "--timezone",
            "UTC",
            "--grace",
            "30s",
            "--once",
        ],
        env=_env(spool, skew),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_hosts_with_skewed_clocks_keep_their_order_and_trip_no_sla(
    tmp_path: Path, served_db: str | None
) -> None:
    docs = [SLA]
    hosts: dict[str, tuple[Path, Path]] = {}
    for name in SKEWS:
        root, spool = tmp_path / name / "root", tmp_path / name / "spool"
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "crontab").write_text(
            f"0 3 1 1 * root {ACCORD} exec --job nightly -- /usr/local/bin/backup\n"
        )
        hosts[name] = (root, spool)
        docs.append(
            "apiVersion: accord.dev/v1\nkind: Source\n"
            f"metadata: {{name: {name}, domain: default}}\nspec: {{type: cron, mode: agent}}\n"
        )
    config = tmp_path / "estate.yaml"
    config.write_text("---\n".join(docs))
    gw = Gateway(tmp_path / "data", served_db, files=[config], sync=False)
    running: subprocess.Popen[bytes] | None = None
    try:
        gw.start()
        made = accord(gw.env, "tokens", "create", "--subject", "agent:hosts", "--role", "agent")
        assert made.returncode == 0, made.stderr
        token = tmp_path / "token"
        token.write_text(made.stdout.strip().splitlines()[-1] + "\n")

        recorded: dict[str, list[tuple[str, str]]] = {}
        for name, skew in SKEWS.items():
            root, spool = hosts[name]
            for code in (0, 1, 0):
                assert _exec(spool, skew, "sh", "-c", f"exit {code}").returncode == code
            recorded[name] = [
                (str(first["run"]), str(first["at"]))
                for first in (
                    json.loads(p.read_bytes().split(b"\n", 1)[0]) for p in iter_runs(spool)
                )
            ]
        # A run that has just started on the host that is behind, still running.
        root, spool = hosts["behind"]
        running = subprocess.Popen(
            [str(ACCORD), "exec", "--job", "nightly", "--", "sleep", "60"],
            env=_env(spool, SKEWS["behind"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(lambda: len(list(iter_runs(spool))) == 4, timeout=20)
        for name, skew in SKEWS.items():
            root, spool = hosts[name]
            _agent(name, root, spool, skew, gw.url, token)

        with gw.client() as c:
            for name, skew in SKEWS.items():
                src = c.get(f"/api/v1/sources/{name}").json()
                way = "ahead of" if skew > 0 else "behind"
                assert any(f"10 min {way} the gateway" in p["message"] for p in src["problems"]), (
                    src
                )
                runs = c.get("/api/v1/runs", params={"source": name, "limit": 50}).json()["items"]
                finished = [r for r in runs if r["state"] != "running"]
                # The host's own times, newest first, in the host's own order.
                got = [
                    (r["uid"].removeprefix(f"{name}/"), r["started_at"]) for r in reversed(finished)
                ]
                want = [(rid, at) for rid, at in recorded[name]]
                assert [g[0] for g in got] == [w[0] for w in want], (got, want)
                for (_, at), (_, wanted) in zip(got, want, strict=True):
                    assert abs(_ts(at) - _ts(wanted)) < 0.01, (at, wanted)
                    assert abs(_ts(at) - (time.time() + skew)) < 300, "not the host's clock"

            def evaluated() -> bool:
                rows = c.get("/api/v1/slas").json()
                return len(rows) == 2 and all(r["evaluated_at"] for r in rows)

            assert wait_until(evaluated, timeout=60, interval=1)
            time.sleep(16)  # one more evaluation cycle with the running run in it
            slas = {r["job_uid"]: r for r in c.get("/api/v1/slas").json()}
            assert len(slas) == 2
            for uid, r in slas.items():
                # at_risk is fair: a yearly job has no success predicted before maxAge runs
                # out. A breach would be the skew: "running 10 min", "success 10 min old".
                assert r["state"] != "breached", f"{uid}: {r['state']} — {r['reason']}"
                if r["objective"] == "maxAge" and r["deadline"]:
                    # the last success (a minute ago, real time) + maxAge, not ± 10 min
                    expires = _ts(r["deadline"])
                    assert abs(expires - (time.time() + 8 * 60)) < 150, r
            items = c.get("/api/v1/runs", params={"source": "behind"}).json()["items"]
            assert [r for r in items if r["state"] == "running"], "the running run arrived"
    finally:
        if running is not None and running.poll() is None:
            running.send_signal(signal.SIGTERM)
            running.wait(timeout=20)
        gw.stop()


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
