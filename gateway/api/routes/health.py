from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlmodel import Session

from gateway.store.engine import head_revision

from ..deps import get_principal, require
from ..routing import Router

router = Router(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """The process can serve: the database answers and its schema is this version's
    (a replica of a newer version waits until the migrations ran)."""
    try:
        with request.app.state.engine.connect() as conn:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # any database failure means not ready
        return JSONResponse({"status": "unavailable", "database": str(exc)[:200]}, 503)
    if current != head_revision():
        return JSONResponse(
            {"status": "unavailable", "database": f"schema {current} is not {head_revision()}"},
            503,
        )
    return JSONResponse({"status": "ready", "database": "ok"})


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> PlainTextResponse:
    """Prometheus metrics. Without a token unless ``ACCORD_METRICS_TOKEN_REQUIRED`` is set;
    meant for a scraper on a private network."""
    if request.app.state.settings.metrics_token_required:
        with Session(request.app.state.engine, expire_on_commit=False) as session:
            require("read")(get_principal(request, session))
    request.app.state.metrics.refresh()
    return PlainTextResponse(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
