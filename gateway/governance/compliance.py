"""Compliance rules (detective): CEL expressions every matching job must satisfy.

Evaluated over all sources whenever the inventory or the rules change. A job that fails a
rule gets a Violation with evidence; it stays open (``last_seen`` moves) until the job
passes (resolution ``fixed``), disappears (``job-gone``) or the rule is removed
(``rule-removed``). The expression sees:

* ``job``: uid, source, source_type, domain, name, native_type, schedule (expression,
  timezone, text), paused, paused_days, owners, labels, attributes, problems,
  last_run_state, days_since_last_run (-1 = never), slas (SLA documents that select it),
  fires_in_freeze (a run is due inside an active or coming freeze in the next 7 days);
* ``domain``: name, production (from the Domain document);
* ``now``: the evaluation time (ISO string).

CEL is a small, safe, side-effect-free language: no ``eval``, no I/O.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from croniter import croniter
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from gateway.model.resources import SLA, ComplianceRule, Domain, Guardrail
from gateway.store.tables import AppliedResource, Job, Violation
from gateway.store.tables import Source as SourceRow

from .guardrails import selector_matches, window_active

__all__ = ["EvaluationSummary", "compile_expression", "evaluate_all"]

_log = logging.getLogger(__name__)
_env = celpy.Environment()


class RuleSyntaxError(ValueError):
    pass


def compile_expression(expr: str) -> Any:
    """Compile a CEL expression or raise RuleSyntaxError with the parser's message."""
    try:
        return _env.program(_env.compile(expr))
    except Exception as exc:  # celpy raises its own parse error types
        raise RuleSyntaxError(f"invalid CEL expression: {exc}") from None


@dataclass
class EvaluationSummary:
    rules: int = 0
    jobs: int = 0
    opened: int = 0
    still_open: int = 0
    resolved: int = 0


def _docs(session: Session, kind: str) -> list[dict[str, Any]]:
    rows = session.exec(select(AppliedResource).where(col(AppliedResource.kind) == kind)).all()
    return [r.document for r in rows]


def _fires_in_freeze(job: Job, freezes: list[Guardrail], now: datetime) -> bool:
    if not job.schedule_expr or job.paused or not croniter.is_valid(job.schedule_expr):
        return False
    relevant = [
        g
        for g in freezes
        if selector_matches(g.spec.selector, domain=job.domain, uid=job.uid, labels=job.labels)
    ]
    if not relevant:
        return False
    it = croniter(job.schedule_expr, now)
    horizon = now + timedelta(days=7)
    for _ in range(500):
        t: datetime = it.get_next(datetime)
        if t > horizon:
            return False
        if any(window_active(w, t) for g in relevant for w in g.spec.windows):
            return True
    return False


def _job_view(
    job: Job, *, source_type: str, slas: int, in_freeze: bool, now: datetime
) -> dict[str, Any]:
    paused_days = 0
    if job.paused and job.paused_since is not None:
        paused_days = (now - job.paused_since).days
    since_run = (now - job.last_run_at).days if job.last_run_at else -1
    return {
        "uid": job.uid,
        "source": job.source,
        "source_type": source_type,
        "domain": job.domain,
        "name": job.name,
        "native_type": job.native_type,
        "schedule": {
            "expression": job.schedule_expr or "",
            "timezone": job.schedule_tz or "",
            "text": job.schedule_text or "",
        },
        "paused": job.paused,
        "paused_days": paused_days,
        "owners": list(job.owners),
        "labels": dict(job.labels),
        "attributes": dict(job.attributes),
        "problems": list(job.problems),
        "last_run_state": job.last_run_state or "",
        "days_since_last_run": since_run,
        "slas": slas,
        "fires_in_freeze": in_freeze,
    }


_lock = threading.Lock()


def evaluate_all(session: Session, *, now: datetime | None = None) -> EvaluationSummary:
    """Evaluate every rule over every live job and reconcile the Violation records.

    Evaluations are serialized (one at a time per process, and across replicas on
    PostgreSQL) so two sources changing at once never record the same violation twice.
    """
    with _lock:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(4242002)"))
        return _evaluate_all(session, now=now)


def _evaluate_all(session: Session, *, now: datetime | None = None) -> EvaluationSummary:
    now = now or datetime.now(UTC)
    rules = [ComplianceRule.model_validate(d) for d in _docs(session, "ComplianceRule")]
    domains = {
        d.metadata.name: d for d in (Domain.model_validate(x) for x in _docs(session, "Domain"))
    }
    slas = [SLA.model_validate(d) for d in _docs(session, "SLA")]
    freezes = [
        g
        for g in (Guardrail.model_validate(d) for d in _docs(session, "Guardrail"))
        if g.spec.type == "freeze"
    ]
    types = {s.name: s.type for s in session.exec(select(SourceRow)).all()}
    jobs = session.exec(select(Job).where(col(Job.tombstoned_at).is_(None))).all()
    summary = EvaluationSummary(rules=len(rules), jobs=len(jobs))
    open_rows = {
        (v.rule, v.job_uid): v
        for v in session.exec(select(Violation).where(col(Violation.resolved_at).is_(None))).all()
    }
    all_rows = {(v.rule, v.job_uid): v for v in session.exec(select(Violation)).all()}
    failing: set[tuple[str, str]] = set()
    new_rows: list[dict[str, Any]] = []
    live = {j.uid for j in jobs}
    programs = {}
    for rule in rules:
        try:
            programs[rule.metadata.name] = compile_expression(rule.spec.expression)
        except RuleSyntaxError as exc:
            _log.error("compliance rule %s: %s", rule.metadata.name, exc)
    for job in jobs:
        n_slas = sum(
            1
            for s in slas
            if selector_matches(s.spec.selector, domain=job.domain, uid=job.uid, labels=job.labels)
        )
        view = _job_view(
            job,
            source_type=types.get(job.source, ""),
            slas=n_slas,
            in_freeze=_fires_in_freeze(job, freezes, now),
            now=now,
        )
        dom = domains.get(job.domain)
        activation = {
            "job": json_to_cel(view),
            "domain": json_to_cel(
                {"name": job.domain, "production": bool(dom and dom.spec.production)}
            ),
            "now": json_to_cel(now.isoformat()),
        }
        for rule in rules:
            name = rule.metadata.name
            if name not in programs:
                continue
            if not selector_matches(
                rule.spec.selector, domain=job.domain, uid=job.uid, labels=job.labels
            ):
                continue
            error = None
            try:
                result = programs[name].evaluate(activation)
                passed = bool(result) and not isinstance(result, CELEvalError)
                if isinstance(result, CELEvalError):
                    error = str(result.args[0]) if result.args else "evaluation error"
            except Exception as exc:  # a rule that cannot be evaluated is reported, not hidden
                passed, error = False, str(exc)
            if passed:
                continue
            key = (name, job.uid)
            failing.add(key)
            evidence = {
                "expression": rule.spec.expression,
                "job": {
                    k: view[k]
                    for k in (
                        "owners",
                        "labels",
                        "paused",
                        "paused_days",
                        "slas",
                        "fires_in_freeze",
                        "source_type",
                    )
                },
            }
            if error:
                evidence["error"] = error
            message = rule.spec.description or f"{name} failed"
            row = all_rows.get(key)
            if row is None:
                new_rows.append(
                    {
                        "rule": name,
                        "severity": rule.spec.severity,
                        "job_uid": job.uid,
                        "domain": job.domain,
                        "evidence": evidence,
                        "message": message,
                        "first_seen": now,
                        "last_seen": now,
                    }
                )
                summary.opened += 1
                continue
            elif row.resolved_at is not None:
                row.resolved_at = None
                row.resolution = None
                row.first_seen = now
                row.last_seen = now
                summary.opened += 1
            else:
                row.last_seen = now
                summary.still_open += 1
            row.evidence = evidence
            row.severity = rule.spec.severity
            row.message = message
            row.domain = job.domain
            session.add(row)
    if new_rows:
        # Two evaluations racing (another replica, another source's sync) may both find
        # a violation new: the second insert is simply skipped.
        table = Violation.__table__  # type: ignore[attr-defined]
        dialect = session.get_bind().dialect.name
        ins = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
        session.execute(ins.on_conflict_do_nothing(index_elements=["rule", "job_uid"]), new_rows)
    rule_names = {r.metadata.name for r in rules}
    for key, row in open_rows.items():
        if key in failing:
            continue
        row.resolved_at = now
        if key[0] not in rule_names:
            row.resolution = "rule-removed"
        elif key[1] not in live:
            row.resolution = "job-gone"
        else:
            row.resolution = "fixed"
        session.add(row)
        summary.resolved += 1
    session.flush()
    return summary
