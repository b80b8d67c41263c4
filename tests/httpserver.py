"""A tiny HTTP server on 127.0.0.1 that records every request it receives (and can hold
requests until told to answer). It stands in for "a server the domain admin controls" and
for "a source that does not answer"."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Recorded", "RecordingServer"]


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        return (
            f"{self.method} {self.path}\n"
            + "\n".join(f"{k}: {v}" for k, v in self.headers.items())
            + "\n\n"
            + self.body.decode("utf-8", "replace")
        )


class RecordingServer:
    """Answers 401 to everything. With ``hold=True`` each request waits (at most
    ``max_hold`` seconds) until :meth:`release` is called."""

    def __init__(self, *, hold: bool = False, max_hold: float = 60.0) -> None:
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._cond = threading.Condition()
        self._released = threading.Event()
        if not hold:
            self._released.set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Recorded(self.command, self.path, dict(self.headers.items()), body)
                with outer._cond:
                    outer.requests.append(rec)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                    outer._cond.notify_all()
                try:
                    outer._released.wait(max_hold)
                    payload = b'{"detail": "Not authenticated"}'
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with outer._cond:
                        outer.in_flight -= 1
                        outer._cond.notify_all()

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def wait_in_flight(self, n: int, timeout: float = 30.0) -> bool:
        """Wait until ``n`` requests are being held at once."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.in_flight < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def release(self) -> None:
        self._released.set()

    def seen(self) -> str:
        with self._cond:
            return "\n\n".join(r.text() for r in self.requests)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
