"""SLA benchmark: one evaluation cycle of 10,000 SLA instances.

100 SLA documents, each selecting 100 jobs by label (10,000 instances) with ``finishBy``
and ``maxDuration``; every job has a day of successful history, a third are running now
and every second job has an upstream job (``depends_on``) in another tool, so critical
paths are followed. Times ``evaluate`` (pure: the forecast and run facts are in memory,
as in the gateway's cycle). Goal: < 1 s. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

from adapters.base import registry
from gateway.governance.forecast import Forecaster, JobInfo
from gateway.governance.slas import Facts, RunFact, evaluate
from gateway.model.resources import SLASpec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slas", type=int, default=100)
    ap.add_argument("--per-sla", type=int, default=100)
    args = ap.parse_args()
    registry.get("cron")
    registry.get("jenkins")
    now = datetime(2026, 6, 1, 5, 40, tzinfo=UTC)
    n = args.slas * args.per_sla
    jobs: list[JobInfo] = []
    facts = Facts()
    samples: dict[str, list[float]] = {}
    for i in range(n):
        kind = "cron" if i % 2 else "jenkins"
        uid = f"{kind}/job-{i}"
        jobs.append(
            JobInfo(
                uid,
                f"job-{i}",
                kind,
                kind,
                "data",
                f"job-{i}",
                {"team": f"t{i % args.slas}"},
                f"{i % 60} 5 * * *" if kind == "cron" else "H 5 * * *",
                "UTC",
                None,
                False,
                f"h{i}",
                None,
            )
        )
        samples[uid] = [600 + (i % 7) * 30 for _ in range(10)]
        start = now.replace(minute=i % 40)
        state = "running" if i % 3 == 0 else "success"
        facts.runs[uid] = [
            RunFact(
                f"{uid}#2",
                uid,
                state,
                start,
                None if state == "running" else start + timedelta(minutes=9),
                start,
            ),
            RunFact(
                f"{uid}#1",
                uid,
                "success",
                start - timedelta(days=1),
                start - timedelta(days=1) + timedelta(minutes=10),
                start - timedelta(days=1),
            ),
        ]
        if i % 2 and i > 0:
            facts.upstreams[uid] = [f"jenkins/job-{i - 1}"]
    f = Forecaster(None)
    f.update(jobs, {}, samples, [j.uid for j in jobs], now=now)
    slas = [
        (
            f"sla-{k}",
            "data",
            SLASpec.model_validate(
                {
                    "selector": {"labels": {"team": f"t{k}"}},
                    "finishBy": "06:00",
                    "maxDuration": "15m",
                }
            ),
        )
        for k in range(args.slas)
    ]
    t = time.perf_counter()
    results = evaluate(slas, f, facts, now=now)
    took = time.perf_counter() - t
    by_state: dict[str, int] = {}
    for r in results:
        by_state[r.state] = by_state.get(r.state, 0) + 1
    print(
        json.dumps(
            {
                "bench": "sla",
                "instances": len(results),
                "evaluate_s": round(took, 3),
                "states": by_state,
                "goal_s": 1.0,
            }
        )
    )


if __name__ == "__main__":
    main()
