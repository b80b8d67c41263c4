"""Accord's domain model: enums, records adapters return, errors and resource kinds."""

from .enums import (
    TERMINAL_STATES,
    Capability,
    Channel,
    EdgeKind,
    HealthStatus,
    NodeKind,
    RunState,
    Trigger,
)
from .errors import (
    ActionNotSupported,
    AdapterAuthError,
    AdapterError,
    AdapterUnavailable,
    InvalidResponse,
    NotFound,
)
from .records import (
    AdapterInfo,
    EdgeRecord,
    JobRecord,
    NodeRef,
    RunPage,
    RunRecord,
    Schedule,
    SourceHealth,
    StepRecord,
    SyncHint,
)
from .resources import API_VERSION, KINDS, SecretRef, parse_duration
from .transitions import accept_transition

__all__ = [
    "API_VERSION",
    "KINDS",
    "TERMINAL_STATES",
    "ActionNotSupported",
    "AdapterAuthError",
    "AdapterError",
    "AdapterInfo",
    "AdapterUnavailable",
    "Capability",
    "Channel",
    "EdgeKind",
    "EdgeRecord",
    "HealthStatus",
    "InvalidResponse",
    "JobRecord",
    "NodeKind",
    "NodeRef",
    "NotFound",
    "RunPage",
    "RunRecord",
    "RunState",
    "Schedule",
    "SecretRef",
    "SourceHealth",
    "StepRecord",
    "SyncHint",
    "Trigger",
    "accept_transition",
    "parse_duration",
]
