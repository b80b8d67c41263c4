"""Guardrails checked on every action after authorization.

Implemented here: change-freeze windows (fixed ISO windows, or recurring windows given by
a cron expression and a duration, in a time zone), with an emergency override that needs
a reason and is audited as such. Approval and agent-limit guardrails are refused when a
document is validated (``check_supported``) until they are enforced, so a rule an
operator applies is never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlmodel import Session, col, select

from gateway.authz.patterns import obj_match
from gateway.model.resources import FreezeWindow, Guardrail, JobSelector
from gateway.store.tables import AppliedResource

__all__ = [
    "GuardrailVerdict",
    "active_freezes",
    "check_action",
    "check_supported",
    "selector_matches",
    "window_active",
]


@dataclass(frozen=True)
class GuardrailVerdict:
    allowed: bool
    reason: str = ""
    guardrail: str | None = None
    overridden: bool = False


def check_supported(g: Guardrail) -> str | None:
    """A message when this guardrail type is not enforced by this gateway version."""
    if g.spec.type != "freeze":
        return (
            f"guardrail type {g.spec.type!r} is not enforced by this version of Accord; "
            "only 'freeze' guardrails can be applied"
        )
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


def _guardrails(session: Session) -> list[Guardrail]:
    rows = session.exec(
        select(AppliedResource).where(col(AppliedResource.kind) == "Guardrail")
    ).all()
    return [Guardrail.model_validate(r.document) for r in rows]


def active_freezes(session: Session, now: datetime | None = None) -> list[Guardrail]:
    now = now or datetime.now(UTC)
    return [
        g
        for g in _guardrails(session)
        if g.spec.type == "freeze" and any(window_active(w, now) for w in g.spec.windows)
    ]


def check_action(
    session: Session,
    *,
    action: str,
    domain: str,
    uid: str,
    labels: dict[str, str],
    emergency: bool = False,
    reason: str | None = None,
    now: datetime | None = None,
) -> GuardrailVerdict:
    for g in active_freezes(session, now):
        if action not in g.spec.actions:
            continue
        if not selector_matches(g.spec.selector, domain=domain, uid=uid, labels=labels):
            continue
        name = g.metadata.name
        if emergency:
            if not reason or not reason.strip():
                return GuardrailVerdict(
                    False, f"change freeze {name!r}: an emergency override needs a reason", name
                )
            return GuardrailVerdict(True, f"emergency override of freeze {name!r}", name, True)
        return GuardrailVerdict(False, f"change freeze {name!r} is in effect", name)
    return GuardrailVerdict(True)
