"""Declarative configuration: validate, diff and apply ``accord.dev/v1`` documents."""

from .apply import Change, ConfigRefused, Plan, apply_plan, plan, plan_and_apply, required_domain
from .load import ConfigError, Document, LoadResult, load_documents, load_path

__all__ = [
    "Change",
    "ConfigError",
    "ConfigRefused",
    "Document",
    "LoadResult",
    "Plan",
    "apply_plan",
    "load_documents",
    "load_path",
    "plan",
    "plan_and_apply",
    "required_domain",
]
