"""Kubernetes adapter: CronJobs as jobs, their Jobs as runs, through the official client."""

from .adapter import KubernetesAdapter
from .config import KubernetesConfig

__all__ = ["KubernetesAdapter", "KubernetesConfig"]
