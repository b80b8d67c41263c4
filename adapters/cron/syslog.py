"""Runs of crontab lines seen in the cron daemon's log (lines not wrapped by accord exec).

Debian's cron, started with ``-L 15`` and logging through rsyslog, writes::

    CRON[4897]: (root) CMD ([4903] /usr/local/bin/backup.sh)
    CRON[4897]: (CRON) error (grandchild #4903 failed with exit status 3)
    CRON[4897]: (root) END ([4903] /usr/local/bin/backup.sh)

that is the start, the exit status (only when it is not 0) and the end. The log level
decides what is there: 1 = starts (cron's default), 2 = ends, 4 = non-zero exit statuses,
8 = the job's pid. Without 2 only starts are known, and without 4 an end says nothing
about success: the adapter reports that in the source's health instead of guessing.

The log is read incrementally: a cursor is the file's inode and an offset, and a rotated
file (``cron.log`` → ``cron.log.1``) is finished before the new one is read. Runs still
open at the end of a read are carried in :class:`Pairing`, which is serialisable, so the
agent can keep it across restarts.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

__all__ = [
    "CronEvent",
    "FileCursor",
    "Pairing",
    "SyslogRun",
    "cron_log_level",
    "interpret",
    "parse_line",
    "read_new_lines",
]

_MAX_READ = 8 * 1024 * 1024
_MAX_OPEN = 5000

_LINE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\S+|[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d)\s+"
    r"(?P<host>\S+)\s+(?P<ident>CRON|cron|CROND|crond)\[(?P<pid>\d+)\]:\s+"
    r"\((?P<user>[^)]*)\)\s+(?P<event>[A-Za-z]+)\s+\((?P<detail>.*)\)\s*$"
)
_DETAIL_PID = re.compile(r"^\[(\d+)\] (.*)$", re.DOTALL)
_STATUS = re.compile(
    r"grandchild #(\d+) (?:failed with exit status (\d+)|terminated by signal (\d+))"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


@dataclass(frozen=True)
class CronEvent:
    """One job event from the log."""

    kind: str  # "start", "end", "status"
    at: datetime
    syslog_pid: int
    user: str = ""
    command: str = ""
    job_pid: int | None = None
    exit: int | None = None
    signal: int | None = None


def _timestamp(text: str, reference: datetime, tz: tzinfo) -> datetime | None:
    if text[0].isdigit():
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return value if value.tzinfo else value.replace(tzinfo=tz)
    # "Nov 25 08:47:26": no year; take the one that puts it not in the future.
    month = _MONTHS.get(text[:3])
    if month is None:
        return None
    try:
        day, clock = int(text[4:6]), text[7:]
        hour, minute, second = (int(p) for p in clock.split(":"))
        local_ref = reference.astimezone(tz)
        value = datetime(local_ref.year, month, day, hour, minute, second, tzinfo=tz)
        if value > local_ref + timedelta(days=1):
            value = value.replace(year=local_ref.year - 1)
    except ValueError:
        return None
    return value


def parse_line(line: str, *, reference: datetime, tz: tzinfo) -> CronEvent | None:
    """One log line → a job event, or None for anything else."""
    m = _LINE.match(line)
    if not m:
        return None
    at = _timestamp(m.group("ts"), reference, tz)
    if at is None:
        return None
    return interpret(m.group("user"), m.group("event"), m.group("detail"), at, int(m.group("pid")))


def interpret(user: str, event: str, detail: str, at: datetime, pid: int) -> CronEvent | None:
    """``(user) EVENT (detail)`` → a job event."""
    if event in ("CMD", "END", "CMDEND"):
        job_pid: int | None = None
        d = _DETAIL_PID.match(detail)
        if d:
            job_pid, detail = int(d.group(1)), d.group(2)
        kind = "start" if event == "CMD" else "end"
        if kind == "start" and job_pid is None:
            job_pid = pid  # without -L 8 the start is logged by the job's own process
        return CronEvent(kind, at, pid, user=user, command=detail.strip(), job_pid=job_pid)
    if user == "CRON" and event == "error":
        s = _STATUS.search(detail)
        if s:
            return CronEvent(
                "status",
                at,
                pid,
                job_pid=int(s.group(1)),
                exit=int(s.group(2)) if s.group(2) else None,
                signal=int(s.group(3)) if s.group(3) else None,
            )
    return None


@dataclass
class SyslogRun:
    """A run as cron's log tells it."""

    key: str  # start time and job pid: unique in one log
    user: str
    command: str
    started_at: datetime
    job_pid: int | None
    ended_at: datetime | None = None
    exit: int | None = None
    signal: int | None = None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


@dataclass
class Pairing:
    """Turns events into runs; carries the runs still open between reads."""

    open: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → run fields
    statuses: dict[str, list[int | None]] = field(default_factory=dict)  # job pid → exit, sig
    middle: dict[str, int] = field(default_factory=dict)  # logging pid → job pid

    def feed(self, events: list[CronEvent]) -> list[SyslogRun]:
        """Apply events in log order; return every run they started or ended."""
        changed: dict[str, SyslogRun] = {}
        for ev in events:
            if ev.kind == "start":
                run = SyslogRun(
                    key=f"{ev.at.strftime('%Y%m%dT%H%M%S')}:{ev.job_pid}",
                    user=ev.user,
                    command=ev.command,
                    started_at=ev.at,
                    job_pid=ev.job_pid,
                )
                self.open[run.key] = _dump(run)
                changed[run.key] = run
            elif ev.kind == "status" and ev.job_pid is not None:
                self.statuses[str(ev.job_pid)] = [ev.exit, ev.signal]
                self.middle[str(ev.syslog_pid)] = ev.job_pid
            elif ev.kind == "end":
                job_pid = ev.job_pid
                if job_pid is None:
                    job_pid = self.middle.pop(str(ev.syslog_pid), None)
                key = self._find(ev, job_pid)
                if key is None:
                    continue  # its start is older than what we read
                run = _load(self.open.pop(key))
                run.ended_at = ev.at
                status = self.statuses.pop(str(run.job_pid), None)
                if status is not None:
                    run.exit, run.signal = status
                changed[key] = run
        self._bound()
        return list(changed.values())

    def _find(self, ev: CronEvent, job_pid: int | None) -> str | None:
        if job_pid is not None:
            for key, run in self.open.items():
                if run["job_pid"] == job_pid:
                    return key
        # Oldest open run of the same user and command.
        for key, run in self.open.items():
            if run["user"] == ev.user and run["command"] == ev.command:
                return key
        return None

    def _bound(self) -> None:
        while len(self.open) > _MAX_OPEN:
            self.open.pop(next(iter(self.open)))
        while len(self.statuses) > _MAX_OPEN:
            self.statuses.pop(next(iter(self.statuses)))
        while len(self.middle) > _MAX_OPEN:
            self.middle.pop(next(iter(self.middle)))

    def to_json(self) -> dict[str, Any]:
        return {"open": self.open, "statuses": self.statuses, "middle": self.middle}

    @classmethod
    def from_json(cls, data: Any) -> Pairing:
        if not isinstance(data, dict):
            return cls()
        return cls(
            open=dict(data.get("open") or {}),
            statuses=dict(data.get("statuses") or {}),
            middle=dict(data.get("middle") or {}),
        )


def _dump(run: SyslogRun) -> dict[str, Any]:
    out = asdict(run)
    out["started_at"] = run.started_at.isoformat()
    out["ended_at"] = run.ended_at.isoformat() if run.ended_at else None
    return out


def _load(data: dict[str, Any]) -> SyslogRun:
    return SyslogRun(
        key=data["key"],
        user=data["user"],
        command=data["command"],
        started_at=datetime.fromisoformat(data["started_at"]),
        job_pid=data.get("job_pid"),
    )


@dataclass(frozen=True)
class FileCursor:
    """Where reading a log file stopped: its inode and the offset after the last line."""

    inode: int
    offset: int

    def to_json(self) -> list[int]:
        return [self.inode, self.offset]

    @classmethod
    def from_json(cls, data: Any) -> FileCursor | None:
        if isinstance(data, list) and len(data) == 2 and all(isinstance(x, int) for x in data):
            return cls(data[0], data[1])
        return None


def _read_from(path: Path, offset: int, budget: int) -> tuple[list[str], int]:
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read(budget)
    complete = data[: data.rfind(b"\n") + 1]
    lines = complete.decode("utf-8", errors="replace").splitlines()
    return lines, offset + len(complete)


def read_new_lines(
    path: Path, cursor: FileCursor | None
) -> tuple[list[str], FileCursor | None, bool]:
    """Complete lines written since ``cursor``; the new cursor; whether more is waiting.

    ``cursor`` None reads the previous (rotated) file and then the current one from the
    start. A new inode means the file was rotated: the rest of the old one (now
    ``<path>.1``) is read first. A file shorter than the offset was truncated.
    """
    try:
        st = path.stat()
    except OSError:
        return [], cursor, False
    lines: list[str] = []
    budget = _MAX_READ
    rotated = Path(f"{path}.1")
    if cursor is None or cursor.inode != st.st_ino:
        old_offset = cursor.offset if cursor is not None else 0
        try:
            rst = rotated.stat()
            if cursor is None or rst.st_ino == cursor.inode:
                got, end = _read_from(rotated, old_offset, budget)
                if end - old_offset >= budget:  # more of the old file to read first
                    return got, FileCursor(rst.st_ino, end), True
                lines.extend(got)
                budget -= end - old_offset
        except OSError:
            pass
        cursor = FileCursor(st.st_ino, 0)
    elif st.st_size < cursor.offset:
        cursor = FileCursor(st.st_ino, 0)
    got, end = _read_from(path, cursor.offset, budget)
    lines.extend(got)
    more = os.path.getsize(path) > end and end - cursor.offset >= budget
    return lines, FileCursor(st.st_ino, end), more


def cron_log_level() -> int | None:
    """The ``-L`` level of this host's running cron daemon (Debian's default is 1); None
    when no cron daemon can be found."""
    for pidfile in (Path("/run/crond.pid"), Path("/var/run/crond.pid")):
        try:
            pid = int(pidfile.read_text().strip())
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        if not args or not os.path.basename(args[0]).startswith("cron"):
            continue
        for i, arg in enumerate(args):
            if arg == "-L" and i + 1 < len(args) and args[i + 1].isdigit():
                return int(args[i + 1])
            if arg.startswith("-L") and arg[2:].isdigit():
                return int(arg[2:])
        return 1
    return None
