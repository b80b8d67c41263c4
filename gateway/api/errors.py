"""Every error leaves the API in one shape: ``{"error": {"code", "message", ...}}``.

Adapter errors map to HTTP here and only here: temporary (503 + Retry-After) versus
permanent (502), not supported or not fitting the current state (409), not found (404).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.model import (
    ActionNotSupported,
    AdapterAuthError,
    AdapterError,
    AdapterUnavailable,
    Conflict,
    InvalidResponse,
    NotFound,
)
from gateway.store.engine import DatabaseUnavailable, database_error
from gateway.store.services.queries import InvalidCursor

__all__ = ["ApiError", "error_response", "install_error_handlers"]

_log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {
        "error": {
            "code": code,
            "message": message,
            "details": details,
            "request_id": getattr(request.state, "request_id", None),
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def adapter_error_status(exc: AdapterError) -> tuple[int, str, dict[str, str]]:
    if isinstance(exc, AdapterUnavailable):
        headers = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        return 503, "source_unavailable", headers
    if isinstance(exc, AdapterAuthError):
        return 502, "source_auth_failed", {}
    if isinstance(exc, NotFound):
        return 404, "not_found_at_source", {}
    if isinstance(exc, ActionNotSupported):
        return 409, "action_not_supported", {}
    if isinstance(exc, Conflict):
        return 409, "conflict", {}
    if isinstance(exc, InvalidResponse):
        return 502, "source_invalid_response", {}
    return 502, "source_error", {}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error"
        )
        return error_response(
            request, exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {})
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        for e in exc.errors():
            loc = tuple(e.get("loc", ()))
            msg = str(e.get("msg", ""))
            value = e.get("input")
            # Name the rejected value of a query or path parameter (never of a body, which
            # may hold anything).
            if loc[:1] in (("query",), ("path",)) and isinstance(value, str) and len(value) < 80:
                msg = f"{msg} (got {value!r})"
            details.append({"loc": ".".join(str(p) for p in loc), "msg": msg})
        # The message names what is wrong, so a client that shows only the message helps.
        summary = "; ".join(f"{d['loc']}: {d['msg']}" for d in details[:3])
        message = f"the request is invalid: {summary}" if summary else "the request is invalid"
        return error_response(request, 422, "invalid_request", message, details)

    @app.exception_handler(AdapterError)
    async def _adapter(request: Request, exc: AdapterError) -> JSONResponse:
        status, code, headers = adapter_error_status(exc)
        return error_response(request, status, code, str(exc), headers=headers)

    @app.exception_handler(InvalidCursor)
    async def _cursor(request: Request, exc: InvalidCursor) -> JSONResponse:
        return error_response(request, 400, "invalid_cursor", str(exc))

    @app.exception_handler(DatabaseUnavailable)
    async def _db(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        return error_response(request, 503, "database_unavailable", str(exc))

    @app.exception_handler(DBAPIError)
    async def _dbapi(request: Request, exc: DBAPIError) -> JSONResponse:
        status, code, message = database_error(exc)
        if status == 500:
            raise exc  # a bug: the server's own error path logs it and answers 500
        _log.warning("%s %s: %s (%s)", request.method, request.url.path, message, exc.orig)
        headers = {"Retry-After": "5"} if status == 503 else None
        return error_response(request, status, code, message, headers=headers)
