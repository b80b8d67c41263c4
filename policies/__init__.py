"""Package data: the Casbin model, default roles and compliance rule packs."""

from pathlib import Path

__all__ = ["POLICY_DIR"]

POLICY_DIR = Path(__file__).parent
