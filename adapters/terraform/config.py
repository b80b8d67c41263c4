"""Settings of a Terraform Cloud Source (everything in ``spec`` besides ``type``, ``sync``, ...).

```yaml
spec:
  type: terraform
  url: https://app.terraform.io               # HCP Terraform, or a Terraform Enterprise host
  organizations: [acme]                       # one or more organizations
  token: {env: ACCORD_SECRET_TFC_TOKEN}       # a user or team API token
  notificationToken: {env: ACCORD_SECRET_TFC_HOOK}  # notification configurations' token
  include: ["prod-*"]                         # workspace name globs (default: all)
  exclude: ["sandbox-*"]
```

Workspace globs match the workspace name with ``fnmatch`` rules.
"""

from __future__ import annotations

from datetime import timedelta
from fnmatch import fnmatchcase

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.model import SecretRef
from gateway.model.resources import Duration

__all__ = ["TerraformConfig"]


class TerraformConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    url: str = Field(
        default="https://app.terraform.io",
        description="root URL of HCP Terraform or a Terraform Enterprise host (API under /api/v2)",
    )
    organizations: tuple[str, ...] = Field(
        validation_alias=AliasChoices("organizations", "organization"),
        min_length=1,
        description="organization names whose workspaces this source governs",
    )
    token: SecretRef = Field(
        validation_alias=AliasChoices("token", "tokenFrom"),
        description="a user or team API token (organization tokens cannot apply runs)",
    )
    notification_token: SecretRef | None = Field(
        default=None,
        alias="notificationToken",
        description="the token set on the workspaces' generic notification configurations; "
        "deliveries are verified by their HMAC-SHA512 signature with it",
    )
    include: tuple[str, ...] = Field(
        default=("*",), description="workspace name glob patterns to govern (default: all)"
    )
    exclude: tuple[str, ...] = Field(default=(), description="workspace name glob patterns")
    verify_tls: bool = Field(default=True, alias="verifyTls")
    page_size: int = Field(default=100, alias="pageSize", ge=1, le=100)
    backfill_runs: int = Field(
        default=100,
        alias="backfillRuns",
        ge=0,
        le=1000,
        description="newest runs per organization read on the first sync",
    )
    max_run_pages: int = Field(
        default=10,
        alias="maxRunPages",
        ge=1,
        le=100,
        description="at most this many pages of new runs per organization and sync",
    )
    run_triggers_refresh: Duration = Field(
        default=timedelta(hours=1),
        alias="runTriggersRefresh",
        description="how long a workspace's run triggers are reused before reading them again",
    )
    run_trigger_requests_per_sync: int = Field(
        default=200,
        alias="runTriggerRequestsPerSync",
        ge=0,
        le=10_000,
        description="at most this many run-trigger requests in one inventory sync",
    )
    rate_limit_wait: Duration = Field(
        default=timedelta(seconds=2),
        alias="rateLimitWait",
        description="a 429 whose X-RateLimit-Reset is at most this long is waited out and "
        "retried (twice at most); a longer one ends the sync with a backoff",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if v.endswith("/api/v2"):
            v = v[: -len("/api/v2")]
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("organizations", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return (v,) if isinstance(v, str) else v

    @field_validator("organizations")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [o for o in v if not o or "/" in o or o != o.strip()]
        if bad:
            raise ValueError(f"invalid organization name(s): {bad}")
        if len(set(v)) != len(v):
            raise ValueError("an organization is listed twice")
        return v

    @field_validator("rate_limit_wait")
    @classmethod
    def _short_wait(cls, v: timedelta) -> timedelta:
        if not timedelta(0) <= v <= timedelta(seconds=30):
            raise ValueError("must be between 0s and 30s")
        return v

    @model_validator(mode="after")
    def _globs(self) -> TerraformConfig:
        if not self.include:
            raise ValueError("include needs at least one pattern")
        return self

    @property
    def api_url(self) -> str:
        return self.url + "/api/v2/"

    def wants(self, name: str) -> bool:
        """Whether a workspace (by name) is governed by this source (include minus exclude)."""
        return any(fnmatchcase(name, p) for p in self.include) and not any(
            fnmatchcase(name, p) for p in self.exclude
        )

    @property
    def filters_names(self) -> bool:
        return self.include != ("*",) or bool(self.exclude)
