"""The demo Airflow: recorded answers of a real Airflow 3, served by a simulator.

A newcomer sees DAGs, scheduled history, a failed and retried task, mapped tasks, asset
lineage (which DAG produces what, which run triggered which) without installing Airflow.
The answers were recorded from a real Airflow 3 running ``tests/airflow/demo_dags`` (see
``tests/airflow/record_demo.py``); the simulator moves them to the present, and runs
triggered from Accord proceed to success within seconds.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from adapters.base import DemoPart
from adapters.testing.airflow_replay import ReplayServer, ReplayState

__all__ = ["PASSWORD_ENV", "SOURCE_NAME", "start_demo"]

SOURCE_NAME = "demo-airflow"
PASSWORD_ENV = "ACCORD_SECRET_DEMO_AIRFLOW_PASSWORD"
_USER = "accord-demo"


def start_demo(workdir: Path) -> DemoPart:
    """Start the simulator on 127.0.0.1 (a free port); return its Source document."""
    state = ReplayState.load(shift_to_now=True, realign=True, auto_progress=True)
    password = secrets.token_urlsafe(18)
    server = ReplayServer(state, users={_USER: password}, label="demo simulator").start()
    document: dict[str, Any] = {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {
            "name": SOURCE_NAME,
            "domain": "data",
            "labels": {"accord.dev/demo": "true"},
            "annotations": {
                "accord.dev/description": (
                    "Demo Airflow (simulator): recorded answers of Apache Airflow "
                    f"{state.version}, replayed"
                )
            },
        },
        "spec": {
            "type": "airflow",
            "demo": True,
            "url": server.url,
            "auth": {"username": _USER, "passwordFrom": {"env": PASSWORD_ENV}},
            "sync": {"inventoryEvery": "1m", "runsEvery": "10s"},
        },
    }
    return DemoPart(
        documents=[document], env={PASSWORD_ENV: password}, stop=server.stop, simulated=True
    )
