"""Compliance rules (detective): CEL expressions every matching job must satisfy.

An inventory change re-evaluates the jobs it changed (``evaluate_jobs``); a change of the
rules or of what they read (guardrails, SLAs, domains) and the periodic sweep evaluate
every job, in pages (``evaluate_all``, ``sweep``). A job that fails a rule gets a
Violation with evidence; it stays open (``last_seen`` moves) until the job
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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from croniter import croniter
from sqlalchemy import Engine, and_, bindparam, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from gateway.model.resources import SLA, ComplianceRule, Domain, Guardrail
from gateway.store.tables import AppliedResource, Job, Violation
from gateway.store.tables import Source as SourceRow
from gateway.store.types import to_db

from .guardrails import selector_matches, window_active
from .notify import NotificationEvent, enqueue_many

__all__ = [
    "EvaluationSummary",
    "RuleSyntaxError",
    "compile_expression",
    "evaluate_all",
    "evaluate_jobs",
    "resolve_source",
    "sweep",
]

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


_LOCK_KEY = 4242002
_PAGE = 500
_EVIDENCE_FIELDS = ("owners", "labels", "paused", "paused_days", "slas", "fires_in_freeze")


@dataclass
class _Context:
    """What every evaluation reads besides the jobs: the rules and the documents they see."""

    now: datetime
    rules: list[ComplianceRule]
    programs: dict[str, Any]
    domains: dict[str, Domain]
    slas: list[SLA]
    freezes: list[Guardrail]
    types: dict[str, str]

    @property
    def rule_names(self) -> set[str]:
        return {r.metadata.name for r in self.rules}


def _context(session: Session, now: datetime | None) -> _Context:
    rules = [ComplianceRule.model_validate(d) for d in _docs(session, "ComplianceRule")]
    programs = {}
    for rule in rules:
        try:
            programs[rule.metadata.name] = compile_expression(rule.spec.expression)
        except RuleSyntaxError as exc:
            _log.error("compliance rule %s: %s", rule.metadata.name, exc)
    return _Context(
        now=now or datetime.now(UTC),
        rules=rules,
        programs=programs,
        domains={
            d.metadata.name: d for d in (Domain.model_validate(x) for x in _docs(session, "Domain"))
        },
        slas=[SLA.model_validate(d) for d in _docs(session, "SLA")],
        freezes=[
            g
            for g in (Guardrail.model_validate(d) for d in _docs(session, "Guardrail"))
            if g.spec.type == "freeze"
        ],
        types={
            name: type_ for name, type_ in session.execute(select(SourceRow.name, SourceRow.type))
        },
    )


def _lock(session: Session, *, exclusive: bool) -> None:
    """On PostgreSQL: a full evaluation excludes every other evaluation until it commits;
    incremental ones only exclude a full one (they touch the jobs of one source each, which
    that source's single sync pass serializes). SQLite serializes writers by itself."""
    if session.get_bind().dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        session.execute(text(f"SELECT {fn}({_LOCK_KEY})"))


def _failures(ctx: _Context, job: Job) -> dict[str, dict[str, Any]]:
    """The rules ``job`` fails, each with the values of its Violation row."""
    n_slas = sum(
        1
        for s in ctx.slas
        if selector_matches(s.spec.selector, domain=job.domain, uid=job.uid, labels=job.labels)
    )
    view = _job_view(
        job,
        source_type=ctx.types.get(job.source, ""),
        slas=n_slas,
        in_freeze=_fires_in_freeze(job, ctx.freezes, ctx.now),
        now=ctx.now,
    )
    dom = ctx.domains.get(job.domain)
    activation = {
        "job": json_to_cel(view),
        "domain": json_to_cel(
            {"name": job.domain, "production": bool(dom and dom.spec.production)}
        ),
        "now": json_to_cel(ctx.now.isoformat()),
    }
    out: dict[str, dict[str, Any]] = {}
    for rule in ctx.rules:
        name = rule.metadata.name
        if name not in ctx.programs:
            continue
        if not selector_matches(
            rule.spec.selector, domain=job.domain, uid=job.uid, labels=job.labels
        ):
            continue
        error = None
        try:
            result = ctx.programs[name].evaluate(activation)
            passed = bool(result) and not isinstance(result, CELEvalError)
            if isinstance(result, CELEvalError):
                error = str(result.args[0]) if result.args else "evaluation error"
        except Exception as exc:  # a rule that cannot be evaluated is reported, not hidden
            passed, error = False, str(exc)
        if passed:
            continue
        evidence: dict[str, Any] = {
            "expression": rule.spec.expression,
            "job": {k: view[k] for k in (*_EVIDENCE_FIELDS, "source_type")},
        }
        if error:
            evidence["error"] = error
        out[name] = {
            "rule": name,
            "severity": rule.spec.severity,
            "job_uid": job.uid,
            "domain": job.domain,
            "evidence": evidence,
            "message": rule.spec.description or f"{name} failed",
        }
    return out


def _reconcile(
    session: Session, ctx: _Context, jobs: Sequence[Job], summary: EvaluationSummary
) -> None:
    """Evaluate one page of live jobs and bring their open violations in line.

    Reads only the open violations of these jobs; a resolved row is reopened in place by
    the upsert (one row per rule and job), so history is never loaded.
    """
    if not jobs:
        return
    table = Violation.__table__  # type: ignore[attr-defined]
    uids = [j.uid for j in jobs]
    open_rows: dict[tuple[str, str], int] = {
        (r.rule, r.job_uid): r.id
        for r in session.execute(
            select(table.c.id, table.c.rule, table.c.job_uid).where(
                table.c.resolved_at.is_(None), table.c.job_uid.in_(uids)
            )
        )
    }
    failing: dict[tuple[str, str], dict[str, Any]] = {}
    for job in jobs:
        for name, values in _failures(ctx, job).items():
            failing[(name, job.uid)] = values
    summary.jobs += len(jobs)
    now = ctx.now
    still = [
        {
            "b_id": open_rows[key],
            "b_severity": v["severity"],
            "b_domain": v["domain"],
            "b_evidence": v["evidence"],
            "b_message": v["message"],
        }
        for key, v in failing.items()
        if key in open_rows
    ]
    if still:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                severity=bindparam("b_severity"),
                domain=bindparam("b_domain"),
                evidence=bindparam("b_evidence"),
                message=bindparam("b_message"),
                last_seen=now,
            ),
            still,
        )
        summary.still_open += len(still)
    new = [
        {**v, "first_seen": now, "last_seen": now, "resolved_at": None, "resolution": None}
        for key, v in failing.items()
        if key not in open_rows
    ]
    if new:
        dialect = session.get_bind().dialect.name
        ins = pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)
        # A resolved row of the same rule and job is reopened; a row another evaluation
        # opened meanwhile is left as it is.
        stmt = ins.on_conflict_do_update(
            index_elements=["rule", "job_uid"],
            set_={
                c: ins.excluded[c]
                for c in (
                    "severity",
                    "domain",
                    "evidence",
                    "message",
                    "first_seen",
                    "last_seen",
                    "resolved_at",
                    "resolution",
                )
            },
            where=table.c.resolved_at.is_not(None),
        )
        opened = session.execute(
            stmt.returning(table.c.id, table.c.rule, table.c.job_uid, table.c.first_seen), new
        ).all()
        summary.opened += len(new)
        _notify_opened(session, opened, {(v["rule"], v["job_uid"]): v for v in new}, jobs)
    passed = [(key, row_id) for key, row_id in open_rows.items() if key not in failing]
    names = ctx.rule_names
    for resolution in ("fixed", "rule-removed"):
        ids = [i for (rule, _u), i in passed if (rule in names) == (resolution == "fixed")]
        summary.resolved += _resolve(session, table.c.id.in_(ids), resolution, now) if ids else 0


_SEVERITY = {"low": "info", "medium": "warning", "high": "critical", "critical": "critical"}


def _notify_opened(
    session: Session,
    opened: Sequence[Any],
    values: dict[tuple[str, str], dict[str, Any]],
    jobs: Sequence[Job],
) -> None:
    """``violation.opened`` for each row this evaluation opened (or reopened), in its
    transaction; the incident is the row and the time it opened, so a violation that stays
    open is one message and one that is fixed and comes back is another."""
    if not opened:
        return
    labels = {j.uid: dict(j.labels or {}) for j in jobs}
    events = []
    for row_id, rule, job_uid, first_seen in opened:
        v = values.get((rule, job_uid), {})
        at = to_db(first_seen)
        events.append(
            NotificationEvent(
                type="violation.opened",
                severity=_SEVERITY.get(str(v.get("severity")), "warning"),
                domain=str(v.get("domain") or "default"),
                title=f"Compliance violation: {rule} on {job_uid}",
                text=str(v.get("message") or ""),
                incident=f"violation.opened:{row_id}:{at:%Y-%m-%dT%H:%M:%S.%f}" if at else "",
                job_uid=job_uid,
                labels=labels.get(job_uid, {}),
                data={"violation": row_id, "rule": rule, "rule_severity": v.get("severity")},
            )
        )
    enqueue_many(session, events)


def _resolve(session: Session, where: Any, resolution: str, now: datetime) -> int:
    table = Violation.__table__  # type: ignore[attr-defined]
    result = session.execute(
        update(table)
        .where(table.c.resolved_at.is_(None), where)
        .values(resolved_at=now, resolution=resolution)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def evaluate_jobs(
    session: Session, *, uids: Collection[str], now: datetime | None = None
) -> EvaluationSummary:
    """Evaluate the rules over these jobs only (the ones an inventory pass created,
    changed, revived or tombstoned), in the caller's transaction.

    A job that is tombstoned or unknown has its open violations resolved (``job-gone``).
    The cost is that of the jobs named, whatever the size of the estate.
    """
    if not uids:
        return EvaluationSummary()
    _lock(session, exclusive=False)
    ctx = _context(session, now)
    summary = EvaluationSummary(rules=len(ctx.rules))
    ordered = sorted(set(uids))
    table = Violation.__table__  # type: ignore[attr-defined]
    names = ctx.rule_names
    for i in range(0, len(ordered), _PAGE):
        chunk = ordered[i : i + _PAGE]
        jobs = list(
            session.exec(
                select(Job).where(col(Job.uid).in_(chunk), col(Job.tombstoned_at).is_(None))
            ).all()
        )
        _reconcile(session, ctx, jobs, summary)
        gone = sorted(set(chunk) - {j.uid for j in jobs})
        if gone:
            in_gone = table.c.job_uid.in_(gone)
            summary.resolved += _resolve(
                session, and_(in_gone, table.c.rule.not_in(names)), "rule-removed", ctx.now
            )
            summary.resolved += _resolve(session, in_gone, "job-gone", ctx.now)
    return summary


def evaluate_all(
    session: Session,
    *,
    now: datetime | None = None,
    page_size: int = _PAGE,
    commit_each_page: bool = False,
    cancelled: Callable[[], bool] = lambda: False,
) -> EvaluationSummary:
    """Evaluate every rule over every live job and reconcile the Violation records.

    Jobs are read in pages by id and only their open violations are loaded, so memory
    stays constant whatever the size of the estate; open violations of removed rules and
    gone jobs are resolved with one statement each. By default everything happens in the
    caller's transaction (``accord apply`` changes rules and their violations at once);
    the periodic sweep passes ``commit_each_page`` so it never holds the database's write
    lock for the whole estate. On PostgreSQL a transaction-scoped advisory lock keeps other
    evaluations out while it runs.
    """
    _lock(session, exclusive=True)
    ctx = _context(session, now)
    summary = EvaluationSummary(rules=len(ctx.rules))
    last_id = 0
    while True:
        jobs = list(
            session.exec(
                select(Job)
                .where(col(Job.tombstoned_at).is_(None), col(Job.id) > last_id)
                .order_by(col(Job.id))
                .limit(page_size)
            ).all()
        )
        if not jobs:
            break
        _reconcile(session, ctx, jobs, summary)
        last_id = jobs[-1].id or last_id
        if commit_each_page:
            session.commit()
            if cancelled():
                return summary
            _lock(session, exclusive=True)
    table = Violation.__table__  # type: ignore[attr-defined]
    job_t = Job.__table__  # type: ignore[attr-defined]
    summary.resolved += _resolve(
        session, table.c.rule.not_in(ctx.rule_names), "rule-removed", ctx.now
    )
    live = (
        select(job_t.c.uid)
        .where(job_t.c.uid == table.c.job_uid, job_t.c.tombstoned_at.is_(None))
        .exists()
    )
    summary.resolved += _resolve(session, ~live, "job-gone", ctx.now)
    return summary


def sweep(engine: Engine, *, cancelled: Callable[[], bool] = lambda: False) -> EvaluationSummary:
    """A full evaluation in its own transactions, one per page (the periodic re-evaluation
    of facts that move with time); stops between pages once ``cancelled()`` is true."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            summary = evaluate_all(session, commit_each_page=True, cancelled=cancelled)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return summary


def resolve_source(session: Session, *, source: str, now: datetime | None = None) -> int:
    """Resolve (``job-gone``) the open violations of a removed source's jobs, in the
    caller's transaction; returns how many."""
    table = Violation.__table__  # type: ignore[attr-defined]
    job_t = Job.__table__  # type: ignore[attr-defined]
    of_source = table.c.job_uid.in_(select(job_t.c.uid).where(job_t.c.source == source))
    return _resolve(session, of_source, "job-gone", now or datetime.now(UTC))
