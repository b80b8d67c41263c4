"""Shared fixtures: databases (SQLite, and PostgreSQL when available), an app, tokens."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from adapters.base import registry
from adapters.testing.fake import FakeAdapter

# The fake adapter exists only for tests; register it before collection so the contract
# suite and the sync tests see it.
registry.register(FakeAdapter)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1, or the one ACCORD_TEST_POSTGRES_URL names."""

    def __init__(self) -> None:
        self.url = os.environ.get("ACCORD_TEST_POSTGRES_URL")
        self.proc_dir: Path | None = None
        self.user: str | None = None

    def start(self) -> str:
        if self.url:
            return self.url
        bindir = _pg_bindir()
        if bindir is None:
            pytest.fail(
                "PostgreSQL server binaries are not installed: install the 'postgresql' "
                "package (scripts/test-deps.sh does) or set ACCORD_TEST_POSTGRES_URL"
            )
        tmp = Path(tempfile.mkdtemp(prefix="accord-pg-"))
        data = tmp / "data"
        port = _free_port()
        run_as: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            run_as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(tmp, "postgres")
        subprocess.run(
            [
                *run_as,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "accord",
                "-A",
                "trust",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *run_as,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(tmp / "log"),
                "-w",
                "-o",
                f"-h 127.0.0.1 -p {port} -k {tmp} -F",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        self.proc_dir = tmp
        self._run_as = run_as
        self._bindir = bindir
        self.url = f"postgresql+psycopg://accord@127.0.0.1:{port}/postgres"
        return self.url

    def stop(self) -> None:
        if self.proc_dir is not None:
            subprocess.run(
                [
                    *self._run_as,
                    str(self._bindir / "pg_ctl"),
                    "-D",
                    str(self.proc_dir / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                check=False,
                capture_output=True,
            )
            shutil.rmtree(self.proc_dir, ignore_errors=True)


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    for cand in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (cand / "initdb").exists():
            return cand
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    pg = _Postgres()
    url = pg.start()
    try:
        yield url
    finally:
        pg.stop()


def _fresh_pg_database(server_url: str) -> str:
    from sqlalchemy import create_engine

    name = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgres"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database on each supported backend."""
    from gateway.store import create_db_engine, upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'accord.db'}"
    else:
        url = _fresh_pg_database(request.getfixturevalue("postgres_server"))
    engine = create_db_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database (for tests that are not about the backend)."""
    from gateway.store import create_db_engine, upgrade

    engine = create_db_engine(f"sqlite:///{tmp_path / 'accord.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def wait_until(pred: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # FastAPI builds a route's parameter fields on its first request and silences
    # pydantic's UnsupportedFieldAttributeWarning around that with warnings.catch_warnings,
    # which is not thread-safe: when tests serve requests from several threads at once
    # (two gateways in one process, worker threads), another thread can restore the
    # filters mid-build and `-W error` turns the escaped warning into a 500. The warning
    # is about FastAPI's internals, not Accord's code, so it alone is ignored.
    for item in items:
        item.add_marker(
            pytest.mark.filterwarnings("ignore::pydantic.warnings.UnsupportedFieldAttributeWarning")
        )
        if os.environ.get("ACCORD_LONG_TESTS") == "1":
            # The long modes (50 kills per case, 100 examples per operation) run for many
            # minutes by design: an hour per test, not the default five minutes.
            item.add_marker(pytest.mark.timeout(3600), append=False)
