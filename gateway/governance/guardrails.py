"""Guardrails checked on every action after authorization.

* ``freeze``: change-freeze windows (fixed ISO windows, or recurring windows given by a
  cron expression and a duration, in a time zone); an emergency override needs a reason
  and is audited as such.
* ``approval``: four-eyes: the action is held as a pending request (see
  ``gateway.governance.approvals``) until other people with the approve permission agree.
* ``agent-limit``: automated subjects may only take the listed actions, at a bounded rate
  per hour, and never a destructive one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import func, select
from sqlmodel import Session, col

from gateway.authz.patterns import obj_match
from gateway.model.resources import FreezeWindow, Guardrail, JobSelector
from gateway.store.tables import AppliedResource, AuditRecord
from gateway.store.types import to_db

__all__ = [
    "GuardrailVerdict",
    "active_freezes",
    "check_action",
    "check_supported",
    "guardrails",
    "selector_matches",
    "window_active",
]

DESTRUCTIVE = {"cancel"}


@dataclass(frozen=True)
class GuardrailVerdict:
    allowed: bool
    reason: str = ""
    guardrail: str | None = None
    overridden: bool = False
    approval: Guardrail | None = None  # set: hold the action for approval


def check_supported(g: Guardrail) -> str | None:
    """A message when this guardrail cannot be enforced as written."""
    for w in g.spec.windows:
        try:
            ZoneInfo(w.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return f"unknown time zone {w.timezone!r}"
        if croniter.is_valid(w.start):
            if w.duration is None:
                return "a recurring window (cron start) needs a duration"
        else:
            try:
                datetime.fromisoformat(w.start)
            except ValueError:
                return f"window start {w.start!r} is neither an ISO date-time nor a cron expression"
            if w.end is None and w.duration is None:
                return "a window needs an end or a duration"
    return None


def selector_matches(sel: JobSelector, *, domain: str, uid: str, labels: dict[str, str]) -> bool:
    if sel.domains and domain not in sel.domains:
        return False
    if sel.jobs and not any(obj_match(uid, p) for p in sel.jobs):
        return False
    return all(labels.get(k) == v for k, v in sel.labels.items())


def _aware(value: str, tz: ZoneInfo) -> datetime:
    dt = datetime.fromisoformat(value)
    return dt.replace(tzinfo=tz) if dt.tzinfo is None else dt


def window_active(w: FreezeWindow, now: datetime) -> bool:
    tz = ZoneInfo(w.timezone)
    if croniter.is_valid(w.start):
        assert w.duration is not None
        local = now.astimezone(tz)
        # The latest fire at or before now; croniter's get_prev is strictly before.
        last = croniter(w.start, local + timedelta(seconds=1)).get_prev(datetime)
        return bool(last <= local < last + w.duration)
    start = _aware(w.start, tz)
    end = _aware(w.end, tz) if w.end else start + (w.duration or timedelta(0))
    return start <= now < end


def guardrails(session: Session) -> list[Guardrail]:
    rows = session.exec(
        select(AppliedResource).where(col(AppliedResource.kind) == "Guardrail")  # type: ignore[call-overload]
    ).all()
    return [Guardrail.model_validate(r[0].document) for r in rows]


def active_freezes(session: Session, now: datetime | None = None) -> list[Guardrail]:
    now = now or datetime.now(UTC)
    return [
        g
        for g in guardrails(session)
        if g.spec.type == "freeze" and any(window_active(w, now) for w in g.spec.windows)
    ]


def _recent_actions(session: Session, subject: str, actions: list[str], now: datetime) -> int:
    stmt = (
        select(func.count())
        .select_from(AuditRecord)
        .where(
            col(AuditRecord.subject) == subject,
            col(AuditRecord.action).in_(actions),
            # Each action is counted once, by the record written before the tool is
            # called ("started") or the request held for approval ("pending").
            col(AuditRecord.outcome).in_(["started", "pending"]),
            col(AuditRecord.at) >= to_db(now - timedelta(hours=1)),
        )
    )
    return int(session.execute(stmt).scalar_one())


def check_action(
    session: Session,
    *,
    action: str,
    domain: str,
    uid: str,
    labels: dict[str, str],
    subject: str = "",
    params: dict[str, Any] | None = None,
    emergency: bool = False,
    reason: str | None = None,
    now: datetime | None = None,
    count_rate: bool = True,
) -> GuardrailVerdict:
    """Check one action against every guardrail.

    Rate limits count earlier actions in the audit trail: call this inside the write
    transaction that records the action, after ``lock_chain``, so concurrent actions are
    counted. ``count_rate=False`` for an approved request (it was counted when held).
    """
    now = now or datetime.now(UTC)
    all_rails = guardrails(session)
    # Limits on automated subjects come first: an agent cannot override anything.
    for g in all_rails:
        if g.spec.type != "agent-limit" or not any(obj_match(subject, p) for p in g.spec.subjects):
            continue
        if not selector_matches(g.spec.selector, domain=domain, uid=uid, labels=labels):
            continue
        name = g.metadata.name
        if action not in g.spec.actions:
            return GuardrailVerdict(
                False,
                f"agent limit {name!r}: {subject!r} may only {', '.join(g.spec.actions)}",
                name,
            )
        destroy = action in DESTRUCTIVE or bool((params or {}).get("destroy"))
        if g.spec.never_destroy and destroy:
            return GuardrailVerdict(
                False,
                f"agent limit {name!r}: {subject!r} may never take destructive actions",
                name,
            )
        if g.spec.rate_per_hour is not None and count_rate:
            used = _recent_actions(session, subject, g.spec.actions, now)
            if used >= g.spec.rate_per_hour:
                return GuardrailVerdict(
                    False,
                    f"agent limit {name!r}: {subject!r} reached {g.spec.rate_per_hour} "
                    "actions per hour",
                    name,
                )
    overridden: str | None = None
    for g in all_rails:
        if g.spec.type != "freeze" or action not in g.spec.actions:
            continue
        if not any(window_active(w, now) for w in g.spec.windows):
            continue
        if not selector_matches(g.spec.selector, domain=domain, uid=uid, labels=labels):
            continue
        name = g.metadata.name
        if not emergency:
            return GuardrailVerdict(False, f"change freeze {name!r} is in effect", name)
        if not reason or not reason.strip():
            return GuardrailVerdict(
                False, f"change freeze {name!r}: an emergency override needs a reason", name
            )
        overridden = name
    for g in all_rails:
        if g.spec.type != "approval" or action not in g.spec.actions:
            continue
        if selector_matches(g.spec.selector, domain=domain, uid=uid, labels=labels):
            return GuardrailVerdict(
                True,
                f"approval required by {g.metadata.name!r}",
                g.metadata.name,
                overridden is not None,
                approval=g,
            )
    if overridden:
        return GuardrailVerdict(
            True, f"emergency override of freeze {overridden!r}", overridden, True
        )
    return GuardrailVerdict(True)
