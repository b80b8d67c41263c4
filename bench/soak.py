"""Soak: a simulated estate on an accelerated clock, standing in for days of runs.

    uv run python bench/soak.py [--days 7] [--day-seconds 30] [--quick]

Starts the Jenkins simulator, the Kubernetes API-server simulator and the Terraform Cloud
simulator (all on 127.0.0.1), a crontab tree whose runs go through the real ``accord exec``
wrapper into a spool, and ``accord serve`` (SQLite, a temporary data directory) with one
source for each. Every simulated day (``--day-seconds`` of wall time) each Jenkins job and
each CronJob runs 24 times, each cron line 12 times and each workspace 4 times, about one
in ten failing; once a day a person triggers a Jenkins job through the API (an audited
action). Meanwhile it samples the gateway's RSS at the end of every day, each source's
sync lag (``lag_seconds`` of ``/api/v1/sources``, every second) and, once a day per source,
how long a run that just finished at the tool takes to show as finished in Accord.

At the end it waits (bounded) for the last runs to arrive and compares, per source, the
runs Accord stores with the runs the simulators and the spool hold — they must be equal —
and runs ``accord audit verify``. Prints one JSON object: RSS per day and its growth per
day after the first (warm-up) day, sync-lag and visibility p50/p99, the counts, and
whether the chain verified. ``--quick`` (2 days of 8 s) finishes in about a minute. Every
loop is bounded by the number of days and a settle timeout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pwd
import random
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.testing.jenkins_sim import JenkinsSimulator, cause_timer
from adapters.testing.jenkins_sim import SimState as JenkinsState
from adapters.testing.kube_sim import ClusterState, KubeSimulator
from adapters.testing.tfc_sim import SimState as TfcState
from adapters.testing.tfc_sim import TfcSimulator
from bench._common import free_port, pct, rss_kib

ACCORD = Path(sys.executable).parent / "accord"
# Schedules that are not due during a soak, so that no expected run is counted as missed.
NOT_DUE = "0 3 1 1 *"


def _rss_mib(pid: int) -> float:
    return round(rss_kib(pid) / 1024, 1)


def _pct(values: list[float], q: float) -> float | None:
    return round(pct(values, q), 2) if values else None


class Estate:
    """The simulators and the crontab tree, and the runs made at each of them."""

    def __init__(self, tmp: Path, *, jobs: int, cronjobs: int, workspaces: int, lines: int):
        self.rng = random.Random(7)
        self.jenkins = JenkinsState()
        self.jenkins_jobs = [f"soak/job-{i:02d}" for i in range(jobs)]
        for path in self.jenkins_jobs:
            self.jenkins.add_job(path, concurrent=True, duration_ms=1000)
        self.jenkins_token = secrets.token_hex(16)
        self.jenkins_sim = JenkinsSimulator(self.jenkins, tokens={"accord": self.jenkins_token})
        self.triggered = 0

        self.kube = ClusterState()
        self.cronjobs = [("etl" if i % 2 else "ops", f"cj-{i:02d}") for i in range(cronjobs)]
        for ns, name in self.cronjobs:
            self.kube.add_cronjob(ns, name, NOT_DUE)
        self.kube_token = secrets.token_hex(16)
        self.kube_sim = KubeSimulator(self.kube, tokens=[self.kube_token])
        self.kube_made = 0

        self.tfc = TfcState()
        self.tfc.rate_per_second = None
        self.tfc.add_org("soak")
        self.workspaces = [
            self.tfc.add_workspace("soak", f"ws-{i:02d}").id for i in range(workspaces)
        ]
        self.tfc_token = secrets.token_urlsafe(24)
        self.tfc_sim = TfcSimulator(self.tfc, tokens={self.tfc_token: "soak"})

        self.cron_root, self.spool = tmp / "cron-root", tmp / "spool"
        (self.cron_root / "etc" / "cron.d").mkdir(parents=True)
        self.spool.mkdir()
        self.cron_lines = [f"line-{i:02d}" for i in range(lines)]
        user = pwd.getpwuid(os.geteuid()).pw_name
        crontab = [f"ACCORD_SPOOL_DIR={self.spool}"]
        crontab += [f"{NOT_DUE} {user} {ACCORD} exec --job {j} -- true" for j in self.cron_lines]
        (self.cron_root / "etc" / "crontab").write_text("\n".join(crontab) + "\n")
        self.cron_made = 0

    def start(self) -> None:
        self.jenkins_sim.start()
        self.kube_sim.start()
        self.tfc_sim.start()

    def stop(self) -> None:
        for sim in (self.jenkins_sim, self.kube_sim, self.tfc_sim):
            sim.stop()

    def config(self, day_seconds: float) -> str:
        sync = "sync: {inventoryEvery: 30s, runsEvery: 2s}"
        # The cron source keeps finished runs in its spool for 7 days, of the soak's clock.
        retention = f"{max(1, round(7 * day_seconds))}s"
        return f"""apiVersion: accord.dev/v1
kind: Source
metadata: {{name: ci, domain: default}}
spec:
  type: jenkins
  url: {self.jenkins_sim.url}
  username: accord
  token: {{env: ACCORD_SECRET_SOAK_JENKINS}}
  triggerWait: 0s
  {sync}
---
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: k8s, domain: default}}
spec:
  type: kubernetes
  auth: {{server: '{self.kube_sim.url}', tokenFrom: {{env: ACCORD_SECRET_SOAK_K8S}}}}
  {sync}
---
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: infra, domain: default}}
spec:
  type: terraform
  url: {self.tfc_sim.url}
  organizations: [soak]
  token: {{env: ACCORD_SECRET_SOAK_TFC}}
  {sync}
---
apiVersion: accord.dev/v1
kind: Source
metadata: {{name: hosts, domain: default}}
spec:
  type: cron
  root: {self.cron_root}
  host: soak-host
  spool: [{self.spool}]
  syslog: "off"
  retention: {retention}
  {sync}
"""

    # -- one run at each tool; each returns the uid the run gets in Accord ------------------
    def _ok(self) -> bool:
        return self.rng.random() >= 0.1

    def jenkins_run(self, path: str) -> str:
        build = self.jenkins.run(path, "SUCCESS" if self._ok() else "FAILURE", cause=cause_timer())
        return f"/{path}#{build.number}"

    def kube_run(self, ns: str, cronjob: str) -> str:
        ok = self._ok()
        with self.kube.lock:
            self.kube.now = datetime.now(UTC).replace(microsecond=0)
            self.kube_made += 1
            job = self.kube.job_from_cronjob(ns, cronjob, f"{cronjob}-{self.kube_made}")
            self.kube.finish_job(ns, job["metadata"]["name"], succeeded=ok)
        return f"/{job['metadata']['name']}@{job['metadata']['uid'].replace('-', '')[:8]}"

    def tfc_run(self, ws_id: str) -> str:
        run = self.tfc.create_run(ws_id, message="soak", created_by="soak")
        self.tfc.plan(run.id)
        self.tfc.confirm(run.id, by="soak")
        self.tfc.finish_apply(run.id, ok=self._ok())
        return run.id

    def cron_run(self, line: str) -> str:
        self.cron_made += 1
        run_id = f"soak-{self.cron_made}"  # the uid ends with "/soak-N"
        command = "true" if self._ok() else "false"
        argv = [str(ACCORD), "exec", "--job", line, "--run-id", run_id, "--spool", str(self.spool)]
        subprocess.run([*argv, "--", command], check=False, capture_output=True, timeout=60)
        return f"/{run_id}"

    def counts(self) -> dict[str, int]:
        with self.jenkins.lock:  # builds, and the triggered queue items (queued runs)
            jenkins = sum(len(j.builds) for j in self.jenkins.jobs()) + self.triggered
        return {
            "ci": jenkins,
            "k8s": self.kube_made,
            "infra": len(self.tfc.runs),
            "hosts": self.cron_made,
        }


def _stored(db: Path) -> tuple[dict[str, int], int]:
    """Runs per source in the store (read-only), and how many of them are missed runs."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = con.execute(
            "SELECT source, count(*) FROM run WHERE coalesce(native_state, '') != 'missed' "
            "GROUP BY source"
        ).fetchall()
        missed = con.execute("SELECT count(*) FROM run WHERE native_state = 'missed'").fetchone()
    finally:
        con.close()
    return {str(s): int(n) for s, n in rows}, int(missed[0])


class Sampler(threading.Thread):
    """Samples each source's sync lag once a second until stopped."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.lags: list[float] = []
        self.errors = 0
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as c:
            while not self.halt.wait(1.0):
                try:
                    items = c.get("/api/v1/sources").json()
                except (httpx.HTTPError, ValueError, KeyError):
                    self.errors += 1
                    continue
                self.lags += [s["lag_seconds"] for s in items if s["lag_seconds"] is not None]


def _visible(c: httpx.Client, source: str, native: str, *, limit: float = 120.0) -> float | None:
    """Seconds until the run of ``source`` whose uid ends with ``native`` shows as finished."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        r = c.get("/api/v1/runs", params={"source": source, "limit": 20})
        if r.status_code == 200:
            for run in r.json()["items"]:
                if run["uid"].endswith(native) and run["state"] in ("success", "failed"):
                    return round(time.monotonic() - began, 2)
        time.sleep(0.1)
    return None


def _trend(series: list[float]) -> tuple[float | None, float | None]:
    """Least-squares slope per day of ``series`` and its standard error (single days move
    by a few MiB around the gateway's once-a-minute trim: a slope within about two
    standard errors of zero is no growth the run can tell from noise)."""
    n = len(series)
    if n < 3:
        return None, None
    days = list(range(n))
    fit = statistics.linear_regression(days, series)
    mean = statistics.fmean(days)
    fitted = (fit.intercept + fit.slope * x for x in days)
    residual = sum((y - f) ** 2 for y, f in zip(series, fitted, strict=True))
    spread = sum((x - mean) ** 2 for x in days)
    return round(fit.slope, 2), round(math.sqrt(residual / (n - 2) / spread), 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--day-seconds", type=float, default=30.0)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--keep", action="store_true", help="keep the data directory (its path on stderr)"
    )
    args = p.parse_args()
    if args.quick:
        args.days, args.day_seconds = 2, 8.0
    args.days = max(1, min(args.days, 60))  # bounded whatever is asked

    tmp = Path(tempfile.mkdtemp(prefix="accord-soak-"))
    data = tmp / "data"
    data.mkdir()
    estate = Estate(tmp, jobs=12, cronjobs=8, workspaces=6, lines=4)
    estate.start()
    config = tmp / "estate.yaml"
    config.write_text(estate.config(args.day_seconds))
    db = data / "accord.db"
    env = {
        **os.environ,
        "ACCORD_DATA_DIR": str(data),
        "ACCORD_DATABASE_URL": f"sqlite:///{db}",
        "ACCORD_SECRET_SOAK_JENKINS": estate.jenkins_token,
        "ACCORD_SECRET_SOAK_K8S": estate.kube_token,
        "ACCORD_SECRET_SOAK_TFC": estate.tfc_token,
        "ACCORD_LOG_LEVEL": "warning",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(ACCORD), "serve", "--host", "127.0.0.1", "--port", str(port), "-f", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    result: dict[str, Any] = {"days": args.days, "day_seconds": args.day_seconds}
    sampler: Sampler | None = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                sys.exit(f"the gateway exited with {proc.returncode} before it was ready")
            time.sleep(0.3)
        headers = {"Authorization": f"Bearer {(data / 'admin-token').read_text().strip()}"}
        c = httpx.Client(base_url=url, headers=headers, timeout=60)
        # Each source has synced once (its watches run) before the tools start: a Job that
        # Kubernetes created and garbage-collected before Accord first listed it was never
        # visible to anyone (the cluster keeps only the last few per CronJob).
        while time.monotonic() < deadline:
            sources = c.get("/api/v1/sources").json()
            if len(sources) == 4 and all(s["last_success_at"] for s in sources):
                break
            time.sleep(0.5)
        else:
            sys.exit("the sources did not finish their first sync within 180 s")
        sampler = Sampler(url, headers)
        sampler.start()

        # A day's runs, spread evenly over the day's wall time.
        day: list[tuple[str, Callable[[], str]]] = []
        for path in estate.jenkins_jobs:
            day += [("ci", lambda path=path: estate.jenkins_run(path))] * 24
        for ns, name in estate.cronjobs:
            day += [("k8s", lambda ns=ns, name=name: estate.kube_run(ns, name))] * 24
        for ws in estate.workspaces:
            day += [("infra", lambda ws=ws: estate.tfc_run(ws))] * 4
        for line in estate.cron_lines:
            day += [("hosts", lambda line=line: estate.cron_run(line))] * 12

        rss: list[float] = []
        visible: list[float] = []
        invisible = 0
        triggers: dict[str, int] = {}
        began = time.monotonic()
        for d in range(args.days):
            estate.rng.shuffle(day)
            start = began + d * args.day_seconds
            step = args.day_seconds / len(day)
            for i, (_, make) in enumerate(day):
                pause = start + i * step - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                make()
            # One person's action a day, through authorization and the audit trail.
            job = estate.jenkins_jobs[d % len(estate.jenkins_jobs)]
            r = c.post(f"/api/v1/jobs/ci/{job}/trigger")
            triggers[str(r.status_code)] = triggers.get(str(r.status_code), 0) + 1
            if r.status_code in (200, 202):
                estate.triggered += 1  # a queue item (nothing starts it): one queued run
            # How long a run that just ended at each tool takes to show in Accord.
            for source, make in (
                ("ci", lambda: estate.jenkins_run(estate.jenkins_jobs[0])),
                ("k8s", lambda: estate.kube_run(*estate.cronjobs[0])),
                ("infra", lambda: estate.tfc_run(estate.workspaces[0])),
                ("hosts", lambda: estate.cron_run(estate.cron_lines[0])),
            ):
                seen = _visible(c, source, make())
                if seen is None:
                    invisible += 1
                else:
                    visible.append(seen)
            rss.append(_rss_mib(proc.pid))

        # Settle: every run the tools hold is in the store (bounded).
        expected = estate.counts()
        stored, missed = _stored(db)
        settle = time.monotonic() + 120
        while stored != expected and time.monotonic() < settle:
            time.sleep(1)
            expected = estate.counts()
            stored, missed = _stored(db)
        sampler.halt.set()
        sampler.join(5)
        c.close()
        verify = subprocess.run(
            [str(ACCORD), "audit", "verify"], env=env, capture_output=True, text=True, timeout=120
        )
        growth = (rss[-1] - rss[0]) / (len(rss) - 1) if len(rss) > 1 else None
        # The trend over the second half of the days (least squares: single days move by a
        # few MiB around the gateway's once-a-minute trim), after the caches warmed up.
        late, late_se = _trend(rss[len(rss) // 2 :])
        result.update(
            {
                "runs_made": sum(expected.values()),
                "rss_mib_per_day": rss,
                "rss_growth_mib_per_day_after_warmup": None if growth is None else round(growth, 2),
                "rss_trend_mib_per_day_second_half": late,
                "rss_trend_standard_error": late_se,
                "sync_lag_s": {
                    "p50": _pct(sampler.lags, 0.5),
                    "p99": _pct(sampler.lags, 0.99),
                    "samples": len(sampler.lags),
                    "sample_errors": sampler.errors,
                },
                "visible_after_s": {
                    "p50": _pct(visible, 0.5),
                    "p99": _pct(visible, 0.99),
                    "max": max(visible, default=None),
                    "not_seen_in_120s": invisible,
                },
                "triggers_by_status": triggers,
                "runs_at_tools": expected,
                "runs_in_accord": stored,
                "runs_equal": stored == expected,
                "missed_runs_recorded": missed,
                "audit_chain": (verify.stdout or verify.stderr).strip(),
                "audit_chain_ok": verify.returncode == 0,
            }
        )
    finally:
        if sampler is not None:
            sampler.halt.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        estate.stop()
        if args.keep:
            print(f"data kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))
    if not (result.get("runs_equal") and result.get("audit_chain_ok")):
        sys.exit(1)


if __name__ == "__main__":
    main()
