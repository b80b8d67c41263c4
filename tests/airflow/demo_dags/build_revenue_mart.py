"""Builds the revenue mart whenever both raw orders and raw payments were refreshed."""

from __future__ import annotations

from _common import ORDERS, PAYMENTS, REVENUE, START
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, task

with DAG(
    dag_id="build_revenue_mart",
    description="Revenue per region and day",
    schedule=(ORDERS & PAYMENTS),
    start_date=START,
    catchup=False,
    is_paused_upon_creation=False,
    tags=["mart"],
    default_args={"owner": "analytics"},
) as dag:

    @task
    def transform(region: str) -> str:
        return f"revenue for {region}"

    publish = BashOperator(task_id="publish", bash_command="echo publish", outlets=[REVENUE])
    transform.expand(region=["emea", "amer", "apac"]) >> publish
