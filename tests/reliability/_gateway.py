"""A real ``accord serve`` process for the reliability suite: start it, kill it, read it."""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from adapters.testing.jenkins_sim import JenkinsSimulator, SimState, cause_timer

__all__ = ["LONG", "Gateway", "accord", "free_port", "kills"]

# ACCORD_LONG_TESTS=1 runs the long modes (many kills, many examples).
LONG = os.environ.get("ACCORD_LONG_TESTS") == "1"
ACCORD = Path(sys.executable).parent / "accord"


def kills(short: int, long: int = 50) -> int:
    return long if LONG else short


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accord(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the ``accord`` CLI with ``env`` (stdout and stderr captured)."""
    return subprocess.run(
        [str(ACCORD), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Gateway:
    """``accord serve`` on a free 127.0.0.1 port over ``data_dir`` (and ``database_url``)."""

    data_dir: Path
    database_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    sync: bool = True
    proc: subprocess.Popen[str] | None = None
    port: int = 0
    output: list[str] = field(default_factory=list)  # every line it printed, every start

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "ACCORD_DATA_DIR": str(self.data_dir), "ACCORD_LOG_LEVEL": "info"}
        env.pop("ACCORD_DATABASE_URL", None)
        if self.database_url:
            env["ACCORD_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        return env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, timeout: float = 90) -> Gateway:
        assert self.proc is None or self.proc.poll() is not None
        self.port = free_port()
        args = [str(ACCORD), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        for f in self.files:
            args += ["-f", str(f)]
        args.append("--sync" if self.sync else "--no-sync")
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env
        )
        proc = self.proc

        def pump() -> None:
            assert proc.stdout is not None
            with proc.stdout:
                for line in proc.stdout:
                    self.output.append(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(
                    f"accord serve exited {proc.returncode}: {self.text()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"accord serve not ready in {timeout} s: {self.text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout is not None:
            time.sleep(0.05)  # let the pump read the last lines

    def text(self) -> str:
        return "".join(self.output)

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)


def jenkins_source(tmp_path: Path, jobs: list[str]) -> tuple[JenkinsSimulator, str, Path]:
    """A Jenkins simulator with one finished build per job, its token, and a source
    document ``ci`` that syncs it every second (what the fault tests load)."""
    token = secrets.token_hex(16)
    state = SimState(seed=random.randrange(1 << 30))
    for job in jobs:
        state.add_job(job)
        state.run(job, "SUCCESS", cause=cause_timer())
    sim = JenkinsSimulator(state, tokens={"accord": token}).start()
    config = tmp_path / "ci.yaml"
    config.write_text(
        f"""apiVersion: accord.dev/v1
kind: Source
metadata: {{name: ci, domain: default}}
spec:
  type: jenkins
  url: {sim.url}
  username: accord
  token: {{env: ACCORD_SECRET_TEST_JENKINS_TOKEN}}
  maxBuildsPerJob: 100
  triggerWait: 0s
  sync: {{inventoryEvery: 5s, runsEvery: 1s}}
"""
    )
    return sim, token, config


def expected_builds(sim: JenkinsSimulator) -> set[str]:
    """The run uids source ``ci`` must hold: every build the simulator has."""
    with sim.state.lock:
        return {f"ci/{j.full_name}#{b.number}" for j in sim.state.jobs() for b in j.builds.values()}
