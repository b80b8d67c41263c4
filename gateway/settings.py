"""Accord's settings, read from the environment (prefix ``ACCORD_``).

- ACCORD_DATABASE_URL: SQLAlchemy URL; default a SQLite file under ACCORD_DATA_DIR
  (``postgresql+psycopg://user@host/db`` selects PostgreSQL)
- ACCORD_DATA_DIR: database, admin token file; default ``$XDG_DATA_HOME/accord``
  or ``~/.local/share/accord``
- ACCORD_HOST / ACCORD_PORT: where ``accord serve`` listens (127.0.0.1 / 8420)
- ACCORD_MAX_BODY_BYTES: larger request bodies get 413 (10 MiB)
- ACCORD_SYNC_ENABLED: run the per-source sync workers in ``serve`` (true)
- ACCORD_LOG_LEVEL: info
- ACCORD_AUTOMATION_DISPATCH: fire what Dependency and RetryPolicy documents owe in this
  process (true); firings are still recorded (durably) when false, and fire once a
  process that dispatches runs
- ACCORD_AUDIT_SIGNING_KEY_FILE: your own Ed25519 private key (PEM) to sign audit exports
  (``accord audit keygen --output FILE`` makes one); without it the installation signs with
  its own key, made on first use in the data directory
- ACCORD_SECRET_ENV_PREFIXES: comma-separated prefixes; a Source's ``{env: NAME}`` secret
  reference may name only variables starting with one of them (``ACCORD_SECRET_``)
- ACCORD_SECRET_DIRS: comma-separated directories; a ``{file: PATH}`` reference may name
  only files inside one of them (``<data dir>/secrets,/var/run/secrets/accord``). The
  gateway's own settings, its database, admin token and signing key are never readable
  through a reference, whatever these say (see ``gateway.secrets``).
- ACCORD_LEASE_SECONDS: on PostgreSQL, how long a replica's lease on a source (or on a
  cluster-wide job) lasts without renewal: a replica that dies loses its work to the
  others within this time (15; renewed every third of it)
- ACCORD_REPLICA_ID: this replica's name in the cluster (default host-pid-random)
- ACCORD_SYNC_CONCURRENCY: at most this many sync passes at once in this process
  (0 = no cap)
- ACCORD_AUTH_FAILURE_LIMIT / ACCORD_AUTH_FAILURE_WINDOW: a client address, or a subject
  whose revoked or expired token is presented, that fails to authenticate this many times
  (20) within this many seconds (60) is answered 429 with Retry-After until the oldest of
  those failures leaves the window, good credentials included; counted per replica
  (0 = no limit). Each burst is audited once.
- ACCORD_TOKEN_ROTATION_GRACE: seconds a rotated API token stays valid next to its
  replacement when the rotation does not say (3600; 0 = revoked at once)
- ACCORD_SHUTDOWN_GRACE: seconds ``accord serve`` gives in-flight requests, and then sync
  work, to end when it is told to stop (3; SIGTERM or Ctrl-C)

Single sign-on (OpenID Connect, docs/sso.md); SSO is on when ACCORD_OIDC_ISSUER is set:

- ACCORD_OIDC_ISSUER: the provider's issuer URL (its discovery document is read from
  ``<issuer>/.well-known/openid-configuration``)
- ACCORD_OIDC_CLIENT_ID / ACCORD_OIDC_CLIENT_SECRET: the console's client at the provider
  (authorization code + PKCE; the secret is optional for a public client)
- ACCORD_OIDC_AUDIENCE: the ``aud`` the provider puts in access tokens meant for Accord's
  API; without it the API does not accept the provider's JWTs (console login still works)
- ACCORD_OIDC_SCOPES: ``openid profile email groups``
- ACCORD_OIDC_SUBJECT_CLAIM: claim naming the person (``sub``); their subject in Accord is
  ``oidc:<value>``
- ACCORD_OIDC_SESSION_TTL: how long a console session lasts, in seconds (28800 = 8 h)
- ACCORD_OIDC_ALGORITHMS: accepted JWT signature algorithms (``RS256,PS256,ES256,EdDSA``)
- ACCORD_OIDC_LEEWAY: seconds of clock skew allowed on ``exp``/``nbf``/``iat`` (30)
- ACCORD_OIDC_JWKS_CACHE: seconds the provider's keys are kept before a refetch (3600); a
  token signed with an unknown key id refetches them at once (at most every 10 s)

OpenLineage out (docs/openlineage.md); every run state change becomes a RunEvent sent by
one emitter per deployment, from the stored state changes, after they were committed:

- ACCORD_OPENLINEAGE_TRANSPORT: ``none`` (off, the default), ``http`` or ``file``
- ACCORD_OPENLINEAGE_URL: the receiver's base URL (http), e.g. ``http://marquez:5000``
- ACCORD_OPENLINEAGE_ENDPOINT: the path under it (``api/v1/lineage``)
- ACCORD_OPENLINEAGE_API_KEY: a bearer token for the receiver (optional)
- ACCORD_OPENLINEAGE_TIMEOUT: seconds one HTTP delivery may take (5)
- ACCORD_OPENLINEAGE_FILE: the file the ``file`` transport appends JSON lines to
  (default ``<data dir>/openlineage/events.jsonl``)
- ACCORD_OPENLINEAGE_NAMESPACE: the job namespace, ``{source}`` replaced by the source's
  name (``accord://{source}``)
- ACCORD_OPENLINEAGE_PRODUCER: the ``producer`` URI of every event
- ACCORD_OPENLINEAGE_START_AT: where an emitter without a stored position starts: ``now``
  (changes from then on, the default) or ``beginning`` (every stored state change)
- ACCORD_OPENLINEAGE_EMIT_RECEIVED: also emit runs of ``openlineage`` sources (false: the
  tools that sent them already emit OpenLineage)
- ACCORD_OPENLINEAGE_BATCH: state changes read per pass (200)
- ACCORD_OPENLINEAGE_RETRY_MAX: the longest wait, in seconds, between deliveries to a
  receiver that is down (60; doubling from 1)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "default_data_dir"]


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "accord"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8420
    max_body_bytes: int = 10 * 1024 * 1024
    sync_enabled: bool = True
    automation_dispatch: bool = True
    log_level: str = "info"
    shutdown_grace: float = Field(default=3.0, ge=0)
    lease_seconds: float = Field(default=15.0, gt=0.5)
    replica_id: str | None = None
    sync_concurrency: int = Field(default=0, ge=0)
    auth_failure_limit: int = Field(default=20, ge=0)
    auth_failure_window: float = Field(default=60.0, gt=0)
    token_rotation_grace: float = Field(default=3600.0, ge=0)
    public_url: str | None = None
    audit_signing_key_file: Path | None = None
    # Where secret references of Source documents may point (gateway.secrets).
    secret_env_prefixes: Annotated[tuple[str, ...], NoDecode] = ("ACCORD_SECRET_",)
    secret_dirs: Annotated[tuple[Path, ...] | None, NoDecode] = None
    # Single sign-on (gateway.sso).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_audience: str | None = None
    oidc_scopes: str = "openid profile email groups"
    oidc_subject_claim: str = "sub"
    oidc_session_ttl: int = Field(default=8 * 3600, ge=5)
    oidc_algorithms: Annotated[tuple[str, ...], NoDecode] = ("RS256", "PS256", "ES256", "EdDSA")
    oidc_leeway: int = Field(default=30, ge=0, le=300)
    oidc_jwks_cache: int = Field(default=3600, ge=10)

    # OpenLineage out (gateway.openlineage).
    openlineage_transport: Literal["none", "http", "file"] = "none"
    openlineage_url: str | None = None
    openlineage_endpoint: str = "api/v1/lineage"
    openlineage_api_key: SecretStr | None = None
    openlineage_timeout: float = Field(default=5.0, gt=0)
    openlineage_file: Path | None = None
    openlineage_namespace: str = "accord://{source}"
    openlineage_producer: str = "https://accord.dev/gateway/openlineage"
    openlineage_start_at: Literal["now", "beginning"] = "now"
    openlineage_emit_received: bool = False
    openlineage_batch: int = Field(default=200, ge=1, le=5000)
    openlineage_retry_max: float = Field(default=60.0, ge=1)

    @field_validator("openlineage_namespace")
    @classmethod
    def _ol_namespace(cls, v: str) -> str:
        if "{source}" not in v:
            raise ValueError("the namespace must contain {source} (one namespace per source)")
        return v

    @field_validator("openlineage_url")
    @classmethod
    def _ol_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError("the OpenLineage receiver must be an http(s) URL")
        return v

    @model_validator(mode="after")
    def _ol_http_needs_url(self) -> Settings:
        if self.openlineage_transport == "http" and not self.openlineage_url:
            raise ValueError(
                "ACCORD_OPENLINEAGE_TRANSPORT=http needs ACCORD_OPENLINEAGE_URL (the receiver)"
            )
        return self

    @property
    def openlineage_file_path(self) -> Path:
        return self.openlineage_file or self.data_dir / "openlineage" / "events.jsonl"

    @field_validator("oidc_algorithms", mode="before")
    @classmethod
    def _algorithms(cls, v: Any) -> Any:
        items = _split(v)
        bad = [a for a in items if a.lower() == "none" or a.upper().startswith("HS")]
        if bad:
            raise ValueError(
                f"{bad}: only asymmetric signature algorithms are accepted for provider tokens"
            )
        if not items:
            raise ValueError("at least one signature algorithm is needed")
        return items

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://")):
            raise ValueError("the OIDC issuer must be an http(s) URL")
        return v

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @field_validator("secret_env_prefixes", mode="before")
    @classmethod
    def _prefixes(cls, v: Any) -> Any:
        items = _split(v)
        if any(not p for p in items):
            raise ValueError("an empty prefix would allow every environment variable")
        return items

    @field_validator("secret_dirs", mode="before")
    @classmethod
    def _dirs(cls, v: Any) -> Any:
        if v is None:
            return None
        items = _split(v)
        for d in items:
            if not Path(d).is_absolute():
                raise ValueError(f"{d!r}: secret directories must be absolute paths")
        return items

    @property
    def secret_directories(self) -> tuple[Path, ...]:
        """ACCORD_SECRET_DIRS, or its default."""
        if self.secret_dirs is not None:
            return self.secret_dirs
        return (self.data_dir / "secrets", Path("/var/run/secrets/accord"))

    # /metrics is meant for a scraper on a private network; set this to make it ask for
    # an API token (any valid token with read somewhere) like the rest of the API.
    metrics_token_required: bool = False

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'accord.db'}"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin-token"


def _split(v: Any) -> Any:
    """``a,b`` from the environment (empty: none); a list or tuple as given in code."""
    if isinstance(v, str):
        return tuple(part.strip() for part in v.split(",") if part.strip())
    if isinstance(v, list | tuple):
        return tuple(str(part) for part in v)
    return v
