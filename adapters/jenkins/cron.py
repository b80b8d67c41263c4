"""Jenkins' cron dialect, ported exactly: timer specs with ``H``, their hash, next fire time.

Jenkins spreads ``H`` fields by a hash of the job's full name (``hudson.scheduler.Hash``):
MD5 of the UTF-8 name, folded to 8 bytes, big-endian, seeds a ``java.util.Random``, and
every ``H`` draws ``nextInt(range)`` from that one generator, left to right through the
fields and from line to line of a multi-line spec. croniter's ``H`` uses CRC32 instead and
would show the wrong minute, so this module ports ``java.util.Random`` (the 48-bit LCG with
multiplier ``0x5DEECE66D``) and Jenkins' grammar (``CrontabParser.g4``, ``BaseParser``):

* five fields MINUTE HOUR DOM MONTH DOW, each a comma list of ``N``, ``N-M[/S]``,
  ``*[/S]``, ``H[/S]``, ``H(N-M)[/S]``; DOW 0 and 7 are Sunday; ``H`` in DOM draws from
  1-28 and in DOW from 0-6;
* aliases ``@yearly @annually @monthly @weekly @daily @midnight @hourly`` (all hashed);
* blank lines and ``#`` comments ignored; a first line ``TZ=Zone/Name`` sets the zone.

A time matches a line when **all five** fields match (Jenkins ``CronTab.check``: unlike
Vixie cron there is no OR between day of month and day of week); a spec fires when any of
its lines matches.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CompiledSpec",
    "CronLine",
    "JavaRandom",
    "LineSets",
    "SpecError",
    "TimerSpec",
    "compile_spec",
    "jenkins_hash",
    "next_fire",
    "parse_spec",
]

_MULTIPLIER = 0x5DEECE66D
_ADDEND = 0xB
_MASK = (1 << 48) - 1

_LOWER = (0, 0, 1, 1, 0)
_UPPER = (59, 23, 31, 12, 7)
_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_ALIASES = {
    "yearly": "H H H H *",
    "annually": "H H H H *",
    "monthly": "H H H * *",
    "weekly": "H H * * H",
    "daily": "H H * * *",
    "midnight": "H H(0-2) * * *",
    "hourly": "H * * * *",
}
_TERM = re.compile(
    r"""^(?:
        (?P<lo>\d+)-(?P<hi>\d+)(?:/(?P<rstep>\d+))?      # N-M[/S]
      | (?P<single>\d+)                                  # N
      | \*(?:/(?P<sstep>\d+))?                           # *[/S]
      | H\((?P<hlo>\d+)-(?P<hhi>\d+)\)(?:/(?P<hrstep>\d+))?  # H(N-M)[/S]
      | H(?:/(?P<hstep>\d+))?                            # H[/S]
    )$""",
    re.VERBOSE,
)
# Search far enough for a Feb 29 that also falls on a given weekday (28-year cycle).
_MAX_SEARCH_DAYS = 366 * 29


class SpecError(ValueError):
    """A timer spec Jenkins itself would reject."""


class JavaRandom:
    """``java.util.Random``: same seed, same sequence as on a JVM."""

    def __init__(self, seed: int) -> None:
        self._seed = (seed ^ _MULTIPLIER) & _MASK

    def _next(self, bits: int) -> int:
        self._seed = (self._seed * _MULTIPLIER + _ADDEND) & _MASK
        value = self._seed >> (48 - bits)
        # Java's (int) cast: keep 32 bits, two's complement.
        value &= 0xFFFFFFFF
        return value - (1 << 32) if value & 0x80000000 else value

    def next_int(self, bound: int | None = None) -> int:
        """``nextInt()`` without a bound, ``nextInt(bound)`` (0 <= n < bound) with one."""
        if bound is None:
            return self._next(32)
        if bound <= 0:
            raise ValueError("bound must be positive")
        r = self._next(31)
        m = bound - 1
        if bound & m == 0:  # a power of two
            return (bound * r) >> 31
        u = r
        while True:
            r = u % bound
            # Java rejects when u - r + m overflows a signed int.
            if u - r + m < (1 << 31):
                return r
            u = self._next(31)


def jenkins_hash(full_name: str) -> JavaRandom:
    """``hudson.scheduler.Hash.from(fullName)``: the generator every ``H`` draws from."""
    digest = bytearray(hashlib.md5(full_name.encode("utf-8"), usedforsecurity=False).digest())
    for i in range(8, len(digest)):
        digest[i % 8] ^= digest[i]
    seed = int.from_bytes(digest[:8], "big")
    return JavaRandom(seed)


@dataclass(frozen=True)
class CronLine:
    """One line of a spec, with every ``H`` resolved: the sets of values that fire."""

    source: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday

    def matches(self, local: datetime) -> bool:
        return (
            local.minute in self.minutes
            and local.hour in self.hours
            and local.day in self.days
            and local.month in self.months
            and (local.isoweekday() % 7) in self.weekdays
        )

    def day_matches(self, day: date) -> bool:
        return (
            day.month in self.months
            and day.day in self.days
            and (day.isoweekday() % 7) in self.weekdays
        )

    @property
    def expression(self) -> str:
        """The resolved line as plain cron (``H 2 * * *`` for one job → ``37 2 * * *``)."""
        fields = (self.minutes, self.hours, self.days, self.months, self.weekdays)
        full = (range(0, 60), range(0, 24), range(1, 32), range(1, 13), range(0, 7))
        return " ".join(
            "*" if set(values) == set(span) else _compress(values)
            for values, span in zip(fields, full, strict=True)
        )


@dataclass(frozen=True)
class TimerSpec:
    """A parsed ``TimerTrigger`` spec of one job."""

    spec: str
    lines: tuple[CronLine, ...]
    timezone: str | None  # from a first line ``TZ=...``; None: the controller's zone

    @property
    def expression(self) -> str:
        """The spec as the job shows it (comments, blank lines and TZ line left out)."""
        return "\n".join(line.source for line in self.lines)

    @property
    def resolved(self) -> str:
        """Every line with its ``H`` fields resolved for this job."""
        return "\n".join(line.expression for line in self.lines)


def _compress(values: Iterable[int]) -> str:
    ordered = sorted(values)
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{ordered[i]}-{ordered[j]}")
        else:
            parts.extend(str(v) for v in ordered[i : j + 1])
        i = j + 1
    return ",".join(parts)


def _check(value: int, field: int) -> None:
    if not _LOWER[field] <= value <= _UPPER[field]:
        raise SpecError(
            f"{value} is an invalid value for {_FIELD_NAMES[field]}. "
            f"Must be within {_LOWER[field]} and {_UPPER[field]}"
        )


def _range(start: int, end: int, step: int, field: int) -> set[int]:
    _check(start, field)
    _check(end, field)
    if step <= 0:
        raise SpecError(f"step must be positive, but found {step}")
    if start > end:
        raise SpecError(f"You mean {end}-{start}?")
    return set(range(start, end + 1, step))


def _hash_op(start: int, end: int, step: int | None, field: int) -> tuple[int, int, int]:
    """Check an ``H`` term and return what it draws: ``(start, end, step)``; step 1
    draws one value (plain ``H``, and ``H/1``, which Jenkins reads like ``H``)."""
    _check(start, field)
    _check(end, field)
    if step is None:  # plain H picks one value
        return (start, end, 1)
    if step <= 0:
        raise SpecError(f"step must be positive, but found {step}")
    if step > end - start + 1:
        raise SpecError(f"{step} is an invalid value. Must be within 1 and {end - start + 1}")
    return (start, end, step)


def _draw(op: tuple[int, int, int], rnd: JavaRandom) -> set[int]:
    start, end, step = op
    if step == 1:
        return {start + rnd.next_int(end + 1 - start)}
    return set(range(start + rnd.next_int(step), end + 1, step))


# A compiled field: the fixed values, and the H terms drawn in order (left to right).
_CompiledField = tuple[frozenset[int], tuple[tuple[int, int, int], ...]]
# A resolved line: minutes, hours, days of month, months, weekdays (0 = Sunday).
LineSets = tuple[frozenset[int], frozenset[int], frozenset[int], frozenset[int], frozenset[int]]


def _field(text: str, field: int) -> _CompiledField:
    values: set[int] = set()
    draws: list[tuple[int, int, int]] = []
    for term in text.split(","):
        m = _TERM.match(term)
        if m is None:
            raise SpecError(f"invalid {_FIELD_NAMES[field]} {term!r}")
        g = m.groupdict()
        if g["lo"] is not None:
            values |= _range(int(g["lo"]), int(g["hi"]), int(g["rstep"] or 1), field)
        elif g["single"] is not None:
            value = int(g["single"])
            _check(value, field)
            values.add(value)
        elif term.startswith("*"):
            values |= _range(_LOWER[field], _UPPER[field], int(g["sstep"] or 1), field)
        elif g["hlo"] is not None:
            step = int(g["hrstep"]) if g["hrstep"] is not None else None
            draws.append(_hash_op(int(g["hlo"]), int(g["hhi"]), step, field))
        else:
            upper = {2: 28, 4: 6}.get(field, _UPPER[field])
            step = int(g["hstep"]) if g["hstep"] is not None else None
            draws.append(_hash_op(_LOWER[field], upper, step, field))
    return frozenset(values), tuple(draws)


@dataclass(frozen=True)
class _CompiledLine:
    source: str
    fields: tuple[_CompiledField, ...]

    def sets(self, rnd: JavaRandom | None) -> LineSets:
        """The five value sets with every ``H`` drawn from ``rnd`` (in Jenkins' order)."""
        out: list[frozenset[int]] = []
        for fixed, draws in self.fields:
            if not draws:
                out.append(fixed)
                continue
            assert rnd is not None
            values = set(fixed)
            for op in draws:
                values |= _draw(op, rnd)
            out.append(frozenset(values))
        weekdays = out[4]
        if 7 in weekdays:  # 7 is Sunday too
            weekdays = (weekdays - {7}) | {0}
        return (out[0], out[1], out[2], out[3], frozenset(weekdays))

    def resolve(self, rnd: JavaRandom | None) -> CronLine:
        minutes, hours, days, months, weekdays = self.sets(rnd)
        return CronLine(
            source=self.source,
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=weekdays,
        )


def _line(source: str) -> _CompiledLine:
    text = source
    if text.startswith("@"):
        alias = _ALIASES.get(text[1:])
        if alias is None:
            raise SpecError(f"unknown alias {text!r} (known: @{', @'.join(_ALIASES)})")
        text = alias
    fields = text.split()
    if len(fields) != 5:
        raise SpecError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    return _CompiledLine(source, tuple(_field(f, i) for i, f in enumerate(fields)))


@dataclass(frozen=True)
class CompiledSpec:
    """A checked spec whose ``H`` terms are still to be drawn for a job (see
    :func:`compile_spec`); ``hashed`` says whether the job's name matters at all."""

    spec: str
    lines: tuple[_CompiledLine, ...]
    timezone: str | None
    hashed: bool

    def line_sets(self, full_name: str) -> tuple[LineSets, ...]:
        """Each line's value sets for the job ``full_name`` (what :meth:`resolve` gives,
        without building the spec objects)."""
        rnd = jenkins_hash(full_name) if self.hashed else None
        return tuple(line.sets(rnd) for line in self.lines)

    def resolve(self, full_name: str) -> TimerSpec:
        """The spec of the job ``full_name``: every ``H`` drawn from the job's hash."""
        rnd = jenkins_hash(full_name) if self.hashed else None
        return TimerSpec(
            spec=self.spec,
            lines=tuple(line.resolve(rnd) for line in self.lines),
            timezone=self.timezone,
        )


@lru_cache(maxsize=4096)
def compile_spec(spec: str) -> CompiledSpec:
    """Check a ``TimerTrigger`` spec once; jobs sharing it only draw their ``H`` values.

    Raises :class:`SpecError` where Jenkins would reject the spec (every check is on the
    text alone, so compiling and resolving give the errors :func:`parse_spec` gives).
    """
    lines: list[_CompiledLine] = []
    timezone: str | None = None
    for number, raw in enumerate(re.split(r"\r?\n", spec), start=1):
        line = raw.strip()
        if number == 1 and line.startswith("TZ="):
            timezone = line[3:]
            try:
                ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise SpecError(f"Invalid or unsupported timezone {timezone!r}") from None
            continue
        if not line or line.startswith("#"):
            continue
        try:
            lines.append(_line(line))
        except SpecError as exc:
            raise SpecError(f"line {number} ({line!r}): {exc}") from None
    hashed = any(draws for line in lines for _, draws in line.fields)
    return CompiledSpec(spec=spec, lines=tuple(lines), timezone=timezone, hashed=hashed)


def parse_spec(spec: str, full_name: str) -> TimerSpec:
    """Parse a ``TimerTrigger`` spec of the job ``full_name`` (``team/app/main``).

    Raises :class:`SpecError` where Jenkins would reject the spec.
    """
    return compile_spec(spec).resolve(full_name)


def next_fire(spec: TimerSpec, after: datetime, default_zone: str = "UTC") -> datetime | None:
    """The first minute strictly after ``after`` at which the spec fires, in UTC.

    Times are matched on the wall clock of the spec's zone (its ``TZ=`` line, else
    ``default_zone``, the controller's JVM zone). A wall time skipped by a DST change does
    not fire; a repeated one fires once, at its first occurrence. None when no line can
    ever fire (e.g. ``0 0 30 2 *``).
    """
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    zone = ZoneInfo(spec.timezone or default_zone)
    start = (after.astimezone(zone) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    best: datetime | None = None
    for line in spec.lines:
        found = _next_for_line(line, start, zone)
        if found is not None and (best is None or found < best):
            best = found
    return best


def _next_for_line(line: CronLine, start: datetime, zone: ZoneInfo) -> datetime | None:
    hours = sorted(line.hours)
    minutes = sorted(line.minutes)
    day = start.date()
    for _ in range(_MAX_SEARCH_DAYS):
        if line.day_matches(day):
            for hour in hours:
                for minute in minutes:
                    wall = datetime(day.year, day.month, day.day, hour, minute)
                    local = wall.replace(tzinfo=zone)
                    utc = local.astimezone(UTC)
                    if utc.astimezone(zone).replace(tzinfo=None) != wall:
                        continue  # skipped by a DST change
                    if local >= start:
                        return utc
        day += timedelta(days=1)
    return None
