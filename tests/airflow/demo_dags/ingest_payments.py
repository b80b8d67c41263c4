"""Hourly load of payments; validation fails now and then (and is retried once)."""

from __future__ import annotations

from datetime import timedelta

from _common import PAYMENTS, START
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="ingest_payments",
    description="Load payments from the payment provider",
    schedule="0 * * * *",
    start_date=START,
    catchup=True,
    is_paused_upon_creation=False,
    tags=["ingest", "tier:gold"],
    default_args={"owner": "data-eng"},
) as dag:
    extract = BashOperator(task_id="extract_payments", bash_command="echo extracting payments")
    validate = BashOperator(
        task_id="validate_payments",
        # Every fourth hour the provider's export is "incomplete".
        bash_command=(
            "h={{ data_interval_end.hour }}; "
            'if [ $((h % 4)) -eq 1 ]; then echo "export incomplete"; exit 1; fi'
        ),
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
    load = BashOperator(task_id="load_payments", bash_command="echo loading", outlets=[PAYMENTS])
    extract >> validate >> load
