"""Governed access for AI agents: the MCP server (tools, resources) and its two doors,
streamable HTTP at the gateway's ``/mcp`` and ``accord mcp`` over stdio."""

from .client import GatewayClient, GatewayError
from .endpoint import McpEndpoint
from .tools import TOOLS, build_server, call_tool

__all__ = ["TOOLS", "GatewayClient", "GatewayError", "McpEndpoint", "build_server", "call_tool"]
