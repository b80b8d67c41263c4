"""Fixtures of the cron adapter tests: crontab trees in temp directories, the accord
script, and a stand-in for the gateway's push endpoint."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters.base import AdapterContext
from adapters.cron.adapter import CronAdapter
from adapters.cron.config import CronConfig
from adapters.testing.harness_cron import accord_script
from gateway.model import SecretRef

from .standin import StandIn, serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def accord() -> str:
    """Absolute path of this environment's accord script (as a crontab line names it)."""
    return accord_script()


@pytest.fixture
def me() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


@dataclass
class Tree:
    """A host's crontab files under a temporary root, and a spool and a log beside it."""

    root: Path
    spool: Path
    log: Path

    @property
    def crontab(self) -> Path:
        return self.root / "etc" / "crontab"

    def cron_d(self, name: str) -> Path:
        return self.root / "etc" / "cron.d" / name

    def user(self, name: str) -> Path:
        return self.root / "var" / "spool" / "cron" / "crontabs" / name

    def adapter(self, **settings: object) -> CronAdapter:
        config = CronConfig.model_validate(
            {
                "root": str(self.root),
                "host": "web-1",
                "timezone": "UTC",
                "spool": [str(self.spool)],
                "syslog": str(self.log),
                "logLevel": 15,
                **settings,
            }
        )
        adapter = CronAdapter(
            AdapterContext(source="cron-test", domain="ops", secrets=_no_secrets), config
        )
        assert isinstance(adapter, CronAdapter)
        return adapter


def _no_secrets(ref: SecretRef) -> SecretStr:
    raise LookupError("no secrets here")


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    root = tmp_path / "root"
    (root / "etc" / "cron.d").mkdir(parents=True)
    (root / "var" / "spool" / "cron" / "crontabs").mkdir(parents=True)
    log = tmp_path / "cron.log"
    log.write_text("")
    return Tree(root=root, spool=tmp_path / "spool", log=log)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    s = StandIn(token="agent-token-123", source="cron-hosts")
    server, thread = serve(s)
    try:
        yield s
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
