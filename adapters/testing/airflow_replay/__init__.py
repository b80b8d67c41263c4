"""A replayed Airflow 3 API server for tests and the demo (recorded answers, injected faults).

state = ReplayState.load()                # adapters/airflow/demo_data
with ReplayServer(state, users={"admin": "pw"}) as server:
    ...  # point an Airflow source at server.url
"""

from .server import Fault, ReplayServer, Request
from .state import DEMO_DATA, ReplayState, RunPlan

__all__ = ["DEMO_DATA", "Fault", "ReplayServer", "ReplayState", "Request", "RunPlan"]
