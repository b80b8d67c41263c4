"""Automation: Dependency and RetryPolicy documents and their firings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query
from sqlalchemy import Text, cast, func, or_, select
from sqlmodel import Session, col

from gateway.model.resources import Dependency, RetryPolicy
from gateway.store.tables import AppliedResource, Firing, Job

from ..deps import Principal, SessionDep, require
from ..routing import Router
from ..schemas import AutomationRulePublic, FiringPublic

router = Router(prefix="/api/v1", tags=["automation"])
Reader = Depends(require("read"))


def firing_public(f: Firing) -> FiringPublic:
    assert f.id is not None
    latency = None
    if f.fired_at is not None:
        latency = max(0.0, (f.fired_at - f.observed_at).total_seconds())
    return FiringPublic(
        id=f.id,
        kind=f.kind,
        rule=f.rule,
        key=f.key,
        action=f.action,
        job_uid=f.job_uid,
        run_uid=f.run_uid,
        subject=f.subject,
        upstream_runs=list(f.upstream_runs),
        status=f.status,
        attempts=f.attempts,
        chain_attempt=f.chain_attempt,
        next_attempt_at=f.next_attempt_at if f.status in ("pending", "held", "retrying") else None,
        approval_id=f.approval_id,
        result_run_uid=f.result_run_uid,
        message=f.message,
        observed_at=f.observed_at,
        fired_at=f.fired_at,
        latency_seconds=latency,
    )


def _rules(
    session: Session, principal: Principal, kind: str, firings: int
) -> list[AutomationRulePublic]:
    out = []
    visible = principal.visible()
    for res in session.execute(
        select(AppliedResource)
        .where(col(AppliedResource.kind) == kind)
        .order_by(col(AppliedResource.name))
    ).scalars():
        label = "dependency" if kind == "Dependency" else "retry-policy"
        recent = (
            session.execute(
                select(Firing)
                .where(
                    col(Firing.kind) == label,
                    col(Firing.rule) == res.name,
                    visible(col(Firing.domain), col(Firing.job_uid)),
                )
                .order_by(col(Firing.id).desc())
                .limit(firings)
            )
            .scalars()
            .all()
        )
        counts = {
            str(st): int(n)
            for st, n in session.execute(
                select(col(Firing.status), func.count())
                .where(
                    col(Firing.kind) == label,
                    col(Firing.rule) == res.name,
                    visible(col(Firing.domain), col(Firing.job_uid)),
                )
                .group_by(col(Firing.status))
            ).all()
        }
        if kind == "Dependency":
            dep = Dependency.model_validate(res.document)
            target = dep.spec.downstream
            if not _may_read(session, principal, target):
                continue
            out.append(
                AutomationRulePublic(
                    kind=kind,
                    name=res.name,
                    domain=res.domain,
                    subject=dep.subject,
                    upstream=dep.spec.upstreams,
                    dataset=dep.spec.dataset,
                    downstream=target,
                    when=list(dep.spec.when),
                    trigger=dep.spec.trigger,
                    spec=res.document.get("spec", {}),
                    counts=counts,
                    firings=[firing_public(f) for f in recent],
                )
            )
        else:
            pol = RetryPolicy.model_validate(res.document)
            out.append(
                AutomationRulePublic(
                    kind=kind,
                    name=res.name,
                    domain=res.domain,
                    subject=pol.subject,
                    downstream=pol.spec.remediation,
                    when=[s.value for s in pol.spec.match.states],
                    spec=res.document.get("spec", {}),
                    counts=counts,
                    firings=[firing_public(f) for f in recent],
                )
            )
    return out


def _may_read(session: Session, principal: Principal, uid: str) -> bool:
    job = session.execute(select(Job).where(col(Job.uid) == uid)).scalars().first()
    if job is None:  # not synced yet: the document itself is configuration anyone may read
        return principal.grants.can_anywhere("read")
    return principal.decide(job.domain, job.uid, "read").allowed


@router.get("/dependencies", response_model=list[AutomationRulePublic])
def list_dependencies(
    session: SessionDep,
    principal: Principal = Reader,
    firings: Annotated[int, Query(ge=0, le=200, description="latest firings per rule")] = 20,
) -> list[AutomationRulePublic]:
    """Dependency documents whose downstream job you may read, with their latest firings
    (only firings on jobs you may read) and counts per status."""
    return _rules(session, principal, "Dependency", firings)


@router.get("/retry-policies", response_model=list[AutomationRulePublic])
def list_retry_policies(
    session: SessionDep,
    principal: Principal = Reader,
    firings: Annotated[int, Query(ge=0, le=200)] = 20,
) -> list[AutomationRulePublic]:
    """RetryPolicy documents with their latest firings on jobs you may read."""
    return _rules(session, principal, "RetryPolicy", firings)


@router.get("/firings", response_model=list[FiringPublic])
def list_firings(
    session: SessionDep,
    principal: Principal = Reader,
    rule: str | None = None,
    kind: str | None = Query(default=None, description="dependency | retry-policy"),
    status: str | None = None,
    job: str | None = Query(default=None, description="the job acted on"),
    run: str | None = Query(
        default=None, description="a run that caused the firing or that it started"
    ),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[FiringPublic]:
    """Firings, newest first. ``run`` shows what automation did about a run ("retried by
    policy X") and which firing started it."""
    conds: list[Any] = [principal.visible()(col(Firing.domain), col(Firing.job_uid))]
    if rule:
        conds.append(col(Firing.rule) == rule)
    if kind:
        conds.append(col(Firing.kind) == kind)
    if status:
        conds.append(col(Firing.status) == status)
    if job:
        conds.append(col(Firing.job_uid) == job)
    if run:
        quoted = '%"' + run.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + '"%'
        conds.append(
            or_(
                col(Firing.result_run_uid) == run,
                col(Firing.run_uid) == run,
                cast(col(Firing.upstream_runs), Text).like(quoted, escape="\\"),
            )
        )
    rows = (
        session.execute(select(Firing).where(*conds).order_by(col(Firing.id).desc()).limit(limit))
        .scalars()
        .all()
    )
    return [firing_public(f) for f in rows]


__all__ = ["firing_public", "router"]
