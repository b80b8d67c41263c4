"""Triggers a run of accord_ok through TriggerDagRunOperator (explicit cross-DAG lineage)."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG

with DAG(
    dag_id="accord_parent",
    description="Prepares, then starts accord_ok",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["accord-test", "lineage"],
    default_args={"owner": "data-eng"},
) as dag:
    prepare = BashOperator(task_id="prepare", bash_command="echo preparing")
    start_child = TriggerDagRunOperator(
        task_id="start_ok", trigger_dag_id="accord_ok", wait_for_completion=False
    )
    prepare >> start_child
