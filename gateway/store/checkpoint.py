"""SQLite WAL checkpoints in a thread of their own, off the writers' path.

In WAL mode every commit appends the pages it changed to the ``-wal`` file, and a
checkpoint copies them back into the database file (and syncs it). By default SQLite runs
that checkpoint inside the commit that pushes the WAL past 1,000 pages: the writer — a
sync pass, an agent push, an action — waits for it. Ingesting 1M runs, that was about a
sixth of the time (``bench/ingest.py``).

``Checkpointer`` runs ``PRAGMA wal_checkpoint(PASSIVE)`` every ``every`` seconds on its
own connection. A passive checkpoint takes no lock that writers or readers wait for: it
copies what no reader still needs and stops there; the next one goes on. The database's
connections keep an automatic checkpoint only as a safety net, at ``SAFETY_PAGES`` (a
WAL of about 80 MB): a process without a checkpointer (the CLI, a test) or a checkpointer
that falls behind still bounds the file. When the WAL has been wholly copied, the next
writer starts it over from the beginning, and ``journal_size_limit`` truncates the file.

The gateway starts one for a SQLite database file (``gateway.api.app``); PostgreSQL
checkpoints on its own.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["SAFETY_PAGES", "Checkpointer", "sqlite_file"]

_log = logging.getLogger(__name__)

# The writers' own automatic checkpoint (``PRAGMA wal_autocheckpoint``), in pages.
SAFETY_PAGES = 20000


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    if not url.startswith("sqlite") or "///" not in url:
        return None
    path = url.split("///", 1)[1].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


class Checkpointer:
    """A thread that checkpoints the WAL of the SQLite database at ``path``."""

    def __init__(self, path: Path, *, every: float = 1.0) -> None:
        self.path = path
        self.every = every
        self.runs = 0
        self.seconds = 0.0  # spent checkpointing
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Checkpointer:
        self._thread = threading.Thread(target=self._loop, name="sqlite-checkpoint", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def _loop(self) -> None:
        con: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.every):
                try:
                    if con is None:
                        con = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
                    self.checkpoint(con)
                except sqlite3.Error as exc:  # gone, locked, full: the next round tries again
                    if str(exc) != self.last_error:
                        _log.warning("WAL checkpoint of %s failed: %s", self.path.name, exc)
                    self.last_error = str(exc)
                    if con is not None:
                        con.close()
                        con = None
        finally:
            if con is not None:
                con.close()

    def checkpoint(self, con: sqlite3.Connection) -> tuple[int, int]:
        """One passive checkpoint; returns (frames in the WAL, frames of it copied)."""
        t0 = time.perf_counter()
        row = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.seconds += time.perf_counter() - t0
        self.runs += 1
        self.last_error = None
        return (int(row[1]), int(row[2])) if row else (0, 0)
