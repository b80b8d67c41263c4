"""Fixtures of the Airflow adapter tests.

``airflow`` is a real Airflow 3 (API server, scheduler, DAG processor) started once per
session from its own virtualenv, created by ``scripts/airflow-venv.sh`` when missing.
``replay`` is the replayed Airflow (recorded answers) that fault tests break on purpose.
"""

from __future__ import annotations

import os
import secrets as _secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.airflow.adapter import AirflowAdapter
from adapters.airflow.config import AirflowConfig
from adapters.base import AdapterContext
from adapters.testing.airflow_replay import ReplayServer, ReplayState
from gateway.model import SecretRef

from .deployment import AirflowDeployment, copy_dags, ensure_venv

TEST_DAGS = {
    "accord_ok",
    "accord_fail",
    "accord_producer",
    "accord_consumer",
    "accord_paused",
    "accord_slow",
    "accord_parent",
}
# The replay server's password, new for every test run.
REPLAY_PASSWORD = _secrets.token_urlsafe(12)
REPLAY_VIEWER_PASSWORD = _secrets.token_urlsafe(12)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Secrets:
    """A secret resolver over a dict of environment-variable names; counts reads."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)
        self.reads = 0

    def __call__(self, ref: SecretRef) -> SecretStr:
        self.reads += 1
        if ref.env is None or ref.env not in self.values:
            raise LookupError(f"{ref.describe()} is not set")
        return SecretStr(self.values[ref.env])


def make_adapter(
    url: str,
    *,
    secrets: Secrets | None = None,
    auth: dict[str, Any] | None = None,
    source: str = "airflow-test",
    timeout: float = 10.0,
    **settings: Any,
) -> AirflowAdapter:
    secrets = secrets or Secrets({"AIRFLOW_PASSWORD": REPLAY_PASSWORD})
    config = AirflowConfig.model_validate(
        {
            "url": url,
            "auth": auth or {"username": "admin", "passwordFrom": {"env": "AIRFLOW_PASSWORD"}},
            **settings,
        }
    )
    return AirflowAdapter(
        AdapterContext(source=source, domain="data", secrets=secrets, timeout=timeout), config
    )


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    state = ReplayState.load(shift_to_now=True)
    with ReplayServer(
        state,
        users={"admin": REPLAY_PASSWORD, "viewer": REPLAY_VIEWER_PASSWORD},
        roles={"viewer": "viewer"},
    ) as server:
        yield server


@pytest.fixture
def replay_adapter(replay: ReplayServer) -> Callable[..., AirflowAdapter]:
    def build(**kw: Any) -> AirflowAdapter:
        return make_adapter(replay.url, **kw)

    return build


@pytest.fixture(scope="session")
def airflow() -> Iterator[AirflowDeployment]:
    venv = ensure_venv()
    home = Path(tempfile.mkdtemp(prefix="accord-airflow-"))
    deployment = AirflowDeployment(venv, home, copy_dags(home / "dags"))
    try:
        deployment.start()
        deployment.wait_parsed(TEST_DAGS)
        yield deployment
    finally:
        deployment.stop()
        if os.environ.get("ACCORD_AIRFLOW_KEEP_HOME"):
            print(f"Airflow home kept in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
