"""Read-only aggregates for the web console's overview and governance pages.

Every number here is computed under the caller's visibility predicate (the same one the
lists use), so the overview never counts a job or run the subject could not open.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlmodel import Session, col

from gateway.governance.guardrails import guardrails, window_active
from gateway.model.resources import Guardrail
from gateway.store.services import queries
from gateway.store.tables import Job, Run
from gateway.store.tables import Source as SourceRow
from gateway.store.types import to_db, utcnow

from ..convert import source_public
from ..deps import Principal, SessionDep, require
from ..routing import Router
from ..schemas import SourcePublic, StatsRow

router = Router(prefix="/api/v1/overview", tags=["overview"])

# A job whose last run is older than this (or that never ran and has been known this long)
# counts as idle in the tool-sprawl panel.
IDLE_AFTER = timedelta(days=30)
# Lists in the overview are samples for the eye; the counts beside them are exact.
SAMPLE = 50
ACTIVE_STATES = ("queued", "running", "waiting")


class JobBrief(BaseModel):
    uid: str
    name: str
    source: str
    domain: str
    owners: list[str]
    last_run_state: str | None
    last_run_at: datetime | None


class JobSample(BaseModel):
    count: int
    items: list[JobBrief]


class ToolRow(BaseModel):
    type: str
    domain: str
    sources: int
    jobs: int


class Sprawl(BaseModel):
    by_tool: list[ToolRow]
    without_owner: JobSample
    idle: JobSample
    never_run: JobSample
    paused: int
    idle_after_days: int


class GuardrailPublic(BaseModel):
    name: str
    domain: str
    type: str
    actions: list[str]
    selector: dict[str, Any]
    windows: list[dict[str, Any]]
    active: bool
    approvers: int | None = None
    subjects: list[str] = []
    rate_per_hour: int | None = None


class OverviewPublic(BaseModel):
    generated_at: datetime
    jobs: int
    sources: int
    runs_24h: list[StatsRow]
    active_runs: int
    failing_now: JobSample
    source_health: list[SourcePublic]
    freezes: list[GuardrailPublic]
    sprawl: Sprawl


_BRIEF = (
    col(Job.uid),
    col(Job.name),
    col(Job.source),
    col(Job.domain),
    col(Job.owners),
    col(Job.last_run_state),
    col(Job.last_run_at),
)


def _sample(
    session: Session, count: int, conds: list[ColumnElement[bool]], order: Any
) -> JobSample:
    """The first SAMPLE matching jobs (only the columns shown) beside the exact count."""
    if count == 0:
        return JobSample(count=0, items=[])
    rows = session.execute(select(*_BRIEF).where(and_(*conds)).order_by(*order).limit(SAMPLE))
    return JobSample(
        count=count,
        items=[
            JobBrief(
                uid=r[0],
                name=r[1],
                source=r[2],
                domain=r[3],
                owners=r[4],
                last_run_state=r[5],
                last_run_at=r[6],
            )
            for r in rows.all()
        ],
    )


def _flag(cond: ColumnElement[bool]) -> Any:
    return func.sum(case((cond, 1), else_=0))


def run_counts(session: Session, principal: Principal, since: datetime) -> list[StatsRow]:
    """(source, domain, state, count) of runs since ``since``."""
    rows = queries.run_stats(session, visible=principal.visible(), since=since)
    return [StatsRow(source=a, domain=b, state=c, count=n) for a, b, c, n in rows]


def _visible_domains(session: Session, principal: Principal) -> set[str]:
    """Domains in which the subject can see at least one job."""
    stmt = (
        select(col(Job.domain))
        .where(
            col(Job.tombstoned_at).is_(None),
            principal.visible()(col(Job.domain), col(Job.uid)),
        )
        .distinct()
    )
    return {str(d) for d in session.execute(stmt).scalars()}


def _guardrails(session: Session, principal: Principal) -> list[GuardrailPublic]:
    """Guardrails that can act on a job the subject can see (none for one who sees none)."""
    domains = _visible_domains(session, principal)
    if not domains:
        return []
    now = utcnow()
    out: list[GuardrailPublic] = []
    for g in sorted(guardrails(session), key=lambda g: g.metadata.name):
        sel = g.spec.selector
        if sel.domains and not domains.intersection(sel.domains):
            continue
        out.append(_guardrail_public(g, now))
    return out


def _guardrail_public(g: Guardrail, now: datetime) -> GuardrailPublic:
    spec = g.spec
    active = spec.type != "freeze" or any(window_active(w, now) for w in spec.windows)
    return GuardrailPublic(
        name=g.metadata.name,
        domain=g.metadata.domain,
        type=spec.type,
        actions=list(spec.actions),
        selector=spec.selector.model_dump(mode="json"),
        windows=[w.model_dump(mode="json", exclude_none=True) for w in spec.windows],
        active=active,
        approvers=spec.approvers if spec.type == "approval" else None,
        subjects=list(spec.subjects),
        rate_per_hour=spec.rate_per_hour if spec.type == "agent-limit" else None,
    )


@router.get("", response_model=OverviewPublic)
def overview(
    session: SessionDep, principal: Principal = Depends(require("read"))
) -> OverviewPublic:
    """The estate at a glance: runs by state over 24 h per source and domain, what is
    failing now, source health, active freezes and the tool-sprawl panel. Longer windows
    come from ``/overview/runs`` (slower at scale, so the page loads them on its own)."""
    now = utcnow()
    visible_job = principal.visible()(col(Job.domain), col(Job.uid))
    live = [visible_job, col(Job.tombstoned_at).is_(None)]

    active_runs = session.execute(
        select(func.count())
        .select_from(Run)
        .where(
            principal.visible()(col(Run.domain), col(Run.job_uid)),
            col(Run.state).in_(ACTIVE_STATES),
        )
    ).scalar_one()

    sources = queries.list_sources(session, visible=principal.visible())
    types = {s.name: s.type for s in session.execute(select(SourceRow)).scalars()}
    cutoff = to_db(now - IDLE_AFTER)
    failing = col(Job.last_run_state) == "failed"
    no_owner = func.json_array_length(col(Job.owners)) == 0
    idle = or_(
        col(Job.last_run_at) < cutoff,
        and_(col(Job.last_run_at).is_(None), col(Job.first_seen) < cutoff),
    )
    never = col(Job.last_run_at).is_(None)
    paused = col(Job.paused).is_(True)
    # Every job count in one pass over the job table.
    per_source: dict[str, int] = {}
    tool_rows: dict[tuple[str, str], dict[str, Any]] = {}
    totals = dict.fromkeys(("failing", "no_owner", "idle", "never", "paused"), 0)
    for src, dom, n, *flags in session.execute(
        select(
            col(Job.source),
            col(Job.domain),
            func.count(),
            _flag(failing),
            _flag(no_owner),
            _flag(idle),
            _flag(never),
            _flag(paused),
        )
        .where(*live)
        .group_by(col(Job.source), col(Job.domain))
    ).all():
        per_source[src] = per_source.get(src, 0) + int(n)
        key = (types.get(src, "unknown"), dom)
        row = tool_rows.setdefault(key, {"sources": set(), "jobs": 0})
        row["sources"].add(src)
        row["jobs"] += int(n)
        for k, v in zip(totals, flags, strict=True):
            totals[k] += int(v or 0)
    jobs = sum(per_source.values())

    by_recent = (col(Job.last_run_at).desc(), col(Job.uid))
    sprawl = Sprawl(
        by_tool=[
            ToolRow(type=t, domain=d, sources=len(v["sources"]), jobs=v["jobs"])
            for (t, d), v in sorted(tool_rows.items(), key=lambda kv: (-kv[1]["jobs"], kv[0]))
        ],
        without_owner=_sample(session, totals["no_owner"], [*live, no_owner], (col(Job.uid),)),
        idle=_sample(
            session, totals["idle"], [*live, idle], (col(Job.last_run_at).asc(), col(Job.uid))
        ),
        never_run=_sample(session, totals["never"], [*live, never], (col(Job.uid),)),
        paused=totals["paused"],
        idle_after_days=IDLE_AFTER.days,
    )
    return OverviewPublic(
        generated_at=now,
        jobs=int(jobs),
        sources=len(sources),
        runs_24h=run_counts(session, principal, now - timedelta(hours=24)),
        active_runs=int(active_runs),
        failing_now=_sample(session, totals["failing"], [*live, failing], by_recent),
        source_health=[source_public(s, int(per_source.get(s.name, 0))) for s in sources],
        freezes=[g for g in _guardrails(session, principal) if g.type == "freeze" and g.active],
        sprawl=sprawl,
    )


@router.get("/runs", response_model=list[StatsRow])
def runs_by_state(
    session: SessionDep,
    hours: Annotated[int, Query(ge=1, le=24 * 90, description="window, hours back from now")] = 24,
    principal: Principal = Depends(require("read")),
) -> list[StatsRow]:
    """Runs by (source, domain, state) that started in the last ``hours`` hours."""
    return run_counts(session, principal, utcnow() - timedelta(hours=hours))


@router.get("/guardrails", response_model=list[GuardrailPublic])
def list_guardrails(
    session: SessionDep, principal: Principal = Depends(require("read"))
) -> list[GuardrailPublic]:
    """Guardrails (freezes, approvals, agent limits) that can act on a job the subject can
    see, with whether each freeze is in effect now."""
    return _guardrails(session, principal)
