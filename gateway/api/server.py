"""Serving the app with uvicorn, with a bounded shutdown.

On SIGTERM or Ctrl-C the server stops accepting connections and the app is told at once
(``request_shutdown``): event streams end and sync passes are cancelled, so requests in
flight answer promptly (an on-demand sync answers 503). Requests still running after the
grace period are cancelled; the lifespan then stops the sync workers, waiting at most the
grace period again.
"""

from __future__ import annotations

import math
from types import FrameType

import uvicorn
from fastapi import FastAPI

from .app import request_shutdown

__all__ = ["serve"]


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        request_shutdown(self._app)


def serve(app: FastAPI, *, host: str, port: int, log_level: str, grace: float) -> None:
    """Run until a signal; return once the app has stopped."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=max(1, math.ceil(grace)),
    )
    _Server(config, app).run()
