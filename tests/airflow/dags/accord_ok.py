"""A DAG that succeeds: two short tasks in a row."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="accord_ok",
    description="Two tasks that succeed",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["accord-test", "team:data"],
    default_args={"owner": "data-eng"},
    params={"greeting": "hello"},
) as dag:
    extract = BashOperator(task_id="extract", bash_command="echo extract")
    load = BashOperator(task_id="load", bash_command="echo load {{ params.greeting }}")
    extract >> load
