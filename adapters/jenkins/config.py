"""Settings of a Jenkins Source (everything in ``spec`` besides ``type``, ``sync``, ...).

```yaml
spec:
  type: jenkins
  url: https://jenkins.internal            # the controller's root URL
  username: accord                         # a Jenkins user ...
  token: {env: ACCORD_SECRET_JENKINS}      # ... and its API token (not the password)
  include: ["team/*"]                      # job path globs (default: every job)
  exclude: ["sandbox/*"]
  maxBuildsPerJob: 20                      # builds read per job and sync (Jenkins caps at 100)
  timezone: Europe/Berlin                  # the controller's time zone (for timer specs
                                           # without a TZ= line); default UTC
```

Globs match the full job path with ``fnmatch`` rules (``*`` also matches ``/``).
"""

from __future__ import annotations

from datetime import timedelta
from fnmatch import fnmatchcase
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from gateway.model import SecretRef
from gateway.model.resources import Duration

__all__ = ["JenkinsConfig"]


class JenkinsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    url: str = Field(description="root URL of the Jenkins controller, e.g. https://ci.example.com")
    username: str = Field(min_length=1, description="the Jenkins user Accord acts as")
    token: SecretRef = Field(
        validation_alias=AliasChoices("token", "tokenFrom"),
        description="that user's API token (API tokens need no CSRF crumb; a password works too)",
    )
    include: tuple[str, ...] = Field(
        default=("*",), description="job path glob patterns to govern (default: all)"
    )
    exclude: tuple[str, ...] = Field(default=(), description="job path glob patterns to leave out")
    verify_tls: bool = Field(default=True, alias="verifyTls")
    max_builds_per_job: int = Field(
        default=20,
        alias="maxBuildsPerJob",
        ge=1,
        le=100,
        description="newest builds read per job in one request (Jenkins lists at most 100)",
    )
    timezone: str = Field(
        default="UTC",
        description="the controller's time zone, used for timer specs without a TZ= line",
    )
    folder_depth: int = Field(
        default=4,
        alias="folderDepth",
        ge=1,
        le=10,
        description="folder levels read in one request; deeper folders cost one more each",
    )
    config_refresh: Duration = Field(
        default=timedelta(hours=1),
        alias="configRefresh",
        description="how long a job's config.xml (its timer spec) is reused before re-reading",
    )
    stages: bool = Field(default=True, description="read Pipeline stages (wfapi) as steps")
    stage_requests_per_sync: int = Field(
        default=20,
        alias="stageRequestsPerSync",
        ge=0,
        le=1000,
        description="at most this many wfapi requests in one runs sync (newest builds first)",
    )
    trigger_wait: Duration = Field(
        default=timedelta(seconds=2),
        alias="triggerWait",
        description="how long a trigger follows its queue item before answering 'queued'",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name like Europe/Berlin)"
            ) from None
        return v

    @field_validator("trigger_wait")
    @classmethod
    def _short_wait(cls, v: timedelta) -> timedelta:
        if not timedelta(0) <= v <= timedelta(seconds=60):
            raise ValueError("must be between 0s and 60s")
        return v

    def wants(self, path: str) -> bool:
        """Whether a job (by full path) is governed by this source (include minus exclude)."""
        return any(fnmatchcase(path, p) for p in self.include) and not any(
            fnmatchcase(path, p) for p in self.exclude
        )
