"""Tamper-evident audit trail."""

from .log import GENESIS, AuditEntry, VerifyResult, append, list_records, lock_chain, record, verify

__all__ = [
    "GENESIS",
    "AuditEntry",
    "VerifyResult",
    "append",
    "list_records",
    "lock_chain",
    "record",
    "verify",
]
