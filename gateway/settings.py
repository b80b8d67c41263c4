"""Accord's settings, read from the environment (prefix ``ACCORD_``).

- ACCORD_DATABASE_URL: SQLAlchemy URL; default a SQLite file under ACCORD_DATA_DIR
  (``postgresql+psycopg://user@host/db`` selects PostgreSQL)
- ACCORD_DATA_DIR: database, admin token file; default ``$XDG_DATA_HOME/accord``
  or ``~/.local/share/accord``
- ACCORD_HOST / ACCORD_PORT: where ``accord serve`` listens (127.0.0.1 / 8420)
- ACCORD_MAX_BODY_BYTES: larger request bodies get 413 (10 MiB)
- ACCORD_SYNC_ENABLED: run the per-source sync workers in ``serve`` (true)
- ACCORD_LOG_LEVEL: info
- ACCORD_SHUTDOWN_GRACE: seconds ``accord serve`` gives in-flight requests, and then sync
  work, to end when it is told to stop (3; SIGTERM or Ctrl-C)
- ACCORD_AUDIT_SIGNING_KEY_FILE: Ed25519 private key (PEM) that signs audit exports
  (``accord audit keygen --output FILE`` makes one)
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    log_level: str = "info"
    shutdown_grace: float = Field(default=3.0, ge=0)
    public_url: str | None = None
    audit_signing_key_file: Path | None = None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'accord.db'}"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin-token"
