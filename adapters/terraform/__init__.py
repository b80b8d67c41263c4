"""Terraform Cloud adapter: workspaces, runs (plan and apply), run-trigger lineage and
notifications of HCP Terraform / Terraform Enterprise organizations (JSON:API v2)."""

from .adapter import TerraformAdapter
from .config import TerraformConfig

__all__ = ["TerraformAdapter", "TerraformConfig"]
