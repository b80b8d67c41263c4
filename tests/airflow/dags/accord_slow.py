"""A DAG whose task runs long enough to be cancelled while running."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="accord_slow",
    description="A task that sleeps for two minutes",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["accord-test"],
    default_args={"owner": "data-eng"},
) as dag:
    BashOperator(task_id="sleep", bash_command="sleep 120")
