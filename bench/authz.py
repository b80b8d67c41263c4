"""Authorization benchmark: compiled/cached decisions versus plain Casbin ``enforce``.

    uv run python bench/authz.py [--policies 10000] [--jobs 100000]

Prints one JSON line: policies, decisions_per_s (cached path), uncached_decisions_per_s
(compiled grants, no cache), casbin_raw_per_s (plain enforce, same requests, same run),
list_filter_ms (p99 of the first page of 100,000 jobs filtered for one subject through
the SQL predicate, as the list endpoint does; count_filter_p50_ms is the total count),
agreement (fraction of sampled decisions where the compiled path and enforce agree;
must be 1.0). Targets: >= 100,000 decisions/s, list filtering < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session

from gateway.authz import Binding, PolicySet, Rule
from gateway.store import create_db_engine, session_scope, upgrade
from gateway.store.services import queries
from gateway.store.tables import Job

DOMAINS = [f"dom{i}" for i in range(20)]
SOURCES = [f"src{i}" for i in range(30)]
ACTIONS = ["read", "trigger", "cancel", "pause", "resume"]
NAMES = ["etl_", "nightly-", "job-", "report_", "sync-"]


def build_policy(n: int, rng: random.Random) -> tuple[PolicySet, list[str]]:
    rules: list[Rule] = []
    roles = [f"role{i}" for i in range(max(1, n // 10))]
    for i in range(n):
        role = roles[i % len(roles)]
        src = rng.choice(SOURCES)
        obj = rng.choice([f"{src}/*", f"{src}/etl_*", f"*/nightly-{i % 50}*", f"{src}/job-{i}"])
        rules.append(
            Rule(
                role,
                rng.choice(["*", *DOMAINS]),
                obj,
                rng.choice(["read", *ACTIONS]),
                "deny" if rng.random() < 0.1 else "allow",
            )
        )
    subjects = [f"user{i}" for i in range(200)]
    bindings = [
        Binding(s, rng.choice(roles), rng.choice(["*", *DOMAINS]))
        for s in subjects
        for _ in range(3)
    ]
    return PolicySet(rules, bindings), subjects


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policies", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--decisions", type=int, default=200_000)
    ap.add_argument("--raw", type=int, default=150, help="plain enforce calls (slow)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    policy, subjects = build_policy(args.policies, rng)

    def req() -> tuple[str, str, str, str]:
        src = rng.choice(SOURCES)
        return (
            rng.choice(subjects),
            rng.choice(DOMAINS),
            f"{src}/{rng.choice(['etl_a', 'nightly-3x', 'job-42', 'report'])}",
            rng.choice(ACTIONS),
        )

    pool = [req() for _ in range(5000)]
    for s in subjects:  # grants are derived once per subject and policy version
        policy.grants(s)
    sample = [rng.choice(pool) for _ in range(args.decisions)]
    t = time.perf_counter()
    for r in sample:
        policy.decide(*r)
    cached = len(sample) / (time.perf_counter() - t)
    t = time.perf_counter()
    for r in pool:
        policy.grants(r[0]).decide(r[1], r[2], r[3])
    uncached = len(pool) / (time.perf_counter() - t)
    raw_reqs = pool[: args.raw]
    policy.enforcer()
    t = time.perf_counter()
    raw = [policy.enforce(*r) for r in raw_reqs]
    raw_rate = len(raw_reqs) / (time.perf_counter() - t)
    agree = sum(policy.decide(*r).allowed == a for r, a in zip(raw_reqs, raw, strict=True))

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_db_engine(f"sqlite:///{Path(tmp) / 'authz.db'}")
        upgrade(engine)
        with session_scope(engine) as s:
            rows = [
                {
                    "uid": f"{SOURCES[i % 30]}/{NAMES[i % len(NAMES)]}{i}",
                    "source": SOURCES[i % 30],
                    "native_id": f"{NAMES[i % len(NAMES)]}{i}",
                    "domain": DOMAINS[(i // 30) % 20],
                    "name": f"job-{i}",
                    "native_type": "bench",
                    "definition_hash": "x",
                    "owners": [],
                    "labels": {},
                    "attributes": {},
                    "problems": [],
                }
                for i in range(args.jobs)
            ]
            for i in range(0, len(rows), 10_000):
                s.execute(insert(Job), rows[i : i + 10_000])

        # A typical subject: the median number of grants.
        def reads(x: str) -> int:
            return sum(g.act in ("read", "*") for g in policy.grants(x).entries)

        # The subject with the widest read grants (the most rows to filter).
        subject = max(subjects, key=reads)
        grants = policy.grants(subject)

        def visible(d: object, u: object) -> object:
            return grants.predicate("read", d, u)

        times, count_times = [], []
        with Session(engine) as s:
            for _ in range(40):
                t = time.perf_counter()
                queries.list_jobs(s, visible=visible, filt=queries.JobFilter(), limit=100)  # type: ignore[arg-type]
                times.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                visible_count = queries.count_jobs(s, visible=visible, filt=queries.JobFilter())  # type: ignore[arg-type]
                count_times.append((time.perf_counter() - t) * 1000)
        engine.dispose()
    times.sort()
    count_times.sort()
    print(
        json.dumps(
            {
                "policies": len(policy.rules),
                "decisions_per_s": round(cached),
                "uncached_decisions_per_s": round(uncached),
                "casbin_raw_per_s": round(raw_rate, 1),
                "list_filter_ms": round(times[int(len(times) * 0.99) - 1], 2),
                "list_filter_p50_ms": round(statistics.median(times), 2),
                "count_filter_p50_ms": round(statistics.median(count_times), 2),
                "visible_jobs": visible_count,
                "grant_entries_of_subject": len(grants.entries),
                "agreement": agree / len(raw_reqs),
            }
        )
    )


if __name__ == "__main__":
    main()
