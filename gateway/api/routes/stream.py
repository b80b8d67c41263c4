"""Server-sent events: live run changes, filtered by what the subject may read."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import Depends, Request
from fastapi.responses import StreamingResponse

from ..deps import Principal, get_principal, in_thread, require
from ..errors import ApiError
from ..events import Broadcaster
from ..routing import Router

# How often an open stream checks its token again, and sends a keep-alive when quiet.
RECHECK_SECONDS = 10.0
KEEPALIVE_SECONDS = 15.0

router = Router(prefix="/api/v1", tags=["events"])


@router.get("/events")
async def events(
    request: Request, principal: Principal = Depends(require("read"))
) -> StreamingResponse:
    broadcaster: Broadcaster = request.app.state.events

    async def stream() -> AsyncIterator[str]:
        nonlocal principal
        yield ": connected\n\n"
        checked = time.monotonic()
        with broadcaster.subscribe() as queue:
            while True:
                if await request.is_disconnected():
                    return
                if time.monotonic() - checked >= RECHECK_SECONDS:
                    # A stream outlives its request: the token is checked again (revoked,
                    # expired) and the subject's current policy applies from now on.
                    try:
                        principal = await in_thread(request, lambda s: get_principal(request, s))
                    except ApiError as exc:
                        body = json.dumps({"code": exc.code, "message": exc.message})
                        yield f"event: unauthorized\ndata: {body}\n\n"
                        return
                    checked = time.monotonic()
                try:
                    ev = await asyncio.wait_for(
                        queue.get(), timeout=min(KEEPALIVE_SECONDS, RECHECK_SECONDS)
                    )
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if ev is None:  # the gateway is stopping
                    return
                # Events name the job they concern; one that does not is shown only to
                # subjects who may read everything.
                if not principal.decide(ev.domain or "*", ev.job_uid or "*", "read").allowed:
                    continue
                yield f"event: {ev.type}\ndata: {json.dumps(ev.data)}\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
