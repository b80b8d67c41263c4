"""Forecast: the next expected runs of every scheduled job in every tool, and how long
each will take.

Expected starts come from each job's stored schedule through its adapter's calendar
(``schedule_calendar``: cron with ``CRON_TZ``, Jenkins ``H``, Kubernetes ``timeZone``, an
Airflow cron timetable aligned with the next run Airflow reported); a job without a
calendar uses the ``next_run_at`` its tool reported; a job with neither that is the
downstream of a ``Dependency`` document is forecast from its upstream's predicted ends.
Expected durations are robust statistics of the last successful runs (median and p90 after
dropping outliers more than 3 scaled MADs from the median).

The :class:`Forecaster` caches per job and is incremental: a refresh recomputes only jobs
whose definition (hash, schedule, reported next run) changed or whose cached window no
longer covers the horizon, and re-reads durations only of jobs with a newer last run.
Refresh does blocking database work: call it in a worker thread.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import heapq
import itertools
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, select
from sqlmodel import Session, col

from adapters.base import UnknownAdapterType, registry
from gateway.model.calendar import Calendar, from_minute, to_minute
from gateway.store.engine import session_scope
from gateway.store.tables import AppliedResource, Job, Run, Source
from gateway.store.types import to_db, utcnow

__all__ = [
    "Durations",
    "Expected",
    "Forecaster",
    "JobInfo",
    "RefreshStats",
    "durations_of",
    "expected_starts",
]

_SAMPLES = 20
_PAST = timedelta(hours=26)  # expected starts kept behind now (SLAs judge the local day)
_SLACK = timedelta(hours=2)  # computed past the horizon, so extensions are rare
_MAX_PER_JOB = 2_000
_DEPENDENCY_DEPTH = 10


@dataclass(frozen=True)
class JobInfo:
    uid: str
    native_id: str
    source: str
    source_type: str
    domain: str
    name: str
    labels: Mapping[str, str]
    expression: str | None
    timezone: str | None
    next_run_at: datetime | None
    paused: bool
    definition_hash: str
    last_run_at: datetime | None


@dataclass(frozen=True)
class Durations:
    median_s: float | None = None
    p90_s: float | None = None
    samples: int = 0
    outliers: int = 0


@dataclass(frozen=True)
class Expected:
    job_uid: str
    at: datetime
    end: datetime | None  # at + median duration, when there is one
    basis: str  # schedule | reported | upstream <uid>


@dataclass
class RefreshStats:
    jobs: int = 0
    recomputed: int = 0
    durations_read: int = 0
    dependency_jobs: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Entry:
    """Expected starts of one job as epoch minutes in (start, end] (shared, never mutated)."""

    key: tuple[Any, ...]
    calendar: Calendar | None
    start: int
    end: int
    times: list[int] = field(default_factory=list)


def durations_of(samples: Sequence[float]) -> Durations:
    """Median and p90 of durations in seconds, outliers (> 3 scaled MADs) left out."""
    values = sorted(s for s in samples if s >= 0)
    if not values:
        return Durations()
    med = _median_sorted(values)
    mad = _median_sorted(sorted([abs(v - med) for v in values])) * 1.4826
    kept = (
        [v for v in values if mad == 0 or abs(v - med) <= 3 * mad] if len(values) >= 4 else values
    )
    if mad == 0 and len(values) >= 4:
        # Most runs took the same time: a run far from it is an outlier.
        kept = [v for v in values if abs(v - med) <= max(0.5 * med, 60.0)]
    kept = kept or values
    m = _median_sorted(kept)
    p90 = kept[min(len(kept) - 1, max(0, math.ceil(0.9 * len(kept)) - 1))]
    return Durations(m, p90, len(kept), len(values) - len(kept))


def _median_sorted(values: Sequence[float]) -> float:
    """``statistics.median`` of values already sorted (the same arithmetic, no re-sort)."""
    n = len(values)
    i = n // 2
    return values[i] if n % 2 else (values[i - 1] + values[i]) / 2


_Hook = Callable[..., "Calendar | None"]


def _calendar_hook(source_type: str) -> _Hook | None:
    try:
        cls = registry.get(source_type)
    except UnknownAdapterType:
        return None
    hook: _Hook | None = getattr(cls, "schedule_calendar", None)
    return hook


def calendar_for(job: JobInfo, hooks: dict[str, _Hook | None] | None = None) -> Calendar | None:
    """The job's calendar from its adapter type (None: no calendar dialect or no schedule).

    ``hooks``: the adapter hooks found so far, by type (one refresh looks each type up
    once)."""
    if not job.expression:
        return None
    if hooks is None:
        hook = _calendar_hook(job.source_type)
    elif job.source_type in hooks:
        hook = hooks[job.source_type]
    else:
        hook = hooks[job.source_type] = _calendar_hook(job.source_type)
    if hook is None:
        return None
    cal: Calendar | None = hook(
        job_id=job.native_id,
        expression=job.expression,
        timezone=job.timezone,
        next_run_at=job.next_run_at,
    )
    return cal


def expected_starts(
    job: JobInfo, calendar: Calendar | None, after: datetime, until: datetime
) -> list[datetime]:
    """Expected starts in ``(after, until]``: the calendar's, else the reported next run."""
    if job.paused:
        return []
    if calendar is not None:
        return calendar.between(after, until, limit=_MAX_PER_JOB)
    if job.next_run_at is not None and after < job.next_run_at <= until:
        return [job.next_run_at]
    return []


def _job_rows(session: Session) -> list[JobInfo]:
    stmt = (
        select(
            col(Job.uid),
            col(Job.native_id),
            col(Job.source),
            col(Source.type),
            col(Job.domain),
            col(Job.name),
            col(Job.labels),
            col(Job.schedule_expr),
            col(Job.schedule_tz),
            col(Job.next_run_at),
            col(Job.paused),
            col(Job.definition_hash),
            col(Job.last_run_at),
        )
        .join(Source, col(Source.name) == col(Job.source))
        .where(col(Job.tombstoned_at).is_(None))
    )
    return [JobInfo(*row) for row in session.execute(stmt).all()]


def _dependency_edges(session: Session) -> dict[str, list[str]]:
    """downstream uid -> upstream uids, from applied Dependency documents."""
    out: dict[str, list[str]] = {}
    rows = session.execute(
        select(col(AppliedResource.document)).where(col(AppliedResource.kind) == "Dependency")
    ).scalars()
    for doc in rows:
        spec = (doc or {}).get("spec") or {}
        ups = spec.get("upstream") or spec.get("upstreams") or []
        downs = spec.get("downstream") or []
        ups = [ups] if isinstance(ups, str) else [u for u in ups if isinstance(u, str)]
        downs = [downs] if isinstance(downs, str) else [d for d in downs if isinstance(d, str)]
        for d in downs:
            out.setdefault(d, []).extend(u for u in ups if u not in out.get(d, []))
    return out


def read_durations(session: Session, uids: Iterable[str] | None) -> dict[str, list[float]]:
    """The durations (s) of the last successful runs per job (all jobs when ``uids`` None)."""
    rn = (
        func.row_number()
        .over(partition_by=col(Run.job_uid), order_by=col(Run.ended_at).desc())
        .label("rn")
    )
    base = [
        col(Run.state) == "success",
        col(Run.started_at).is_not(None),
        col(Run.ended_at).is_not(None),
    ]
    out: dict[str, list[float]] = {}
    chunks: list[list[str] | None] = [None]
    if uids is not None:
        ids = list(uids)
        chunks = [ids[i : i + 500] for i in range(0, len(ids), 500)]
    for chunk in chunks:
        conds = list(base)
        if chunk is not None:
            if not chunk:
                continue
            conds.append(col(Run.job_uid).in_(chunk))
        inner = (
            select(col(Run.job_uid), col(Run.started_at), col(Run.ended_at), rn)
            .where(and_(*conds))
            .subquery()
        )
        stmt = select(inner.c.job_uid, inner.c.started_at, inner.c.ended_at).where(
            inner.c.rn <= _SAMPLES
        )
        for uid, started, ended in session.execute(stmt).all():
            out.setdefault(uid, []).append((ended - started).total_seconds())
    return out


class _DurationTable:
    """Durations per job, each computed from its samples when first read (a refresh of
    100,000 jobs stores the samples; only the jobs someone looks at are summarised).

    A read of a summary already made takes no lock; making one, and storing new samples,
    hold the table's lock, so a summary of old samples never replaces new ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[str, Durations] = {}
        self._raw: dict[str, tuple[float, ...]] = {}

    def set_samples(self, items: Iterable[tuple[str, Iterable[float]]]) -> int:
        """Store new samples per job; how many jobs."""
        n = 0
        with self._lock:
            for uid, samples in items:
                raw = tuple(samples)
                if raw:
                    self._raw[uid] = raw
                    self._done.pop(uid, None)
                else:
                    self._done[uid] = _NO_DURATIONS
                    self._raw.pop(uid, None)
                n += 1
        return n

    def get(self, uid: str, default: Durations) -> Durations:
        done = self._done.get(uid)
        if done is not None:
            return done
        with self._lock:
            raw = self._raw.pop(uid, None)
            if raw is None:
                return self._done.get(uid, default)
            done = self._done[uid] = durations_of(raw)
            return done

    def pop(self, uid: str) -> None:
        with self._lock:
            self._done.pop(uid, None)
            self._raw.pop(uid, None)


class Forecaster:
    """Per-job cached forecast; thread-safe (one refresh at a time, reads see a snapshot)."""

    def __init__(self, engine: Engine | None, *, horizon: timedelta = timedelta(hours=48)) -> None:
        self.engine = engine
        self.horizon = horizon
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._jobs: dict[str, JobInfo] = {}
        self._durations = _DurationTable()
        self._duration_key: dict[str, datetime | None] = {}
        self._derived: dict[str, list[Expected]] = {}
        self._dependencies: dict[str, list[str]] = {}
        self.refreshed_at: datetime | None = None

    # -- refresh ----------------------------------------------------------------------------
    def refresh(self, now: datetime | None = None) -> RefreshStats:
        """Read the inventory and recompute what changed (blocking: call in a thread)."""
        assert self.engine is not None
        with session_scope(self.engine, write=False) as session:
            jobs = _job_rows(session)
            deps = _dependency_edges(session)
            stale = [j.uid for j in jobs if self._duration_key.get(j.uid, _NEVER) != j.last_run_at]
            if not self._duration_key or len(stale) > 5_000:
                samples = read_durations(session, None)
            else:
                samples = read_durations(session, stale) if stale else {}
        return self.update(jobs, deps, samples, stale, now=now)

    def update(
        self,
        jobs: Sequence[JobInfo],
        dependencies: Mapping[str, list[str]],
        samples: Mapping[str, Sequence[float]],
        stale_durations: Iterable[str],
        *,
        now: datetime | None = None,
    ) -> RefreshStats:
        """Apply a fresh inventory (pure apart from the cache; the benchmark calls this)."""
        import time

        t0 = time.perf_counter()
        now = now or utcnow()
        stats = RefreshStats(jobs=len(jobs))
        need_to = to_minute(now + self.horizon)
        past = to_minute(now - _PAST)
        slack = int(_SLACK.total_seconds() // 60)
        memo: dict[tuple[Calendar, int, int], list[int]] = {}
        hooks: dict[str, _Hook | None] = {}
        with self._lock, _no_collection():
            seen = set()
            for job in jobs:
                seen.add(job.uid)
                key = (
                    job.definition_hash,
                    job.expression,
                    job.timezone,
                    job.next_run_at,
                    job.paused,
                    job.source_type,
                )
                entry = self._entries.get(job.uid)
                if entry is None or entry.key != key:
                    cal = calendar_for(job, hooks)
                    end = need_to + slack
                    entry = _Entry(key, cal, past, end, self._compute(job, cal, past, end, memo))
                    self._entries[job.uid] = entry
                    stats.recomputed += 1
                elif entry.end < need_to:
                    end = need_to + slack
                    extra = self._compute(job, entry.calendar, entry.end, end, memo)
                    entry.times = [t for t in entry.times if t > past] + extra
                    entry.start, entry.end = past, end
                    stats.recomputed += 1
                self._jobs[job.uid] = job
            for gone in set(self._entries) - seen:
                self._entries.pop(gone, None)
                self._jobs.pop(gone, None)
                self._durations.pop(gone)
                self._duration_key.pop(gone, None)
            stale = list(stale_durations)
            stats.durations_read = self._durations.set_samples(
                (uid, samples.get(uid, ())) for uid in stale
            )
            jobs_by_uid = self._jobs
            for uid in stale:
                job_info = jobs_by_uid.get(uid)
                self._duration_key[uid] = job_info.last_run_at if job_info else None
            self._dependencies = {k: list(v) for k, v in dependencies.items()}
            self._derived = self._derive(now)
            stats.dependency_jobs = len(self._derived)
            self.refreshed_at = now
        stats.seconds = time.perf_counter() - t0
        return stats

    @staticmethod
    def _compute(
        job: JobInfo,
        cal: Calendar | None,
        start: int,
        end: int,
        memo: dict[tuple[Calendar, int, int], list[int]],
    ) -> list[int]:
        if job.paused:
            return []
        if cal is None:
            if job.next_run_at is not None and start < to_minute(job.next_run_at) <= end:
                return [to_minute(job.next_run_at)]
            return []
        k = (cal, start, end)
        got = memo.get(k)
        if got is None:
            got = cal.minutes(start, end, limit=_MAX_PER_JOB)
            memo[k] = got
        return got

    def _derive(self, now: datetime) -> dict[str, list[Expected]]:
        """Jobs with no schedule of their own, started by a Dependency: from upstream ends."""
        derived: dict[str, list[Expected]] = {}
        for _ in range(_DEPENDENCY_DEPTH):
            changed = False
            for down, ups in self._dependencies.items():
                entry = self._entries.get(down)
                info = self._jobs.get(down)
                if info is None or info.paused or (entry is not None and entry.times):
                    continue
                per_up = [self._ends(u, derived) for u in ups]
                if not per_up or any(not p for p in per_up):
                    continue
                med = self._durations.get(down, _NO_DURATIONS).median_s
                out: list[Expected] = []
                for end, basis in per_up[0]:
                    start = end
                    for other in per_up[1:]:
                        later = [e for e, _ in other if e >= end - timedelta(hours=12)]
                        if later:
                            start = max(start, later[0])
                    out.append(
                        Expected(
                            down,
                            start,
                            start + timedelta(seconds=med) if med is not None else None,
                            f"upstream {basis}",
                        )
                    )
                if derived.get(down) != out:
                    derived[down] = out
                    changed = True
            if not changed:
                break
        return derived

    def _ends(self, uid: str, derived: Mapping[str, list[Expected]]) -> list[tuple[datetime, str]]:
        if uid in derived:
            return [(e.end or e.at, uid) for e in derived[uid]]
        entry = self._entries.get(uid)
        if entry is None:
            return []
        med = self._durations.get(uid, _NO_DURATIONS).median_s or 0.0
        return [(from_minute(t) + timedelta(seconds=med), uid) for t in entry.times]

    # -- reading ----------------------------------------------------------------------------
    def durations(self, uid: str) -> Durations:
        return self._durations.get(uid, _NO_DURATIONS)

    def job(self, uid: str) -> JobInfo | None:
        return self._jobs.get(uid)

    def jobs(self) -> list[JobInfo]:
        return list(self._jobs.values())

    def upstreams(self) -> Mapping[str, list[str]]:
        return self._dependencies

    def expected(self, uid: str, start: datetime, end: datetime) -> list[Expected]:
        """Expected runs of one job starting in ``[start, end)``."""
        if uid in self._derived:
            return [e for e in self._derived[uid] if start <= e.at < end]
        entry = self._entries.get(uid)
        if entry is None:
            return []
        med = self._durations.get(uid, _NO_DURATIONS).median_s
        basis = "schedule" if entry.calendar is not None else "reported"
        times = entry.times
        lo = bisect.bisect_left(times, _ceil_minute(start))
        hi = bisect.bisect_left(times, _ceil_minute(end))
        span = timedelta(seconds=med) if med is not None else None
        out = []
        for m in times[lo:hi]:
            t = from_minute(m)
            out.append(Expected(uid, t, t + span if span is not None else None, basis))
        return out

    def window(
        self,
        start: datetime,
        end: datetime,
        uids: Iterable[str] | None = None,
        *,
        limit: int | None = None,
    ) -> list[Expected]:
        """Expected runs starting in ``[start, end)`` (of ``uids`` when given), by time,
        the first ``limit`` of them (all when None)."""
        return self.window_page(start, end, uids, limit=limit)[1]

    def window_page(
        self,
        start: datetime,
        end: datetime,
        uids: Iterable[str] | None = None,
        *,
        limit: int | None = None,
    ) -> tuple[int, list[Expected]]:
        """How many expected runs start in ``[start, end)``, and the first ``limit``."""
        lo_m, hi_m = _ceil_minute(start), _ceil_minute(end)
        with self._lock:
            pick = list(uids) if uids is not None else list(self._jobs)
            streams: list[Iterable[tuple[int, str]]] = []
            total = 0
            derived: list[Expected] = []
            for uid in pick:
                if uid in self._derived:
                    derived.extend(e for e in self._derived[uid] if start <= e.at < end)
                    continue
                entry = self._entries.get(uid)
                if entry is None or not entry.times:
                    continue
                times = entry.times
                a = bisect.bisect_left(times, lo_m)
                b = bisect.bisect_left(times, hi_m)
                if b > a:
                    total += b - a
                    streams.append(zip(times[a:b], itertools.repeat(uid), strict=False))
            derived.sort(key=lambda e: (e.at, e.job_uid))
            total += len(derived)
            merged = heapq.merge(
                *streams,
                ((to_minute(e.at), e.job_uid) for e in derived),
            )
            want = total if limit is None else min(limit, total)
            out: list[Expected] = []
            durations = self._durations
            derived_by = {(to_minute(e.at), e.job_uid): e for e in derived}
            for m, uid in itertools.islice(merged, want):
                if (m, uid) in derived_by:
                    out.append(derived_by[(m, uid)])
                    continue
                entry = self._entries[uid]
                med = durations.get(uid, _NO_DURATIONS).median_s
                t = from_minute(m)
                out.append(
                    Expected(
                        uid,
                        t,
                        t + timedelta(seconds=med) if med is not None else None,
                        "schedule" if entry.calendar is not None else "reported",
                    )
                )
        return total, out


_NO_DURATIONS = Durations()


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector while a refresh builds its (acyclic) entries: a
    cold refresh allocates hundreds of thousands of long-lived objects, and the full
    collections they trigger would scan the whole heap again and again (a quarter of
    the refresh's CPU in bench/forecast.py). Reference counting still frees everything."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _ceil_minute(t: datetime) -> int:
    m = to_minute(t)
    return m if from_minute(m) == t else m + 1


_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes from query strings are read as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def db_time(value: datetime) -> Any:
    return to_db(value)
