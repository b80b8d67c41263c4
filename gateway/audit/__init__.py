"""Tamper-evident audit trail."""

from .log import GENESIS, AuditEntry, VerifyResult, append, verify

__all__ = ["GENESIS", "AuditEntry", "VerifyResult", "append", "verify"]
