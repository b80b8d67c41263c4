"""The demo's notification inbox: a signed-webhook receiver served by the gateway itself.

Only ``accord serve --demo`` mounts it. The demo's ``demo-inbox`` Notifier sends every
event here; each POST's ``X-Accord-Signature`` is checked (HMAC-SHA256 over
``<X-Accord-Timestamp>.<body>`` with the demo's key, compared in constant time) exactly as
a real receiver should, and the last 200 messages are kept in memory with the result.
``GET /api/v1/demo/notifications`` lists them (newest first) for any signed-in user.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
from collections import deque
from typing import Any

from fastapi import APIRouter, Request

from gateway.api.deps import PrincipalDep
from gateway.api.errors import ApiError
from gateway.api.routing import Router
from gateway.demo import DEMO_INBOX_PATH, DEMO_INBOX_SECRET_ENV
from gateway.governance.notify import sign

__all__ = ["inbox_router"]

_MAX_AGE_S = 300  # a signature older than this is refused (replay)


def inbox_router(secret: str | None = None) -> APIRouter:
    """The receiver and its listing; ``secret`` defaults to the demo key in the env."""
    key = secret if secret is not None else os.environ.get(DEMO_INBOX_SECRET_ENV, "")
    received: deque[dict[str, Any]] = deque(maxlen=200)
    lock = threading.Lock()
    rejected = [0]
    router = Router(include_in_schema=False)

    @router.post(DEMO_INBOX_PATH, status_code=204)
    async def receive(request: Request) -> None:
        body = await request.body()
        ts = request.headers.get("x-accord-timestamp", "")
        given = request.headers.get("x-accord-signature", "")
        fresh = ts.isdigit() and abs(time.time() - int(ts)) <= _MAX_AGE_S
        verified = bool(key) and fresh and hmac.compare_digest(given, sign(key, ts, body))
        if not verified:
            with lock:
                rejected[0] += 1
            raise ApiError(401, "bad_signature", "the X-Accord-Signature does not verify")
        try:
            payload = json.loads(body)
        except ValueError:
            raise ApiError(400, "bad_body", "the body is not JSON") from None
        with lock:
            received.appendleft(
                {
                    "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "event": request.headers.get("x-accord-event"),
                    "signature_verified": True,
                    "payload": payload,
                }
            )

    @router.get(DEMO_INBOX_PATH)
    def listing(principal: PrincipalDep) -> dict[str, Any]:
        with lock:
            items, refused = list(received), rejected[0]
        return {"items": items, "count": len(items), "rejected": refused}

    return router
