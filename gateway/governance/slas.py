"""SLA evaluation: each SLA document applied to each job it selects is an SLA instance,
``ok``, ``at_risk`` or ``breached``, with a reason a person can act on.

Objectives (any combination; the worst state wins):

* ``finishBy`` / ``startBy`` HH:MM in ``timezone``: judged per local day. A success (start)
  today by the deadline is ``ok``; past the deadline without one, ``breached``; before
  it, ``at_risk`` when the predicted end (start) is after the deadline. Days on which the
  job is not expected to run and did not run are ``ok``.
* ``maxDuration``: a run taking longer is ``breached``; a running run whose p90 would
  take it over is ``at_risk``.
* ``maxAge``: the last success older than this is ``breached``; when the next success is
  predicted after the age runs out, ``at_risk``.

The predicted end of a job is its running run's start plus its median duration (or, once
it runs past its p90, a little after now), else its next expected start — pushed back to
the predicted end of every still-unfinished upstream job (``depends_on`` edges of any
tool and ``Dependency`` documents) — plus its median. The chain of upstream jobs that
decides it is the critical path, named in the reason ("waiting on jenkins/build-warehouse,
running 40 min over its p90").

:func:`evaluate` is pure over a :class:`Facts` snapshot; :func:`persist` writes the changes
and returns them, so the caller can publish events, notify and audit.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlmodel import Session, col

from gateway.audit import AuditEntry, append
from gateway.model.calendar import zone
from gateway.model.resources import SLASpec
from gateway.store.tables import AppliedResource, Edge, Run, SlaState
from gateway.store.tables import Source as SourceRow
from gateway.store.types import to_db, utcnow

from .forecast import Forecaster, JobInfo
from .notify import NotificationEvent, enqueue

__all__ = [
    "Facts",
    "RunFact",
    "SlaChange",
    "SlaResult",
    "evaluate",
    "load_facts",
    "persist",
    "sla_documents",
]

_ORDER = {"ok": 0, "at_risk": 1, "breached": 2}
_TERMINAL = {"success", "failed", "cancelled", "skipped"}


@dataclass(frozen=True)
class RunFact:
    uid: str
    job_uid: str
    state: str
    started_at: datetime | None
    ended_at: datetime | None
    at: datetime  # sort time
    native_state: str | None = None


@dataclass
class Facts:
    """What the evaluation reads: recent runs per job, last successes, upstream edges."""

    runs: dict[str, list[RunFact]] = field(default_factory=dict)  # newest first
    last_success: dict[str, datetime] = field(default_factory=dict)
    upstreams: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SlaResult:
    sla: str
    job_uid: str
    domain: str
    state: str
    reason: str
    severity: str
    deadline: datetime | None = None
    predicted_end: datetime | None = None
    critical_path: tuple[str, ...] = ()
    objective: str = ""


@dataclass(frozen=True)
class SlaChange:
    result: SlaResult
    previous: str | None


def sla_documents(session: Session) -> list[tuple[str, str, SLASpec]]:
    out = []
    rows = session.execute(
        select(
            col(AppliedResource.name), col(AppliedResource.domain), col(AppliedResource.document)
        )
        .where(col(AppliedResource.kind) == "SLA")
        .order_by(col(AppliedResource.name))
    ).all()
    for name, domain, doc in rows:
        try:
            out.append((name, domain, SLASpec.model_validate((doc or {}).get("spec") or {})))
        except ValidationError:
            continue
    return out


def selects(spec: SLASpec, job: JobInfo) -> bool:
    sel = spec.selector
    if sel.domains and job.domain not in sel.domains:
        return False
    if sel.jobs and not any(fnmatch.fnmatchcase(job.uid, p) for p in sel.jobs):
        return False
    return all(job.labels.get(k) == v for k, v in sel.labels.items())


def load_facts(session: Session, *, now: datetime, job_uids: Iterable[str] | None) -> Facts:
    """Runs of the last 48 h, last successes of ``job_uids`` and every depends_on edge."""
    facts = Facts()
    # Run times are each source's own; a host whose clock is off (measured from its
    # agent's pushes) has them moved onto the gateway's clock here, so that a host ten
    # minutes behind does not make a run look ten minutes longer or a success older.
    skew = {
        name: timedelta(seconds=offset)
        for name, offset in session.execute(
            select(col(SourceRow.name), col(SourceRow.clock_offset_s)).where(
                col(SourceRow.clock_offset_s).is_not(None), col(SourceRow.clock_offset_s) != 0
            )
        ).all()
    }

    def ours(source: str, t: datetime | None) -> datetime | None:
        return t - skew[source] if t is not None and source in skew else t

    since = to_db(now - timedelta(hours=48))
    rows = session.execute(
        select(
            col(Run.uid),
            col(Run.job_uid),
            col(Run.state),
            col(Run.started_at),
            col(Run.ended_at),
            col(Run.sort_at),
            col(Run.native_state),
            col(Run.source),
        )
        .where(col(Run.sort_at) >= since)
        .order_by(col(Run.sort_at).desc())
    ).all()
    for uid, job, state, started, ended, at, native, source in rows:
        facts.runs.setdefault(job, []).append(
            RunFact(
                uid,
                job,
                state,
                ours(source, started),
                ours(source, ended),
                ours(source, at) or at,
                native,
            )
        )
    if job_uids is not None:
        ids = sorted(set(job_uids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for uid, source, ended in session.execute(
                select(col(Run.job_uid), col(Run.source), func.max(col(Run.ended_at)))
                .where(col(Run.state) == "success", col(Run.job_uid).in_(chunk))
                .group_by(col(Run.job_uid), col(Run.source))
            ).all():
                ended = ours(source, ended)
                if ended is not None and (
                    uid not in facts.last_success or ended > facts.last_success[uid]
                ):
                    facts.last_success[uid] = ended
    for src, dst in session.execute(
        select(col(Edge.src_uid), col(Edge.dst_uid)).where(
            col(Edge.kind) == "depends_on", col(Edge.src_kind) == "job", col(Edge.dst_kind) == "job"
        )
    ).all():
        facts.upstreams.setdefault(dst, []).append(src)
    return facts


def _fmt_dur(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds >= 3600:
        h, m = divmod(round(seconds / 60), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    if seconds >= 60:
        return f"{round(seconds / 60)} min"
    return f"{int(seconds)} s"


@dataclass(frozen=True)
class _Prediction:
    end: datetime | None
    start: datetime | None
    path: tuple[str, ...]  # upstream critical path, nearest first
    why: str  # about the job (or the upstream) that decides


class _Evaluator:
    def __init__(self, forecaster: Forecaster, facts: Facts, now: datetime) -> None:
        self.f = forecaster
        self.facts = facts
        self.now = now
        self.ups: dict[str, list[str]] = {}
        for dst, srcs in facts.upstreams.items():
            self.ups.setdefault(dst, []).extend(srcs)
        for dst, srcs in forecaster.upstreams().items():
            self.ups.setdefault(dst, []).extend(s for s in srcs if s not in self.ups[dst])
        self._memo: dict[tuple[str, datetime], _Prediction] = {}

    def running(self, uid: str) -> RunFact | None:
        for r in self.facts.runs.get(uid, ()):
            if r.state not in _TERMINAL:
                return r
        return None

    def finished_since(self, uid: str, since: datetime) -> RunFact | None:
        for r in self.facts.runs.get(uid, ()):
            if r.state == "success" and r.ended_at is not None and r.ended_at >= since:
                return r
        return None

    def predict(self, uid: str, period_start: datetime, depth: int = 0) -> _Prediction:
        """When will ``uid`` next finish (a run started since ``period_start``)?"""
        key = (uid, period_start)
        got = self._memo.get(key)
        if got is not None:
            return got
        self._memo[key] = _Prediction(None, None, (), "")  # cycle guard
        pred = self._predict(uid, period_start, depth)
        self._memo[key] = pred
        return pred

    def _predict(self, uid: str, period_start: datetime, depth: int) -> _Prediction:
        now = self.now
        d = self.f.durations(uid)
        med = timedelta(seconds=d.median_s) if d.median_s is not None else timedelta(0)
        run = self.running(uid)
        if run is not None and run.started_at is not None:
            elapsed = (now - run.started_at).total_seconds()
            end = run.started_at + med
            why = f"{uid} running for {_fmt_dur(elapsed)}"
            if d.p90_s is not None and elapsed > d.p90_s:
                over = elapsed - d.p90_s
                why = f"{uid} running {_fmt_dur(over)} over its p90 ({_fmt_dur(d.p90_s)})"
                end = now + timedelta(seconds=max(60.0, 0.1 * (d.median_s or 0)))
            return _Prediction(max(end, now), run.started_at, (), why)
        if run is not None:  # queued
            return _Prediction(now + med, now, (), f"{uid} queued")
        # Not running: the next expected start, after unfinished upstreams.
        expected = self.f.expected(uid, period_start, now + timedelta(hours=30))
        pending = [e.at for e in expected if not self._started_near(uid, e.at)]
        own_start = min(pending) if pending else None
        if own_start is not None and own_start < now:
            own_start = now  # overdue: it could start any moment
        start: datetime | None = own_start
        path: tuple[str, ...] = ()
        why = ""
        if depth < 12:
            for up in self.ups.get(uid, ()):
                if self.finished_since(up, period_start) is not None:
                    continue
                p = self.predict(up, period_start, depth + 1)
                if p.end is None:
                    continue
                # An upstream ending just as the job starts is on the critical path too: a job
                # started by a Dependency is forecast to start at its upstream's end.
                if (start is None and own_start is None and not self._dependency_started(uid)) or (
                    start is not None and p.end >= start
                ):
                    start = p.end
                    path, why = (up, *p.path), p.why or f"waiting on {up}"
        if start is None:
            return _Prediction(None, None, (), "")
        if not why:
            why = f"{uid} expected to start at {start:%H:%M} UTC"
        return _Prediction(start + med, start, path, why)

    def _dependency_started(self, uid: str) -> bool:
        return uid not in self.f.upstreams()

    def _started_near(self, uid: str, t: datetime) -> bool:
        for r in self.facts.runs.get(uid, ()):
            s = r.started_at or r.at
            if t - timedelta(minutes=1) <= s <= t + timedelta(hours=12):
                return True
        return False


def _why(p: _Prediction) -> str:
    """ "waiting on jenkins/build-warehouse, running 40 min over its p90 (20 min)"."""
    if not p.path:
        return p.why
    deepest = p.path[-1]
    rest = p.why[len(deepest) + 1 :] if p.why.startswith(deepest + " ") else p.why
    via = f" (via {' → '.join(reversed(p.path[:-1]))})" if len(p.path) > 1 else ""
    return f"waiting on {deepest}{via}, {rest}" if rest else f"waiting on {deepest}{via}"


def _local_day(now: datetime, tz: str) -> tuple[datetime, datetime]:
    z = zone(tz)
    local = now.astimezone(z)
    start = datetime(local.year, local.month, local.day, tzinfo=z)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def _at(now: datetime, tz: str, hhmm: str) -> datetime:
    z = zone(tz)
    local = now.astimezone(z)
    hh, mm = (int(x) for x in hhmm.split(":"))
    return datetime(local.year, local.month, local.day, hh, mm, tzinfo=z).astimezone(UTC)


def _judge(
    ev: _Evaluator, name: str, spec: SLASpec, job: JobInfo, now: datetime
) -> list[SlaResult]:
    out: list[SlaResult] = []
    uid = job.uid
    tz = spec.timezone
    day_start, _ = _local_day(now, tz)

    def res(
        state: str,
        reason: str,
        objective: str,
        deadline: datetime | None = None,
        predicted: datetime | None = None,
        path: Sequence[str] = (),
    ) -> SlaResult:
        return SlaResult(
            name,
            uid,
            job.domain,
            state,
            reason,
            spec.severity,
            deadline,
            predicted,
            tuple(path),
            objective,
        )

    def local(t: datetime) -> str:
        return f"{t.astimezone(zone(tz)):%H:%M} {tz}"

    runs_today = [r for r in ev.facts.runs.get(uid, ()) if (r.started_at or r.at) >= day_start]
    for objective, hhmm in (("finishBy", spec.finish_by), ("startBy", spec.start_by)):
        if hhmm is None:
            continue
        deadline = _at(now, tz, hhmm)
        if objective == "finishBy":
            done = [
                r
                for r in runs_today
                if r.state == "success" and r.ended_at is not None and r.ended_at <= deadline
            ]
            verb = "succeed"
        else:
            done = [
                r
                for r in runs_today
                if (r.started_at or r.at) <= deadline and r.native_state != "missed"
            ]
            verb = "start"
        if done:
            did = "succeeded" if objective == "finishBy" else "started"
            out.append(res("ok", f"met: {did} by {local(deadline)}", objective, deadline))
            continue
        expected_today = ev.f.expected(uid, day_start, deadline)
        upstream_today = bool(ev.ups.get(uid)) and not ev._dependency_started(uid)
        if not expected_today and not runs_today and not upstream_today:
            out.append(
                res("ok", f"no run expected before {local(deadline)} today", objective, deadline)
            )
            continue
        if now >= deadline:
            cur = ev.running(uid)
            extra = f"; {uid} is {cur.state} since {local(cur.started_at or cur.at)}" if cur else ""
            missed = [r for r in runs_today if r.native_state == "missed"]
            if missed and not cur:
                extra = "; the expected run was missed"
            out.append(
                res("breached", f"did not {verb} by {local(deadline)}{extra}", objective, deadline)
            )
            continue
        p = ev.predict(uid, day_start)
        when = p.end if objective == "finishBy" else p.start
        if when is None:
            out.append(res("ok", f"no run predicted before {local(deadline)}", objective, deadline))
        elif when > deadline:
            late = _fmt_dur((when - deadline).total_seconds())
            reason = (
                f"{_why(p)}; predicted to {verb} at {local(when)}, {late} after the "
                f"{local(deadline)} deadline"
            )
            out.append(res("at_risk", reason, objective, deadline, when, p.path))
        else:
            out.append(
                res(
                    "ok", f"predicted to {verb} at {local(when)}", objective, deadline, when, p.path
                )
            )
    if spec.max_duration is not None:
        limit = spec.max_duration.total_seconds()
        cur = ev.running(uid)
        d = ev.f.durations(uid)
        last_done = next(
            (
                r
                for r in ev.facts.runs.get(uid, ())
                if r.state in _TERMINAL
                and r.started_at
                and r.ended_at
                and r.native_state != "missed"
            ),
            None,
        )
        if cur is not None and cur.started_at is not None:
            elapsed = (now - cur.started_at).total_seconds()
            if elapsed > limit:
                out.append(
                    res(
                        "breached",
                        f"{cur.uid} running for {_fmt_dur(elapsed)}, over the maximum "
                        f"{_fmt_dur(limit)}",
                        "maxDuration",
                    )
                )
            elif d.p90_s is not None and d.p90_s > limit:
                out.append(
                    res(
                        "at_risk",
                        f"{cur.uid} running; its p90 ({_fmt_dur(d.p90_s)}) is over the "
                        f"maximum {_fmt_dur(limit)}",
                        "maxDuration",
                        predicted=cur.started_at + timedelta(seconds=d.p90_s),
                    )
                )
            else:
                out.append(
                    res(
                        "ok",
                        f"running for {_fmt_dur(elapsed)} of at most {_fmt_dur(limit)}",
                        "maxDuration",
                    )
                )
        elif last_done is not None and last_done.started_at and last_done.ended_at:
            took = (last_done.ended_at - last_done.started_at).total_seconds()
            state = "breached" if took > limit else "ok"
            out.append(
                res(
                    state,
                    f"last run took {_fmt_dur(took)} (maximum {_fmt_dur(limit)})",
                    "maxDuration",
                )
            )
        else:
            out.append(res("ok", "no run yet", "maxDuration"))
    if spec.max_age is not None:
        last = ev.facts.last_success.get(uid)
        if last is None:
            out.append(res("breached", "no successful run recorded", "maxAge"))
        else:
            expires = last + spec.max_age
            age = (now - last).total_seconds()
            if now > expires:
                out.append(
                    res(
                        "breached",
                        f"last success {_fmt_dur(age)} ago "
                        f"(maximum {_fmt_dur(spec.max_age.total_seconds())})",
                        "maxAge",
                        expires,
                    )
                )
            else:
                p = ev.predict(uid, last)
                if p.end is None or p.end > expires:
                    nxt = f"predicted at {local(p.end)}" if p.end else "no run predicted"
                    lead = f"{_why(p)}; " if p.why else ""
                    out.append(
                        res(
                            "at_risk",
                            f"{lead}data expires at {local(expires)}; next success {nxt}",
                            "maxAge",
                            expires,
                            p.end,
                            p.path,
                        )
                    )
                else:
                    out.append(res("ok", f"fresh until {local(expires)}", "maxAge", expires, p.end))
    return out


def evaluate(
    slas: Sequence[tuple[str, str, SLASpec]],
    forecaster: Forecaster,
    facts: Facts,
    *,
    now: datetime,
) -> list[SlaResult]:
    """One result per SLA instance (the worst objective of each SLA and job)."""
    ev = _Evaluator(forecaster, facts, now)
    jobs = forecaster.jobs()
    by_label: dict[tuple[str, str], list[JobInfo]] = {}
    by_domain: dict[str, list[JobInfo]] = {}
    for j in jobs:
        by_domain.setdefault(j.domain, []).append(j)
        for kv in j.labels.items():
            by_label.setdefault(kv, []).append(j)
    out: list[SlaResult] = []
    for name, _domain, spec in slas:
        sel = spec.selector
        candidates: list[JobInfo] = jobs
        if sel.labels:  # the rarest label narrows first; selects() checks the rest
            candidates = min((by_label.get(kv, []) for kv in sel.labels.items()), key=len)
        elif sel.domains:
            candidates = [j for d in sel.domains for j in by_domain.get(d, [])]
        for job in candidates:
            if not selects(spec, job):
                continue
            parts = _judge(ev, name, spec, job, now)
            if not parts:
                continue
            worst = max(parts, key=lambda r: _ORDER[r.state])
            out.append(worst)
    return out


def persist(
    session: Session,
    results: Sequence[SlaResult],
    *,
    now: datetime | None = None,
    evaluated: Iterable[str] | None = None,
) -> list[SlaChange]:
    """Write changed states (in the caller's write transaction), audit each state change
    and enqueue its notification; instances that no longer exist are removed."""
    now = now or utcnow()
    current = {(s.sla, s.job_uid): s for s in session.execute(select(SlaState)).scalars()}
    changes: list[SlaChange] = []
    seen: set[tuple[str, str]] = set()
    for r in results:
        key = (r.sla, r.job_uid)
        seen.add(key)
        row = current.get(key)
        details: dict[str, Any] = {"objective": r.objective, "critical_path": list(r.critical_path)}
        if row is None:
            row = SlaState(
                sla=r.sla,
                job_uid=r.job_uid,
                domain=r.domain,
                state=r.state,
                reason=r.reason,
                deadline=r.deadline,
                predicted_end=r.predicted_end,
                details=details,
                since=now,
                evaluated_at=now,
            )
            session.add(row)
            if r.state != "ok":
                changes.append(SlaChange(r, None))
            continue
        if row.state != r.state:
            changes.append(SlaChange(r, row.state))
            row.since = now
        if (row.state, row.reason, row.details) != (
            r.state,
            r.reason,
            details,
        ) or row.predicted_end != r.predicted_end:
            row.state, row.reason, row.details = r.state, r.reason, details
            row.deadline, row.predicted_end, row.domain = r.deadline, r.predicted_end, r.domain
            row.evaluated_at = now
            session.add(row)
    for key, row in current.items():
        if key not in seen and (evaluated is None or key[0] in set(evaluated)):
            session.delete(row)
    for ch in changes:
        r = ch.result
        append(
            session,
            AuditEntry(
                subject="system:sla",
                channel="system",
                action="sla.state",
                target=f"sla/{r.sla}/{r.job_uid}",
                domain=r.domain,
                decision="allow",
                outcome=r.state,
                reason=r.reason,
                details={
                    "from": ch.previous,
                    "to": r.state,
                    "critical_path": list(r.critical_path),
                },
            ),
        )
        day = (r.deadline or now).date().isoformat()
        event_type = {"at_risk": "sla.at_risk", "breached": "sla.breached"}.get(r.state, "sla.ok")
        severity = r.severity if r.state != "ok" else "info"
        if r.state == "breached" and severity == "warning":
            severity = "critical"
        enqueue(
            session,
            NotificationEvent(
                type=event_type,
                severity=severity,
                domain=r.domain,
                title=f"SLA {r.sla} {r.state.replace('_', ' ')}: {r.job_uid}",
                text=r.reason,
                incident=f"{event_type}:{r.sla}:{r.job_uid}:{r.objective}:{day}",
                job_uid=r.job_uid,
                data={
                    "sla": r.sla,
                    "state": r.state,
                    "from": ch.previous,
                    "critical_path": list(r.critical_path),
                },
            ),
            now=now,
        )
    return changes
