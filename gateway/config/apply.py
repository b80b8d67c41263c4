"""Planning and applying declarative documents in one audited transaction."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select, update

from gateway.audit import AuditEntry, append
from gateway.governance.compliance import evaluate_all, resolve_source
from gateway.model.resources import Source, parse_duration
from gateway.store.engine import session_scope
from gateway.store.services.meta import bump_policy_version
from gateway.store.tables import AppliedResource, Job
from gateway.store.tables import Source as SourceRow
from gateway.store.types import utcnow

from .dependencies import ConfigRefused, apply_problems, record_dependency_edges
from .load import Document

__all__ = [
    "Change",
    "ConfigRefused",
    "Plan",
    "apply_plan",
    "digest",
    "plan",
    "required_domain",
]

_POLICY_KINDS = {"Role", "RoleBinding", "GroupBinding"}
_AUTOMATION_KINDS = ("Dependency", "RetryPolicy")
_DOMAIN_SCOPED = {"Source", "SLA"}


def required_domain(kind: str, domain: str) -> str:
    """Where the applier needs ``apply-config``: a Source lives in its domain; roles,
    bindings, guardrails and rules reach across domains, so they need every domain."""
    return domain if kind in _DOMAIN_SCOPED else "*"


_RULE_KINDS = {"ComplianceRule", "Guardrail", "Domain", "SLA"}


def digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


@dataclass(frozen=True)
class Change:
    op: str  # create | update | delete | unchanged
    kind: str
    name: str
    domain: str
    fields: tuple[str, ...] = ()  # changed field paths (update)
    document: dict[str, Any] | None = None

    def line(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}[self.op]
        extra = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{sign} {self.kind}/{self.name}{extra}"


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)

    @property
    def effective(self) -> list[Change]:
        return [c for c in self.changes if c.op != "unchanged"]

    def summary(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "delete": 0, "unchanged": 0}
        for c in self.changes:
            out[c.op] += 1
        return out


def plan(session: Session, documents: list[Document], *, prune: bool = False) -> Plan:
    """Pure comparison of documents against what is applied (reads only)."""
    stored = {(r.kind, r.name): r for r in session.exec(select(AppliedResource)).all()}
    result = Plan()
    wanted: set[tuple[str, str]] = set()
    for doc in documents:
        body = doc.as_dict()
        wanted.add(doc.key)
        domain = body["metadata"].get("domain", "default")
        prev = stored.get(doc.key)
        if prev is None:
            result.changes.append(Change("create", doc.kind, doc.name, domain, (), body))
        elif prev.digest != digest(body):
            old, new = _flat(prev.document), _flat(body)
            changed = tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))
            result.changes.append(Change("update", doc.kind, doc.name, domain, changed, body))
        else:
            result.changes.append(Change("unchanged", doc.kind, doc.name, domain, (), body))
    if prune:
        for key, row in sorted(stored.items()):
            if key not in wanted:
                result.changes.append(Change("delete", row.kind, row.name, row.domain))
    return result


def _source_row(session: Session, body: dict[str, Any]) -> None:
    src = Source.model_validate(body)
    spec = src.spec
    every = spec.sync.inventory_every.total_seconds()
    stale = spec.sync.stale_after.total_seconds() if spec.sync.stale_after else 3 * every
    row = session.get(SourceRow, src.metadata.name)
    if row is None:
        row = SourceRow(name=src.metadata.name, type=spec.type, domain=src.metadata.domain)
    elif row.type != spec.type:
        # A new type means a new system: its old cursor means nothing.
        row.runs_cursor = None
    row.type = spec.type
    row.domain = src.metadata.domain
    row.spec = body["spec"]
    row.labels = dict(src.metadata.labels)
    row.demo = spec.demo
    row.enabled = spec.enabled
    row.inventory_every_s = every
    row.runs_every_s = spec.sync.runs_every.total_seconds()
    row.stale_after_s = max(stale, parse_duration("1m").total_seconds())
    row.updated_at = utcnow()
    session.add(row)


def apply_plan(
    session: Session,
    the_plan: Plan,
    *,
    subject: str,
    channel: str,
    request_id: str | None = None,
) -> dict[str, int]:
    """Apply every effective change in the caller's transaction and audit it.

    Raises ``ConfigRefused`` (before changing anything) when the resulting set of
    Dependency documents would form a cycle or names a job that does not exist."""
    now = utcnow()
    if any(c.kind in _AUTOMATION_KINDS for c in the_plan.changes):
        result = {
            (r.kind, r.name): r.document
            for r in session.exec(
                select(AppliedResource).where(col(AppliedResource.kind).in_(_AUTOMATION_KINDS))
            ).all()
        }
        for c in the_plan.changes:
            if c.op == "delete":
                result.pop((c.kind, c.name), None)
            elif c.document is not None and c.kind in (*_AUTOMATION_KINDS, "Source"):
                result[(c.kind, c.name)] = c.document
        changed = {(c.kind, c.name) for c in the_plan.effective if c.op != "delete"}
        problems = apply_problems(session, result, changed)
        if problems:
            raise ConfigRefused(problems)
    touched_policy = False
    for ch in the_plan.effective:
        touched_policy |= ch.kind in _POLICY_KINDS
        if ch.op == "delete":
            row = session.get(AppliedResource, (ch.kind, ch.name))
            if row is not None:
                session.delete(row)
            if ch.kind == "Source":
                src = session.get(SourceRow, ch.name)
                if src is not None:
                    session.delete(src)
                session.exec(
                    update(Job)
                    .where(col(Job.source) == ch.name, col(Job.tombstoned_at).is_(None))
                    .values(tombstoned_at=now)
                )
                resolve_source(session, source=ch.name, now=now)
            continue
        assert ch.document is not None
        row = session.get(AppliedResource, (ch.kind, ch.name))
        if row is None:
            row = AppliedResource(
                kind=ch.kind,
                name=ch.name,
                domain=ch.domain,
                document=ch.document,
                digest=digest(ch.document),
                applied_by=subject,
                applied_at=now,
            )
        else:
            row.document = ch.document
            row.domain = ch.domain
            row.digest = digest(ch.document)
            row.generation += 1
            row.applied_by = subject
            row.applied_at = now
        session.add(row)
        if ch.kind == "Source":
            _source_row(session, ch.document)
    session.flush()
    if touched_policy:
        bump_policy_version(session)
    if any(c.kind in _RULE_KINDS for c in the_plan.effective):
        # Rules or what they read changed: every job again (paged, in this transaction).
        evaluate_all(session)
    if any(c.kind == "Dependency" for c in the_plan.effective):
        record_dependency_edges(session)
    summary = the_plan.summary()
    append(
        session,
        AuditEntry(
            subject=subject,
            channel=channel,
            action="apply-config",
            target="config",
            domain="*",
            decision="allow",
            outcome="ok",
            request_id=request_id,
            details={
                "summary": summary,
                "changes": [c.line() for c in the_plan.effective],
            },
        ),
    )
    return summary


def plan_and_apply(
    engine: Engine,
    documents: list[Document],
    *,
    prune: bool,
    dry_run: bool,
    authorize: Callable[[Plan, dict[tuple[str, str], str]], None],
    subject: str,
    channel: str,
    request_id: str | None = None,
) -> Plan:
    """Plan, authorize and apply in one write transaction (blocking: call it in a worker
    thread). ``authorize`` gets the plan and the stored (kind, name) → domain map and
    raises to refuse; then nothing changes. Concurrent applies are serialized, so each
    plan is made against what the one before it left."""
    with session_scope(engine) as session:
        the_plan = plan(session, documents, prune=prune)
        stored = {(r.kind, r.name): r.domain for r in session.exec(select(AppliedResource)).all()}
        authorize(the_plan, stored)
        if not dry_run:
            apply_plan(session, the_plan, subject=subject, channel=channel, request_id=request_id)
        return the_plan
