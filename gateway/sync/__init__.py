"""Level-triggered synchronisation of sources into the store."""

from .backoff import Backoff
from .manager import SyncManager, build_adapter
from .worker import SourceWorker, SyncReport, health_of, lag_seconds

__all__ = [
    "Backoff",
    "SourceWorker",
    "SyncManager",
    "SyncReport",
    "build_adapter",
    "health_of",
    "lag_seconds",
]
