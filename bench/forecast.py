"""Forecast benchmark: the next 24 hours of 100,000 scheduled jobs across five tools.

Builds the inventory in memory (the rows the forecaster reads from the store) with a
realistic mix of schedules per tool — cron with CRON_TZ zones, Jenkins ``H`` specs (each
job hashes differently), Kubernetes CronJobs with ``timeZone``, Airflow cron timetables
with a reported next run, Terraform workspaces without a schedule — and times:

* ``cold_s``: the first refresh (every calendar built and evaluated, durations applied);
* ``window_s``: counting the next 24 h of all jobs and reading the first 5,000 runs in
  time order (what the API does);
* ``incremental_s``: a refresh one minute later with nothing changed;
* ``changed_s``: a refresh after 1 % of the jobs changed their definition.

Each phase is reported as wall-clock seconds (``*_s``) and as CPU seconds of this process
(``*_cpu_s``, ``time.process_time``): on a shared, loaded machine the CPU figure is the
one to compare between runs; ``loadavg_1m`` is printed beside them.

Goal: cold < 2 s; incremental a small fraction of it. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta

from adapters.base import registry
from gateway.governance.forecast import Forecaster, JobInfo

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London"]
CRON = ["0 * * * *", "*/15 * * * *", "30 2 * * *", "0 6 * * 1-5", "5 */4 * * *", "0 0 * * 0"]


def inventory(n: int, seed: int = 7) -> list[JobInfo]:
    rnd = random.Random(seed)
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    out = []
    for i in range(n):
        kind = rnd.choices(
            ["cron", "jenkins", "kubernetes", "airflow", "terraform"], [40, 20, 20, 15, 5]
        )[0]
        tz: str | None = rnd.choice(ZONES)
        nxt = None
        if kind == "cron":
            expr: str | None = (
                rnd.choice(CRON)
                if rnd.random() < 0.7
                else f"{rnd.randrange(60)} {rnd.randrange(24)} * * *"
            )
        elif kind == "jenkins":
            expr = rnd.choice(
                ["H * * * *", "H H * * *", "H/15 * * * *", "H 2 * * 1-5", "H H(0-6) * * *"]
            )
        elif kind == "kubernetes":
            expr = rnd.choice(CRON)
        elif kind == "airflow":
            expr, tz = rnd.choice(["@daily", "0 3 * * *", "@hourly", "Asset"]), None
            nxt = now + timedelta(minutes=rnd.randrange(1, 600))
        else:
            expr, tz = None, None
        out.append(
            JobInfo(
                uid=f"{kind}-{i % 10}/job-{i}",
                native_id=f"team-{i % 97}/job-{i}",
                source=f"{kind}-{i % 10}",
                source_type=kind,
                domain=rnd.choice(["data", "ml", "ops", "finance", "platform"]),
                name=f"job-{i}",
                labels={},
                expression=expr,
                timezone=tz,
                next_run_at=nxt,
                paused=rnd.random() < 0.03,
                definition_hash=f"h{i}",
                last_run_at=None,
            )
        )
    return out


class _Clock:
    """Wall-clock and CPU seconds of one phase."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
    args = ap.parse_args()
    jobs = inventory(args.jobs)
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    rnd = random.Random(3)
    samples = {j.uid: [rnd.uniform(60, 900) for _ in range(10)] for j in jobs[: len(jobs) // 2]}
    for kind in ("cron", "jenkins", "kubernetes", "airflow", "terraform"):
        registry.get(kind)  # a running gateway has its adapters imported already
    f = Forecaster(None)
    with _Clock() as cold_t:
        cold = f.update(jobs, {}, samples, [j.uid for j in jobs], now=now)
    with _Clock() as window_t:
        total, _page = f.window_page(now, now + timedelta(hours=24), limit=5_000)
    with _Clock() as inc_t:
        inc = f.update(jobs, {}, {}, [], now=now + timedelta(minutes=1))
    changed = list(jobs)
    for i in range(0, len(changed), 100):
        j = changed[i]
        changed[i] = JobInfo(**{**j.__dict__, "definition_hash": j.definition_hash + "x"})
    with _Clock() as ch_t:
        ch = f.update(changed, {}, {}, [], now=now + timedelta(minutes=2))
    print(
        json.dumps(
            {
                "bench": "forecast",
                "jobs": len(jobs),
                "expected_runs_24h": total,
                "cold_s": round(cold_t.wall, 3),
                "cold_cpu_s": round(cold_t.cpu, 3),
                "cold_recomputed": cold.recomputed,
                "window_s": round(window_t.wall, 3),
                "window_cpu_s": round(window_t.cpu, 3),
                "incremental_s": round(inc_t.wall, 3),
                "incremental_cpu_s": round(inc_t.cpu, 3),
                "incremental_recomputed": inc.recomputed,
                "changed_s": round(ch_t.wall, 3),
                "changed_cpu_s": round(ch_t.cpu, 3),
                "changed_recomputed": ch.recomputed,
                "goal_cold_s": 2.0,
                "loadavg_1m": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
