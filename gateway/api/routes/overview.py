"""Read-only aggregates for the web console's overview page."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/overview", tags=["overview"])
