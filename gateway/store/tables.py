"""SQLModel tables. Only the store and its services use them; the API has its own schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from .types import UTCDateTime, utcnow

__all__ = [
    "ApiToken",
    "AppliedResource",
    "ApprovalRequest",
    "AuditRecord",
    "Dataset",
    "Edge",
    "Firing",
    "Job",
    "Lease",
    "Meta",
    "Notification",
    "Replica",
    "Run",
    "RunEvent",
    "ScheduleWatch",
    "SlaState",
    "Source",
    "SsoIdentity",
    "SsoLogin",
    "SsoSession",
    "Step",
    "Violation",
]


def _dt(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


class Source(SQLModel, table=True):
    __tablename__ = "source"
    name: str = Field(primary_key=True)
    type: str
    domain: str = Field(index=True)
    spec: dict[str, Any] = _json(dict)  # the document's spec; secrets only as references
    labels: dict[str, str] = _json(dict)
    demo: bool = False
    enabled: bool = True
    health: str = "unknown"
    health_message: str = ""
    # What the adapter's check found wrong: [{"message", "file", "line", "job"}, ...]
    problems: list[dict[str, Any]] = _json(list)
    checked_at: datetime | None = _dt()
    last_sync_at: datetime | None = _dt()
    last_success_at: datetime | None = _dt()
    last_error: str | None = Field(default=None, sa_type=Text)
    consecutive_failures: int = 0
    runs_cursor: str | None = Field(default=None, sa_type=Text)
    inventory_every_s: float = 300.0
    runs_every_s: float = 30.0
    stale_after_s: float = 900.0
    # How far the clock of the source's host is ahead of the gateway's (seconds; negative:
    # behind), measured from its agent's pushes (their Date header). Run times stay the
    # host's own; SLAs judge them on the gateway's clock. None: never measured.
    clock_offset_s: float | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Job(SQLModel, table=True):
    __tablename__ = "job"
    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(unique=True)
    source: str = Field(index=True)
    native_id: str
    domain: str = Field(index=True)
    name: str
    native_type: str
    schedule_expr: str | None = None
    schedule_tz: str | None = None
    schedule_text: str | None = None
    next_run_at: datetime | None = _dt()
    paused: bool = False
    paused_since: datetime | None = _dt()
    owners: list[str] = _json(list)
    labels: dict[str, str] = _json(dict)
    url: str | None = None
    description: str | None = Field(default=None, sa_type=Text)
    attributes: dict[str, Any] = _json(dict)
    problems: list[str] = _json(list)
    definition_hash: str
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    tombstoned_at: datetime | None = _dt()
    last_run_state: str | None = None
    last_run_at: datetime | None = _dt()


class Run(SQLModel, table=True):
    __tablename__ = "run"
    __table_args__ = (
        Index("ix_run_domain_state_sort", "domain", "state", "sort_at"),
        Index("ix_run_job_sort", "job_uid", "sort_at"),
        Index("ix_run_source_state", "source", "state"),
        Index("ix_run_sort", "sort_at", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(unique=True)
    source: str
    job_uid: str
    domain: str
    state: str
    native_state: str | None = None
    trigger: str = "unknown"
    actor: str | None = None
    queued_at: datetime | None = _dt()
    started_at: datetime | None = _dt()
    ended_at: datetime | None = _dt()
    sort_at: datetime = Field(sa_type=UTCDateTime)  # started, else queued, else first seen
    attempt: int = 1
    url: str | None = None
    message: str | None = Field(default=None, sa_type=Text)
    event_seq: int = 0
    observed_at: datetime = Field(sa_type=UTCDateTime)
    # Set when a cancel through Accord succeeded: a later "failed" from the source is the
    # cancel (Airflow has no cancelled state), so the run is shown cancelled.
    cancel_requested_at: datetime | None = _dt()
    cancel_requested_by: str | None = None


class Step(SQLModel, table=True):
    __tablename__ = "step"
    __table_args__ = (UniqueConstraint("run_uid", "name", name="uq_step_run_name"),)
    id: int | None = Field(default=None, primary_key=True)
    run_uid: str = Field(index=True)
    name: str
    state: str
    native_state: str | None = None
    started_at: datetime | None = _dt()
    ended_at: datetime | None = _dt()
    attempt: int = 1


class Dataset(SQLModel, table=True):
    __tablename__ = "dataset"
    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(unique=True)  # "<namespace>/<name>"
    namespace: str
    name: str
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Edge(SQLModel, table=True):
    __tablename__ = "edge"
    __table_args__ = (
        UniqueConstraint("kind", "src_uid", "dst_uid", name="uq_edge"),
        Index("ix_edge_dst", "dst_uid"),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str
    src_kind: str
    src_uid: str = Field(index=True)
    dst_kind: str
    dst_uid: str
    reported_by: str  # the source whose adapter reported it ("config" for Dependency docs)
    evidence: str = Field(default="", sa_type=Text)
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RunEvent(SQLModel, table=True):
    __tablename__ = "run_event"
    __table_args__ = (UniqueConstraint("run_uid", "seq", name="uq_run_event_seq"),)
    id: int | None = Field(default=None, primary_key=True)
    run_uid: str
    seq: int
    from_state: str | None = None
    to_state: str
    at: datetime = Field(sa_type=UTCDateTime)
    observed_at: datetime = Field(sa_type=UTCDateTime)


class AuditRecord(SQLModel, table=True):
    __tablename__ = "audit_record"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    subject: str
    channel: str
    action: str
    target: str
    domain: str = Field(index=True)
    decision: str  # allow | deny
    policy: str | None = None  # the rule that decided
    reason: str | None = Field(default=None, sa_type=Text)
    outcome: str  # ok | error | denied | pending ...
    request_id: str | None = None
    details: dict[str, Any] = _json(dict)
    prev_hash: str = Field(unique=True)
    hash: str = Field(unique=True)


class AppliedResource(SQLModel, table=True):
    __tablename__ = "applied_resource"
    kind: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    domain: str
    document: dict[str, Any] = _json(dict)
    digest: str
    generation: int = 1
    applied_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    applied_by: str


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True)
    prefix: str  # first characters, to recognise a token in listings
    subject: str = Field(index=True)
    role: str
    domain: str = "*"
    # "person" or "agent" (an AI agent: its calls are recorded on the agent channel and it
    # is the only kind the MCP door accepts)
    kind: str = Field(default="person", sa_column_kwargs={"server_default": "person"})
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = _dt()
    revoked_at: datetime | None = _dt()
    last_used_at: datetime | None = _dt()
    # Set when the token was rotated: the id of the token that replaced it (the old one
    # lives out its grace period and cannot be rotated again).
    replaced_by: int | None = None


class SsoIdentity(SQLModel, table=True):
    """A person known through single sign-on: the claims that GroupBindings read, as their
    provider last presented them (so decisions made later, e.g. an approved action run as
    its requester, see the same roles)."""

    __tablename__ = "sso_identity"
    subject: str = Field(primary_key=True)
    claims: dict[str, Any] = _json(dict)
    digest: str
    seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SsoSession(SQLModel, table=True):
    """A console session started by an OpenID Connect login; the cookie holds the token,
    the store only its SHA-256 digest."""

    __tablename__ = "sso_session"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True)
    subject: str = Field(index=True)
    name: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = _dt()


class SsoLogin(SQLModel, table=True):
    """A login under way (between /auth/login and /auth/callback), single use."""

    __tablename__ = "sso_login"
    state_hash: str = Field(primary_key=True)
    nonce: str
    return_to: str = "/"
    expires_at: datetime = Field(sa_type=UTCDateTime)


class Meta(SQLModel, table=True):
    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class ApprovalRequest(SQLModel, table=True):
    """An action held by an approval guardrail until a different person approves it."""

    __tablename__ = "approval_request"
    id: int | None = Field(default=None, primary_key=True)
    action: str
    job_uid: str = Field(index=True)
    run_uid: str | None = None
    domain: str = Field(index=True)
    guardrail: str
    params: dict[str, Any] = _json(dict)
    reason: str | None = Field(default=None, sa_type=Text)
    requested_by: str
    channel: str
    status: str = Field(default="pending", index=True)  # pending|approved|rejected|expired
    approvals_needed: int = 1
    approved_by: list[str] = _json(list)
    decided_by: str | None = None
    decision_reason: str | None = Field(default=None, sa_type=Text)
    outcome: str | None = None  # what the action did once approved
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    decided_at: datetime | None = _dt()


class Violation(SQLModel, table=True):
    """A compliance rule a job does not meet, with evidence and history."""

    __tablename__ = "violation"
    __table_args__ = (UniqueConstraint("rule", "job_uid", name="uq_violation_rule_job"),)
    id: int | None = Field(default=None, primary_key=True)
    rule: str
    severity: str
    job_uid: str = Field(index=True)
    domain: str = Field(index=True)
    evidence: dict[str, Any] = _json(dict)
    message: str = Field(default="", sa_type=Text)
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved_at: datetime | None = _dt()
    resolution: str | None = None  # fixed | rule-removed | job-gone


class SlaState(SQLModel, table=True):
    """The current state of one SLA instance (an SLA document applied to one job)."""

    __tablename__ = "sla_state"
    __table_args__ = (UniqueConstraint("sla", "job_uid", name="uq_sla_state"),)
    id: int | None = Field(default=None, primary_key=True)
    sla: str = Field(index=True)
    job_uid: str = Field(index=True)
    domain: str = Field(index=True)
    state: str  # ok | at_risk | breached
    reason: str = Field(default="", sa_type=Text)
    deadline: datetime | None = _dt()
    predicted_end: datetime | None = _dt()
    details: dict[str, Any] = _json(dict)  # objective, critical path, figures
    since: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    evaluated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Notification(SQLModel, table=True):
    """One message for one incident to one notifier: the outbox and its delivery record.

    ``incident`` is the deduplication key (the same incident seen on every poll is one row);
    ``deliveries`` lists every attempt with its outcome."""

    __tablename__ = "notification"
    __table_args__ = (
        UniqueConstraint("notifier", "incident", name="uq_notification_incident"),
        Index("ix_notification_due", "status", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    notifier: str
    incident: str
    event_type: str
    severity: str
    domain: str = Field(index=True)
    job_uid: str | None = None
    title: str = Field(sa_type=Text)
    text: str = Field(default="", sa_type=Text)
    data: dict[str, Any] = _json(dict)
    status: str = "pending"  # pending | sending | sent | failed | suppressed
    # The claim of the sender that set ``sending`` (compare-and-set); while ``sending``,
    # ``next_attempt_at`` is the end of that claim's lease.
    claimed_by: str | None = None
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
    deliveries: list[dict[str, Any]] = _json(list)
    digest_id: int | None = None  # sent as part of the digest message of this row
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = _dt()


class ScheduleWatch(SQLModel, table=True):
    """Missed-run detection: expected starts of a job up to ``judged_until`` were judged."""

    __tablename__ = "schedule_watch"
    job_uid: str = Field(primary_key=True)
    judged_until: datetime = Field(sa_type=UTCDateTime)


class Firing(SQLModel, table=True):
    """The outbox of automation: one row per firing a Dependency or RetryPolicy owes.

    Written in the transaction that stored the upstream run's end, so an observed condition
    is durable before anything acts on it; ``key`` (unique) makes each firing happen at most
    once per upstream run or fan-in set. A dispatcher claims a row by compare-and-set on
    ``status`` and acts through ``gateway.actions.perform``.
    """

    __tablename__ = "firing"
    __table_args__ = (
        UniqueConstraint("key", name="uq_firing_key"),
        Index("ix_firing_status_due", "status", "next_attempt_at"),
        Index("ix_firing_rule", "kind", "rule", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    key: str
    kind: str  # dependency | retry-policy
    rule: str  # the document's name
    action: str  # trigger | retry
    job_uid: str = Field(index=True)  # the job acted on
    run_uid: str | None = None  # the run retried (action retry)
    domain: str
    subject: str
    upstream_runs: list[str] = _json(list)
    params: dict[str, Any] = _json(dict)
    # pending | dispatching | held | waiting | fired | failed | dropped | skipped | unknown
    status: str = "pending"
    chain_attempt: int = 1  # retry policies: which run of the chain this firing starts
    attempts: int = 0  # delivery attempts so far
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    claimed_by: str | None = None
    claimed_at: datetime | None = _dt()
    approval_id: int | None = None
    result_run_uid: str | None = Field(default=None, index=True)
    message: str = Field(default="", sa_type=Text)
    observed_at: datetime = Field(sa_type=UTCDateTime)  # when the condition was stored
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    fired_at: datetime | None = _dt()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Replica(SQLModel, table=True):
    """A gateway process of a cluster on PostgreSQL (``gateway.cluster``); its heartbeat
    says it is alive."""

    __tablename__ = "replica"
    id: str = Field(primary_key=True)
    url: str | None = None
    host: str = ""
    pid: int = 0
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # It holds a session advisory lock on its id (``gateway.cluster.leases.Liveness``):
    # when that lock is free, the process is gone and its leases are taken at once.
    liveness: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class Lease(SQLModel, table=True):
    """Who does a piece of cluster work: ``source:<name>`` (that source's sync) or
    ``singleton:<name>`` (a periodic job that runs once per cluster). ``token`` grows by
    one every time the lease changes hands (the fencing token)."""

    __tablename__ = "lease"
    name: str = Field(primary_key=True)
    holder: str | None = None
    token: int = 0
    acquired_at: datetime | None = _dt()
    renewed_at: datetime | None = _dt()
    expires_at: datetime | None = _dt()
