"""The gateway's MCP door: streamable HTTP at ``/mcp``.

Stateless (each POST stands alone), so any replica answers any request. Every request
must carry an agent token (``Authorization: Bearer``); the tools then call the gateway's
own REST API in process with that same token, so they pass through the same routes,
authorization, guardrails and audit as any API client. ``X-Accord-On-Behalf-Of`` on the
request names the person the agent acts for (recorded, never trusted).

Host-header (DNS rebinding) protection is off: it guards servers that trust a browser's
ambient credentials, and this endpoint accepts bearer tokens only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from mcp.server import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.store.services.tokens import AuthFailure, authenticate

from .client import GatewayClient
from .tools import build_server

__all__ = ["McpEndpoint"]

# Actions wait for the scheduler's answer; a slow tool must not cut an agent off early.
_CALL_TIMEOUT = 120.0


class McpEndpoint:
    """The ASGI app served at ``/mcp``. ``run()`` must be entered in the app's lifespan."""

    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        self._app = app
        self._engine = engine
        self.server = build_server(self._client_for)
        self._manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        # A session manager runs once: each lifespan gets its own.
        manager = StreamableHTTPSessionManager(self.server, stateless=True, json_response=True)
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - routes only pass HTTP here
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await _deny(
                send,
                401,
                "unauthorized",
                "an agent token is required: send 'Authorization: Bearer <token>'",
            )
            return
        try:
            kind = await anyio.to_thread.run_sync(self._token_kind, token.strip())
        except AuthFailure as exc:
            await _deny(send, 401, "unauthorized", str(exc))
            return
        if kind != "agent":
            await _deny(
                send,
                403,
                "forbidden",
                "MCP accepts agent tokens only (create one with 'accord tokens create "
                "--kind agent'): an agent's calls are governed and recorded as the agent's",
            )
            return
        if self._manager is None:
            await _deny(send, 503, "unavailable", "the MCP endpoint is starting or stopping")
            return
        await self._manager.handle_request(scope, receive, send)

    def _token_kind(self, token: str) -> str:
        with Session(self._engine, expire_on_commit=False) as session:
            return authenticate(session, token=token).kind

    @asynccontextmanager
    async def _client_for(
        self, ctx: ServerRequestContext[Any, Any]
    ) -> AsyncIterator[GatewayClient]:
        request = ctx.request
        if request is None:  # pragma: no cover - the HTTP transport always sets it
            raise RuntimeError("an MCP call over HTTP without its HTTP request")
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self._app),
            base_url="http://accord.internal",
            headers={"Authorization": request.headers["authorization"]},
            timeout=_CALL_TIMEOUT,
        )
        person = request.headers.get("x-accord-on-behalf-of", "").strip() or None
        async with http:
            yield GatewayClient(http, on_behalf_of=person)


async def _deny(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps(
        {"error": {"code": code, "message": message, "details": None, "request_id": None}}
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
