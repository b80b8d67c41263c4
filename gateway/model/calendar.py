"""Calendars: the start times a schedule yields, computed fast enough for a whole estate.

An adapter turns its tool's schedule dialect (Vixie cron with ``CRON_TZ``, Jenkins ``H``
specs, a Kubernetes ``schedule`` + ``timeZone``, an Airflow cron timetable) into a
:class:`Calendar`: sets of minutes, hours, days, months and weekdays per line, a time
zone and the day-matching rule of the tool. The gateway only evaluates calendars; it never
parses a tool's dialect itself (adapters provide ``schedule_calendar``, see
``adapters/base.py``).

Calendars are frozen and hashable, so jobs with the same effective schedule share one
computation. Times are matched on the wall clock of the zone: a wall time a DST change
skips does not fire, a repeated one fires once (its first occurrence). (Vixie cron runs
a job whose time was skipped right after the change; forecasts can be an hour off there.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = [
    "Calendar",
    "CalendarLine",
    "calendar_from_cron",
    "from_minute",
    "to_minute",
    "zone",
]

# Stop looking for a line that can never fire (``0 0 30 2 *``) after this many days.
_MAX_EMPTY_DAYS = 366 * 29


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """A ZoneInfo by name (cached); raises ``ZoneInfoNotFoundError``/``ValueError``."""
    return ZoneInfo(name)


@dataclass(frozen=True)
class CalendarLine:
    """One schedule line with every field expanded. Weekdays: 0 = Sunday ... 6 = Saturday.

    ``day_or``: a day matches when day-of-month OR day-of-week matches (Vixie cron and the
    Kubernetes controller when both day fields are restricted); otherwise both must.
    """

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_or: bool = False

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        return (dom or dow) if self.day_or else (dom and dow)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_minute(t: datetime) -> int:
    """Minutes since the epoch (UTC) of an aware datetime, rounded down."""
    return int((t - _EPOCH).total_seconds() // 60)


def from_minute(m: int) -> datetime:
    return _EPOCH + timedelta(minutes=m)


@dataclass(frozen=True)
class Calendar:
    """The start times of a schedule: any line fires, on the wall clock of ``tz``.

    ``shift`` moves every time (Airflow: aligns a UTC cron summary with the next run the
    API reported for a DAG in another zone)."""

    lines: tuple[CalendarLine, ...]
    tz: str = "UTC"
    shift: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.lines, self.tz, self.shift)))
        mods = sorted({h * 60 + m for line in self.lines for h in line.hours for m in line.minutes})
        object.__setattr__(
            self,
            "_same_times",
            all(
                line.hours == self.lines[0].hours and line.minutes == self.lines[0].minutes
                for line in self.lines
            ),
        )
        object.__setattr__(self, "_mods", tuple(mods))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined,no-any-return]

    def between(self, after: datetime, until: datetime, limit: int = 10_000) -> list[datetime]:
        """Start times in ``(after, until]``, in UTC, oldest first, at most ``limit``."""
        if after.tzinfo is None or until.tzinfo is None:
            raise ValueError("after and until must be timezone-aware")
        # Starts are whole minutes: minute m is in (after, until] iff after's minute < m
        # and m <= until's minute.
        return [from_minute(m) for m in self.minutes(to_minute(after), to_minute(until), limit)]

    def minutes(self, after: int, until: int, limit: int = 10_000) -> list[int]:
        """Start times as epoch minutes in ``(after, until]``, oldest first."""
        if until <= after or not self.lines:
            return []
        shift = int(self.shift.total_seconds() // 60)
        out: list[int] = []
        for day, midnight, b in _days(self.tz, after - shift, until - shift):
            if len(out) >= limit:
                break
            lines = [line for line in self.lines if line.day_matches(day)]
            if not lines:
                continue
            mods = (
                self._mods  # type: ignore[attr-defined]
                if len(lines) == len(self.lines) or self._same_times  # type: ignore[attr-defined]
                else sorted({h * 60 + m for ln in lines for h in ln.hours for m in ln.minutes})
            )
            if b is not None:
                b += shift
                out.extend(b + x for x in mods if after < b + x <= until)
            else:  # a DST change today: convert each wall time
                z = zone(self.tz)
                for x in mods:
                    wall = midnight + timedelta(minutes=x)
                    t = wall.replace(tzinfo=z).astimezone(UTC)
                    if t.astimezone(z).replace(tzinfo=None) != wall:
                        continue  # skipped by the change
                    m = to_minute(t) + shift
                    if after < m <= until:
                        out.append(m)
        out.sort()
        return out[:limit]

    def next_after(self, after: datetime) -> datetime | None:
        """The first start time strictly after ``after`` (None if it never fires)."""
        step = timedelta(days=2)
        lo = after
        searched = timedelta(0)
        while searched < timedelta(days=_MAX_EMPTY_DAYS):
            found = self.between(lo, lo + step, limit=1)
            if found:
                return found[0]
            lo += step
            searched += step
            step = min(step * 2, timedelta(days=400))
        return None


@lru_cache(maxsize=256)
def _days(tz: str, lo: int, hi: int) -> tuple[tuple[date, datetime, int | None], ...]:
    """The local days around epoch minutes ``(lo, hi]`` in ``tz`` (one more each side),
    each with its local midnight and, when no DST change falls on it, the epoch minute
    of that midnight (None: convert each wall time). Shared by every calendar in ``tz``
    evaluated over the same window."""
    z = zone(tz)
    day = from_minute(lo).astimezone(z).date() - timedelta(days=1)
    last = from_minute(hi).astimezone(z).date() + timedelta(days=1)
    one_day = timedelta(days=1)
    out: list[tuple[date, datetime, int | None]] = []
    while day <= last:
        midnight = datetime(day.year, day.month, day.day)
        start_off = z.utcoffset(midnight)
        end_off = z.utcoffset(midnight + one_day)
        b: int | None = None
        if start_off == end_off and start_off is not None:
            b = to_minute(midnight.replace(tzinfo=UTC)) - int(start_off.total_seconds() // 60)
        out.append((day, midnight, b))
        day += one_day
    return tuple(out)


def _values(field: Sequence[int | str], low: int, high: int) -> list[int]:
    if field == ["*"]:
        return list(range(low, high + 1))
    return sorted({int(v) for v in field})


@lru_cache(maxsize=65_536)
def calendar_from_cron(expression: str, tz: str = "UTC", *, day_or: bool | None = None) -> Calendar:
    """A calendar for a classic five-field cron expression (or ``@daily`` and friends).

    ``day_or`` None: Vixie cron's rule (OR unless either day field starts with ``*``).
    Raises ``ValueError`` for an expression croniter cannot read.
    """
    line = _cron_line(" ".join(expression.split()), day_or, expression)
    zone(tz)  # unknown zones fail here, not at evaluation
    return Calendar((line,), tz)


@lru_cache(maxsize=65_536)
def _cron_line(expr: str, day_or: bool | None, expression: str) -> CalendarLine:
    """The expanded line of a normalised expression (shared by every zone it runs in);
    ``expression`` is the text as given, for error messages."""
    from croniter import croniter  # the gateway's only cron dependency

    try:
        fields, _ = croniter.expand(expr)
    except Exception as exc:  # croniter raises several types for bad input
        raise ValueError(f"cannot read cron expression {expression!r}: {exc}") from None
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields: {expression!r}")
    if day_or is None:
        parts = expr.split() if not expr.startswith("@") else ["0", "0", "*", "*", "*"]
        day_or = not (parts[2].startswith("*") or parts[4].startswith("*"))
    try:
        return CalendarLine(
            minutes=tuple(_values(fields[0], 0, 59)),
            hours=tuple(_values(fields[1], 0, 23)),
            days=frozenset(_values(fields[2], 1, 31)),
            months=frozenset(_values(fields[3], 1, 12)),
            weekdays=frozenset(0 if v == 7 else v for v in _values(fields[4], 0, 6)),
            day_or=day_or,
        )
    except (TypeError, ValueError):  # L, W, # and other extensions: no calendar
        raise ValueError(f"unsupported cron expression {expression!r}") from None
