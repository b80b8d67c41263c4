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
    "KINDS",
    "SLA",
    "ComplianceRule",
    "Dependency",
    "Domain",
    "Duration",
    "GroupBinding",
    "Guardrail",
    "Metadata",
    "Notifier",
    "Resource",
    "Role",
    "RoleBinding",
    "SecretRef",
    "Source",
    "parse_duration",
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


class DependencySpec(_Strict):
    upstream: str = Field(description="job uid (source/native_id)")
    downstream: str = Field(description="job uid (source/native_id)")
    when: list[RunState] = Field(
        default_factory=lambda: [RunState.SUCCESS],
        description="upstream end states that count (YAML reads a bare 'on' as true, so "
        "this is 'when')",
    )
    trigger: bool = Field(default=False, description="trigger downstream when upstream ends")


class Dependency(_Doc):
    kind: Literal["Dependency"]
    spec: DependencySpec


class SLASpec(_Strict):
    selector: JobSelector
    max_duration: Duration | None = Field(default=None, alias="maxDuration")
    deadline: str | None = Field(default=None, description="HH:MM by which a run must succeed")
    timezone: str = "UTC"


class SLA(_Doc):
    kind: Literal["SLA"]
    spec: SLASpec


class NotifierSpec(_Strict):
    type: Literal["webhook", "slack", "email"]
    url: str | None = None
    url_from: SecretRef | None = Field(default=None, alias="urlFrom")
    events: list[str] = Field(default_factory=lambda: ["run.failed"])


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
    "SLA": SLA,
    "Notifier": Notifier,
}
