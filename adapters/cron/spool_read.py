"""Reading the spool of ``accord exec`` (see :mod:`adapters.cron.spool` for its layout)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .spool import iso, proc_start_time
from .states import native_state, signal_name, state_value

__all__ = ["SpoolRun", "iter_runs", "read_run", "record_dict", "running_info"]

_MESSAGE_MAX = 2000


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
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    complete = data[: data.rfind(b"\n") + 1]
    start: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    events = 0
    for raw in complete.splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        events += 1
        if event.get("event") == "start" and start is None:
            start = event
        elif event.get("event") == "end":
            end = event
    if start is None or not isinstance(start.get("run"), str):
        return None
    return SpoolRun(path, start, end, events)


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
