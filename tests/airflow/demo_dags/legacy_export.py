"""A weekly export paused since the CRM migration."""

from __future__ import annotations

from _common import START
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="legacy_export",
    description="Paused since the CRM migration",
    schedule="0 2 * * 0",
    start_date=START,
    catchup=False,
    is_paused_upon_creation=True,
    tags=["deprecated"],
    default_args={"owner": "data-eng"},
) as dag:
    BashOperator(task_id="export_crm", bash_command="echo export")
