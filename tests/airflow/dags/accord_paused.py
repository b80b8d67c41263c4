"""A scheduled DAG that is paused from the start."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="accord_paused",
    description="Nightly export, paused",
    schedule="0 6 * * *",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=True,
    tags=["accord-test"],
    default_args={"owner": "data-eng"},
) as dag:
    BashOperator(task_id="export", bash_command="echo export")
