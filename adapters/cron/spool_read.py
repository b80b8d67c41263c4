"""Reading the spool of ``accord exec`` (see :mod:`adapters.cron.spool` for its layout)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .spool import iso, proc_start_time
from .states import native_state, signal_name, state_value

__all__ = [
    "DAMAGED_DIR",
    "SpoolRun",
    "inspect_run",
    "iter_runs",
    "read_run",
    "record_dict",
    "running_info",
]

_MESSAGE_MAX = 2000
DAMAGED_DIR = "damaged"  # where the agent sets damaged run files aside, in the spool
SETTLE_SECONDS = 60.0  # a file without a complete start this old is not being written


class SpoolRun:
    """A run as its file tells it."""

    def __init__(
        self,
        path: Path,
        start: dict[str, Any],
        end: dict[str, Any] | None,
        events: int,
    ) -> None:
        self.path = path
        self.start = start
        self.end = end
        self.events = events  # complete events in the file

    @property
    def run_id(self) -> str:
        return str(self.start["run"])

    @property
    def started_ns(self) -> int:
        try:
            return int(self.path.name.split("-", 1)[0])
        except ValueError:
            return 0

    def wrapper_alive(self) -> bool:
        """Whether the wrapper that writes this run still runs (same host only)."""
        pid, started = self.start.get("pid"), self.start.get("pid_start")
        if not isinstance(pid, int):
            return False
        now = proc_start_time(pid)
        return now is not None and (started is None or now == started)


def read_run(path: Path) -> SpoolRun | None:
    """Parse a run file; None if it holds no complete start event (yet)."""
    return inspect_run(path)[0]


def inspect_run(
    path: Path, *, now: float | None = None, settle: float = SETTLE_SECONDS
) -> tuple[SpoolRun | None, str | None]:
    """Parse a run file and say what is damaged in it, if anything.

    Damage: a complete line that is not a spool event (a corrupted record), no readable
    start event in a file that is not being written (``settle`` seconds since its last
    write), or an unfinished last record whose writer is gone (a file truncated
    mid-record). An unfinished last record of a live wrapper is a write in progress, not
    damage. The run (None without a readable start) is returned with the damage.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        mtime = os.stat(path).st_mtime
    except OSError:
        return None, None
    cut = data.rfind(b"\n") + 1
    complete, tail = data[:cut], data[cut:]
    start: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    events = 0
    bad: list[int] = []
    for n, raw in enumerate(complete.splitlines(), 1):
        try:
            event = json.loads(raw)
        except ValueError:
            bad.append(n)
            continue
        if not isinstance(event, dict) or event.get("event") not in ("start", "end"):
            bad.append(n)
            continue
        events += 1
        if event.get("event") == "start" and start is None:
            start = event
        elif event.get("event") == "end":
            end = event
    problems = [f"line {n} is not a spool event" for n in bad[:3]]
    if len(bad) > 3:
        problems.append(f"and {len(bad) - 3} more damaged lines")
    if start is None or not isinstance(start.get("run"), str):
        age = (time.time() if now is None else now) - mtime
        if complete:
            problems.insert(0, "no readable start event")
        elif age >= settle:
            problems.insert(
                0,
                f"truncated before its first record was complete ({len(tail)} bytes)"
                if tail
                else "empty",
            )
        return None, ("; ".join(problems) or None)
    run = SpoolRun(path, start, end, events)
    if tail and (end is not None or not run.wrapper_alive()):
        problems.append(
            f"truncated mid-record after line {len(complete.splitlines())} "
            f"({len(tail)} bytes of an unfinished event)"
        )
    return run, ("; ".join(problems) or None)


def iter_runs(spool: Path) -> Iterator[Path]:
    """Run files of a spool directory, oldest start first."""
    try:
        names = sorted(n for n in os.listdir(spool / "runs") if n.endswith(".jsonl"))
    except OSError:
        return
    for name in names:
        yield spool / "runs" / name


def running_info(spool: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Running-state files of a spool: (path, {run, pid, pgid, ...})."""
    try:
        names = sorted(os.listdir(spool / "running"))
    except OSError:
        return
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        path = spool / "running" / name
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(info, dict):
            yield path, info


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def _message(end: Mapping[str, Any]) -> str | None:
    parts: list[str] = []
    if end.get("error"):
        parts.append(str(end["error"]))
    sig, code, dur = end.get("signal"), end.get("exit"), end.get("duration")
    took = f" after {_duration(float(dur))}" if isinstance(dur, int | float) else ""
    if isinstance(sig, int):
        parts.append(f"killed by {signal_name(sig)}{took}")
    elif isinstance(code, int):
        parts.append(f"exited {code}{took}")
    tail = end.get("tail")
    if tail:
        parts.append("last output:\n" + str(tail))
    text = "; ".join(parts)
    return text[-_MESSAGE_MAX:] or None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def record_dict(run: SpoolRun, job_id: str, *, lost: bool = False) -> dict[str, Any]:
    """The run as a RunRecord in JSON form (validated with pydantic by its readers).

    ``lost`` marks a run without an end whose wrapper is gone; its end is taken to be the
    last write to its file.
    """
    start, end = run.start, run.end
    trigger = start.get("trigger")
    out: dict[str, Any] = {
        "native_id": run.run_id,
        "job_native_id": job_id,
        "trigger": trigger if trigger in ("schedule", "manual") else "unknown",
        "actor": start.get("user"),
        "started_at": start.get("at"),
    }
    if end is not None:
        native = native_state(_int(end.get("exit")), _int(end.get("signal")))
        out.update(ended_at=end.get("at"), message=_message(end))
    elif lost:
        native = "lost"
        try:
            last_write = run.path.stat().st_mtime
        except OSError:
            last_write = run.started_ns / 1e9
        out.update(
            ended_at=iso(last_write),
            message="the wrapper stopped without recording the end "
            "(killed with SIGKILL, or the host restarted)",
        )
    else:
        native = "started"
    out.update(state=state_value(native), native_state=native)
    return out
