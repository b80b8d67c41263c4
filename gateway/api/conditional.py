"""Conditional and compressed responses for the read API.

``ConditionalGet`` gives every successful JSON answer to a ``GET /api/v1/...`` a weak
ETag (a hash of the body) and answers ``304 Not Modified`` without a body when the
request's ``If-None-Match`` names it: the console's polling then costs no transfer
(and no parsing) while nothing changed. ``compressed`` wraps the app in gzip for bodies
of at least 4 KiB; event streams and the streamed exports are left alone (they are
produced as they go and read as they arrive).
"""

from __future__ import annotations

import hashlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["GZIP_EXCLUDED", "GZIP_MINIMUM", "ConditionalGet", "etag_matches"]

GZIP_MINIMUM = 4096
# Streamed as they are produced: compressing would hold them back.
GZIP_EXCLUDED = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/x-ndjson", "text/csv")


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` (a list, or ``*``) with ``etag``."""
    if if_none_match.strip() == "*":
        return True
    want = etag.removeprefix("W/")
    return any(
        tag.strip().removeprefix("W/") == want for tag in if_none_match.split(",") if tag.strip()
    )


class ConditionalGet:
    def __init__(self, app: ASGIApp, prefix: str = "/api/v1") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        if_none_match = Headers(scope=scope).get("if-none-match")
        start: Message | None = None
        passthrough = False
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal start, passthrough
            if message["type"] == "http.response.start":
                headers = Headers(raw=message["headers"])
                ctype = headers.get("content-type", "")
                if (
                    message["status"] != 200
                    or not ctype.startswith("application/json")
                    or "etag" in headers
                ):
                    passthrough = True
                    await send(message)
                else:
                    start = message
                return
            if passthrough or start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            etag = 'W/"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
            headers = MutableHeaders(raw=start["headers"])
            headers["ETag"] = etag
            if if_none_match and etag_matches(if_none_match, etag):
                for name in ("content-length", "content-type"):
                    if name in headers:
                        del headers[name]
                await send({**start, "status": 304})
                await send({"type": "http.response.body", "body": b""})
                return
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, wrapped)
