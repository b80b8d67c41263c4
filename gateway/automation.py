"""The automation dispatcher: fires what Dependency and RetryPolicy documents owe.

Rows of the ``firing`` outbox are written by ``gateway.store.services.automation.observe``
in the same transaction that stored the upstream run's end. Here each due row is
*claimed* by compare-and-set on its status (``pending``/``held``/``retrying`` →
``dispatching``), so of any number of dispatchers (threads, processes, replicas) exactly
one acts on it. It acts through ``gateway.actions.perform`` as the document's subject:
Casbin, guardrails (freeze, approval, agent limits) and the audit trail apply as to a
person's action, on channel ``system`` with the firing's key as request id.

What each answer does to the row:

* ok → ``fired`` (the downstream run is linked to the upstream run(s) by a
  ``triggered`` edge);
* held for approval → ``waiting`` until the approval request is decided (``fired`` when
  the approved action succeeded, ``failed`` when rejected or expired);
* a freeze → Dependency ``onFreeze: hold``: ``held`` and tried again until the window
  ends; ``drop``: ``dropped``. A retry policy's firing in a freeze is ``skipped``;
* denied by policy, another guardrail, or an error from the tool → tried again after
  ``delivery.backoff`` (doubling) until ``delivery.maxAttempts``, then ``failed``.

At most once: a row is claimed before the tool is called and never claimed again once an
attempt may have reached the tool. A claim whose dispatcher died (lease expired) is
recovered from the audit trail: no intent record with the firing's key → nothing reached
the tool, so it goes back to ``pending``; an ``ok`` outcome → ``fired``; an intent
without an outcome → ``unknown`` (the tool may or may not have acted; an operator
decides), never fired again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
from sqlalchemy import Engine, or_, select, update
from sqlmodel import Session, col

from gateway.actions import ActionOutcome, perform
from gateway.audit import AuditEntry, append
from gateway.authz import PolicyCache
from gateway.governance.notify import NotificationEvent, enqueue
from gateway.model import EdgeKind, EdgeRecord, NodeKind, NodeRef
from gateway.model.resources import Dependency, Guardrail, RetryPolicy
from gateway.store.engine import session_scope
from gateway.store.services.ingest import record_edges
from gateway.store.tables import AppliedResource, ApprovalRequest, AuditRecord, Firing, Job, Run
from gateway.store.types import to_db, utcnow
from gateway.sync.manager import SyncManager

__all__ = ["CLAIMABLE", "Dispatcher", "claim_due", "recover_stale"]

_log = logging.getLogger(__name__)
CLAIMABLE = ("pending", "held", "retrying")
FINAL = ("fired", "failed", "dropped", "skipped", "unknown")


@dataclass(frozen=True)
class _Claimed:
    firing: Firing
    job: Job | None
    run: Run | None


def claim_due(
    engine: Engine, *, worker: str, limit: int = 20, now: datetime | None = None
) -> list[_Claimed]:
    """Claim up to ``limit`` due rows for ``worker`` (compare-and-set per row)."""
    now = to_db(now or utcnow()) or utcnow()
    with session_scope(engine, write=False) as s:
        ids = list(
            s.execute(
                select(col(Firing.id))
                .where(col(Firing.status).in_(CLAIMABLE), col(Firing.next_attempt_at) <= now)
                .order_by(col(Firing.next_attempt_at))
                .limit(limit)
            ).scalars()
        )
    out: list[_Claimed] = []
    for fid in ids:
        with session_scope(engine) as s:
            res = s.execute(
                update(Firing)
                .where(
                    col(Firing.id) == fid,
                    col(Firing.status).in_(CLAIMABLE),
                    col(Firing.next_attempt_at) <= now,
                )
                .values(status="dispatching", claimed_by=worker, claimed_at=now, updated_at=now)
            )
            if res.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another dispatcher was first
            row = s.get(Firing, fid)
            assert row is not None
            job = s.execute(select(Job).where(col(Job.uid) == row.job_uid)).scalars().first()
            run = (
                s.execute(select(Run).where(col(Run.uid) == row.run_uid)).scalars().first()
                if row.run_uid
                else None
            )
            for obj in (row, job, run):
                if obj is not None:
                    s.expunge(obj)
            out.append(_Claimed(row, job, run))
    return out


def recover_stale(engine: Engine, *, lease: timedelta, now: datetime | None = None) -> int:
    """Settle claims whose dispatcher stopped answering (see the module docstring)."""
    now = to_db(now or utcnow()) or utcnow()
    n = 0
    stale_q = select(Firing).where(
        col(Firing.status) == "dispatching", col(Firing.claimed_at) < now - lease
    )
    with session_scope(engine, write=False) as s:
        if s.execute(stale_q.limit(1)).first() is None:
            return 0  # the common case: no write transaction at all
    with session_scope(engine) as s:
        stale = s.execute(stale_q).scalars().all()
        for row in stale:
            since = to_db(row.claimed_at) or now
            records = (
                s.execute(
                    select(AuditRecord).where(
                        col(AuditRecord.request_id) == row.key,
                        col(AuditRecord.at) >= since,
                    )
                )
                .scalars()
                .all()
            )
            outcomes = {r.outcome for r in records}
            answered = [
                r for r in records if r.outcome == "error" and "interrupted" not in (r.reason or "")
            ]
            held = next((r for r in records if r.outcome == "pending"), None)
            if not records:
                row.status = "pending"
                row.message = "recovered: the claim expired before anything reached the tool"
            elif "ok" in outcomes:
                ok = next(r for r in records if r.outcome == "ok")
                row.status = "fired"
                row.fired_at = ok.at
                row.result_run_uid = ok.details.get("run")
                row.message = "recovered: the tool had acted"
            elif held is not None:
                row.status = "waiting"
                row.approval_id = held.details.get("approval_id")
                row.message = "recovered: held for approval"
            elif "started" not in outcomes or answered:
                # Refused before the tool, or the tool answered with an error: not acted.
                row.status = "retrying"
                row.message = "recovered: the last attempt did not reach the tool or was refused"
            else:
                row.status = "unknown"
                row.message = (
                    "the dispatcher stopped while the tool was being called; whether it acted "
                    "is unknown, so this firing is not repeated (check the tool)"
                )
                _notify(s, row, "dependency.failed")
                append(
                    s,
                    AuditEntry(
                        subject=row.subject,
                        channel="system",
                        action=row.action,
                        target=row.job_uid,
                        domain=row.domain,
                        decision="allow",
                        outcome="unknown",
                        reason=row.message,
                        request_id=row.key,
                        details={"firing": row.id, "rule": f"{row.kind}/{row.rule}"},
                    ),
                )
            row.claimed_by = None
            row.updated_at = now
            s.add(row)
            n += 1
    return n


def _rule_doc(s: Session, row: Firing) -> Dependency | RetryPolicy | None:
    kind = "Dependency" if row.kind == "dependency" else "RetryPolicy"
    res = s.get(AppliedResource, (kind, row.rule))
    if res is None:
        return None
    if kind == "Dependency":
        return Dependency.model_validate(res.document)
    return RetryPolicy.model_validate(res.document)


def _is_freeze(s: Session, policy: str | None) -> bool:
    name = (policy or "").removeprefix("guardrail:")
    res = s.get(AppliedResource, ("Guardrail", name)) if policy else None
    return res is not None and Guardrail.model_validate(res.document).spec.type == "freeze"


def _edge(row: Firing, downstream_run: str) -> list[EdgeRecord]:
    evidence = (
        f"dependency {row.rule}" if row.kind == "dependency" else f"retried by policy {row.rule}"
    )
    dst_source, dst_native = downstream_run.split("/", 1)
    out = []
    for up in row.upstream_runs:
        src_source, src_native = up.split("/", 1)
        out.append(
            EdgeRecord(
                kind=EdgeKind.TRIGGERED,
                src=NodeRef(kind=NodeKind.RUN, id=src_native, source=src_source),
                dst=NodeRef(kind=NodeKind.RUN, id=dst_native, source=dst_source),
                evidence=evidence,
            )
        )
    return out


def settle(engine: Engine, *, firing_id: int, outcome: ActionOutcome) -> Firing:
    """Record what one attempt came to (one write transaction)."""
    now = utcnow()
    with session_scope(engine) as s:
        row = s.get(Firing, firing_id)
        assert row is not None
        doc = _rule_doc(s, row)
        row.attempts += 1
        row.claimed_by = None
        row.updated_at = now
        row.message = outcome.message
        if outcome.status == "ok":
            row.status = "fired"
            row.fired_at = now
            row.result_run_uid = outcome.run_uid
            if outcome.run_uid:
                record_edges(s, source="accord", edges=_edge(row, outcome.run_uid))
        elif outcome.status == "pending":
            row.status = "waiting"
            row.approval_id = outcome.approval_id
        elif outcome.status == "blocked" and _is_freeze(s, _policy_of(s, outcome)):
            if isinstance(doc, Dependency) and doc.spec.on_freeze == "hold":
                row.status = "held"
                row.next_attempt_at = now + timedelta(seconds=_hold_recheck())
                row.attempts -= 1  # waiting out a freeze is not a failed delivery
                _notify(s, row, "dependency.held")
            else:
                row.status = "dropped" if isinstance(doc, Dependency) else "skipped"
                _notify(s, row, "dependency.held")
        else:
            if outcome.status in ("denied", "blocked"):
                _notify(s, row, "dependency.refused")
            _retry_later(row, doc, now)
            if row.status == "failed":
                _notify(s, row, "dependency.failed")
        s.add(row)
        return row


_EVENTS = {
    "dependency.held": ("info", "Dependency firing held"),
    "dependency.refused": ("warning", "Dependency firing refused"),
    "dependency.failed": ("critical", "Dependency firing failed"),
}


def _notify(s: Session, row: Firing, kind: str) -> None:
    """A notification about a Dependency firing, in the transaction that records it: one
    per firing and event type (held, refused, failed), whatever the number of attempts."""
    if row.kind != "dependency":
        return
    severity, title = _EVENTS[kind]
    if kind == "dependency.held" and row.status == "dropped":
        title = "Dependency firing dropped"
    job = s.execute(select(Job).where(col(Job.uid) == row.job_uid)).scalars().first()
    enqueue(
        s,
        NotificationEvent(
            type=kind,
            severity=severity,
            domain=row.domain,
            title=f"{title}: {row.rule} → {row.job_uid}",
            text=row.message or "",
            incident=f"{kind}:{row.key}",
            job_uid=row.job_uid,
            labels=dict(job.labels or {}) if job is not None else {},
            data={
                "dependency": row.rule,
                "firing": row.id,
                "status": row.status,
                "upstream_runs": list(row.upstream_runs),
                "attempts": row.attempts,
                "approval": row.approval_id,
            },
        ),
    )


def _policy_of(s: Session, outcome: ActionOutcome) -> str | None:
    rec = s.get(AuditRecord, outcome.audit_seq)
    return rec.policy if rec is not None else None


def _hold_recheck() -> float:
    return float(os.environ.get("ACCORD_AUTOMATION_HOLD_RECHECK", "30"))


def _retry_later(row: Firing, doc: Dependency | RetryPolicy | None, now: datetime) -> None:
    if isinstance(doc, Dependency):
        d = doc.spec.delivery
        limit, base, cap = d.max_attempts, d.backoff, d.max_backoff
    else:
        limit, base, cap = 3, timedelta(seconds=30), timedelta(minutes=10)
    if doc is None or row.attempts >= limit:
        row.status = "failed"
        row.message = f"gave up after {row.attempts} attempt(s): {row.message}"
        return
    row.status = "retrying"
    row.next_attempt_at = now + min(cap, base * (2 ** (row.attempts - 1)))


def settle_waiting(engine: Engine) -> int:
    """Firings held for approval: settled once the request is decided."""
    n = 0
    now = utcnow()
    waiting_q = select(Firing).where(col(Firing.status) == "waiting")
    with session_scope(engine, write=False) as s:
        if s.execute(waiting_q.limit(1)).first() is None:
            return 0
    with session_scope(engine) as s:
        for row in s.execute(waiting_q).scalars().all():
            req = s.get(ApprovalRequest, row.approval_id) if row.approval_id else None
            if req is None or req.status == "pending":
                continue
            if req.status == "approved" and req.outcome is None:
                continue  # approved; the action is being taken right now
            if req.status == "approved" and (req.outcome or "").startswith("ok"):
                row.status = "fired"
                row.fired_at = req.decided_at or now
                run = _approved_run(s, row)
                row.result_run_uid = run
                if run:
                    record_edges(s, source="accord", edges=_edge(row, run))
            else:
                row.status = "failed"
            row.message = f"approval request {req.id} {req.status}: {req.outcome or ''}".strip()
            row.updated_at = now
            if row.status == "failed":
                _notify(s, row, "dependency.failed")
            s.add(row)
            n += 1
    return n


def _approved_run(s: Session, row: Firing) -> str | None:
    rec = (
        s.execute(
            select(AuditRecord)
            .where(
                col(AuditRecord.subject) == row.subject,
                col(AuditRecord.outcome) == "ok",
                col(AuditRecord.target) == row.job_uid,
                col(AuditRecord.action) == row.action,
            )
            .order_by(col(AuditRecord.seq).desc())
            .limit(20)
        )
        .scalars()
        .all()
    )
    for r in rec:
        if r.details.get("approval_id") == row.approval_id:
            run = r.details.get("run")
            return str(run) if run else None
    return None


def _missing(engine: Engine, row: Firing, message: str) -> ActionOutcome:
    """The target job is not in the inventory: audited like any refusal."""
    with session_scope(engine) as s:
        rec = append(
            s,
            AuditEntry(
                subject=row.subject,
                channel="system",
                action=row.action,
                target=row.run_uid or row.job_uid,
                domain=row.domain,
                decision="allow",
                outcome="error",
                reason=message,
                request_id=row.key,
                details={"firing": row.id, "rule": f"{row.kind}/{row.rule}"},
            ),
        )
    return ActionOutcome("error", message, rec.seq)


class Dispatcher:
    """Claims due firings and acts on them; ``run_once`` is one pass (for a leader loop)."""

    def __init__(
        self,
        engine: Engine,
        *,
        manager: SyncManager | None,
        policy: PolicyCache,
        every: float = 0.5,
        lease: timedelta = timedelta(minutes=2),
        on_fired: Callable[[Firing], None] | None = None,
    ) -> None:
        self.engine = engine
        self.manager = manager
        self.policy = policy
        self.every = every
        self.lease = lease
        self.on_fired = on_fired
        self.worker = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run_once(self) -> int:
        """Recover stale claims, settle approvals, fire what is due. Returns rows acted on."""
        await anyio.to_thread.run_sync(lambda: recover_stale(self.engine, lease=self.lease))
        await anyio.to_thread.run_sync(settle_waiting, self.engine)
        claimed = await anyio.to_thread.run_sync(lambda: claim_due(self.engine, worker=self.worker))
        if claimed:
            async with anyio.create_task_group() as tg:
                for c in claimed:
                    tg.start_soon(self._fire, c)
        return len(claimed)

    async def _fire(self, c: _Claimed) -> None:
        row = c.firing
        assert row.id is not None
        if c.job is None or (row.run_uid and c.run is None):
            what = row.run_uid if row.run_uid and c.run is None else row.job_uid
            outcome = await anyio.to_thread.run_sync(
                lambda: _missing(self.engine, row, f"{what} is not in the inventory")
            )
        else:
            policy = await anyio.to_thread.run_sync(self._policy)
            subject = row.subject
            outcome = await perform(
                engine=self.engine,
                manager=self.manager,
                decide=lambda d, o, a: policy.decide(subject, d, o, a),
                subject=subject,
                channel="system",
                action=row.action,
                job=c.job,
                run=c.run,
                params=dict(row.params) or None,
                reason=f"{row.kind} {row.rule}: {', '.join(row.upstream_runs)}",
                request_id=row.key,
            )
        fid = row.id
        settled = await anyio.to_thread.run_sync(
            lambda: settle(self.engine, firing_id=fid, outcome=outcome), abandon_on_cancel=False
        )
        if settled.status == "fired" and self.on_fired is not None:
            self.on_fired(settled)

    def _policy(self) -> Any:
        with Session(self.engine, expire_on_commit=False) as s:
            return self.policy.current(s)

    def poke(self) -> None:
        """Wake the loop now (thread-safe): a run just ended."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to wake
                loop.call_soon_threadsafe(wake.set)

    async def _run(self, wake: asyncio.Event) -> None:
        # The event is this loop's own: a dispatcher started again on another loop (an app
        # served twice, as tests do) gets a new one, and the old task never waits on it.
        while True:
            try:
                await self.run_once()
            except Exception:  # the store may be briefly unavailable; try again
                _log.exception("automation dispatch failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.every)
            wake.clear()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(wake), name="automation-dispatch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def firings_due(session: Session) -> int:
    """How many firings wait to be dispatched (metrics, tests)."""
    return len(
        session.execute(
            select(col(Firing.id)).where(
                or_(col(Firing.status).in_(CLAIMABLE), col(Firing.status) == "dispatching")
            )
        ).all()
    )
