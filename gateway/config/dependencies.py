"""Checks of Dependency and RetryPolicy documents that look at more than one document:
cycles (at validate and at apply) and jobs that do not exist (at apply, against the
store), and the ``depends_on`` lineage edges each Dependency declares."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlmodel import Session, col

from gateway.model import EdgeKind, EdgeRecord, NodeKind, NodeRef
from gateway.model.resources import Dependency, RetryPolicy
from gateway.store.services.ingest import record_edges
from gateway.store.tables import AppliedResource, Edge, Job
from gateway.store.tables import Source as SourceRow

__all__ = [
    "ConfigRefused",
    "apply_problems",
    "dependency_graph",
    "describe_cycle",
    "find_cycle",
    "record_dependency_edges",
]


class ConfigRefused(ValueError):
    """The documents are valid one by one but cannot be applied together; nothing changed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``graph`` (node → successors) as a closed path, or None."""
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        color[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if color.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if color.get(m) is None:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        color[n] = 2
        return None

    for node in sorted(graph):
        if color.get(node) is None:
            found = visit(node)
            if found:
                return found
    return None


def dependency_graph(
    deps: Iterable[Dependency], producers: dict[str, set[str]] | None = None
) -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """upstream job → downstream jobs, and which Dependency made each edge."""
    graph: dict[str, set[str]] = {}
    names: dict[tuple[str, str], str] = {}
    for d in deps:
        ups = list(d.spec.upstreams)
        if d.spec.dataset is not None and producers is not None:
            ups.extend(sorted(producers.get(d.spec.dataset, ())))
        for up in ups:
            graph.setdefault(up, set()).add(d.spec.downstream)
            names.setdefault((up, d.spec.downstream), d.metadata.name)
    return graph, names


def describe_cycle(cycle: list[str], names: dict[tuple[str, str], str]) -> str:
    hops = [
        f"{a} -> {b} (Dependency/{names.get((a, b), '?')})" for a, b in itertools.pairwise(cycle)
    ]
    return "dependencies form a cycle: " + ", ".join(hops)


def _producers(session: Session) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for src, dst in session.execute(
        select(col(Edge.src_uid), col(Edge.dst_uid)).where(col(Edge.kind) == "produces")
    ).all():
        out.setdefault(dst, set()).add(src)
    return out


def apply_problems(
    session: Session,
    documents: dict[tuple[str, str], dict[str, Any]],
    changed: set[tuple[str, str]],
) -> list[str]:
    """What refuses an apply whose result would hold ``documents`` (kind, name) → body
    (``changed``: the ones this apply creates or updates).

    * a cycle among the Dependency documents (applied ones that stay, and new ones);
    * a job named by a Dependency or RetryPolicy that the store does not hold, when its
      source has synced its inventory (a source applied in the same set, or not yet
      synced, cannot be checked yet: its jobs are accepted and checked when firing);
      a job whose source is not configured at all.
    """
    deps = [Dependency.model_validate(b) for (k, _n), b in documents.items() if k == "Dependency"]
    policies = [
        RetryPolicy.model_validate(b) for (k, _n), b in documents.items() if k == "RetryPolicy"
    ]
    problems: list[str] = []
    graph, names = dependency_graph(deps, _producers(session))
    cycle = find_cycle(graph)
    if cycle:
        problems.append(describe_cycle(cycle, names))
    wanted: list[tuple[str, str, str]] = []
    for d in deps:
        if ("Dependency", d.metadata.name) not in changed:
            continue
        label = f"Dependency/{d.metadata.name}"
        for up in d.spec.upstreams:
            wanted.append((label, "spec.upstream", up))
        wanted.append((label, "spec.downstream", d.spec.downstream))
    for p in policies:
        if p.spec.remediation and ("RetryPolicy", p.metadata.name) in changed:
            label = f"RetryPolicy/{p.metadata.name}"
            wanted.append((label, "spec.remediation", p.spec.remediation))
    if not wanted:
        return problems
    uids = {u for _l, _f, u in wanted}
    known = set(
        session.execute(
            select(col(Job.uid)).where(col(Job.uid).in_(uids), col(Job.tombstoned_at).is_(None))
        ).scalars()
    )
    sources = {s.name: s for s in session.execute(select(SourceRow)).scalars()}
    new_sources = {n for (k, n) in documents if k == "Source"}
    for label, field, uid in wanted:
        if uid in known:
            continue
        source = uid.split("/", 1)[0]
        if "/" not in uid:
            problems.append(f"{label}: {field}: {uid!r} is not a job uid (source/native_id)")
        elif source not in sources and source not in new_sources:
            problems.append(
                f"{label}: {field}: job {uid!r} does not exist: no source {source!r} is configured"
            )
        elif source in sources and sources[source].last_success_at is not None:
            problems.append(
                f"{label}: {field}: job {uid!r} does not exist in source {source!r}"
                " (not in its inventory)"
            )
    return problems


def record_dependency_edges(session: Session) -> None:
    """Make the ``depends_on`` edges of the applied Dependency documents what they declare
    (evidence ``dependency NAME``; dataset dependencies link the dataset's producers)."""
    rows = session.execute(
        select(AppliedResource).where(col(AppliedResource.kind) == "Dependency")
    ).scalars()
    deps = [Dependency.model_validate(r.document) for r in rows]
    producers = _producers(session)
    wanted: dict[tuple[str, str], str] = {}
    for d in deps:
        ups = list(d.spec.upstreams)
        if d.spec.dataset is not None:
            ups.extend(sorted(producers.get(d.spec.dataset, ())))
        for up in ups:
            wanted.setdefault((up, d.spec.downstream), f"dependency {d.metadata.name}")
    stale = [
        e
        for e in session.execute(
            select(Edge).where(col(Edge.reported_by) == "config", col(Edge.kind) == "depends_on")
        ).scalars()
        if (e.src_uid, e.dst_uid) not in wanted or wanted[(e.src_uid, e.dst_uid)] != e.evidence
    ]
    if stale:
        session.execute(delete(Edge).where(col(Edge.id).in_([e.id for e in stale])))
    edges = []
    for (up, down), evidence in wanted.items():
        us, un = up.split("/", 1) if "/" in up else (up, up)
        ds, dn = down.split("/", 1) if "/" in down else (down, down)
        edges.append(
            EdgeRecord(
                kind=EdgeKind.DEPENDS_ON,
                src=NodeRef(kind=NodeKind.JOB, id=un, source=us),
                dst=NodeRef(kind=NodeKind.JOB, id=dn, source=ds),
                evidence=evidence,
            )
        )
    if edges:
        record_edges(session, source="config", edges=edges)
