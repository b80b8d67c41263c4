"""The API's router: sync routes give their database connection back when they return.

FastAPI validates and serializes a sync route's answer in a worker thread of its own,
after the route returned, and closes the request's session (a dependency) only after the
answer is sent. In between, the request held a pooled connection without a thread:
under a burst of requests (``bench/load.py``, 200 clients) every worker thread waited for
a connection while every connection waited for a worker thread, and the gateway stopped
answering. Routes made here close the sessions they were given as soon as they return,
in their own thread. They build their answers inside the route (models, not lazy rows),
and the request sessions do not expire what they loaded.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

__all__ = ["ReleasingRoute", "Router"]


def _releasing(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)  # FastAPI reads the signature and annotations through it
    def call(**kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Session):
                    value.close()

    return call


class ReleasingRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _releasing(endpoint)
        super().__init__(path, endpoint, **kwargs)


class Router(APIRouter):
    """``APIRouter`` whose routes are ``ReleasingRoute``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("route_class", ReleasingRoute)
        super().__init__(**kwargs)
