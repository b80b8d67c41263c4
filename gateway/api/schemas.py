"""API schemas (separate from the tables): what the API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from gateway.model import JobRecord, RunRecord, SourceHealth

__all__ = [
    "ActionRequest",
    "ActionResult",
    "AuditKeyPublic",
    "AuditRecordPublic",
    "ClusterPublic",
    "ErrorBody",
    "JobPublic",
    "LeasePublic",
    "LineagePublic",
    "Me",
    "ProblemPublic",
    "PushRequest",
    "ReplicaPublic",
    "RunEventPublic",
    "RunLineagePublic",
    "RunLink",
    "RunPublic",
    "SourcePublic",
    "StepPublic",
    "TokenRotate",
    "TokenRotated",
]


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None
    request_id: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ProblemPublic(BaseModel):
    """Something wrong at a source, and where: a file and line, a job."""

    message: str
    file: str | None = None
    line: int | None = None
    job: str | None = None


class SourcePublic(BaseModel):
    name: str
    type: str
    display_name: str
    domain: str
    labels: dict[str, str]
    demo: bool
    simulator: bool
    enabled: bool
    health: str
    health_message: str
    last_sync_at: datetime | None
    last_success_at: datetime | None
    lag_seconds: float | None
    last_error: str | None
    capabilities: list[str]
    jobs: int = 0
    problems: list[ProblemPublic] = Field(default_factory=list)
    checked_at: datetime | None = None


class ScheduleInfo(BaseModel):
    expression: str | None
    timezone: str | None
    text: str | None


class JobPublic(BaseModel):
    uid: str
    source: str
    native_id: str
    domain: str
    name: str
    native_type: str
    schedule: ScheduleInfo | None
    next_run_at: datetime | None
    paused: bool
    owners: list[str]
    labels: dict[str, str]
    url: str | None
    description: str | None
    attributes: dict[str, Any]
    problems: list[str]
    first_seen: datetime
    last_seen: datetime
    tombstoned_at: datetime | None
    last_run_state: str | None
    last_run_at: datetime | None
    allowed_actions: list[str] = Field(default_factory=list)
    no_next_run_reason: str | None = Field(
        default=None, description="why the job has no next run (paused, a problem, ...)"
    )


class StepPublic(BaseModel):
    name: str
    state: str
    native_state: str | None
    started_at: datetime | None
    ended_at: datetime | None
    attempt: int


class RunLink(BaseModel):
    """A run on the other end of a ``triggered`` edge, with the evidence of the edge."""

    uid: str
    job_uid: str
    source: str
    state: str
    native_state: str | None
    trigger: str
    started_at: datetime | None
    ended_at: datetime | None
    evidence: str
    reported_by: str


class RunPublic(BaseModel):
    uid: str
    source: str
    job_uid: str
    domain: str
    state: str
    native_state: str | None
    trigger: str
    actor: str | None
    queued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    attempt: int
    url: str | None
    message: str | None
    observed_at: datetime
    steps: list[StepPublic] | None = None
    allowed_actions: list[str] = Field(default_factory=list)
    cancelled_through_accord: bool = False
    cancel_requested_by: str | None = None
    # runs that caused this one ("caused by") and runs it caused; on GET /runs/{uid} only
    upstream: list[RunLink] | None = None
    downstream: list[RunLink] | None = None


class RunLineagePublic(BaseModel):
    """Runs connected to ``root`` by ``triggered`` edges (run -> the run it started)."""

    root: str
    runs: list[RunPublic]
    edges: list[LineageEdge]
    not_shown: int = Field(
        default=0,
        description="runs named by an edge that you may not read or that Accord has not seen",
    )


class RunEventPublic(BaseModel):
    seq: int
    from_state: str | None
    to_state: str
    at: datetime
    observed_at: datetime


T = TypeVar("T")


class Paged(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
    total: int | None = None


class LineageNode(BaseModel):
    uid: str
    kind: str
    name: str
    source: str | None = None
    domain: str | None = None
    namespace: str | None = None
    last_run_state: str | None = None
    tombstoned: bool = False


class LineageEdge(BaseModel):
    kind: str
    src: str
    dst: str
    evidence: str
    reported_by: str


class LineagePublic(BaseModel):
    root: str | None = Field(description="the start job; null for the whole estate")
    truncated: bool = Field(default=False, description="the node limit cut the graph short")
    nodes: list[LineageNode]
    edges: list[LineageEdge]


class ActionRequest(BaseModel):
    params: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = Field(default=None, max_length=2000)
    emergency: bool = Field(
        default=False, description="override a change freeze (needs a reason; audited)"
    )
    hold: bool = Field(
        default=False,
        description="hold the action for approval even when no guardrail requires one",
    )


class ActionResult(BaseModel):
    action: str
    target: str
    outcome: str
    message: str
    run: RunPublic | None = None
    audit_seq: int | None = None
    approval_id: int | None = None


class AgentInfo(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    version: str = Field(default="", max_length=100)


class PushRequest(BaseModel):
    agent: AgentInfo
    inventory: list[JobRecord] | None = None
    runs: list[RunRecord] = Field(default_factory=list)
    health: SourceHealth | None = None


class PushResult(BaseModel):
    jobs: dict[str, int] | None
    runs: dict[str, int]


class OpenLineageResult(BaseModel):
    """What an OpenLineage event did: the run and job it is about in Accord, and the
    run counts of the upsert (``changed``: its state moved; ``ignored``: a duplicate or
    an event older than what is stored)."""

    run: str
    job: str
    runs: dict[str, int]


class AuditRecordPublic(BaseModel):
    seq: int
    at: datetime
    subject: str
    channel: str
    action: str
    target: str
    domain: str
    decision: str
    policy: str | None
    reason: str | None
    outcome: str
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditKeyPublic(BaseModel):
    """The key to verify audit exports with (``accord audit verify-export --public-key``)."""

    public_key: str = Field(description="Ed25519 public key, base64 (raw 32 bytes)")
    algorithm: str
    origin: str = Field(
        description="installation: generated by this gateway; configured: brought by the operator"
    )


class Me(BaseModel):
    subject: str
    roles: list[dict[str, str]]
    can: dict[str, bool]
    kind: str = Field(default="person", description="the token's kind: person or agent")


class TokenRotate(BaseModel):
    grace: str | None = Field(
        default=None,
        description="how long the current token stays valid next to the new one, e.g. "
        "'15m'; '0s' revokes it at once (default: the gateway's ACCORD_TOKEN_ROTATION_GRACE)",
    )
    ttl: str | None = Field(
        default=None,
        description="how long the new token lives, e.g. '30d' (default: as long as the "
        "current one was made to live; no expiry if it had none)",
    )


class TokenRotated(BaseModel):
    id: int
    token: str = Field(description="the new secret: shown this once, stored only as a hash")
    expires_at: datetime | None
    replaced: int = Field(description="the id of the token that was rotated")
    replaced_valid_until: datetime | None = Field(
        description="when the rotated token stops working (now, if revoked at once)"
    )


class StatsRow(BaseModel):
    source: str
    domain: str
    state: str
    count: int


class ApplyResult(BaseModel):
    dry_run: bool
    changes: list[str]
    summary: dict[str, int]


class ApprovalPublic(BaseModel):
    id: int
    action: str
    job_uid: str
    run_uid: str | None
    domain: str
    guardrail: str
    param_names: list[str]
    reason: str | None
    requested_by: str
    status: str
    approvals_needed: int
    approved_by: list[str]
    decided_by: str | None
    decision_reason: str | None
    outcome: str | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None


class DecisionRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)


class FiringPublic(BaseModel):
    """One firing of a Dependency or RetryPolicy (the automation outbox)."""

    id: int
    kind: str  # dependency | retry-policy
    rule: str
    key: str
    action: str
    job_uid: str
    run_uid: str | None = None
    subject: str
    upstream_runs: list[str]
    status: str
    attempts: int
    chain_attempt: int
    next_attempt_at: datetime | None = None
    approval_id: int | None = None
    result_run_uid: str | None = None
    message: str
    observed_at: datetime
    fired_at: datetime | None = None
    latency_seconds: float | None = Field(
        default=None, description="from the upstream end being stored to the trigger answered"
    )


class AutomationRulePublic(BaseModel):
    """A Dependency or RetryPolicy document with its latest firings."""

    kind: str
    name: str
    domain: str
    subject: str
    upstream: list[str] = Field(default_factory=list)
    dataset: str | None = None
    downstream: str | None = None
    when: list[str] = Field(default_factory=list)
    trigger: bool = True
    spec: dict[str, Any]
    counts: dict[str, int]
    firings: list[FiringPublic]


class ImpactNodePublic(BaseModel):
    uid: str
    kind: str
    depth: int
    via: str
    edge: str
    evidence: str
    name: str
    source: str | None = None
    domain: str | None = None
    last_run_state: str | None = None
    slas: list[str] = Field(default_factory=list)


class ImpactPublic(BaseModel):
    """What a job's failure or lateness affects downstream, across tools."""

    job: str
    slas: list[str]
    affected_jobs: int
    affected_datasets: int
    sources: list[str]
    nodes: list[ImpactNodePublic]
    hidden: int = Field(description="downstream jobs you may not read (not shown)")
    truncated: bool


class ReplicaPublic(BaseModel):
    id: str
    url: str | None = None
    host: str = ""
    pid: int = 0
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    heartbeat_age_seconds: float | None = None
    alive: bool = True
    leases: int = Field(0, description="source leases it holds")


class LeasePublic(BaseModel):
    name: str = Field(description="the source's name, or the cluster-wide job's")
    holder: str | None = Field(description="replica id; null when free or expired")
    token: int = Field(description="fencing token: grows each time the lease changes hands")
    acquired_at: datetime | None = None
    renewed_at: datetime | None = None
    expires_at: datetime | None = None
    held_for_seconds: float | None = None
    renewed_age_seconds: float | None = None
    expired: bool = False


class ClusterPublic(BaseModel):
    mode: str = Field(description="cluster (PostgreSQL, leases) or single (one process)")
    replica: str = Field(description="the replica that answered")
    lease_seconds: float
    replicas: list[ReplicaPublic]
    sources: list[LeasePublic]
    singletons: list[LeasePublic]
