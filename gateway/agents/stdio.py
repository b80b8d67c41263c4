"""``accord mcp``: the MCP server over stdio, for an agent on this machine talking to a
remote gateway. Each tool calls the gateway's REST API with the agent token, so the
gateway authorizes, guards and records every call exactly as for its own ``/mcp``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from mcp.server import ServerRequestContext
from mcp.server.stdio import stdio_server

from .client import GatewayClient
from .tools import build_server

__all__ = ["serve_stdio"]


async def serve_stdio(server: str, token: str, *, on_behalf_of: str | None = None) -> None:
    """Serve MCP on stdin/stdout until the agent closes it."""
    http = httpx.AsyncClient(
        base_url=server.rstrip("/"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    async with http:
        client = GatewayClient(http, on_behalf_of=on_behalf_of)

        @asynccontextmanager
        async def lend(ctx: ServerRequestContext[Any, Any]) -> AsyncIterator[GatewayClient]:
            yield client

        mcp = build_server(lend)
        async with stdio_server() as (read, write):
            await mcp.run(read, write, mcp.create_initialization_options())
