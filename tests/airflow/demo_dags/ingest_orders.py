"""Hourly load of the shop's orders into the warehouse."""

from __future__ import annotations

from _common import ORDERS, START
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="ingest_orders",
    description="Load orders from the shop database",
    schedule="0 * * * *",
    start_date=START,
    catchup=True,
    is_paused_upon_creation=False,
    tags=["ingest", "tier:gold"],
    default_args={"owner": "data-eng"},
) as dag:
    extract = BashOperator(task_id="extract_orders", bash_command="echo extracting orders")
    load = BashOperator(task_id="load_orders", bash_command="echo loading", outlets=[ORDERS])
    extract >> load
