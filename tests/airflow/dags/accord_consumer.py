"""Scheduled on the orders asset: runs whenever accord_producer updates it."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset

ORDERS = Asset(name="orders", uri="s3://warehouse/raw/orders")
REPORT = Asset(name="orders_report", uri="s3://warehouse/marts/orders_report")

with DAG(
    dag_id="accord_consumer",
    description="Builds the orders report",
    schedule=[ORDERS],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["accord-test", "lineage"],
    default_args={"owner": "analytics"},
) as dag:
    BashOperator(task_id="build_report", bash_command="echo report", outlets=[REPORT])
