"""Settings of a cron Source (everything in ``spec`` besides ``type``, ``sync``, ...).

```yaml
spec:
  type: cron
  mode: local             # local: the gateway runs on the cron host and reads it directly
                          # agent: `accord agent` on the host pushes (no actions)
  root: /                 # where etc/crontab, etc/cron.d and var/spool/cron/crontabs are
  host: web-1             # the host name in job ids (default: this host's name)
  timezone: Europe/Paris  # the cron daemon's time zone (default: this host's)
  spool: [/var/spool/accord]   # spools of `accord exec` (default: every crontab's
                               # ACCORD_SPOOL_DIR and each crontab user's default spool)
  syslog: auto            # cron's log: auto (/var/log/cron.log, then /var/log/syslog),
                          # off, or a path
  logLevel: 15            # cron's -L (default: read from the running daemon)
  grace: 5m               # a run not started this long after its time is missed
  watchFrom: 2026-01-01T00:00:00Z   # look for missed runs from here on (default: from
                                    # when Accord first saw each line)
  retention: 7d           # local mode: finished runs older than this leave the spool
```
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.model.resources import Duration

__all__ = ["CronConfig", "host_name", "host_timezone"]


def host_name() -> str:
    return socket.gethostname().split(".")[0] or "localhost"


def host_timezone() -> str:
    """The zone of this host's clock (what cron schedules in), as an IANA name."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and _valid_zone(tz):
        return tz
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
        if name and _valid_zone(name):
            return name
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            name = target.split("zoneinfo/", 1)[1]
            if _valid_zone(name):
                return name
    except OSError:
        pass
    return "UTC"


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


class CronConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    mode: Literal["local", "agent"] = Field(
        default="local",
        description="local: read this host's crontabs and act on them; agent: an accord "
        "agent on the host pushes (read-only from the gateway)",
    )
    root: str = Field(default="/", description="directory holding etc/ and var/spool/cron/")
    host: str | None = Field(default=None, description="host name used in job ids")
    timezone: str | None = Field(default=None, description="the cron daemon's time zone")
    spool: tuple[str, ...] | None = Field(
        default=None, description="spool directories of accord exec (default: discovered)"
    )
    syslog: str = Field(default="auto", description="cron's log file: auto, off or a path")
    log_level: int | None = Field(
        default=None, alias="logLevel", ge=0, le=15, description="cron's -L log level"
    )
    grace: Duration = Field(
        default=timedelta(minutes=5), description="how late a start may be before it is missed"
    )
    lookback: Duration = Field(
        default=timedelta(days=1), description="how far back missed runs are looked for"
    )
    watch_from: datetime | None = Field(
        default=None,
        alias="watchFrom",
        description="look for missed runs from this time on, for the lines present when "
        "Accord first reads the host (default: from when it first saw each line)",
    )
    retention: Duration = Field(
        default=timedelta(days=7), description="local mode: how long finished runs stay spooled"
    )

    @field_validator("watch_from")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-01-01T00:00:00Z")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        if v is not None and not _valid_zone(v):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name like Europe/Paris)")
        return v

    @property
    def host_name(self) -> str:
        return self.host or host_name()

    @property
    def zone(self) -> str:
        return self.timezone or host_timezone()

    @property
    def root_path(self) -> Path:
        return Path(self.root)

    def syslog_path(self) -> Path | None:
        """The log to read, or None (off, or auto and none exists)."""
        if self.syslog == "off":
            return None
        if self.syslog != "auto":
            return Path(self.syslog)
        for candidate in ("/var/log/cron.log", "/var/log/syslog"):
            if Path(candidate).exists():
                return Path(candidate)
        return None
