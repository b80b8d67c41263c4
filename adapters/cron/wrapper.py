"""``accord exec``: run a command unchanged and record the run.

    accord exec [--job NAME] [--trigger schedule|manual] [--spool DIR] -- CMD [ARGS...]

The command gets the same stdin, its stdout and stderr are passed through, and
SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to it (to its whole
process group: a shell pipeline stops as a whole). The exit status is the command's own,
or 128+N when signal N ended it (127: command not found, 126: cannot be executed).

Start and end (exit code or signal, duration, the last lines of output) are written to
the local spool (:mod:`adapters.cron.spool`) with fsync before anything else; delivering
them is the agent's job. When ``ACCORD_GATEWAY_URL``, ``ACCORD_SOURCE`` and
``ACCORD_TOKEN`` (or ``ACCORD_TOKEN_FILE``) are set and the run has a ``--job``, the end
is also sent at once, with a short timeout; nothing that goes wrong with the spool or the
gateway changes what the command does or its exit status.

This runs on every cron tick: it starts the command with ``posix_spawn`` and imports
only modules the interpreter has loaded already (plus ``select`` and ``pwd``), so that it
adds as little as possible to each run.
"""

from __future__ import annotations

import os
import select
import sys
import time

from . import spool as _spool

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import FrameType
    from typing import Any

# The C module behind ``signal`` is loaded at start-up; ``signal`` itself would import
# ``enum`` (milliseconds on every cron tick).
_sig: Any = sys.modules.get("_signal") or __import__("signal")

__all__ = ["main"]

_USAGE = (
    "usage: accord exec [--job NAME] [--trigger schedule|manual] [--spool DIR] -- CMD [ARGS...]"
)
_FORWARDED = tuple(
    getattr(_sig, name) for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
)
# Python ignores these at start-up; the command must get them with their defaults.
_RESET = (_sig.SIGPIPE, _sig.SIGXFSZ)
_ENV_RUN_ID = "ACCORD_EXEC_RUN_ID"
_ENV_TRIGGER = "ACCORD_EXEC_TRIGGER"
_TAIL_LINES = 20
_TAIL_CHARS = 1500
_TAIL_KEEP = 16 * 1024
_DRAIN_AFTER_EXIT = 1.0  # a background child may hold the pipes open: stop reading then
_OPTIONS = {
    "--job": "job",
    "--trigger": "trigger",
    "--run-id": "run_id",
    "--spool": "spool",
    "--actor": "actor",  # the user the run is recorded for (default: this process's)
}


class _Args:
    def __init__(self) -> None:
        self.job: str | None = None
        self.trigger: str | None = None
        self.run_id: str | None = None
        self.spool: str | None = None
        self.actor: str | None = None
        self.command: list[str] = []


def _parse(argv: list[str]) -> _Args | str:
    args = _Args()
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            args.command = argv[i + 1 :]
            break
        if tok in ("-h", "--help"):
            return "help"
        name, _, value = tok.partition("=")
        if name in _OPTIONS:
            if not value:
                if i + 1 >= len(argv):
                    return f"{name} needs a value"
                value = argv[i + 1]
                i += 1
            setattr(args, _OPTIONS[name], value)
            i += 1
            continue
        if tok.startswith("-"):
            return f"unknown option {tok}"
        args.command = argv[i:]
        break
    if not args.command:
        return "no command given"
    if args.trigger not in (None, "schedule", "manual"):
        return "--trigger is 'schedule' or 'manual'"
    return args


def _started_by_cron() -> bool:
    """Whether cron (a few processes up) started us: then the trigger is the schedule."""
    pid = os.getppid()
    for _ in range(3):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            return False
        if data[data.find(b"(") + 1 : data.rfind(b")")] in (b"cron", b"crond"):
            return True
        try:
            pid = int(data[data.rfind(b")") + 2 :].split()[1])
        except (IndexError, ValueError):
            return False
        if pid <= 1:
            return False
    return False


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _warn(message: str) -> None:
    try:  # noqa: SIM105 (contextlib is not imported on the hot path)
        os.write(2, f"accord exec: {message}\n".encode(errors="replace"))
    except OSError:
        pass


class _Tail:
    """The last lines of the combined output, bounded."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def add(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > 2 * _TAIL_KEEP:
            del self.buf[:-_TAIL_KEEP]

    def text(self) -> str:
        lines = bytes(self.buf[-_TAIL_KEEP:]).decode("utf-8", errors="replace").splitlines()
        return "\n".join(lines[-_TAIL_LINES:])[-_TAIL_CHARS:]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _pump(pid: int, pipes: dict[int, int], tail: _Tail) -> int | None:
    """Copy the child's output to ours until the pipes close (or shortly after the child
    exited: a background grandchild may keep them open). Returns the child's wait status
    if it was collected."""
    poller = select.poll()
    for fd in pipes:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    broken: set[int] = set()
    status: int | None = None
    exited_at = 0.0
    try:
        while pipes:
            events = poller.poll(200)
            for fd, _ in events:
                data = os.read(fd, 65536)
                if not data:
                    poller.unregister(fd)
                    os.close(fd)
                    del pipes[fd]
                    continue
                tail.add(data)
                target = pipes[fd]
                if target not in broken:
                    try:
                        _write_all(target, data)
                    except OSError:
                        broken.add(target)  # our reader went away; keep draining
            if status is None:
                done, wait_status = os.waitpid(pid, os.WNOHANG)
                if done:
                    status, exited_at = wait_status, time.monotonic()
            elif not events or time.monotonic() - exited_at > _DRAIN_AFTER_EXIT:
                break
    finally:
        for fd in pipes:
            os.close(fd)
    return status


class _Recorder:
    """Writes the run to the spool; a broken spool only earns a warning."""

    def __init__(self, directory: str, start_ns: int) -> None:
        self.writer: _spool.RunWriter | None = None
        try:
            self.writer = _spool.RunWriter(directory, start_ns, os.getpid())
        except OSError as exc:
            _warn(f"cannot write the run to the spool {directory}: {exc.strerror or exc}")

    def write(self, event: dict[str, Any]) -> None:
        if self.writer is None:
            return
        try:
            self.writer.write(event)
        except OSError as exc:
            _warn(f"cannot write the run to the spool: {exc.strerror or exc}")

    def running(self, info: dict[str, Any]) -> None:
        if self.writer is None:
            return
        try:  # noqa: SIM105 (no contextlib on the hot path)
            self.writer.mark_running(info)
        except OSError:
            pass

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def main(argv: list[str]) -> int:
    """Run ``accord exec`` with ``argv`` (the arguments after ``exec``); return the status."""
    parsed = _parse(argv)
    if parsed == "help":
        print(_USAGE)
        return 0
    if isinstance(parsed, str):
        _warn(parsed)
        print(_USAGE, file=sys.stderr)
        return 2
    args = parsed
    skew = _spool.clock_skew()
    start_ns = time.time_ns() + int(skew * 1e9)
    started = time.monotonic()
    host = os.uname().nodename
    # Accord's "trigger now" of a wrapped line names the run through the environment; the
    # command must not see it (a nested accord exec would reuse it).
    env: Mapping[str, str] = os.environ
    if _ENV_RUN_ID in env or _ENV_TRIGGER in env:
        copy = dict(env)
        args.run_id = args.run_id or copy.pop(_ENV_RUN_ID, None) or None
        env_trigger = copy.pop(_ENV_TRIGGER, None)
        if args.trigger is None and env_trigger in ("schedule", "manual"):
            args.trigger = env_trigger
        env = copy
    run_id = args.run_id or _spool.new_run_id(host, start_ns, os.getpid())
    trigger = args.trigger or ("schedule" if _started_by_cron() else "manual")
    interactive = os.isatty(0)

    child: list[int] = []
    pending: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not child:
            pending.append(signum)
            return
        if interactive and signum == _sig.SIGINT:
            return  # the terminal sent it to the command's process group already
        try:
            if interactive:
                os.kill(child[0], signum)
            else:
                os.killpg(child[0], signum)
        except (ProcessLookupError, PermissionError):
            pass

    previous = {signum: _sig.signal(signum, forward) for signum in _FORWARDED}

    recorder = _Recorder(args.spool or _spool.default_dir(), start_ns)
    start_event: dict[str, Any] = {
        "event": "start",
        "run": run_id,
        "job": args.job,
        "host": host,
        "user": args.actor or _user(),
        "argv": args.command,
        "cwd": _cwd(),
        "trigger": trigger,
        "at": _spool.iso(start_ns / 1e9),
        "pid": os.getpid(),
        "pid_start": _spool.proc_start_time(os.getpid()),
    }
    tail = _Tail()
    error: str | None = None
    code: int | None = None
    signal_no: int | None = None
    # Its own process group, so that cancel and forwarded signals reach a whole pipeline
    # (not when a terminal runs it: the terminal's job control needs the foreground group).
    spawn_options: dict[str, Any] = {} if interactive else {"setpgroup": 0}
    status = 0
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawnp(
            args.command[0],
            args.command,
            env,
            file_actions=[(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)],
            setsigdef=_RESET,
            **spawn_options,
        )
    except OSError as exc:
        pid = 0
        missing = isinstance(exc, FileNotFoundError)
        code = status = 127 if missing else 126
        error = f"{args.command[0]}: " + ("command not found" if missing else exc.strerror or "")
    finally:
        os.close(out_w)
        os.close(err_w)
    if not pid:
        os.close(out_r)
        os.close(err_r)
        start_event.update(child=None, pgid=None)
        recorder.write(start_event)
        assert error is not None
        _warn(error)
    else:
        child.append(pid)
        for signum in pending:
            forward(signum, None)
        pgid = None if interactive else pid
        start_event.update(child=pid, pgid=pgid)
        recorder.write(start_event)
        recorder.running(
            {
                "run": run_id,
                "pid": os.getpid(),
                "pid_start": start_event["pid_start"],
                "child": pid,
                "pgid": pgid,
                "at": start_event["at"],
            }
        )
        wait_status = _pump(pid, {out_r: 1, err_r: 2}, tail)
        if wait_status is None:
            _, wait_status = os.waitpid(pid, 0)
        returncode = os.waitstatus_to_exitcode(wait_status)
        if returncode < 0:
            signal_no, status = -returncode, 128 - returncode
        else:
            code, status = returncode, returncode
    recorder.write(
        {
            "event": "end",
            "run": run_id,
            "at": _spool.iso(time.time() + skew),
            "exit": code,
            "signal": signal_no,
            "duration": round(time.monotonic() - started, 6),
            "tail": tail.text(),
            "error": error,
        }
    )
    recorder.close()
    for signum, handler in previous.items():
        try:  # noqa: SIM105 (no contextlib on the hot path)
            _sig.signal(signum, handler)
        except (TypeError, ValueError):
            pass
    if args.job and recorder.writer is not None and os.environ.get("ACCORD_GATEWAY_URL"):
        _deliver(recorder.writer.path, args.job, host)
    return status


def _deliver(path: str, job: str, host: str) -> None:
    """Send the finished run to the gateway now (optional; the agent would send it later)."""
    env = os.environ
    url, source = env.get("ACCORD_GATEWAY_URL", ""), env.get("ACCORD_SOURCE", "")
    token = env.get("ACCORD_TOKEN", "")
    if not token and env.get("ACCORD_TOKEN_FILE"):
        try:
            with open(env["ACCORD_TOKEN_FILE"], encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError:
            token = ""
    if not (url and source and token):
        return
    import json
    import urllib.error
    import urllib.parse
    import urllib.request
    from pathlib import Path

    from .spool_read import read_run, record_dict

    run = read_run(Path(path))
    if run is None or run.end is None:
        return
    body = {
        "agent": {"id": host, "version": _version()},
        "inventory": None,
        "runs": [record_dict(run, job)],
        "health": None,
    }
    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/v1/sources/{urllib.parse.quote(source, safe='')}/push",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        timeout = float(env.get("ACCORD_DELIVERY_TIMEOUT", "2"))
        with urllib.request.urlopen(request, timeout=timeout) as response:
            ok = 200 <= response.status < 300
    except (OSError, ValueError, urllib.error.URLError):
        return  # the agent delivers it later
    if ok:
        try:  # noqa: SIM105 (no contextlib on the hot path)
            os.unlink(path)
        except OSError:
            pass


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("accord")
    except ImportError:  # PackageNotFoundError: running from a source tree
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
