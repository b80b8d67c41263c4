"""The local durable spool of ``accord exec``: what ran, written before anything is sent.

Layout of a spool directory::

    runs/<start ns>-<pid>-<random>.jsonl   one file per run, append-only, one JSON line
                                           per event ("start", then "end"), each fsynced
    running/<same stem>.json               the wrapper's pid and process group while the
                                           command runs (what ``cancel`` signals)

A reader ignores a last line without its newline (a writer in the middle of it). The
agent deletes a run file once the gateway acknowledged the run's end; in local mode the
gateway reads the files in place and old ones are pruned after the retention period.
Reading lives in :mod:`adapters.cron.spool_read`.

The directory is ``$ACCORD_SPOOL_DIR``, else ``$XDG_DATA_HOME/accord/spool``, else
``~/.local/share/accord/spool``.

``accord exec`` runs on every cron tick, so this module imports only what the
interpreter has already loaded at startup (``os``, ``time``).
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "ENV_CLOCK_SKEW",
    "ENV_SPOOL_DIR",
    "RunWriter",
    "clock_skew",
    "default_dir",
    "dumps",
    "iso",
    "new_run_id",
    "proc_start_time",
]

ENV_SPOOL_DIR = "ACCORD_SPOOL_DIR"
VERSION = 1
# Seconds added to this host's clock by ``accord exec`` and ``accord agent``: a test aid
# that stands in for a host whose clock is off (the gateway measures and allows for it).
ENV_CLOCK_SKEW = "ACCORD_TEST_CLOCK_SKEW"


def clock_skew(env: Mapping[str, str] | None = None) -> float:
    """The test clock skew of this process (0 unless ``ACCORD_TEST_CLOCK_SKEW`` is set)."""
    raw = (os.environ if env is None else env).get(ENV_CLOCK_SKEW)
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        return 0.0


def default_dir(env: Mapping[str, str] | None = None) -> str:
    """Where this user's wrapper writes (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get(ENV_SPOOL_DIR):
        return env[ENV_SPOOL_DIR]
    if env.get("XDG_DATA_HOME"):
        return os.path.join(env["XDG_DATA_HOME"], "accord", "spool")
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".local", "share", "accord", "spool")


def iso(ts: float) -> str:
    """A Unix time as ISO 8601 in UTC with microseconds."""
    micros = round(ts * 1_000_000)
    seconds, micros = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}+00:00"


def new_run_id(host: str, start_ns: int, pid: int) -> str:
    """A run id unique on this host and across hosts: host, start time, pid, randomness."""
    seconds, rest = divmod(start_ns, 1_000_000_000)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    return f"{host}:{stamp}.{rest // 1000:06d}Z:{pid}:{os.urandom(3).hex()}"


def proc_start_time(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (None if it is gone).

    Together with the pid it names a process; a pid alone may have been reused.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", 0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r"})


def _string(text: str) -> str:
    out = text.translate(_ESCAPES)
    try:
        out.encode()
    except UnicodeEncodeError:  # lone surrogates (undecodable bytes in argv or paths)
        out = "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in out)
    return f'"{out}"'


def dumps(value: Any) -> str:
    """Compact JSON of str, int, float, bool, None, lists and dicts with str keys.

    The same text ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` gives,
    without importing ``json`` on the hot path.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return "null"
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_string(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to the spool")


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ensure_dir(path: str) -> None:
    if os.path.isdir(path):
        return
    os.makedirs(path, exist_ok=True)
    parent_mode = os.stat(os.path.dirname(path)).st_mode & 0o7777
    # Subdirectories of a shared spool keep its group permissions (e.g. 2770).
    if parent_mode & 0o070:
        try:  # noqa: SIM105 (no contextlib on the hot path)
            os.chmod(path, parent_mode)
        except OSError:
            pass


class RunWriter:
    """Writes one run's events. Each ``write`` is on disk (fsync) when it returns."""

    def __init__(self, spool: str, start_ns: int, pid: int) -> None:
        self.spool = spool
        self.stem = f"{start_ns:020d}-{pid}-{os.urandom(3).hex()}"
        if not os.path.isdir(spool):
            os.makedirs(spool, mode=0o700, exist_ok=True)
        runs = os.path.join(spool, "runs")
        _ensure_dir(runs)
        self.path = os.path.join(runs, f"{self.stem}.jsonl")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        _fsync_dir(runs)
        self._running: str | None = None

    def write(self, event: dict[str, Any]) -> None:
        data = (dumps({"v": VERSION, **event}) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)

    def mark_running(self, info: dict[str, Any]) -> None:
        running = os.path.join(self.spool, "running")
        _ensure_dir(running)
        path = os.path.join(running, f"{self.stem}.json")
        tmp = os.path.join(running, f".{self.stem}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(dumps(info))
        os.replace(tmp, path)
        self._running = path

    def close(self) -> None:
        if self._running is not None:
            try:  # noqa: SIM105 (no contextlib on the hot path)
                os.unlink(self._running)
            except OSError:
                pass
            self._running = None
        try:  # noqa: SIM105 (no contextlib on the hot path)
            os.close(self._fd)
        except OSError:
            pass
