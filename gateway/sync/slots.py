"""The cap on sync passes running at once in one process (``ACCORD_SYNC_CONCURRENCY``).

When every slot is busy, passes wait; a slot that frees goes to the waiting pass that
needs it most: first an urgent one (the first pass of a source this replica has just
taken over from a replica that stopped: its runs have not been read since), then the one
that has been due the longest (earliest due time), then the one that asked first. A
plain FIFO semaphore would make a taken-over source queue behind every source of a
saturated replica.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["PassSlots"]


class PassSlots:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("at least one slot")
        self.size = size
        self.free = size
        self._waiting: list[tuple[int, float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for *_k, fut in self._waiting if not fut.done())

    @asynccontextmanager
    async def take(self, *, due: float, urgent: bool = False) -> AsyncIterator[None]:
        """Hold a slot for the block. ``due``: when the pass became due (monotonic
        seconds; the smaller, the longer it has waited); ``urgent`` goes before all else."""
        await self._acquire(due, urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, due: float, urgent: bool) -> None:
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (0 if urgent else 1, due, next(self._order), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # the slot was handed over as we were cancelled: pass it on
            else:
                fut.cancel()  # left in the heap; skipped when popped
            raise

    def _release(self) -> None:
        while self._waiting:
            *_key, fut = heapq.heappop(self._waiting)
            if not fut.done():
                fut.set_result(None)  # the slot goes straight to this waiter
                return
        self.free += 1
