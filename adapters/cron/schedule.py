"""Crontab schedules as Debian's cron (Vixie cron 3.0) reads them: validation, the next
expected runs and a human description.

croniter accepts more than cron does (seconds, ``L``, ``W``, ``#``, ``H``, ``5/10``), so the
fields are checked here first, with cron's own rules, and croniter only computes times.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from croniter import croniter

__all__ = ["SPECIALS", "CronSchedule", "ScheduleError", "parse_schedule"]

SPECIALS: dict[str, str | None] = {
    "@reboot": None,
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_DAY_TEXT = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_from: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, tuple(_MONTHS), 1),
    _Field("day of week", 0, 7, tuple(_DAYS), 0),
)
_ELEMENT = re.compile(r"^(?:(\*)|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:/([0-9]+))?$")


class ScheduleError(ValueError):
    """A schedule cron would refuse, with cron's reason."""


@dataclass(frozen=True)
class CronSchedule:
    """A valid schedule. ``expression`` is as written; ``fields`` the five-field form
    (None for ``@reboot``)."""

    expression: str
    fields: str | None

    @property
    def reboot(self) -> bool:
        return self.fields is None

    @property
    def _day_or(self) -> bool:
        # Vixie cron: when either day field starts with '*', a day must match both fields;
        # otherwise either (croniter's day_or=True only knows the plain '*').
        assert self.fields is not None
        parts = self.fields.split()
        return not (parts[2].startswith("*") or parts[4].startswith("*"))

    def next_runs(self, after: datetime, count: int = 1) -> list[datetime]:
        """The next ``count`` start times strictly after ``after`` (tz-aware, in its zone)."""
        return list(self._iter(after, count))

    def between(self, start: datetime, end: datetime, limit: int = 10_000) -> list[datetime]:
        """Start times in (start, end], at most ``limit`` of them (the newest are kept)."""
        out: list[datetime] = []
        if self.fields is None or end <= start:
            return out
        for t in self._iter(start, None):
            if t > end:
                break
            out.append(t)
            if len(out) > limit:
                out.pop(0)
        return out

    def _iter(self, after: datetime, count: int | None) -> Iterator[datetime]:
        if self.fields is None:
            return
        it = croniter(self.fields, after, day_or=self._day_or)
        n = 0
        while count is None or n < count:
            yield it.get_next(datetime)
            n += 1

    def describe(self) -> str:
        """A short English description ("daily at 02:30", "every 5 minutes", ...)."""
        if self.fields is None:
            return "at boot"
        return _describe(self.fields)


def parse_schedule(expression: str) -> CronSchedule:
    """Validate a five-field spec or an ``@special`` with cron's rules."""
    expr = " ".join(expression.split())
    if expr.startswith("@"):
        if expr not in SPECIALS:
            known = ", ".join(SPECIALS)
            raise ScheduleError(f"unknown special schedule {expr!r} (cron knows {known})")
        return CronSchedule(expr, SPECIALS[expr])
    parts = expr.split(" ")
    if len(parts) != 5:
        raise ScheduleError(f"a schedule has 5 fields, not {len(parts)}: {expr!r}")
    for text, field in zip(parts, _FIELDS, strict=True):
        _check_field(text, field)
    return CronSchedule(expr, expr)


def _number(token: str, field: _Field) -> int:
    if token.isdigit():
        value = int(token)
    elif field.names and token.lower() in field.names:
        value = field.names.index(token.lower()) + field.names_from
    else:
        if field.names:
            raise ScheduleError(f"bad {field.name} {token!r} (a number or a 3-letter name)")
        raise ScheduleError(f"bad {field.name} {token!r} (not a number)")
    if not field.low <= value <= field.high:
        raise ScheduleError(f"{field.name} {value} is out of range {field.low}-{field.high}")
    return value


def _check_field(text: str, field: _Field) -> None:
    for element in text.split(","):
        m = _ELEMENT.match(element)
        if not m:
            raise ScheduleError(f"bad {field.name} {element!r}")
        star, low, high, step = m.groups()
        if step is not None:
            if int(step) == 0:
                raise ScheduleError(f"bad {field.name} {element!r}: a step must be at least 1")
            if not star and high is None:
                # cron takes "5/10" as 5 followed by junk.
                raise ScheduleError(
                    f"bad {field.name} {element!r}: a step needs a range or '*' before it"
                )
        if star:
            continue
        first = _number(low, field)
        if high is not None and _number(high, field) < first:
            raise ScheduleError(f"bad {field.name} {element!r}: the range runs backwards")


def _two(value: str) -> str:
    return value.zfill(2)


def _describe(fields: str) -> str:
    minute, hour, dom, month, dow = fields.split()
    simple_day = dom == "*" and month == "*" and dow == "*"
    if fields == "* * * * *":
        return "every minute"
    m = re.fullmatch(r"\*/(\d+)", minute)
    if m and hour == "*" and simple_day:
        return f"every {m.group(1)} minutes"
    if not minute.isdigit():
        return fields
    if hour == "*" and simple_day:
        return f"hourly at :{_two(minute)}"
    m = re.fullmatch(r"\*/(\d+)", hour)
    if m and simple_day:
        return f"every {m.group(1)} hours at :{_two(minute)}"
    if not hour.isdigit():
        return fields
    at = f"{_two(hour)}:{_two(minute)}"
    if simple_day:
        return f"daily at {at}"
    if dom == "*" and month == "*":
        return f"{_days(dow)} at {at}"
    if dom.isdigit() and month == "*" and dow == "*":
        return f"monthly on day {dom} at {at}"
    return fields


def _day(token: str) -> str:
    index = int(token) if token.isdigit() else _DAYS.index(token.lower())
    return _DAY_TEXT[index % 7]


def _days(dow: str) -> str:
    try:
        if "-" in dow and "," not in dow and "/" not in dow:
            a, b = dow.split("-")
            return f"{_day(a)} to {_day(b)}"
        if "/" not in dow:
            names = [_day(t) for t in dow.split(",")]
            return "on " + ", ".join(names) if len(names) > 1 else f"weekly on {names[0]}"
    except (ValueError, IndexError):
        pass
    return f"on days of week {dow}"
