"""The cron adapter: a host's crontab lines as jobs, and their runs.

Two modes (``spec.mode``):

* ``local`` — the gateway runs on the cron host (or sees its files under ``root``). It
  reads the crontabs, the spools of ``accord exec``, cron's log, and computes missed
  runs; it can pause, resume, trigger and cancel.
* ``agent`` — ``accord agent`` runs on the host and pushes jobs and runs to
  ``POST /api/v1/sources/{name}/push``. The gateway cannot reach the host, so actions
  raise :class:`ActionNotSupported`; it does not poll.

Where runs come from: ``accord exec`` writes each run (start, exit code or signal,
duration, last output lines) to a spool; lines not wrapped are seen in cron's log (start,
end and exit status with ``cron -L 15``); a scheduled start that did not happen within
the grace period is a missed run.

Cursors of ``list_runs`` count changes seen by this adapter instance; a cursor from an
earlier instance (the gateway restarted) starts over, and the runs are reported again —
the gateway's upserts make that harmless.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from adapters.base import AdapterContext, BaseAdapter
from gateway.model import (
    ActionNotSupported,
    AdapterInfo,
    AdapterUnavailable,
    Capability,
    HealthStatus,
    JobRecord,
    NotFound,
    RunPage,
    RunRecord,
    RunState,
    SourceHealth,
    Trigger,
)
from gateway.model.calendar import Calendar, calendar_from_cron

from . import actions
from . import spool as _spool
from .config import CronConfig
from .missed import missed_runs
from .observe import HostReader, JobIndex, syslog_record
from .parser import CronLine, Discovery
from .schedule import ScheduleError, parse_schedule
from .spool_read import inspect_run, iter_runs
from .syslog import FileCursor, Pairing

_log = logging.getLogger(__name__)

__all__ = ["CronAdapter", "CronAgentAdapter"]

_PAGE = 500
_STARTS_KEPT = 500
_CANCEL_WAIT = 5.0
_NEVER = datetime.max.replace(tzinfo=UTC)  # a spool file the retention cannot remove


@dataclass
class _History:
    """Runs this adapter has seen, each with the sequence number of its last change."""

    runs: dict[str, RunRecord] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    counter: int = 0
    # spool file → (size when read, when its run ended; None while it runs)
    files: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)
    cursor: FileCursor | None = None
    pairing: Pairing = field(default_factory=Pairing)
    since: dict[str, datetime] = field(default_factory=dict)  # job → watched since
    starts: dict[str, list[datetime]] = field(default_factory=dict)  # job → observed starts
    seen: set[str] = field(default_factory=set)  # every job id listed so far

    def prune(self, before: datetime) -> None:
        """Forget finished runs that ended before ``before`` (the retention period), and
        remove their spool files: a finished file is read once and then skipped, so
        without this the spool and this index would grow for as long as the host runs."""
        for run_id, record in list(self.runs.items()):
            end = record.ended_at or record.queued_at
            if record.state.terminal and end is not None and end < before:
                self.drop(run_id)
        for key, (size, ended) in list(self.files.items()):
            if ended is None or ended >= before:
                continue
            try:
                os.unlink(key)
            except FileNotFoundError:
                pass
            except OSError as exc:
                # Not ours to remove (permissions): skipped from now on, and said once.
                _log.warning("cannot remove the finished spool file %s: %s", key, exc)
                self.files[key] = (size, _NEVER)
                continue
            del self.files[key]

    def put(self, record: RunRecord) -> None:
        if self.runs.get(record.native_id) == record:
            return
        self.counter += 1
        self.runs[record.native_id] = record
        self.seq[record.native_id] = self.counter

    def drop(self, run_id: str) -> None:
        self.runs.pop(run_id, None)
        self.seq.pop(run_id, None)

    def started(self, job_id: str, at: datetime) -> None:
        seen = self.starts.setdefault(job_id, [])
        if at not in seen:
            seen.append(at)
            seen.sort()
            del seen[:-_STARTS_KEPT]


def _epoch() -> str:
    return f"{int(time.time()):x}{secrets.token_hex(2)}"


class CronAdapter(BaseAdapter):
    """Local mode (see the module docstring). An ``agent``-mode config builds a
    :class:`CronAgentAdapter` instead."""

    info: ClassVar[AdapterInfo] = AdapterInfo(
        type="cron",
        display_name="Cron",
        capabilities=frozenset(
            {
                Capability.TRIGGER,
                Capability.CANCEL,
                Capability.PAUSE,
                Capability.RESUME,
                Capability.PUSH,
            }
        ),
        description="Unix cron: crontab lines, runs from accord exec and cron's log, missed runs",
    )
    config_model: ClassVar[type[BaseModel]] = CronConfig
    reports_missed_runs: ClassVar[bool] = True  # adapters/cron/missed.py

    @classmethod
    def schedule_calendar(
        cls,
        *,
        job_id: str,
        expression: str,
        timezone: str | None,
        next_run_at: datetime | None,
    ) -> Calendar | None:
        """Vixie cron: five fields or an ``@special`` (``@reboot`` has no calendar), on the
        wall clock of the line's ``CRON_TZ`` (else the daemon's zone)."""
        return _cron_calendar(expression, timezone or "UTC")

    # The gateway polls local-mode sources (and also accepts pushes from accord exec).
    polls: ClassVar[bool] = True

    @classmethod
    def capabilities_for(cls, config: BaseModel) -> frozenset[Capability]:
        if isinstance(config, CronConfig) and config.mode == "agent":
            return CronAgentAdapter.info.capabilities
        return CronAdapter.info.capabilities

    def __new__(cls, ctx: AdapterContext, config: BaseModel) -> CronAdapter:
        if cls is CronAdapter and isinstance(config, CronConfig) and config.mode == "agent":
            return super().__new__(CronAgentAdapter)
        return super().__new__(cls)

    def __init__(self, ctx: AdapterContext, config: BaseModel) -> None:
        super().__init__(ctx, config)
        assert isinstance(config, CronConfig)
        self.cfg = config
        self.reader = HostReader(config)
        self._history = _History()
        self._epoch = _epoch()
        self._lock = threading.Lock()
        self._spools: list[Path] = []
        self._log_error: str | None = None
        self._unmatched = 0
        self._pruned_at: datetime | None = None
        # Damaged run files in the spools (path → what is wrong), until they are removed.
        self._damage: dict[str, str] = {}

    # -- reading ---------------------------------------------------------------------

    def _discover(self) -> Discovery:
        root = self.cfg.root_path
        if not root.is_dir():
            raise AdapterUnavailable(f"{root} does not exist or is not a directory")
        return self.reader.discover()

    def _watch(self, discovery: Discovery, now: datetime) -> None:
        """Start watching new or resumed lines; forget paused, broken or removed ones."""
        active = {
            x.native_id for x in discovery.lines if not x.paused and not x.problems and x.schedule
        }
        h = self._history
        for job_id in list(h.since):
            if job_id not in active:
                del h.since[job_id]
        first = min(now, self.cfg.watch_from) if self.cfg.watch_from else now
        for job_id in active:
            if job_id not in h.since:
                # A line seen for the first time may be watched from watchFrom; a resumed
                # one only from now.
                h.since[job_id] = first if job_id not in h.seen else now
        h.seen.update(x.native_id for x in discovery.lines)

    def _refresh(self) -> Discovery:
        now = datetime.now(UTC)
        with self._lock:
            discovery = self._discover()
            self._watch(discovery, now)
            index = JobIndex(discovery.lines)
            self._spools = self.reader.spool_dirs(discovery)
            present: set[str] = set()
            for directory in self._spools:
                for path in iter_runs(directory):
                    present.add(str(path))
                    self._read_spool_file(path, index, now)
            self._damage = {k: v for k, v in self._damage.items() if k in present}
            self._read_log(index, now)
            h = self._history
            # At most once an hour (a short retention: four times per retention period).
            every = min(timedelta(hours=1), self.cfg.retention / 4)
            if self._pruned_at is None or now - self._pruned_at > every:
                h.prune(now - self.cfg.retention)
                self._pruned_at = now
            for record in missed_runs(
                self.reader.watched(discovery, h.since),
                h.starts,
                now=now,
                grace=self.cfg.grace,
                lookback=self.cfg.lookback,
            ):
                if record.native_id not in h.runs:
                    h.put(record)
            return discovery

    def _read_spool_file(self, path: Path, index: JobIndex, now: datetime) -> None:
        h = self._history
        key = str(path)
        try:
            size = path.stat().st_size
        except OSError:
            h.files.pop(key, None)
            return
        cached = h.files.get(key)
        if cached is not None and cached[0] == size and cached[1] is not None:
            return  # finished and read: unchanged until the retention period removes it
        run, damage = inspect_run(path)
        if run is not None and damage and run.end is None and run.wrapper_alive():
            damage = None  # its wrapper still writes: look again when it ended
        if damage:
            if self._damage.get(key) != damage:
                _log.error("damaged spool file %s: %s", path, damage)
            self._damage[key] = damage
        else:
            self._damage.pop(key, None)
        if run is None:
            return
        record = self.reader.spool_record(run, index)
        ended = None if run.end is None else (record.ended_at if record else None) or now
        h.files[key] = (size, ended)
        if record is None:
            return
        if damage:
            # The intact part is delivered, and says what was lost.
            note = f"its spool file is damaged ({damage})"
            message = f"{record.message}; {note}" if record.message else note
            record = record.model_copy(update={"message": message})
        if record.started_at is not None:
            h.started(record.job_native_id, record.started_at)
        if (
            run.end is not None
            and record.ended_at is not None
            and now - record.ended_at > self.cfg.retention
        ):
            with contextlib.suppress(OSError):
                path.unlink()
            h.files.pop(key, None)
            h.drop(record.native_id)
            return
        h.put(record)

    def _read_log(self, index: JobIndex, now: datetime) -> None:
        h = self._history
        self._log_error = None
        for _ in range(50):  # bounded: 8 MB of log per round
            read = self.reader.read_log(h.cursor, h.pairing, index, now)
            h.cursor = read.cursor
            self._log_error = read.error
            self._unmatched += read.unmatched
            for job_id, at in read.starts:
                h.started(job_id, at)
            for run, line in read.reported:
                h.put(syslog_record(run, line.native_id, self.reader.host, self.reader.log_level))
            if not read.more:
                break

    async def check(self) -> SourceHealth:
        discovery = await self.threads.run(self._refresh)
        extra = [self._log_error] if self._log_error else []
        with self._lock:
            damaged = sorted(self._damage.items())
        if damaged:
            shown = "; ".join(f"{Path(p).name}: {why}" for p, why in damaged[:3])
            more = f"; and {len(damaged) - 3} more" if len(damaged) > 3 else ""
            extra.append(
                f"{len(damaged)} damaged spool file(s) ({shown}{more}); what was intact "
                "in them was read; remove them once inspected"
            )
        return self.reader.health(
            discovery,
            extra=extra,
            details={
                "spools": [str(p) for p in self._spools],
                "mode": "local",
                # runs in cron's log of commands no crontab line has (any more)
                "unmatched_log_runs": self._unmatched,
            },
        )

    async def list_jobs(self) -> AsyncIterator[JobRecord]:
        discovery = await self.threads.run(self._discover)
        now = datetime.now(UTC)
        with self._lock:
            self._watch(discovery, now)
        for line in discovery.lines:
            yield line.to_record(now)

    async def list_runs(self, cursor: str | None) -> RunPage:
        await self.threads.run(self._refresh)
        after = 0
        if cursor:
            epoch, _, number = cursor.partition(":")
            if epoch == self._epoch and number.isdigit():
                after = int(number)
        with self._lock:
            h = self._history
            changed = sorted((s, rid) for rid, s in h.seq.items() if s > after)
            page = changed[:_PAGE]
            runs = tuple(h.runs[rid] for _, rid in page)
        last = page[-1][0] if page else after
        return RunPage(runs=runs, cursor=f"{self._epoch}:{last}", more=len(changed) > _PAGE)

    async def get_runs(self, native_ids: Sequence[str]) -> list[RunRecord]:
        await self.threads.run(self._refresh)
        with self._lock:
            return [self._history.runs[i] for i in native_ids if i in self._history.runs]

    # -- acting ----------------------------------------------------------------------

    def _line(self, job_id: str) -> CronLine:
        line = self._discover().by_id().get(job_id)
        if line is None:
            raise NotFound(f"no crontab line with id {job_id!r} on {self.reader.host}")
        return line

    async def pause(self, job_id: str) -> None:
        await self.threads.run(self._set_paused, job_id, True)

    async def resume(self, job_id: str) -> None:
        await self.threads.run(self._set_paused, job_id, False)

    def _set_paused(self, job_id: str, paused: bool) -> None:
        line = self._line(job_id)
        actions.set_paused(line, paused, host=self.reader.host, timezone=self.reader.zone)

    async def trigger(self, job_id: str, params: Mapping[str, Any]) -> RunRecord:
        if params:
            raise ActionNotSupported(
                f"cron jobs take no trigger parameters (got {', '.join(sorted(params))})"
            )
        return await self.threads.run(self._trigger, job_id)

    def _trigger(self, job_id: str) -> RunRecord:
        discovery = self._discover()
        line = discovery.by_id().get(job_id)
        if line is None:
            raise NotFound(f"no crontab line with id {job_id!r} on {self.reader.host}")
        now = time.time_ns()
        run_id = _spool.new_run_id(self.reader.host, now, os.getpid())
        actions.start_run(line, run_id, spool_dir=self._spool_for(line))
        record = RunRecord(
            native_id=run_id,
            job_native_id=job_id,
            state=RunState.QUEUED,
            native_state="triggered",
            trigger=Trigger.MANUAL,
            queued_at=datetime.fromtimestamp(now / 1e9, UTC),
            message="started by Accord",
        )
        with self._lock:
            self._history.put(record)
        return record

    def _spool_for(self, line: CronLine) -> Path:
        """Where accord exec records a run of ``line`` (what this adapter reads)."""
        if self.cfg.spool:
            return Path(self.cfg.spool[0])
        env = line.env_map
        if "HOME" not in env:
            import pwd

            with contextlib.suppress(KeyError):
                env["HOME"] = pwd.getpwnam(line.user).pw_dir
        return Path(_spool.default_dir(env))

    async def cancel(self, run_id: str) -> None:
        await self.threads.run(self._cancel, run_id)

    def _cancel(self, run_id: str) -> None:
        deadline = time.monotonic() + _CANCEL_WAIT
        while True:
            self._refresh()
            info = actions.find_running(self._spools, run_id)
            if info is not None:
                actions.cancel_run(info)
                return
            with self._lock:
                record = self._history.runs.get(run_id)
            if record is None:
                raise NotFound(f"no run {run_id!r} on {self.reader.host}")
            if record.state.terminal:
                return  # it ended before the signal: nothing to stop
            if record.native_state in ("started", "start only") and ":cron:" in run_id:
                raise ActionNotSupported(
                    "this run is of a crontab line not wrapped by accord exec: Accord does "
                    "not know its process group and cannot stop it"
                )
            if time.monotonic() > deadline:
                raise AdapterUnavailable(
                    f"run {run_id!r} has not reported its process yet; try again", retry_after=5
                )
            time.sleep(0.2)  # a triggered run that has not started its wrapper yet


_AGENT_ONLY = (
    "source {source!r} is fed by accord agent (mode: agent): the gateway cannot reach the "
    "host to {action}. Act on the host itself, or run the gateway there with mode: local"
)


class CronAgentAdapter(CronAdapter):
    """Agent mode: jobs and runs arrive by push; the gateway neither polls nor acts."""

    info: ClassVar[AdapterInfo] = AdapterInfo(
        type="cron",
        display_name="Cron (accord agent)",
        capabilities=frozenset({Capability.PUSH}),
        description="Unix cron hosts that push through accord agent",
    )
    polls: ClassVar[bool] = False

    def _refuse(self, action: str) -> ActionNotSupported:
        return ActionNotSupported(_AGENT_ONLY.format(source=self.ctx.source, action=action))

    async def check(self) -> SourceHealth:
        return SourceHealth(
            status=HealthStatus.UNKNOWN,
            message="jobs and runs are pushed by accord agent; the gateway does not poll",
        )

    async def list_jobs(self) -> AsyncIterator[JobRecord]:
        pushed: tuple[JobRecord, ...] = ()  # the agent pushes the inventory
        for job in pushed:
            yield job

    async def list_runs(self, cursor: str | None) -> RunPage:
        return RunPage(runs=(), cursor=cursor)

    async def get_runs(self, native_ids: Sequence[str]) -> list[RunRecord]:
        return []

    async def trigger(self, job_id: str, params: Mapping[str, Any]) -> RunRecord:
        raise self._refuse("trigger a job")

    async def cancel(self, run_id: str) -> None:
        raise self._refuse("cancel a run")

    async def pause(self, job_id: str) -> None:
        raise self._refuse("pause a job")

    async def resume(self, job_id: str) -> None:
        raise self._refuse("resume a job")


@lru_cache(maxsize=65_536)
def _cron_calendar(expression: str, tz: str) -> Calendar | None:
    """The calendar of one crontab schedule in one zone (shared by every job with it)."""
    try:
        schedule = parse_schedule(expression)
    except ScheduleError:
        return None
    if schedule.fields is None:
        return None
    try:
        return calendar_from_cron(schedule.fields, tz)
    except (ValueError, KeyError):
        return None
