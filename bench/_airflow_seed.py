"""Writes finished DAG runs straight into Airflow's metadata database, with Airflow's own
models: run by bench/versus_tools.py with the Airflow virtualenv's Python and the
deployment's environment (AIRFLOW_HOME, ...). Posting 10,000 runs one by one through the
REST API would take longer than the benchmark itself.

    python _airflow_seed.py RUNS NOW_EPOCH_S DAG_ID...

Runs are spread evenly over the 48 hours before NOW (less five minutes), round robin over
the DAGs; one in eight failed, the rest succeeded; each started at its logical date and
ran 30 s. Prints {"runs": N, "failed": F} as JSON.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from airflow.utils.state import DagRunState
from airflow.utils.types import DagRunTriggeredByType, DagRunType

SPAN_S = 48 * 3600 - 300
BATCH = 2000


def main() -> None:
    count, now_s, dags = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    first = now_s - SPAN_S
    failed = 0
    for lo in range(0, count, BATCH):
        with create_session() as session:
            for i in range(lo, min(count, lo + BATCH)):
                # whole seconds, distinct for every run (the span holds more seconds than runs)
                at = datetime.fromtimestamp(first + i * SPAN_S // count, UTC)
                state = DagRunState.FAILED if i % 8 == 0 else DagRunState.SUCCESS
                failed += state == DagRunState.FAILED
                run = DagRun(
                    dag_id=dags[i % len(dags)],
                    run_id=f"scheduled__{at.isoformat()}",
                    queued_at=at - timedelta(seconds=1),
                    logical_date=at,
                    run_after=at,
                    data_interval=(at - timedelta(hours=1), at),
                    start_date=at,
                    state=state,
                    run_type=DagRunType.SCHEDULED,
                    triggered_by=DagRunTriggeredByType.TIMETABLE,
                )
                run.end_date = at + timedelta(seconds=30)
                session.add(run)
    print(json.dumps({"runs": count, "failed": failed}))


if __name__ == "__main__":
    main()
