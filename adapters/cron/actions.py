"""Acting on a cron host (local mode): pause and resume a line, run it now, stop a run.

* Pause comments the line out behind a marker (``#accord:paused# ``), so resume can put
  it back exactly; cron re-reads a crontab whose file changed. Files are replaced
  atomically (same owner and mode), which cron notices like an edit with ``crontab -e``.
* Trigger runs the line's command now, as the line's user, with the line's environment
  and through ``accord exec`` (so the run is recorded like a scheduled one), detached from
  the gateway.
* Cancel signals the process group of a running ``accord exec`` (recorded in the spool's
  running-state file); the wrapper records the run as ended by that signal.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.model import AdapterAuthError, AdapterUnavailable, NotFound

from . import spool as _spool
from .parser import PAUSE_MARKER, CronLine, parse_crontab
from .spool_read import running_info

__all__ = ["cancel_run", "find_running", "set_paused", "start_run"]

_ENV_RUN_ID = "ACCORD_EXEC_RUN_ID"
_ENV_TRIGGER = "ACCORD_EXEC_TRIGGER"


def set_paused(line: CronLine, paused: bool, *, host: str, timezone: str) -> bool:
    """Comment ``line`` out (or back in) in its file. False if it already was so."""
    path = Path(line.file.path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"{path} no longer exists") from None
    except PermissionError:
        raise AdapterAuthError(f"cannot read {path}: permission denied") from None
    current = {
        x.native_id: x for x in parse_crontab(text, line.file, host=host, timezone=timezone).lines
    }
    found = current.get(line.native_id)
    if found is None:
        raise NotFound(f"job {line.native_id!r} is no longer in {path}")
    if found.paused == paused:
        return False
    rows = text.split("\n")
    row = rows[found.line_no - 1]
    if paused:
        rows[found.line_no - 1] = PAUSE_MARKER + row.lstrip()
    else:
        stripped = row.lstrip()
        rest = stripped[len("#accord:paused#") :]
        rows[found.line_no - 1] = rest[1:] if rest.startswith(" ") else rest
    _replace(path, "\n".join(rows))
    return True


def _replace(path: Path, text: str) -> None:
    """Write ``path`` atomically, keeping its owner and mode."""
    tmp = path.with_name(f".accord-{path.name}.tmp")
    try:
        st = path.stat()
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, st.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except PermissionError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise AdapterAuthError(
            f"Accord's user cannot edit {path}: permission denied (local mode acts as the "
            "gateway's user; editing other users' crontabs needs root)"
        ) from None
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise AdapterUnavailable(f"cannot write {path}: {exc.strerror or exc}") from None


def _job_env(line: CronLine, account: pwd.struct_passwd | None) -> dict[str, str]:
    """The environment cron gives the line: its defaults, then the crontab's variables."""
    env = {
        "SHELL": "/bin/sh",
        "PATH": "/usr/bin:/bin",
        "LOGNAME": line.user,
        "USER": line.user,
        "HOME": account.pw_dir if account else "/",
    }
    env.update(line.env_map)
    return env


def start_run(line: CronLine, run_id: str, *, spool_dir: Path, python: str | None = None) -> None:
    """Run ``line`` now, as its user, through ``accord exec``; do not wait for it."""
    try:
        account: pwd.struct_passwd | None = pwd.getpwnam(line.user)
    except KeyError:
        account = None
    me = os.geteuid()
    switch = account is not None and account.pw_uid != me
    if account is None and line.file.kind != "user":
        raise NotFound(f"user {line.user!r} of job {line.native_id!r} does not exist here")
    if switch and me != 0:
        raise AdapterAuthError(
            f"Accord runs as uid {me} and cannot run a job as {line.user!r} (that needs root)"
        )
    env = _job_env(line, account)
    shell = env.get("SHELL") or "/bin/sh"
    command = [shell, "-c", line.shell_command]
    kwargs: dict[str, Any] = {}
    if line.wrapped is not None:
        # The line runs accord exec itself, as its user: let that wrapper record this run
        # under our id, where Accord reads unless the crontab says otherwise.
        env[_ENV_RUN_ID] = run_id
        env[_ENV_TRIGGER] = "manual"
        env.setdefault(_spool.ENV_SPOOL_DIR, str(spool_dir))
        argv = command
        if switch and account is not None:
            kwargs.update(
                user=account.pw_uid,
                group=account.pw_gid,
                extra_groups=os.getgrouplist(account.pw_name, account.pw_gid),
            )
    else:
        # Accord's wrapper records the run (as Accord's user, in Accord's spool); the
        # command itself runs as the line's user.
        if switch and account is not None:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise AdapterUnavailable(
                    "running a job as another user needs setpriv (package util-linux)"
                )
            command = [
                setpriv,
                f"--reuid={account.pw_uid}",
                f"--regid={account.pw_gid}",
                "--init-groups",
                "--",
                *command,
            ]
        argv = [
            python or sys.executable,
            "-m",
            "adapters.cron.wrapper",
            "--job",
            line.native_id,
            "--trigger",
            "manual",
            "--run-id",
            run_id,
            "--spool",
            str(spool_dir),
            "--actor",
            line.user,
            "--",
            *command,
        ]
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    cwd = env["HOME"] if os.path.isdir(env["HOME"]) else "/"
    stdin = subprocess.PIPE if line.stdin is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            **kwargs,
        )
    except OSError as exc:
        raise AdapterUnavailable(
            f"could not start job {line.native_id!r}: {exc.strerror or exc}"
        ) from None
    text = line.stdin

    def reap() -> None:
        if text is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.write(text.encode())
                proc.stdin.close()
        proc.wait()

    threading.Thread(target=reap, name=f"cron-run-{run_id}", daemon=True).start()


def find_running(spools: list[Path], run_id: str) -> dict[str, Any] | None:
    """The running-state of a wrapped run whose wrapper still runs."""
    for directory in spools:
        for path, info in running_info(directory):
            if info.get("run") != run_id:
                continue
            pid = info.get("pid")
            if isinstance(pid, int) and _spool.proc_start_time(pid) == info.get("pid_start"):
                return info
            with contextlib.suppress(OSError):
                path.unlink()  # its wrapper is gone
    return None


def cancel_run(info: Mapping[str, Any], sig: int = signal.SIGTERM) -> None:
    """Signal a running command's process group (or the command, if it has none)."""
    pgid, child = info.get("pgid"), info.get("child")
    try:
        if isinstance(pgid, int):
            os.killpg(pgid, sig)
        elif isinstance(child, int):
            os.kill(child, sig)
    except ProcessLookupError:
        return  # it ended meanwhile
    except PermissionError:
        raise AdapterAuthError(
            f"Accord's user may not signal run {info.get('run')!r} (it runs as another user)"
        ) from None
