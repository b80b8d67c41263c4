"""The interactive API docs (Swagger UI at ``/docs``, ReDoc at ``/redoc``), served
from the gateway itself.

FastAPI's defaults load both UIs from a CDN, which leaves ``/docs`` blank on a gateway in
a closed network. The assets come from a PyPI package pinned in ``uv.lock``
(``fastapi-standalone-docs`` ships Swagger UI and ReDoc builds) and are served here under
``/docs/assets`` and ``/redoc/assets``; the pages name no other host.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_DIR", "install_docs"]

ASSETS_DIR = Path(str(files("fastapi_standalone_docs") / "static"))


def install_docs(app: FastAPI, *, title: str) -> None:
    """Add ``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` with local assets.

    The app must be created with ``docs_url=None, redoc_url=None``."""
    app.mount("/docs/assets", StaticFiles(directory=ASSETS_DIR / "swagger"), name="docs-assets")
    app.mount("/redoc/assets", StaticFiles(directory=ASSETS_DIR / "redoc"), name="redoc-assets")
    app.mount("/docs/favicon", StaticFiles(directory=ASSETS_DIR / "fastapi"), name="docs-favicon")
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = "/docs/favicon/favicon.png"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url=favicon,
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            redoc_js_url="/redoc/assets/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
