"""Authorization (Casbin RBAC with domains, compiled to SQL for lists)."""

from .loader import PolicyCache, load_policy
from .policy import Binding, Decision, Grants, PolicySet, Rule

__all__ = ["Binding", "Decision", "Grants", "PolicyCache", "PolicySet", "Rule", "load_policy"]
