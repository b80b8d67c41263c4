"""A real Apache Airflow 3 on 127.0.0.1 for the tests: started from its own virtualenv.

``scripts/airflow-venv.sh`` creates the virtualenv (``.airflow-venv`` in the repository root,
or ``$ACCORD_AIRFLOW_VENV``); :func:`ensure_venv` runs it when the virtualenv is missing.
:class:`AirflowDeployment` migrates a SQLite database in a temporary AIRFLOW_HOME, starts the
API server, the scheduler and the DAG processor, waits (bounded) until the API answers and
every DAG of the test folder is parsed, and stops the processes by their pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets as _secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

REPO = Path(__file__).resolve().parents[2]
DAGS = Path(__file__).resolve().parent / "dags"
USERS = {"admin": "admin", "viewer": "viewer"}
# Passwords of the test deployment's users, new for every test run.
PASSWORDS = {"admin": _secrets.token_urlsafe(12), "viewer": _secrets.token_urlsafe(12)}

_VENV_TIMEOUT = 1800.0
_HEALTH_TIMEOUT = 120.0
_PARSE_TIMEOUT = 120.0


def venv_path() -> Path:
    return Path(os.environ.get("ACCORD_AIRFLOW_VENV") or REPO / ".airflow-venv")


def ensure_venv() -> Path:
    """The Airflow virtualenv, created by scripts/airflow-venv.sh when it is missing."""
    venv = venv_path()
    if (venv / ".accord-airflow-ready").is_file() and (venv / "bin" / "airflow").is_file():
        return venv
    subprocess.run(
        [str(REPO / "scripts" / "airflow-venv.sh")],
        check=True,
        timeout=_VENV_TIMEOUT,
        env={**os.environ, "ACCORD_AIRFLOW_VENV": str(venv)},
    )
    return venv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AirflowDeployment:
    """One Airflow 3 (API server, scheduler, DAG processor) in ``home``."""

    def __init__(
        self,
        venv: Path,
        home: Path,
        dags: Path = DAGS,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.extra_env = dict(extra_env or {})
        self.venv = venv
        self.home = home
        self.dags = dags
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._outputs: list[BinaryIO] = []
        self.logs = home / "logs-accord"

    # -- environment -----------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        passwords = self.home / "passwords.json"
        if not passwords.exists():
            passwords.write_text(json.dumps(PASSWORDS))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHON", "UV_"))
        }
        env.update(
            {
                "PATH": f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
                "VIRTUAL_ENV": str(self.venv),
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                    f"{u}:{r}" for u, r in USERS.items()
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                **self.extra_env,
            }
        )
        return env

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        env = self.env()
        airflow = str(self.venv / "bin" / "airflow")
        with open(self.logs / "db-migrate.log", "wb") as out:
            subprocess.run(
                [airflow, "db", "migrate"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=300,
                cwd=self.home,
            )
        for name in ("api-server", "scheduler", "dag-processor"):
            out = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
            self._outputs.append(out)
            self.procs[name] = subprocess.Popen(
                [airflow, name],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + _HEALTH_TIMEOUT
        last: str = "no answer"
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as r:
                    body = json.load(r)
                if body.get("metadatabase", {}).get("status") == "healthy":
                    return
                last = json.dumps(body)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                last = str(exc)
            time.sleep(1)
        raise TimeoutError(f"Airflow did not become healthy within {_HEALTH_TIMEOUT:g}s: {last}")

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    def wait_parsed(self, dag_ids: set[str], timeout: float = _PARSE_TIMEOUT) -> None:
        """Wait until the API lists every one of ``dag_ids``."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            self._check_alive()
            body = self.api("GET", "/api/v2/dags?limit=100")
            seen = {d["dag_id"] for d in body["dags"]}
            if dag_ids <= seen:
                return
            time.sleep(1)
        raise TimeoutError(f"DAGs not parsed within {timeout:g}s: missing {dag_ids - seen}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                # The group of the process started here (start_new_session): its workers too.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()
        for out in self._outputs:
            out.close()
        self._outputs.clear()

    # -- a tiny independent API client (the tests' own view of Airflow) ----------------------
    _token: str | None = None

    def token(self, user: str = "admin") -> str:
        req = urllib.request.Request(
            f"{self.url}/auth/token",
            data=json.dumps({"username": user, "password": PASSWORDS[user]}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return str(json.load(r)["access_token"])

    def api(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        if self._token is None:
            self._token = self.token()
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait (bounded) until a DAG run is success or failed; return it."""
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self._check_alive()
            run = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(1)
        raise TimeoutError(f"run {dag_id}/{run_id} still {run.get('state')} after {timeout:g}s")


def copy_dags(target: Path, source: Path = DAGS) -> Path:
    """A private copy of a DAG folder (tests may add or remove files in it)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target
