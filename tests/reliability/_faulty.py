"""A misbehaving HTTP hop in front of a real simulator: slow, HTML, truncated, wrong types,
flapping or down, switched at run time. It stands in for a source's network, proxy or a
broken controller; everything it forwards is the simulator's real answer."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

__all__ = ["FaultyHop"]

MODES = ("ok", "slow", "html", "truncated", "wrong_types", "flapping", "down", "unavailable")


def _wrong_types(value: Any) -> Any:
    """The same document with the types a client relies on changed: numbers become words,
    lists become objects, objects become lists."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"#{value}"
    if isinstance(value, list):
        return {"items": [_wrong_types(v) for v in value]}
    if isinstance(value, dict):
        return {k: _wrong_types(v) for k, v in value.items()}
    return value


class FaultyHop:
    """Listens on a fixed 127.0.0.1 port and forwards to ``upstream`` in ``mode``.

    ``down`` closes the listening socket (connections are refused); ``flapping``
    alternates ``period`` seconds up and down; ``slow`` answers after ``delay`` seconds;
    ``unavailable`` answers 503 with Retry-After; ``truncated`` cuts every answer in
    half (alternately: a short body with a matching length, i.e. broken JSON, and a
    connection closed before the announced length).
    """

    def __init__(self, upstream: str, *, delay: float = 10.0, period: float = 1.5) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.period = period
        self.mode = "ok"
        self.requests = 0
        self._cut = 0
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._flapper: threading.Thread | None = None
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stop = threading.Event()
        self._http = httpx.Client(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- listening ----------------------------------------------------------------------------
    def _listen(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            hop = self

            class Handler(BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def setup(self) -> None:
                    super().setup()
                    with hop._lock:
                        hop._conns.add(self.connection)

                def finish(self) -> None:
                    with hop._lock:
                        hop._conns.discard(self.connection)
                    super().finish()

                def log_message(self, format: str, *args: Any) -> None:
                    pass

                def do_GET(self) -> None:
                    hop._serve(self, "GET")

                def do_POST(self) -> None:
                    hop._serve(self, "POST")

            ThreadingHTTPServer.allow_reuse_address = True
            for _ in range(50):
                try:
                    server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                raise RuntimeError(f"port {self.port} cannot be bound again")
            server.daemon_threads = True
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()

    def _close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            conns, self._conns = list(self._conns), set()
        for conn in conns:  # kept-alive connections go down with the listener
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if server is not None:
            server.shutdown()
            server.server_close()

    def set(self, mode: str) -> None:
        assert mode in MODES, mode
        self.mode = mode
        if mode == "down":
            self._close()
        elif mode == "flapping":
            if self._flapper is None or not self._flapper.is_alive():
                self._flapper = threading.Thread(target=self._flap, daemon=True)
                self._flapper.start()
        else:
            self._listen()

    def _flap(self) -> None:
        up = True
        while self.mode == "flapping" and not self._stop.is_set():
            self._listen() if up else self._close()
            up = not up
            self._stop.wait(self.period)
        if self.mode not in ("down", "flapping"):
            self._listen()

    def start(self, mode: str = "ok") -> FaultyHop:
        self.set(mode)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.mode = "down"
        self._close()
        self._http.close()

    # -- answering ----------------------------------------------------------------------------
    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        self.requests += 1
        mode = self.mode
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if mode == "html":
            page = b"<html><head><title>Sign in</title></head><body>Proxy login</body></html>"
            return self._reply(h, 200, "text/html;charset=utf-8", page)
        if mode == "unavailable":
            return self._reply(
                h, 503, "text/html", b"<html>Service Unavailable</html>", {"Retry-After": "1"}
            )
        if mode == "slow":
            time.sleep(self.delay)
        headers = {
            k: v
            for k, v in h.headers.items()
            if k.lower() not in ("host", "content-length", "connection", "accept-encoding")
        }
        try:
            up = self._http.request(method, self.upstream + h.path, headers=headers, content=body)
        except httpx.HTTPError:
            return self._reply(h, 502, "text/plain", b"bad gateway")
        ctype = up.headers.get("Content-Type", "application/octet-stream")
        extra = {k: v for k, v in up.headers.items() if k.lower().startswith("x-")}
        data = up.content
        if mode == "wrong_types" and "json" in ctype:
            data = json.dumps(_wrong_types(json.loads(data))).encode()
        if mode == "truncated" and data:
            self._cut += 1
            half = data[: max(1, len(data) // 2)]
            if self._cut % 2:
                return self._reply(h, up.status_code, ctype, half, extra)
            h.send_response(up.status_code)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(half)
            h.wfile.flush()
            h.close_connection = True
            return None
        return self._reply(h, up.status_code, ctype, data, extra)

    @staticmethod
    def _reply(
        h: BaseHTTPRequestHandler,
        status: int,
        ctype: str,
        data: bytes,
        extra: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
