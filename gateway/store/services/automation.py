"""The automation outbox: which firings Dependency and RetryPolicy documents owe.

``observe`` runs inside the write transaction that stores run changes
(``ingest.upsert_runs``), so the condition a firing answers is durable in the same commit
as the run's end: a crash at any point afterwards loses nothing, and the unique ``key``
makes each firing exist at most once however often the run is reported again.

Keys:

* a dependency on one upstream job: ``dependency:NAME:<upstream run uid>``;
* a fan-in (``upstream: [A, B, C]``): ``dependency:NAME:<digest of the set's run uids>``;
  each upstream run takes part in at most one set;
* a retry policy: ``retry-policy:NAME:<failed run uid>:<attempt>``.

The dispatcher (``gateway.automation``) claims, fires and settles the rows.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from gateway.authz.patterns import obj_match
from gateway.model import RunState
from gateway.model.resources import Dependency, JobSelector, RetryPolicy, render_template

from ..tables import AppliedResource, Edge, Firing, Job, Run
from ..types import to_db, utcnow

__all__ = [
    "Rules",
    "firing_values",
    "logical_date",
    "observe",
    "rules",
]

_AUTOMATION_KINDS = ("Dependency", "RetryPolicy")
_LOGICAL = re.compile(
    r"(?:^|/)(?:scheduled|manual|backfill|dataset_triggered|asset_triggered)__(.+)$"
)


@dataclass(frozen=True)
class _Rule:
    doc: Dependency | RetryPolicy
    applied_at: datetime


@dataclass(frozen=True)
class Rules:
    dependencies: list[_Rule]
    retry_policies: list[_Rule]


_cache: dict[str, Dependency | RetryPolicy] = {}
_cache_lock = threading.Lock()


def rules(session: Session) -> Rules:
    """The applied Dependency (with ``trigger``) and RetryPolicy documents (parsed once
    per digest)."""
    rows = session.execute(
        select(
            col(AppliedResource.kind),
            col(AppliedResource.digest),
            col(AppliedResource.document),
            col(AppliedResource.applied_at),
        ).where(col(AppliedResource.kind).in_(_AUTOMATION_KINDS))
    ).all()
    deps: list[_Rule] = []
    policies: list[_Rule] = []
    for kind, dig, document, applied_at in rows:
        with _cache_lock:
            parsed = _cache.get(dig)
        if parsed is None:
            parsed = (
                Dependency.model_validate(document)
                if kind == "Dependency"
                else RetryPolicy.model_validate(document)
            )
            with _cache_lock:
                if len(_cache) > 10_000:
                    _cache.clear()
                _cache[dig] = parsed
        if isinstance(parsed, Dependency):
            if parsed.spec.trigger:
                deps.append(_Rule(parsed, to_db(applied_at) or applied_at))
        else:
            policies.append(_Rule(parsed, to_db(applied_at) or applied_at))
    return Rules(deps, policies)


def logical_date(run_uid: str) -> str:
    """The native logical date a run id carries (Airflow's ``scheduled__<date>`` ids)."""
    m = _LOGICAL.search(run_uid)
    return m.group(1) if m else ""


def _iso(value: datetime | None) -> str:
    v = to_db(value)
    return v.isoformat() + "Z" if v is not None else ""


def firing_values(
    *, rule: str, key: str, run: Run, runs: Sequence[Run], job: Job | None
) -> dict[str, str]:
    """The template variables for a firing caused by ``run`` (of the set ``runs``)."""
    native_job = job.native_id if job is not None else run.job_uid.split("/", 1)[-1]
    return {
        "upstream.run_uid": run.uid,
        "upstream.run_id": run.uid.split("/", 1)[-1],
        "upstream.job": run.job_uid,
        "upstream.job_id": native_job,
        "upstream.source": run.source,
        "upstream.state": run.state,
        "upstream.native_state": run.native_state or "",
        "upstream.queued_at": _iso(run.queued_at),
        "upstream.started_at": _iso(run.started_at),
        "upstream.ended_at": _iso(run.ended_at),
        "upstream.logical_date": logical_date(run.uid),
        "upstream.attempt": str(run.attempt),
        "upstream.message": (run.message or "")[:500],
        "upstream.runs": ",".join(r.uid for r in runs),
        "dependency.name": rule,
        "firing.key": key,
    }


def _render(params: dict[str, str], values: dict[str, str]) -> dict[str, Any]:
    return {k: render_template(v, values) for k, v in params.items()}


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    table = Firing.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(table).on_conflict_do_nothing(index_elements=["key"]), rows)
    elif dialect == "sqlite":
        session.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        session.execute(insert(table), rows)


def _ended(run: Run) -> datetime:
    return to_db(run.ended_at) or to_db(run.observed_at) or utcnow()


def _row(
    *,
    key: str,
    kind: str,
    rule: str,
    action: str,
    job_uid: str,
    domain: str,
    subject: str,
    upstream: list[str],
    params: dict[str, Any],
    now: datetime,
    due: datetime,
    run_uid: str | None = None,
    status: str = "pending",
    chain_attempt: int = 1,
    message: str = "",
) -> dict[str, Any]:
    return {
        "key": key,
        "kind": kind,
        "rule": rule,
        "action": action,
        "job_uid": job_uid,
        "run_uid": run_uid,
        "domain": domain,
        "subject": subject,
        "upstream_runs": upstream,
        "params": params,
        "status": status,
        "chain_attempt": chain_attempt,
        "attempts": 0,
        "next_attempt_at": due,
        "message": message,
        "observed_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _selector(sel: JobSelector, job: Job) -> bool:
    if sel.domains and job.domain not in sel.domains:
        return False
    if sel.jobs and not any(obj_match(job.uid, p) for p in sel.jobs):
        return False
    return all(job.labels.get(k) == v for k, v in sel.labels.items())


def observe(session: Session, *, changed_uids: Sequence[str], now: datetime | None = None) -> int:
    """Queue the firings that runs which just ended (``changed_uids``) cause.

    Call inside the write transaction that stored the change. Returns how many rows were
    offered (duplicates of existing keys are ignored by the unique key)."""
    if not changed_uids:
        return 0
    ruleset = rules(session)
    if not ruleset.dependencies and not ruleset.retry_policies:
        return 0
    now = to_db(now or utcnow()) or utcnow()
    runs = [
        r
        for r in session.execute(select(Run).where(col(Run.uid).in_(list(changed_uids))))
        .scalars()
        .all()
        if RunState(r.state).terminal
    ]
    if not runs:
        return 0
    job_uids = {r.job_uid for r in runs}
    jobs = {
        j.uid: j
        for j in session.execute(select(Job).where(col(Job.uid).in_(job_uids))).scalars().all()
    }
    rows: list[dict[str, Any]] = []
    for rule in ruleset.dependencies:
        assert isinstance(rule.doc, Dependency)
        rows.extend(_dependency_rows(session, rule, runs, jobs, now))
    for rule in ruleset.retry_policies:
        assert isinstance(rule.doc, RetryPolicy)
        rows.extend(_retry_rows(session, rule, runs, jobs, now))
    _insert(session, rows)
    return len(rows)


def _target(session: Session, uid: str) -> Job | None:
    return session.execute(select(Job).where(col(Job.uid) == uid)).scalars().first()


def _dependency_rows(
    session: Session, rule: _Rule, runs: list[Run], jobs: dict[str, Job], now: datetime
) -> list[dict[str, Any]]:
    dep = rule.doc
    assert isinstance(dep, Dependency)
    spec = dep.spec
    name = dep.metadata.name
    states = {s.value for s in spec.states}
    if spec.dataset is not None:
        upstreams = set(
            session.execute(
                select(col(Edge.src_uid)).where(
                    col(Edge.kind) == "produces", col(Edge.dst_uid) == spec.dataset
                )
            ).scalars()
        )
    else:
        upstreams = set(spec.upstreams)
    hits = [
        r
        for r in runs
        if r.job_uid in upstreams and r.state in states and _ended(r) >= rule.applied_at
    ]
    if not hits:
        return []
    target = _target(session, spec.downstream)
    domain = target.domain if target is not None else "default"
    out: list[dict[str, Any]] = []
    fan_in = spec.dataset is None and len(spec.upstreams) > 1
    for run in hits:
        if not fan_in:
            members = [run]
            key = f"dependency:{name}:{run.uid}"
        else:
            found = _fan_in_set(session, rule, run, states, now)
            if found is None:
                continue
            members = found
            digest = hashlib.sha256(",".join(sorted(r.uid for r in members)).encode()).hexdigest()[
                :24
            ]
            key = f"dependency:{name}:{digest}"
        values = firing_values(rule=name, key=key, run=run, runs=members, job=jobs.get(run.job_uid))
        out.append(
            _row(
                key=key,
                kind="dependency",
                rule=name,
                action="trigger",
                job_uid=spec.downstream,
                domain=domain,
                subject=dep.subject,
                upstream=[r.uid for r in members],
                params=_render(spec.params, values),
                now=now,
                due=now,
            )
        )
    return out


def _fan_in_set(
    session: Session, rule: _Rule, run: Run, states: set[str], now: datetime
) -> list[Run] | None:
    """The newest qualifying run of every upstream within the window, none of them already
    part of an earlier set of this dependency; None while one is missing."""
    dep = rule.doc
    assert isinstance(dep, Dependency)
    since = max(now - dep.spec.window, rule.applied_at)
    used: set[str] = set()
    for members in session.execute(
        select(col(Firing.upstream_runs)).where(
            col(Firing.kind) == "dependency",
            col(Firing.rule) == dep.metadata.name,
            col(Firing.created_at) >= since - timedelta(seconds=1),
        )
    ).scalars():
        used.update(members)
    if run.uid in used:
        return None
    members = [run]
    for up in dep.spec.upstreams:
        if up == run.job_uid:
            continue
        candidates = (
            session.execute(
                select(Run)
                .where(
                    col(Run.job_uid) == up,
                    col(Run.state).in_(states),
                    col(Run.sort_at) >= to_db(since - dep.spec.window),
                )
                .order_by(col(Run.sort_at).desc())
                .limit(20)
            )
            .scalars()
            .all()
        )
        pick = next((c for c in candidates if c.uid not in used and _ended(c) >= since), None)
        if pick is None:
            return None
        members.append(pick)
    return sorted(members, key=lambda r: r.uid)


def _retry_rows(
    session: Session, rule: _Rule, runs: list[Run], jobs: dict[str, Job], now: datetime
) -> list[dict[str, Any]]:
    pol = rule.doc
    assert isinstance(pol, RetryPolicy)
    spec = pol.spec
    name = pol.metadata.name
    states = {s.value for s in spec.match.states}
    pattern = re.compile(spec.match.message) if spec.match.message else None
    out: list[dict[str, Any]] = []
    batch: dict[str, int] = {}  # firings offered in this transaction, per target job
    for run in runs:
        job = jobs.get(run.job_uid)
        if job is None or run.state not in states or _ended(run) < rule.applied_at:
            continue
        if not _selector(spec.selector, job):
            continue
        if spec.match.native_states and run.native_state not in spec.match.native_states:
            continue
        if pattern is not None and not pattern.search(run.message or ""):
            continue
        # Which run of the chain this is: a run started by this policy continues the chain.
        parent = (
            session.execute(
                select(col(Firing.chain_attempt)).where(
                    col(Firing.kind) == "retry-policy",
                    col(Firing.rule) == name,
                    col(Firing.result_run_uid) == run.uid,
                )
            )
            .scalars()
            .first()
        )
        attempt = max(run.attempt, parent if parent is not None else 1)
        key = f"retry-policy:{name}:{run.uid}:{run.attempt}"
        target_uid = spec.remediation if spec.action == "remediate" else run.job_uid
        assert target_uid is not None
        target = job if target_uid == job.uid else _target(session, target_uid)
        status, message = "pending", ""
        if attempt >= spec.max_attempts:
            status, message = "skipped", f"attempt limit reached ({spec.max_attempts} runs)"
        else:
            recent = session.execute(
                select(func.count())
                .select_from(Firing)
                .where(
                    col(Firing.kind) == "retry-policy",
                    col(Firing.rule) == name,
                    col(Firing.job_uid) == target_uid,
                    col(Firing.status) != "skipped",
                    col(Firing.created_at) >= now - timedelta(hours=1),
                )
            ).scalar_one()
            if int(recent) + batch.get(target_uid, 0) >= spec.max_per_hour:
                status, message = "skipped", f"hourly limit reached ({spec.max_per_hour}/h)"
            else:
                batch[target_uid] = batch.get(target_uid, 0) + 1
        delay = spec.backoff * (2 ** max(0, attempt - 1))
        values = firing_values(rule=name, key=key, run=run, runs=[run], job=job)
        out.append(
            _row(
                key=key,
                kind="retry-policy",
                rule=name,
                action="retry" if spec.action == "retry" else "trigger",
                job_uid=target_uid,
                run_uid=run.uid if spec.action == "retry" else None,
                domain=target.domain if target is not None else job.domain,
                subject=pol.subject,
                upstream=[run.uid],
                params=_render(spec.params, values),
                now=now,
                due=now + delay,
                status=status,
                chain_attempt=attempt + 1,
                message=message,
            )
        )
    return out
