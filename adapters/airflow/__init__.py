"""Apache Airflow 3 adapter: DAGs, runs, tasks and asset lineage through the REST API v2."""

from .adapter import AirflowAdapter
from .config import AirflowConfig

__all__ = ["AirflowAdapter", "AirflowConfig"]
