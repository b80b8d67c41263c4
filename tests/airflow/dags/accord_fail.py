"""A DAG that fails: its first task exits non-zero, so the second never runs."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="accord_fail",
    description="A task that fails",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["accord-test"],
    default_args={"owner": "data-eng", "retries": 0},
) as dag:
    broken = BashOperator(task_id="broken", bash_command="echo failing; exit 3")
    after = BashOperator(task_id="after", bash_command="echo never")
    broken >> after
