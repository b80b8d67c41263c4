"""What a cron host shows: its crontabs, the runs in the spools and in cron's log, and the
health of that picture. Shared by the local-mode adapter and the agent.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from gateway.model import HealthProblem, HealthStatus, RunRecord, SourceHealth, Trigger

from . import spool as _spool
from .config import CronConfig
from .missed import Watched
from .parser import CronLine, Discovery, discover, logged_command
from .spool_read import SpoolRun, record_dict
from .syslog import FileCursor, Pairing, SyslogRun, cron_log_level, parse_line, read_new_lines

__all__ = ["HostReader", "JobIndex", "LogRead", "level_note", "syslog_record"]

LEVEL_START, LEVEL_END, LEVEL_FAILED = 1, 2, 4


class JobIndex:
    """Finds the crontab line a run belongs to."""

    def __init__(self, lines: Iterable[CronLine]) -> None:
        self.lines: dict[str, CronLine] = {}
        self._argv: dict[tuple[str, tuple[str, ...]], list[CronLine]] = {}
        self._logged: dict[tuple[str, str], list[CronLine]] = {}
        for line in lines:
            self.lines[line.native_id] = line
            if line.wrapped is not None and line.wrapped.argv is not None:
                self._argv.setdefault((line.user, line.wrapped.argv), []).append(line)
            self._logged.setdefault((line.user, logged_command(line.command)), []).append(line)

    def for_spool(self, start: Mapping[str, Any]) -> str | None:
        """The job id of a wrapped run: its --job, else the line with the same argv."""
        job = start.get("job")
        if isinstance(job, str) and job:
            return job
        argv = start.get("argv")
        if not isinstance(argv, list):
            return None
        key = (str(start.get("user", "")), tuple(str(a) for a in argv))
        line = _pick(self._argv.get(key, []), _parse_time(start.get("at")))
        return line.native_id if line else None

    def for_log(self, user: str, command: str, at: datetime) -> CronLine | None:
        """The line cron logged as ``(user) CMD (command)`` at ``at``."""
        return _pick(self._logged.get((user, command.strip()), []), at)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _pick(candidates: Sequence[CronLine], at: datetime | None) -> CronLine | None:
    """Among lines with the same command, the one whose schedule fired at ``at``."""
    if len(candidates) <= 1 or at is None:
        return candidates[0] if candidates else None
    for line in candidates:
        if line.schedule is None or line.schedule.reboot:
            continue
        local = at.astimezone(ZoneInfo(line.timezone)).replace(second=0, microsecond=0)
        if line.schedule.next_runs(local - timedelta(seconds=1))[0] == local:
            return line
    return candidates[0]


def syslog_record(run: SyslogRun, job_id: str, host: str, level: int) -> RunRecord:
    """A run seen in cron's log, as a RunRecord (what the log level allows to say)."""
    if not run.ended:
        native = "started" if level & LEVEL_END else "start only"
    elif run.signal is not None:
        native = f"signal {run.signal}"
    elif run.exit is not None:
        native = f"exit {run.exit}"
    else:
        native = "exit 0" if level & LEVEL_FAILED else "ended"
    from .states import run_state

    message = None
    if native == "start only":
        message = "cron logs only the start of jobs (no -L 2): the end is not known"
    elif native == "ended":
        message = "cron does not log exit statuses (no -L 4): the outcome is not known"
    return RunRecord(
        native_id=f"{host}:cron:{run.key}",
        job_native_id=job_id,
        state=run_state(native),
        native_state=native,
        trigger=Trigger.SCHEDULE,
        actor=run.user,
        started_at=run.started_at.astimezone(UTC),
        ended_at=run.ended_at.astimezone(UTC) if run.ended_at else None,
        message=message,
    )


def level_note(level: int) -> str | None:
    """What cron's log level hides, or None when it logs everything Accord needs."""
    if not level & LEVEL_START:
        return (
            "cron does not log job starts (its -L level lacks 1): runs of lines not wrapped "
            "by accord exec are not seen"
        )
    if not level & LEVEL_END:
        return (
            "cron logs only the start of jobs (-L 1): runs of lines not wrapped by accord "
            'exec are reported without their end; set EXTRA_OPTS="-L 15" in '
            "/etc/default/cron or wrap the lines with accord exec"
        )
    if not level & LEVEL_FAILED:
        return (
            "cron does not log exit statuses (no -L 4): runs of lines not wrapped by accord "
            'exec end with an unknown outcome; set EXTRA_OPTS="-L 15" in /etc/default/cron'
        )
    return None


@dataclass
class LogRead:
    """Runs read from cron's log in one pass, by line."""

    reported: list[tuple[SyslogRun, CronLine]] = field(default_factory=list)  # not wrapped
    starts: list[tuple[str, datetime]] = field(default_factory=list)  # (job id, start)
    unmatched: int = 0
    cursor: FileCursor | None = None
    more: bool = False
    error: str | None = None


class HostReader:
    """Reads one cron host as a Source's settings describe it."""

    def __init__(self, config: CronConfig) -> None:
        self.config = config
        self.host = config.host_name
        self.zone = config.zone
        self._level_detected: int | None = None

    @property
    def log_level(self) -> int:
        """cron's -L level: configured, else read from the running daemon, else Debian's 1."""
        if self.config.log_level is not None:
            return self.config.log_level
        if self._level_detected is None:
            self._level_detected = cron_log_level() or 1
        return self._level_detected

    def discover(self) -> Discovery:
        return discover(
            self.config.root_path,
            host=self.host,
            timezone=self.zone,
            check_owner=self.config.root_path == Path("/"),
        )

    def spool_dirs(self, discovery: Discovery) -> list[Path]:
        """Where ``accord exec`` of these crontabs writes (configured, or discovered)."""
        if self.config.spool is not None:
            return [Path(p) for p in self.config.spool]
        dirs = [Path(_spool.default_dir())]
        for line in discovery.lines:
            if line.wrapped is not None and line.wrapped.spool:
                dirs.append(Path(line.wrapped.spool))
                continue
            env = line.env_map
            if _spool.ENV_SPOOL_DIR not in env and "HOME" not in env:
                try:
                    env["HOME"] = pwd.getpwnam(line.user).pw_dir
                except KeyError:
                    continue
            dirs.append(Path(_spool.default_dir(env)))
        return list(dict.fromkeys(dirs))

    def spool_record(self, run: SpoolRun, index: JobIndex) -> RunRecord | None:
        job_id = index.for_spool(run.start)
        if job_id is None:
            return None
        lost = run.end is None and not run.wrapper_alive()
        try:
            return RunRecord.model_validate(record_dict(run, job_id, lost=lost))
        except ValidationError:
            return None  # a damaged file: nothing trustworthy to report

    def read_log(
        self, cursor: FileCursor | None, pairing: Pairing, index: JobIndex, now: datetime
    ) -> LogRead:
        """Read cron's log past ``cursor``, advancing ``pairing`` (the caller keeps both
        only once the result is safely used)."""
        out = LogRead(cursor=cursor)
        path = self.config.syslog_path()
        if path is None:
            return out
        try:
            lines, out.cursor, out.more = read_new_lines(path, cursor)
        except OSError as exc:
            out.error = f"cannot read cron's log {path}: {exc.strerror or exc}"
            return out
        tz = ZoneInfo(self.zone)
        events = [e for e in (parse_line(x, reference=now, tz=tz) for x in lines) if e]
        for run in pairing.feed(events):
            line = index.for_log(run.user, run.command, run.started_at)
            if line is None:
                out.unmatched += 1
                continue
            out.starts.append((line.native_id, run.started_at))
            if line.wrapped is None:
                out.reported.append((run, line))
        return out

    def log_problem(self, discovery: Discovery) -> str | None:
        """Why runs of unwrapped lines cannot be (fully) seen, if they cannot."""
        unwrapped = [x for x in discovery.lines if x.wrapped is None]
        if not unwrapped:
            return None
        path = self.config.syslog_path()
        if self.config.syslog == "off":
            return (
                f"{len(unwrapped)} crontab lines are not wrapped by accord exec and cron's "
                "log is off: their runs are not seen"
            )
        if path is None:
            return (
                f"{len(unwrapped)} crontab lines are not wrapped by accord exec and no cron "
                "log was found (/var/log/cron.log, /var/log/syslog): their runs are not seen"
            )
        if not os.access(path, os.R_OK):
            return f"cannot read cron's log {path}: permission denied"
        return level_note(self.log_level)

    def watched(self, discovery: Discovery, since: Mapping[str, datetime]) -> list[Watched]:
        """Jobs whose starts are observable, with the time watching began."""
        log_ok = self.config.syslog_path() is not None and self.log_level & LEVEL_START
        out: list[Watched] = []
        for line in discovery.lines:
            if line.paused or line.problems or line.schedule is None or line.schedule.reboot:
                continue
            if line.wrapped is None and not log_ok:
                continue
            if line.native_id in since:
                out.append(
                    Watched(line.native_id, line.schedule, line.timezone, since[line.native_id])
                )
        return out

    def health(
        self,
        discovery: Discovery,
        *,
        extra: Sequence[str] = (),
        details: Mapping[str, Any] | None = None,
    ) -> SourceHealth:
        messages = list(discovery.messages)
        problem = self.log_problem(discovery)
        if problem:
            messages.append(problem)
        messages.extend(extra)
        bad_lines = sum(1 for x in discovery.lines if x.problems)
        info: dict[str, Any] = {
            "host": self.host,
            "timezone": self.zone,
            "files": discovery.files,
            "jobs": len(discovery.lines),
            "wrapped": sum(1 for x in discovery.lines if x.wrapped is not None),
            "lines_with_problems": bad_lines,
            "cron_log": str(self.config.syslog_path() or ""),
            "cron_log_level": self.log_level,
            "messages": messages,
            **(details or {}),
        }
        problems = list(discovery.problems)
        for x in discovery.lines:
            for why in x.problems:
                if why.startswith("cron ignores this") or (
                    x.schedule is None and not x.paused and why == x.problems[0]
                ):
                    continue  # the file's own problem says it, with the line at fault
                problems.append(
                    HealthProblem(
                        message=f"{x.file.label} line {x.line_no}: {why}",
                        file=x.file.path,
                        line=x.line_no,
                        job=x.native_id,
                    )
                )
        problems.extend(HealthProblem(message=m) for m in [*([problem] if problem else []), *extra])
        if not messages:
            return SourceHealth(status=HealthStatus.OK, details=info, problems=tuple(problems))
        text = (
            messages[0] if len(messages) == 1 else f"{messages[0]} (and {len(messages) - 1} more)"
        )
        return SourceHealth(
            status=HealthStatus.DEGRADED, message=text, details=info, problems=tuple(problems)
        )
