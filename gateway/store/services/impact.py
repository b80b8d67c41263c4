"""Impact analysis: what a job's failure or lateness reaches downstream, across tools.

A breadth-first walk from the job along lineage edges in their downstream direction:
``depends_on`` (upstream job → job, from tools and from Dependency documents),
``produces`` (job → dataset) then ``consumes`` (dataset → job). Jobs the caller may not
read are counted, not shown, and the walk does not continue through them. SLAs whose
selector matches an affected job are listed with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlmodel import Session, col

from gateway.authz.patterns import obj_match
from gateway.model.resources import JobSelector

from ..tables import AppliedResource, Dataset, Edge, Job
from .queries import Visible, get_job

__all__ = ["Impact", "ImpactNode", "impact"]

_DOWN_KINDS = ("depends_on", "produces", "consumes")


@dataclass
class ImpactNode:
    uid: str
    kind: str  # job | dataset
    depth: int
    via: str  # the node it is reached from
    edge: str  # the edge kind that reaches it
    evidence: str
    name: str = ""
    source: str | None = None
    domain: str | None = None
    last_run_state: str | None = None
    slas: list[str] = field(default_factory=list)


@dataclass
class Impact:
    root: Job
    nodes: list[ImpactNode]
    root_slas: list[str]
    hidden: int
    truncated: bool
    sources: list[str] = field(default_factory=list)


def _slas(session: Session) -> list[tuple[str, JobSelector]]:
    out = []
    for r in session.execute(
        select(AppliedResource).where(col(AppliedResource.kind) == "SLA")
    ).scalars():
        sel: Any = (r.document.get("spec") or {}).get("selector") or {}
        try:
            out.append((r.name, JobSelector.model_validate(sel)))
        except ValidationError:
            continue
    return out


def _matches(sel: JobSelector, job: Job) -> bool:
    if sel.domains and job.domain not in sel.domains:
        return False
    if sel.jobs and not any(obj_match(job.uid, p) for p in sel.jobs):
        return False
    return all(job.labels.get(k) == v for k, v in sel.labels.items())


def impact(
    session: Session, *, visible: Visible, root: str, depth: int = 10, max_nodes: int = 2000
) -> Impact | None:
    """Everything downstream of job ``root`` within ``depth`` hops (None: no such job)."""
    start = get_job(session, uid=root, visible=visible)
    if start is None:
        return None
    slas = _slas(session)
    seen: set[str] = {root}
    hidden: set[str] = set()
    nodes: list[ImpactNode] = []
    frontier = {root}
    truncated = False
    for level in range(1, max(1, depth) + 1):
        if not frontier:
            break
        edges = (
            session.execute(
                select(Edge)
                .where(col(Edge.src_uid).in_(list(frontier)), col(Edge.kind).in_(_DOWN_KINDS))
                .order_by(col(Edge.id))
            )
            .scalars()
            .all()
        )
        fresh = {e.dst_uid: e for e in edges if e.dst_uid not in seen and e.dst_uid not in hidden}
        job_uids = [u for u, e in fresh.items() if e.dst_kind == "job"]
        ds_uids = [u for u, e in fresh.items() if e.dst_kind == "dataset"]
        jobs = {
            j.uid: j
            for j in session.execute(
                select(Job).where(
                    col(Job.uid).in_(job_uids), visible(col(Job.domain), col(Job.uid))
                )
            ).scalars()
        }
        datasets = {
            d.uid: d
            for d in session.execute(select(Dataset).where(col(Dataset.uid).in_(ds_uids))).scalars()
        }
        nxt: set[str] = set()
        for uid, e in fresh.items():
            node = ImpactNode(uid, e.dst_kind, level, e.src_uid, e.kind, e.evidence)
            if e.dst_kind == "job":
                j = jobs.get(uid)
                if j is None:
                    hidden.add(uid)
                    continue
                node.name, node.source, node.domain = j.name, j.source, j.domain
                node.last_run_state = j.last_run_state
                node.slas = [n for n, sel in slas if _matches(sel, j)]
            else:
                d = datasets.get(uid)
                node.name = d.name if d is not None else uid
            nodes.append(node)
            seen.add(uid)
            nxt.add(uid)
            if len(nodes) >= max_nodes:
                truncated = True
                break
        if truncated:
            break
        frontier = nxt
    else:
        truncated = bool(frontier) and bool(
            session.execute(
                select(col(Edge.id))
                .where(col(Edge.src_uid).in_(list(frontier)), col(Edge.kind).in_(_DOWN_KINDS))
                .limit(1)
            ).first()
        )
    sources = sorted({n.source for n in nodes if n.source and n.source != start.source})
    return Impact(
        start,
        nodes,
        [n for n, sel in slas if _matches(sel, start)],
        len(hidden),
        truncated,
        sources,
    )
