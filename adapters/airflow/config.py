"""Settings of an Airflow Source (everything in ``spec`` besides ``type``, ``sync``, ...).

```yaml
spec:
  type: airflow
  url: https://airflow.internal:8080          # the API server (Airflow 3, REST API v2)
  auth:                                        # either a user ...
    username: accord
    passwordFrom: {env: ACCORD_SECRET_AIRFLOW}
  # auth: {tokenFrom: {env: ACCORD_SECRET_AIRFLOW_TOKEN}}  # ... or a ready-made token (JWT)
  include: ["etl_*"]                           # DAG id globs (default: every DAG)
  exclude: ["*_test"]
  uiUrl: https://airflow.example.com           # where deep links point (default: url)
  history: 7d                                  # how far back the first sync reads runs
```
"""

from __future__ import annotations

from datetime import timedelta
from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.model import SecretRef
from gateway.model.resources import Duration

__all__ = ["AirflowConfig", "PasswordAuth", "TokenAuth"]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class PasswordAuth(_Settings):
    """A user of Airflow's auth manager; Accord obtains and renews a token (POST /auth/token)."""

    username: str = Field(min_length=1)
    password_from: SecretRef = Field(alias="passwordFrom")


class TokenAuth(_Settings):
    """A token (JWT) issued by Airflow, sent as is; it cannot be renewed by Accord."""

    token_from: SecretRef = Field(alias="tokenFrom")


class AirflowConfig(_Settings):
    url: str = Field(description="base URL of the Airflow API server, e.g. http://airflow:8080")
    auth: PasswordAuth | TokenAuth
    include: tuple[str, ...] = Field(
        default=("*",), description="DAG id glob patterns to govern (default: all)"
    )
    exclude: tuple[str, ...] = Field(default=(), description="DAG id glob patterns to leave out")
    ui_url: str | None = Field(
        default=None, alias="uiUrl", description="base URL of the Airflow UI for deep links"
    )
    history: Duration = Field(
        default=timedelta(days=7), description="how far back the first sync reads runs"
    )
    page_size: int = Field(
        default=100,
        alias="pageSize",
        ge=1,
        le=1000,
        description="entries per API request (Airflow caps it at api.maximum_page_limit)",
    )
    verify_tls: bool = Field(default=True, alias="verifyTls")

    @field_validator("url", "ui_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip().rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v

    def wants(self, dag_id: str) -> bool:
        """Whether a DAG is governed by this source (include minus exclude)."""
        return any(fnmatchcase(dag_id, p) for p in self.include) and not any(
            fnmatchcase(dag_id, p) for p in self.exclude
        )

    @property
    def links_base(self) -> str:
        return self.ui_url or self.url
