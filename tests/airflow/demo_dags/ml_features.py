"""Customer features for the recommender, every three hours."""

from __future__ import annotations

from _common import FEATURES, ORDERS, START
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

with DAG(
    dag_id="ml_features",
    description="Customer features v3",
    schedule="0 */3 * * *",
    start_date=START,
    catchup=True,
    is_paused_upon_creation=False,
    tags=["ml"],
    default_args={"owner": "ml-platform"},
) as dag:
    BashOperator(
        task_id="compute_features",
        bash_command="echo features",
        inlets=[ORDERS],
        outlets=[FEATURES],
    )
