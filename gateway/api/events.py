"""Broadcast of run changes for the server-sent event stream: to this process's
subscribers, and in a cluster through ``relay`` to the other replicas (whose events come
back in through ``publish_local``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Broadcaster", "Event"]


@dataclass(frozen=True)
class Event:
    type: str  # run.created | run.changed | source.changed | action
    domain: str
    job_uid: str | None
    data: dict[str, Any]

    def as_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Event | None:
        """An event another replica sent; None when it is not one."""
        kind, data = message.get("type"), message.get("data")
        if not isinstance(kind, str) or not isinstance(data, dict):
            return None
        job_uid = message.get("job_uid")
        return cls(
            kind,
            str(message.get("domain") or ""),
            job_uid if isinstance(job_uid, str) else None,
            data,
        )


class Broadcaster:
    """Fan-out to subscribers; a slow subscriber loses events, never blocks the sync."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._subs: set[asyncio.Queue[Event | None]] = set()
        self._size = queue_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        self.relay: Callable[[Event], None] | None = None

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
        """To every subscriber here and, in a cluster, on the other replicas. Safe from
        any thread."""
        self.publish_local(event)
        if self.relay is not None:
            self.relay(event)

    def publish_local(self, event: Event) -> None:
        """To this process's subscribers only. Safe from any thread."""
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
