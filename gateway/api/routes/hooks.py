"""Webhooks: verified by the adapter, then only a hint to sync that source sooner.

A delivery whose signature does not verify is refused (401) and audited: someone who is
not the source, or a misconfigured token, is knocking.
"""

from __future__ import annotations

from functools import partial

import anyio.to_thread
from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from gateway.audit import AuditEntry, append
from gateway.model import AdapterAuthError, AdapterError
from gateway.store.engine import session_scope
from gateway.store.tables import Source as SourceRow

from ..deps import in_thread
from ..errors import ApiError
from ..routing import Router

router = Router(tags=["webhooks"])


def audit_refused_webhook(
    engine: Engine,
    name: str,
    outcome: str,
    *,
    client: str | None,
    reason: str,
    request_id: str | None = None,
) -> int:
    """Audit a refused webhook delivery (blocking: call it in a worker thread)."""
    with session_scope(engine) as s:
        src = s.get(SourceRow, name)
        entry = AuditEntry(
            subject="anonymous",
            channel="api",
            action="webhook",
            target=name[:200],
            domain=src.domain if src is not None else "*",
            decision="deny",
            outcome=outcome,
            reason=reason,
            request_id=request_id,
            details={"client": client},
        )
        return append(s, entry).seq


@router.post("/hooks/{name}", status_code=202)
async def webhook(name: str, request: Request) -> JSONResponse:
    src = await in_thread(request, lambda s: s.get(SourceRow, name))
    if src is None:
        raise ApiError(404, "not_found", f"no source named {name!r}")
    body = await request.body()
    manager = request.app.state.manager
    from gateway.sync.manager import build_adapter

    adapter, close = manager.adapter_for(src) if manager else (build_adapter(src), True)
    try:
        hints = adapter.parse_webhook(dict(request.headers), body)
    except AdapterAuthError as exc:
        client = request.client.host if request.client else None
        seq = await anyio.to_thread.run_sync(
            partial(
                audit_refused_webhook,
                request.app.state.engine,
                name,
                "bad_signature",
                client=client,
                reason=str(exc),
                request_id=request.state.request_id,
            )
        )
        raise ApiError(401, "bad_signature", str(exc), details={"audit_seq": seq}) from None
    except AdapterError as exc:
        client = request.client.host if request.client else None
        seq = await anyio.to_thread.run_sync(
            partial(
                audit_refused_webhook,
                request.app.state.engine,
                name,
                "malformed",
                client=client,
                reason=str(exc),
                request_id=request.state.request_id,
            )
        )
        raise ApiError(400, "bad_webhook", str(exc), details={"audit_seq": seq}) from None
    finally:
        if close:
            await adapter.aclose()
    scheduled = manager.hint(name, hints) if manager else False
    return JSONResponse({"accepted": len(hints), "sync_scheduled": scheduled}, status_code=202)
