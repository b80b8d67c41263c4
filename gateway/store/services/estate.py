"""The whole estate's lineage: every job-to-job and job-to-dataset edge a subject may see,
up to a node limit, for ``GET /api/v1/lineage`` without a start job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from ..tables import Dataset, Edge, Job
from .queries import Visible, _job_node

__all__ = ["EstateLineage", "estate_lineage"]

_KINDS = ("depends_on", "produces", "consumes")
_BATCH = 500


@dataclass
class EstateLineage:
    nodes: dict[str, dict[str, Any]]
    edges: list[Edge]
    truncated: bool  # the node limit stopped the walk before every edge was read


def estate_lineage(session: Session, *, visible: Visible, max_nodes: int) -> EstateLineage:
    """Edges in the order they were first recorded, with their endpoints, until adding
    the next edge would pass ``max_nodes``. An edge appears only when the subject may
    read every job it touches; datasets are visible to anyone who sees a job using them."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[Edge] = []
    after = 0
    # Bounded: each pass reads the next batch by id, and the loop ends when a batch is short.
    while True:
        batch = list(
            session.execute(
                select(Edge)
                .where(col(Edge.kind).in_(_KINDS), col(Edge.id) > after)
                .order_by(col(Edge.id))
                .limit(_BATCH)
            )
            .scalars()
            .all()
        )
        if not batch:
            return EstateLineage(nodes, edges, False)
        after = batch[-1].id or after
        job_uids = {
            uid
            for e in batch
            for uid, kind in ((e.src_uid, e.src_kind), (e.dst_uid, e.dst_kind))
            if kind == "job" and uid not in nodes
        }
        ds_uids = {
            uid
            for e in batch
            for uid, kind in ((e.src_uid, e.src_kind), (e.dst_uid, e.dst_kind))
            if kind == "dataset" and uid not in nodes
        }
        jobs = {
            j.uid: _job_node(j)
            for j in session.execute(
                select(Job).where(
                    col(Job.uid).in_(job_uids), visible(col(Job.domain), col(Job.uid))
                )
            ).scalars()
        }
        datasets = {
            d.uid: {"uid": d.uid, "kind": "dataset", "name": d.name, "namespace": d.namespace}
            for d in session.execute(select(Dataset).where(col(Dataset.uid).in_(ds_uids))).scalars()
        }
        for e in batch:
            ends = []
            ok = True
            for uid, kind in ((e.src_uid, e.src_kind), (e.dst_uid, e.dst_kind)):
                if uid in nodes:
                    continue
                found = (jobs if kind == "job" else datasets).get(uid)
                if found is None:
                    ok = False
                    break
                ends.append(found)
            if not ok:
                continue
            if len(nodes) + len(ends) > max_nodes:
                return EstateLineage(nodes, edges, True)
            for n in ends:
                nodes[n["uid"]] = n
            edges.append(e)
        if len(batch) < _BATCH:
            return EstateLineage(nodes, edges, False)
