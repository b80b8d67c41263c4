"""Produces the asset that accord_consumer is scheduled on."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset

ORDERS = Asset(name="orders", uri="s3://warehouse/raw/orders")
RAW_CUSTOMERS = Asset(name="customers", uri="s3://warehouse/raw/customers")

with DAG(
    dag_id="accord_producer",
    description="Loads raw orders",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    tags=["accord-test", "lineage"],
    default_args={"owner": "ingest"},
) as dag:
    BashOperator(
        task_id="load_orders",
        bash_command="echo loading orders",
        inlets=[RAW_CUSTOMERS],
        outlets=[ORDERS],
    )
