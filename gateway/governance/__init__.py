"""Governance: guardrails (change freezes), and later approvals and compliance rules."""

from .guardrails import GuardrailVerdict, active_freezes, check_action, check_supported

__all__ = ["GuardrailVerdict", "active_freezes", "check_action", "check_supported"]
