"""Several gateway replicas on one PostgreSQL: source leases with fencing, cluster-wide
singletons, and events and hints across replicas (LISTEN/NOTIFY). See
``docs/operations.md`` and the module docstrings of ``leases``, ``coordinator`` and
``notify``."""

from .coordinator import Cluster, always, new_replica_id
from .leases import LeaseLost, fair_share

__all__ = ["Cluster", "LeaseLost", "always", "fair_share", "new_replica_id"]
