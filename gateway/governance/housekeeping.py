"""Periodic governance work the gateway does on its own: expiring approval requests
whose time ran out (each expiry audited once, whoever else looks), and settling approved
requests whose action was running in a gateway process that died (``interrupted``).

In a cluster it runs on one replica at a time: ``leader`` is the check of the
``approval-expiry`` singleton lease (``gateway.cluster.Cluster.singleton``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import anyio
from sqlalchemy import Engine

from .approvals import expire_all_due, settle_interrupted

__all__ = ["Housekeeping"]

_log = logging.getLogger(__name__)


class Housekeeping:
    def __init__(
        self,
        engine: Engine,
        *,
        every: float = 15.0,
        leader: Callable[[], bool] | None = None,
        me: str = "this gateway",
        alive: Callable[[], set[str]] = set,
    ) -> None:
        self.engine = engine
        self.every = every
        self.leader = leader
        self.me = me  # the name this process marks the actions it runs with
        self.alive = alive  # the other live replicas (none on SQLite: one process)
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        settled = await anyio.to_thread.run_sync(self._settle)
        if settled:
            _log.warning("%d approved action(s) were interrupted by a gateway stop", settled)
        return await anyio.to_thread.run_sync(expire_all_due, self.engine)

    def _settle(self) -> int:
        return settle_interrupted(self.engine, me=self.me, alive=self.alive())

    async def _loop(self) -> None:
        while True:
            if self.leader is not None and not self.leader():
                await asyncio.sleep(self.every)  # another replica expires approvals
                continue
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
