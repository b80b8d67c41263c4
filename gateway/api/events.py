"""In-process broadcast of run changes for the server-sent event stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Broadcaster", "Event"]


@dataclass(frozen=True)
class Event:
    type: str  # run.created | run.changed | source.changed | action
    domain: str
    job_uid: str | None
    data: dict[str, Any]


class Broadcaster:
    """Fan-out to subscribers; a slow subscriber loses events, never blocks the sync."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._subs: set[asyncio.Queue[Event | None]] = set()
        self._size = queue_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Event | None]]:
        """A queue of events; ``None`` means the stream ends (the gateway is stopping)."""
        q: asyncio.Queue[Event | None] = asyncio.Queue(self._size)
        if self.closed:
            q.put_nowait(None)
        self._subs.add(q)
        try:
            yield q
        finally:
            self._subs.discard(q)

    def close(self) -> None:
        """End every stream (on the event loop's thread): each subscriber gets ``None``."""
        self.closed = True
        for q in list(self._subs):
            while q.full():
                q.get_nowait()
            q.put_nowait(None)

    def publish(self, event: Event) -> None:
        """Safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(event)
        else:
            loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: Event) -> None:
        for q in list(self._subs):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(event)
