"""Server-sent events: live run changes, filtered by what the subject may read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from ..deps import Principal, require
from ..events import Broadcaster

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.get("/events")
async def events(
    request: Request, principal: Principal = Depends(require("read"))
) -> StreamingResponse:
    broadcaster: Broadcaster = request.app.state.events

    async def stream() -> AsyncIterator[str]:
        yield ": connected\n\n"
        with broadcaster.subscribe() as queue:
            while True:
                if await request.is_disconnected():
                    return
                try:
                    ev = await asyncio.wait_for(queue.get(), timeout=15)
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
