"""The host agent against a real gateway that is down, then answers 503, then is back,
while ``accord exec`` has spooled a backlog of runs, some of whose files were damaged.

Promises: every intact run is delivered exactly once and oldest first; each damaged file
is reported (the agent's log, the source's health) and set aside in the spool's
``damaged/`` folder with its reason, never retried and never blocking the rest; a run
whose start is intact is still delivered, its message saying the file was damaged.
SQLite and PostgreSQL. Short mode: 120 spooled runs; ACCORD_LONG_TESTS=1: 1,000.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from adapters.cron.spool_read import iter_runs

from ._faulty import FaultyHop
from ._gateway import ACCORD, LONG, Gateway, accord

RUNS = 1000 if LONG else 120


def _exec(spool: Path, code: int) -> None:
    env = {**os.environ, "ACCORD_SPOOL_DIR": str(spool)}
    env.pop("ACCORD_GATEWAY_URL", None)
    done = subprocess.run(
        [str(ACCORD), "exec", "--job", "nightly", "--", "sh", "-c", f"exit {code}"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == code, done.stderr


def _agent(
    root: Path, spool: Path, server: str, token_file: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(ACCORD),
            "agent",
            "--server",
            server,
            "--source",
            "hosts",
            "--token-file",
            str(token_file),
            "--crontab-root",
            str(root),
            "--spool",
            str(spool),
            "--syslog",
            "off",
            "--host",
            "web-1",
            "--timezone",
            "UTC",
            "--batch",
            "50",
            "--timeout",
            "30s",
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _damage(files: list[Path]) -> dict[str, tuple[Path, bool]]:
    """Damage four spool files in four ways; name → (file, whether its run is still
    deliverable)."""
    cut_end, bad_start, cut_start, garbage = files
    data = cut_end.read_bytes()  # cut in the middle of its end record
    first = data.index(b"\n") + 1
    cut_end.write_bytes(data[: first + (len(data) - first) // 2])
    data = bad_start.read_bytes()  # its start record overwritten with noise
    bad_start.write_bytes(b"\x00\xff{not json" + data[12:])
    data = cut_start.read_bytes()  # cut in the middle of its start record, long ago
    cut_start.write_bytes(data[: data.index(b"\n") // 2])
    old = time.time() - 600
    os.utime(cut_start, (old, old))
    with garbage.open("ab") as fh:  # a complete run, then a line of noise
        fh.write(b'{"v":1,"event":"end","at":12\x00\n')
    return {
        "cut_end": (cut_end, True),
        "bad_start": (bad_start, False),
        "cut_start": (cut_start, False),
        "garbage": (garbage, True),
    }


def _run_id(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0]
    return str(json.loads(first)["run"])


def test_backlog_through_an_outage_and_damaged_spool_files(
    tmp_path: Path, served_db: str | None
) -> None:
    root, spool = tmp_path / "host", tmp_path / "spool"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "crontab").write_text(
        f"0 3 1 1 * root {ACCORD} exec --job nightly -- /usr/local/bin/backup\n"
    )
    source = tmp_path / "hosts.yaml"
    source.write_text(
        "apiVersion: accord.dev/v1\nkind: Source\nmetadata: {name: hosts, domain: default}\n"
        "spec: {type: cron, mode: agent}\n"
    )
    gw = Gateway(tmp_path / "data", served_db, files=[source], sync=False)
    hop = FaultyHop("http://127.0.0.1:9").start("down")  # the gateway is not up yet

    # A backlog written while the gateway is down.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: _exec(spool, i % 4), range(RUNS)))
    files = list(iter_runs(spool))
    assert len(files) == RUNS
    token_file = tmp_path / "token"
    try:
        token_file.write_text("not yet\n")
        down = _agent(root, spool, hop.url, token_file)
        assert down.returncode == 1 and "cannot reach" in down.stderr, down.stderr
        assert len(list(iter_runs(spool))) == RUNS

        gw.start()
        made = accord(gw.env, "tokens", "create", "--subject", "agent:web-1", "--role", "agent")
        assert made.returncode == 0, made.stderr
        token_file.write_text(made.stdout.strip().splitlines()[-1].split()[-1] + "\n")
        hop.upstream = gw.url
        hop.set("unavailable")
        busy = _agent(root, spool, hop.url, token_file)
        assert busy.returncode == 1 and "503" in busy.stderr, busy.stderr
        assert len(list(iter_runs(spool))) == RUNS

        # Four files damaged in four ways among the backlog.
        picks = [files[RUNS // 5], files[RUNS // 3], files[RUNS // 2], files[(2 * RUNS) // 3]]
        ids = {p.name: _run_id(p) for p in picks if p != picks[1] and p != picks[2]}
        damaged = _damage(picks)
        intact = {_run_id(p) for p in files if p not in picks} | set(ids.values())

        hop.set("ok")
        started = time.monotonic()
        done = _agent(root, spool, hop.url, token_file)
        took = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        for name, (path, _deliverable) in damaged.items():
            assert f"damaged spool file {path.name}" in done.stderr, (name, done.stderr[-2000:])
        assert list(iter_runs(spool)) == [], "every run file left the spool"
        aside = spool / "damaged"
        assert sorted(p.name for p in aside.glob("*.jsonl")) == sorted(
            p.name for p, _ in damaged.values()
        )
        for path, deliverable in damaged.values():
            reason = (aside / f"{path.name}.reason").read_text()
            assert ("delivered" in reason) and (
                ("intact part was delivered" in reason) == deliverable
            ), reason

        again = _agent(root, spool, hop.url, token_file)  # nothing left to send
        assert again.returncode == 0, again.stderr

        url = gw.database_url or f"sqlite:///{gw.data_dir / 'accord.db'}"
        engine = create_engine(url)
        try:
            with engine.connect() as c:
                rows = c.execute(
                    text(
                        "SELECT uid, started_at, state, native_state, message FROM run "
                        "WHERE source = 'hosts' ORDER BY id"
                    )
                ).all()
                events = dict(
                    c.execute(
                        text(
                            "SELECT run_uid, COUNT(*) FROM run_event "
                            "WHERE run_uid LIKE 'hosts/%' GROUP BY run_uid"
                        )
                    ).all()
                )
        finally:
            engine.dispose()
        stored = [r.uid.removeprefix("hosts/") for r in rows]
        assert len(stored) == len(set(stored)), "a run stored twice"
        assert set(stored) == intact, (
            f"lost {sorted(intact - set(stored))[:3]}, extra {sorted(set(stored) - intact)[:3]}"
        )
        assert all(n == 1 for n in events.values()), "a run's state recorded twice"
        starts = [r.started_at for r in rows]
        assert starts == sorted(starts), "delivered out of order"
        by_id = {r.uid.removeprefix("hosts/"): r for r in rows}
        cut = by_id[ids[damaged["cut_end"][0].name]]
        assert cut.native_state == "lost" and "damaged" in (cut.message or ""), cut
        whole = by_id[ids[damaged["garbage"][0].name]]
        assert whole.state in ("success", "failed") and "damaged" in (whole.message or "")

        src = httpx.get(f"{gw.url}/api/v1/sources/hosts", headers=gw.headers, timeout=30).json()
        assert src["health"] == "degraded", src
        assert "4 damaged spool file(s)" in src["health_message"], src["health_message"]
        print(f"agent spool: {RUNS} runs, {len(stored)} delivered in {took:.1f}s")
    finally:
        hop.stop()
        gw.stop()
