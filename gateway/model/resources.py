"""Declarative resource kinds (``apiVersion: accord.dev/v1``).

Everything an operator configures is one of these documents. They validate before
anything changes, and ``accord schema`` prints their JSON Schema.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .enums import RunState

__all__ = [
    "API_VERSION",
    "EVENT_TYPES",
    "KINDS",
    "SEVERITIES",
    "SLA",
    "TEMPLATE_VARIABLES",
    "ComplianceRule",
    "Dependency",
    "Domain",
    "Duration",
    "GroupBinding",
    "Guardrail",
    "Metadata",
    "Notifier",
    "Resource",
    "RetryPolicy",
    "Role",
    "RoleBinding",
    "SecretRef",
    "Source",
    "parse_duration",
    "render_template",
    "template_variables",
]

API_VERSION = "accord.dev/v1"
_SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> timedelta:
    """Parse ``30s``, ``5m``, ``1h``, ``2d`` (or a number of seconds) into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 1h, 2d)")


def _fmt_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(_fmt_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d)$"}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SecretRef(_Strict):
    """A reference to a secret; the value itself never enters Accord's database."""

    env: str | None = Field(default=None, description="name of an environment variable")
    file: str | None = Field(default=None, description="path of a file holding the secret")

    @model_validator(mode="after")
    def _one_of(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret reference needs exactly one of 'env' or 'file'")
        return self

    def describe(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"


class Metadata(_Strict):
    name: str = Field(pattern=_SLUG, description="lower-case slug, unique per kind")
    domain: str = Field(default="default", pattern=_SLUG)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class SyncSpec(_Strict):
    inventory_every: Duration = Field(default=timedelta(minutes=5), alias="inventoryEvery")
    runs_every: Duration = Field(default=timedelta(seconds=30), alias="runsEvery")
    stale_after: Duration | None = Field(
        default=None,
        alias="staleAfter",
        description="no successful sync for this long marks the source stale "
        "(default: 3 x inventoryEvery)",
    )
    timeout: Duration = Field(default=timedelta(seconds=30))
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="blocking calls to the source at once, in threads of its own, apart "
        "from the API's (default: 4)",
    )


class SourceSpec(BaseModel):
    """``type`` selects the adapter; the other fields are that adapter's settings."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    type: str = Field(min_length=1)
    enabled: bool = True
    demo: bool = Field(default=False, description="part of the demo federation")
    sync: SyncSpec = Field(default_factory=SyncSpec)

    def adapter_config(self) -> dict[str, Any]:
        """The adapter-specific settings (everything but the common fields)."""
        return dict(self.model_extra or {})


class _Doc(_Strict):
    api_version: Literal["accord.dev/v1"] = Field(alias="apiVersion")
    metadata: Metadata


class Source(_Doc):
    kind: Literal["Source"]
    spec: SourceSpec


class DomainSpec(_Strict):
    description: str = ""
    owners: list[str] = Field(default_factory=list)
    production: bool = False


class Domain(_Doc):
    kind: Literal["Domain"]
    spec: DomainSpec = Field(default_factory=DomainSpec)


ACTIONS = (
    "read",
    "trigger",
    "cancel",
    "pause",
    "resume",
    "retry",
    "approve",
    "destroy",
    "apply-config",
    "export-audit",
    "push",
    "*",
)


class RoleRule(_Strict):
    actions: list[str] = Field(min_length=1)
    objects: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    effect: Literal["allow", "deny"] = "allow"

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ACTIONS]
        if bad:
            raise ValueError(f"unknown action(s) {bad}; known: {', '.join(ACTIONS)}")
        return v


class RoleSpec(_Strict):
    rules: list[RoleRule] = Field(min_length=1)


class Role(_Doc):
    kind: Literal["Role"]
    spec: RoleSpec


class RoleBindingSpec(_Strict):
    role: str
    subjects: list[str] = Field(min_length=1)
    domains: list[str] = Field(
        default_factory=lambda: ["*"], description="domains the role applies in ('*' = all)"
    )


class RoleBinding(_Doc):
    kind: Literal["RoleBinding"]
    spec: RoleBindingSpec


_CLAIM = r"^[A-Za-z0-9_:/.-]+$"


class GroupBindingSpec(_Strict):
    """Single sign-on: people whose identity-provider token carries one of ``values`` in
    the claim ``claim`` hold ``role`` in ``domains``. The claim may be a string or a list
    of strings (``groups``, ``roles``); a dotted path reads a nested claim
    (``realm_access.roles``). The subject of such a person is ``oidc:<subject claim>``."""

    claim: str = Field(
        default="groups",
        pattern=_CLAIM,
        description="the token claim to read (dotted path for nested claims)",
    )
    values: list[str] = Field(min_length=1, description="claim values that grant the role")
    role: str
    domains: list[str] = Field(
        default_factory=lambda: ["*"], description="domains the role applies in ('*' = all)"
    )

    @field_validator("values")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if any(not item.strip() for item in v):
            raise ValueError("an empty claim value would match nothing")
        return v


class GroupBinding(_Doc):
    kind: Literal["GroupBinding"]
    spec: GroupBindingSpec


class FreezeWindow(_Strict):
    start: str = Field(description="ISO date-time or cron expression")
    end: str | None = None
    duration: Duration | None = None
    timezone: str = "UTC"


class JobSelector(_Strict):
    domains: list[str] = Field(default_factory=list)
    jobs: list[str] = Field(default_factory=list, description="job uid glob patterns")
    labels: dict[str, str] = Field(default_factory=dict)


class GuardrailSpec(_Strict):
    """``freeze``: ``actions`` on matching jobs are refused inside ``windows`` (an emergency
    override with a reason passes, audited). ``approval``: ``actions`` on matching jobs are
    held until ``approvers`` other people with the approve permission agree, within
    ``expiresAfter``. ``agent-limit``: ``subjects`` (glob patterns of subject names, e.g.
    ``agent:*``) may only take ``actions``, at most ``ratePerHour`` of them, and never a
    destructive one (cancel, or a trigger with ``destroy`` set) when ``neverDestroy``."""

    type: Literal["freeze", "approval", "agent-limit"]
    selector: JobSelector = Field(default_factory=JobSelector)
    actions: list[str] = Field(default_factory=lambda: ["trigger", "cancel", "pause", "resume"])
    windows: list[FreezeWindow] = Field(default_factory=list)
    approvers: int = Field(default=1, ge=1, le=5)
    expires_after: Duration = Field(default=timedelta(hours=24), alias="expiresAfter")
    subjects: list[str] = Field(default_factory=list)
    rate_per_hour: int | None = Field(default=None, alias="ratePerHour", ge=0)
    never_destroy: bool = Field(default=True, alias="neverDestroy")

    @field_validator("actions")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        known = ("trigger", "cancel", "pause", "resume", "retry", "apply", "discard")
        bad = [a for a in v if a not in known]
        if bad:
            raise ValueError(f"unknown action(s) {bad}; guardrails apply to {', '.join(known)}")
        return v

    @model_validator(mode="after")
    def _complete(self) -> GuardrailSpec:
        if self.type == "freeze" and not self.windows:
            raise ValueError("a freeze guardrail needs at least one window")
        if self.type == "agent-limit" and not self.subjects:
            raise ValueError("an agent-limit guardrail needs the subjects it limits")
        return self


class Guardrail(_Doc):
    kind: Literal["Guardrail"]
    spec: GuardrailSpec


class ComplianceRuleSpec(_Strict):
    description: str = ""
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    selector: JobSelector = Field(default_factory=JobSelector)
    expression: str = Field(min_length=1, description="a condition every matching job must meet")


class ComplianceRule(_Doc):
    kind: Literal["ComplianceRule"]
    spec: ComplianceRuleSpec


TEMPLATE_VARIABLES: dict[str, str] = {
    "upstream.run_uid": "uid of the upstream run (source/native run id)",
    "upstream.run_id": "native id of the upstream run in its tool",
    "upstream.job": "uid of the upstream job",
    "upstream.job_id": "native id of the upstream job in its tool",
    "upstream.source": "source of the upstream run",
    "upstream.state": "Accord state of the upstream run (success, failed, ...)",
    "upstream.native_state": "the tool's own state of the upstream run",
    "upstream.queued_at": "when the upstream run was queued (ISO 8601, UTC; empty if unknown)",
    "upstream.started_at": "when the upstream run started (ISO 8601, UTC; empty if unknown)",
    "upstream.ended_at": "when the upstream run ended (ISO 8601, UTC; empty if unknown)",
    "upstream.logical_date": "the run's native logical date where the tool has one (Airflow "
    "data interval / logical date from the run id), else empty",
    "upstream.attempt": "attempt number of the upstream run",
    "upstream.message": "the upstream run's message (first 500 characters)",
    "upstream.runs": "comma-separated uids of every upstream run of a fan-in set",
    "dependency.name": "name of the Dependency (or RetryPolicy) document",
    "firing.key": "the firing's idempotency key (pass it where the tool deduplicates)",
}
"""Template variables a Dependency's ``params`` may use as ``{{ name }}``."""

_TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_WHEN = ("success", "failed", "cancelled", "skipped", "terminal")


def template_variables(text: str) -> list[str]:
    """The ``{{ name }}`` variables a parameter template uses."""
    return _TEMPLATE.findall(text)


def render_template(text: str, values: dict[str, str]) -> str:
    """Replace every ``{{ name }}`` (names checked at validate time)."""
    return _TEMPLATE.sub(lambda m: values.get(m.group(1), ""), text)


class DeliveryPolicy(_Strict):
    """How often a refused firing is tried again (tool down, policy denied, guardrail)."""

    max_attempts: int = Field(default=5, ge=1, le=100, alias="maxAttempts")
    backoff: Duration = Field(
        default=timedelta(seconds=30), description="first delay; doubles per attempt"
    )
    max_backoff: Duration = Field(default=timedelta(minutes=30), alias="maxBackoff")


class DependencySpec(_Strict):
    """When upstream job(s) reach a condition, trigger ``downstream`` (``trigger: true``).

    Without ``trigger`` the document only records lineage (``depends_on``)."""

    upstream: str | list[str] | None = Field(
        default=None,
        description="job uid (source/native_id), or a list: fan-in, all of them within 'window'",
    )
    dataset: str | None = Field(
        default=None,
        description="dataset uid (namespace/name): fires when a run of a job that produces "
        "it ends in 'when' (default success)",
    )
    downstream: str = Field(description="job uid (source/native_id)")
    when: list[str] = Field(
        default_factory=lambda: ["success"],
        description="upstream end states that count: success, failed, cancelled, skipped, "
        "or terminal (any of them). YAML reads a bare 'on' as true, so this is 'when'",
    )
    trigger: bool = Field(default=False, description="trigger downstream when upstream ends")
    window: Duration = Field(
        default=timedelta(hours=24),
        description="fan-in: every upstream must have ended within this window",
    )
    params: dict[str, str] = Field(
        default_factory=dict, description="trigger parameters; values may use {{ variables }}"
    )
    subject: str | None = Field(
        default=None,
        description="who the firing acts as (Casbin subject; default dependency:<name>)",
    )
    on_freeze: Literal["hold", "drop"] = Field(
        default="hold",
        alias="onFreeze",
        description="a firing inside a freeze window is held until it ends, or dropped",
    )
    delivery: DeliveryPolicy = Field(default_factory=DeliveryPolicy)

    @field_validator("when")
    @classmethod
    def _known_when(cls, v: list[str]) -> list[str]:
        bad = [w for w in v if w not in _WHEN]
        if bad or not v:
            raise ValueError(f"unknown condition(s) {bad}; use {', '.join(_WHEN)}")
        return v

    @field_validator("params")
    @classmethod
    def _known_variables(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            for name in template_variables(text):
                if name not in TEMPLATE_VARIABLES:
                    raise ValueError(
                        f"params.{key}: unknown template variable {{{{ {name} }}}}; known: "
                        + ", ".join(TEMPLATE_VARIABLES)
                    )
        return v

    @model_validator(mode="after")
    def _one_upstream(self) -> DependencySpec:
        if (self.upstream is None) == (self.dataset is None):
            raise ValueError("a dependency needs exactly one of 'upstream' or 'dataset'")
        if isinstance(self.upstream, list) and not self.upstream:
            raise ValueError("'upstream' needs at least one job")
        return self

    @property
    def upstreams(self) -> list[str]:
        if self.upstream is None:
            return []
        return [self.upstream] if isinstance(self.upstream, str) else list(self.upstream)

    @property
    def states(self) -> set[RunState]:
        if "terminal" in self.when:
            return {s for s in RunState if s.terminal}
        return {RunState(w) for w in self.when}


class Dependency(_Doc):
    kind: Literal["Dependency"]
    spec: DependencySpec

    @property
    def subject(self) -> str:
        return self.spec.subject or f"dependency:{self.metadata.name}"


class RetryMatch(_Strict):
    states: list[RunState] = Field(default_factory=lambda: [RunState.FAILED])
    native_states: list[str] = Field(
        default_factory=list, alias="nativeStates", description="empty: any"
    )
    message: str | None = Field(
        default=None, description="regular expression searched in the run's message"
    )

    @field_validator("message")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return v


class RetryPolicySpec(_Strict):
    """When a run of a matching job fails and matches, retry it through its tool after a
    back-off (``action: retry``), or trigger the ``remediation`` job (``action:
    remediate``); bounded per job (attempts and per hour) and skipped in a freeze."""

    selector: JobSelector
    match: RetryMatch = Field(default_factory=RetryMatch)
    action: Literal["retry", "remediate"] = "retry"
    remediation: str | None = Field(default=None, description="job uid to trigger")
    params: dict[str, str] = Field(default_factory=dict)
    max_attempts: int = Field(
        default=3, ge=1, le=20, alias="maxAttempts", description="runs of one chain, first included"
    )
    max_per_hour: int = Field(default=10, ge=1, alias="maxPerHour", description="per job")
    backoff: Duration = Field(
        default=timedelta(minutes=1), description="delay before the first retry; doubles"
    )
    subject: str | None = Field(default=None, description="default retry-policy:<name>")

    @field_validator("params")
    @classmethod
    def _known_variables(cls, v: dict[str, str]) -> dict[str, str]:
        return DependencySpec._known_variables(v)

    @model_validator(mode="after")
    def _remediation(self) -> RetryPolicySpec:
        if self.action == "remediate" and not self.remediation:
            raise ValueError("action 'remediate' needs the 'remediation' job uid")
        if self.action == "retry" and self.params:
            raise ValueError("'params' go with action 'remediate' (a retry repeats the run)")
        return self


class RetryPolicy(_Doc):
    kind: Literal["RetryPolicy"]
    spec: RetryPolicySpec

    @property
    def subject(self) -> str:
        return self.spec.subject or f"retry-policy:{self.metadata.name}"


_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
SEVERITIES = ("info", "warning", "critical")
EVENT_TYPES = (
    "run.failed",
    "run.missed",
    "sla.at_risk",
    "sla.breached",
    "sla.ok",
    "violation.opened",
    "approval.requested",
    "dependency.held",
    "dependency.refused",
    "dependency.failed",
)


def _check_zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as 'Europe/Berlin' or 'UTC')"
        ) from None
    return value


def _check_time_of_day(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _HHMM.match(value.strip()):
        raise ValueError(f"not a time of day: {value!r} (use HH:MM, 24-hour, e.g. '06:30')")
    hh, mm = value.strip().split(":")
    return f"{int(hh):02d}:{mm}"


class SLASpec(_Strict):
    """Objectives for every job the selector matches (one SLA instance per job).

    ``startBy``/``finishBy``: a run must start / succeed by this time of day (HH:MM in
    ``timezone``) on every local day the job is expected to run. ``maxDuration``: no run
    may take longer. ``maxAge``: the last success may never be older (freshness)."""

    selector: JobSelector
    start_by: str | None = Field(default=None, alias="startBy", description="HH:MM")
    finish_by: str | None = Field(default=None, alias="finishBy", description="HH:MM")
    deadline: str | None = Field(default=None, description="HH:MM; the same as finishBy")
    timezone: str = "UTC"
    max_duration: Duration | None = Field(default=None, alias="maxDuration")
    max_age: Duration | None = Field(default=None, alias="maxAge")
    severity: Literal["info", "warning", "critical"] = "warning"

    _times = field_validator("start_by", "finish_by", "deadline")(_check_time_of_day)
    _zone = field_validator("timezone")(_check_zone)

    @model_validator(mode="after")
    def _objective(self) -> SLASpec:
        if self.deadline is not None and self.finish_by is None:
            self.finish_by = self.deadline
        if not (self.start_by or self.finish_by or self.max_duration or self.max_age):
            raise ValueError(
                "an SLA needs at least one objective: startBy, finishBy, maxDuration or maxAge"
            )
        return self


class SLA(_Doc):
    kind: Literal["SLA"]
    spec: SLASpec


class SmtpSpec(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = Field(default=True, description="upgrade with STARTTLS")
    username: str | None = None
    password_from: SecretRef | None = Field(default=None, alias="passwordFrom")
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    timeout: Duration = Field(default=timedelta(seconds=20))
    ca_file: str | None = Field(
        default=None, alias="caFile", description="CA bundle to verify the server (PEM)"
    )


class RouteSpec(_Strict):
    """Which events go to a notifier (empty lists match everything)."""

    events: list[str] = Field(default_factory=lambda: ["run.failed", "run.missed"])
    domains: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    min_severity: Literal["info", "warning", "critical"] = Field(
        default="info", alias="minSeverity"
    )

    @field_validator("events")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [e for e in v if e not in EVENT_TYPES and e != "*"]
        if bad:
            raise ValueError(f"unknown event type(s) {bad}; known: {', '.join(EVENT_TYPES)}")
        return v


class NotifierSpec(_Strict):
    """``webhook`` (JSON, signed with HMAC-SHA256 when ``secretFrom`` is set), ``slack`` and
    ``teams`` (incoming webhooks), ``email`` (SMTP with STARTTLS)."""

    type: Literal["webhook", "slack", "teams", "email"]
    url: str | None = None
    url_from: SecretRef | None = Field(default=None, alias="urlFrom")
    secret_from: SecretRef | None = Field(default=None, alias="secretFrom")
    smtp: SmtpSpec | None = None
    events: list[str] | None = Field(
        default=None, description="shorthand for route.events (kept for older documents)"
    )
    route: RouteSpec = Field(default_factory=RouteSpec)
    rate_per_hour: int = Field(default=60, alias="ratePerHour", ge=1, le=10_000)
    digest: Duration | None = Field(
        default=None, description="collect messages and send one digest per this period"
    )
    max_attempts: int = Field(default=6, alias="maxAttempts", ge=1, le=20)

    @model_validator(mode="after")
    def _complete(self) -> NotifierSpec:
        if self.events is not None:
            checked = RouteSpec(events=self.events).events
            self.route = self.route.model_copy(update={"events": checked})
        if self.type == "email":
            if self.smtp is None:
                raise ValueError("an email notifier needs 'smtp' (host, from, to)")
        elif (self.url is None) == (self.url_from is None):
            raise ValueError(f"a {self.type} notifier needs exactly one of 'url' or 'urlFrom'")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s), got {self.url!r}")
        return self


class Notifier(_Doc):
    kind: Literal["Notifier"]
    spec: NotifierSpec


Resource = Annotated[
    Source
    | Domain
    | Role
    | RoleBinding
    | GroupBinding
    | Guardrail
    | ComplianceRule
    | Dependency
    | RetryPolicy
    | SLA
    | Notifier,
    Field(discriminator="kind"),
]

KINDS: dict[str, type[BaseModel]] = {
    "Source": Source,
    "Domain": Domain,
    "Role": Role,
    "RoleBinding": RoleBinding,
    "GroupBinding": GroupBinding,
    "Guardrail": Guardrail,
    "ComplianceRule": ComplianceRule,
    "Dependency": Dependency,
    "RetryPolicy": RetryPolicy,
    "SLA": SLA,
    "Notifier": Notifier,
}
