"""The HTTP server the simulators share: stdlib ``ThreadingHTTPServer``, quiet about
clients that hang up mid-answer (a gateway replica killed on purpose, a timed-out
request): a real server logs nothing for those either."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any

__all__ = ["SimulatorHTTPServer"]


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset, ...
            return
        super().handle_error(request, client_address)
