from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The process can serve: the database answers."""
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means not ready
        return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, 503)
    return JSONResponse({"status": "ready", "database": "ok"})


@router.get("/metrics")
def metrics(request: Request) -> PlainTextResponse:
    request.app.state.metrics.refresh()
    return PlainTextResponse(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
