"""Periodic governance work the gateway does on its own: today, expiring approval
requests whose time ran out (each expiry audited once, whoever else looks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio
from sqlalchemy import Engine

from .approvals import expire_all_due

__all__ = ["Housekeeping"]

_log = logging.getLogger(__name__)


class Housekeeping:
    def __init__(self, engine: Engine, *, every: float = 15.0) -> None:
        self.engine = engine
        self.every = every
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        return await anyio.to_thread.run_sync(expire_all_due, self.engine)

    async def _loop(self) -> None:
        while True:
            try:
                expired = await self.run_once()
                if expired:
                    _log.info("expired %d approval request(s)", expired)
            except Exception:  # the store may be briefly unavailable; try again later
                _log.exception("approval expiry failed")
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="housekeeping")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
