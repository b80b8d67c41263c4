"""The MCP tools' way to the gateway: its REST API, as the agent.

Both MCP doors use it: the gateway's ``/mcp`` endpoint over an in-process ASGI transport,
``accord mcp`` over the network. Every tool therefore goes through the same routes,
authorization, guardrails and audit as any other API call, with the agent's own token.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["GatewayClient", "GatewayError", "path_of"]


class GatewayError(Exception):
    """The gateway refused or failed a call (the message is the gateway's own)."""

    def __init__(
        self, status: int, code: str, message: str, *, audit_seq: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.audit_seq = audit_seq


def path_of(uid: str) -> str:
    """A job or run uid as a URL path (uids hold slashes, which the routes expect)."""
    return quote(uid, safe="/")


class GatewayClient:
    """Calls the REST API with an agent token; each call names the tool that makes it and
    the person the agent acts for (both recorded, neither trusted)."""

    def __init__(self, http: httpx.AsyncClient, *, on_behalf_of: str | None = None) -> None:
        self.http = http
        self.on_behalf_of = on_behalf_of

    async def call(
        self,
        method: str,
        path: str,
        *,
        tool: str,
        on_behalf_of: str | None = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
    ) -> Any:
        headers = {"X-Accord-Channel": "agent", "X-Accord-Tool": tool}
        person = on_behalf_of or self.on_behalf_of
        if person:
            headers["X-Accord-On-Behalf-Of"] = person
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            resp = await self.http.request(method, path, params=clean, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise GatewayError(
                0, "unreachable", f"cannot reach the Accord gateway: {exc}"
            ) from None
        if resp.status_code >= 400:
            raise _error(resp)
        return resp.json()

    async def aclose(self) -> None:
        await self.http.aclose()


def _error(resp: httpx.Response) -> GatewayError:
    try:
        body = resp.json()["error"]
        message = str(body["message"])
        code = str(body.get("code") or "error")
        details = body.get("details")
    except (ValueError, KeyError, TypeError):
        return GatewayError(resp.status_code, "error", resp.text[:500] or resp.reason_phrase)
    seq = details.get("audit_seq") if isinstance(details, dict) else None
    if isinstance(details, list) and details:  # request validation errors
        message += ": " + "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}"
            for d in details
            if isinstance(d, dict)
        )
    return GatewayError(
        resp.status_code, code, message, audit_seq=seq if isinstance(seq, int) else None
    )
