"""DAGs of bench/versus_tools.py: hourly, paused from the start, so the scheduler makes no
runs of its own; the benchmark writes their runs into Airflow's database.
``ACCORD_BENCH_DAGS`` (set by the benchmark) says how many."""

from __future__ import annotations

import os

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

DAGS = int(os.environ.get("ACCORD_BENCH_DAGS", "12"))

for i in range(DAGS):
    with DAG(
        dag_id=f"bench_{i:02d}",
        description="a DAG of the versus benchmark",
        schedule="@hourly",
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        is_paused_upon_creation=True,
        tags=["accord-bench"],
    ) as dag:
        EmptyOperator(task_id="work")
    globals()[dag.dag_id] = dag
