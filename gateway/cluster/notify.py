"""Messages between replicas over PostgreSQL LISTEN/NOTIFY (no other service needed).

Two channels: ``accord_events`` carries the SSE events a replica publishes, so a client
connected to any replica sees changes made on any other; ``accord_hints`` carries
webhook hints and on-demand sync requests to whichever replica holds the source's lease.

One thread listens on a dedicated autocommit connection; another sends, batching what
was published meanwhile into payloads under PostgreSQL's 8000-byte limit. An event too
large for one payload travels without its data (``{"uid": ..., "truncated": true}``):
subscribers re-read what they need. NOTIFY is at-most-once and only reaches replicas
listening at that moment: events are hints for live views, never the only truth (the
store is). Both threads reconnect with backoff when the database goes away.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Engine

__all__ = ["EVENTS", "HINTS", "Bus", "conninfo"]

EVENTS = "accord_events"
HINTS = "accord_hints"
_LIMIT = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
_log = logging.getLogger(__name__)


def conninfo(engine: Engine) -> str:
    """A libpq URL for the engine's database (psycopg's own, without SQLAlchemy)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Bus:
    """Publish to and listen on the cluster's channels. ``on_message(channel, payload)``
    is called on the listener thread for messages from other replicas."""

    def __init__(
        self,
        engine: Engine,
        *,
        origin: str,
        on_message: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self._url = conninfo(engine)
        self.origin = origin
        self.on_message = on_message
        self._out: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(10000)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.listening = threading.Event()
        self.sent = 0
        self.dropped = 0

    def start(self) -> None:
        for target, name in ((self._listen, "cluster-listen"), (self._send, "cluster-notify")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._out.put(None)
        for t in self._threads:
            t.join(timeout=5)

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Queue a message for the other replicas (never blocks; drops when flooded)."""
        try:
            self._out.put_nowait((channel, message))
        except queue.Full:
            self.dropped += 1

    # -- threads ---------------------------------------------------------------------------
    def _listen(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {EVENTS}")
                    conn.execute(f"LISTEN {HINTS}")
                    self.listening.set()
                    delay = 0.5
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.5):
                            self._receive(n.channel, n.payload)
            except psycopg.Error as exc:
                self.listening.clear()
                _log.warning("cluster listener lost the database (%s); reconnecting", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _receive(self, channel: str, payload: str) -> None:
        try:
            batch = json.loads(payload)
        except ValueError:
            return
        if not isinstance(batch, dict) or batch.get("o") == self.origin:
            return  # our own messages were delivered locally already
        for message in batch.get("m") or []:
            if isinstance(message, dict):
                try:
                    self.on_message(channel, message)
                except Exception:  # one bad message must not stop the listener
                    _log.exception("cluster message on %s could not be handled", channel)

    def _send(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        delay = 0.5
        while True:
            item = self._out.get()
            if item is None:
                break
            pending = [item]
            while len(pending) < 500:  # take what queued up meanwhile
                try:
                    more = self._out.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._stop.set()
                    break
                pending.append(more)
            while True:
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(self._url, autocommit=True)
                    for channel, payload in self._payloads(pending):
                        conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                        self.sent += 1
                    delay = 0.5
                    break
                except psycopg.Error as exc:
                    _log.warning("cluster notify failed (%s); retrying", exc)
                    conn = None
                    if self._stop.wait(delay):
                        return
                    delay = min(delay * 2, 10.0)
            if self._stop.is_set():
                break
        if conn is not None:
            conn.close()

    def _payloads(self, pending: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for channel in (EVENTS, HINTS):
            batch: list[str] = []
            size = 0
            for ch, message in pending:
                if ch != channel:
                    continue
                text = json.dumps(message, separators=(",", ":"), default=str)
                if len(text.encode()) > _LIMIT - 100:
                    text = json.dumps(_shrunk(message), separators=(",", ":"), default=str)
                if batch and size + len(text) + 1 > _LIMIT - 100:
                    out.append((channel, self._wrap(batch)))
                    batch, size = [], 0
                batch.append(text)
                size += len(text.encode()) + 1
            if batch:
                out.append((channel, self._wrap(batch)))
        return out

    def _wrap(self, items: list[str]) -> str:
        return '{"o":' + json.dumps(self.origin) + ',"m":[' + ",".join(items) + "]}"


def _shrunk(message: dict[str, Any]) -> dict[str, Any]:
    data = message.get("data")
    uid = data.get("uid") if isinstance(data, dict) else None
    return {**message, "data": {"uid": uid, "truncated": True}}
