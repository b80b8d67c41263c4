"""Many concurrent API clients on one gateway: every request is answered, none stalls.

A sync route keeps its database connection until FastAPI has serialized its answer, which
FastAPI does in a worker thread. With fewer pooled connections than worker threads,
requests holding a connection waited for a thread while every thread waited for a
connection: the gateway stopped answering until the pool's 30 s timeout turned the
waits into errors (found by ``bench/load.py`` with 200 clients on 1M runs). The pool is
now never smaller than the threads that can hold a connection (``pool_max``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from ._gateway import Gateway

CLIENTS = 120
# Sync routes that read the store with the request's session (the pattern that stalled).
PATHS = ("/api/v1/overview", "/api/v1/approvals", "/api/v1/overview")


def test_many_concurrent_clients_are_all_answered(tmp_path: Path, served_db: str | None) -> None:
    gw = Gateway(tmp_path / "data", served_db, sync=False).start()
    try:

        async def main() -> list[tuple[str, int | str]]:
            limits = httpx.Limits(max_connections=CLIENTS + 5)
            # Below the pool's 30 s timeout: a stalled gateway fails the test as a
            # timeout, not as a late error.
            async with httpx.AsyncClient(
                base_url=gw.url, headers=gw.headers, timeout=25, limits=limits
            ) as c:

                async def client() -> list[tuple[str, int | str]]:
                    out: list[tuple[str, int | str]] = []
                    for path in PATHS:
                        try:
                            out.append((path, (await c.get(path)).status_code))
                        except httpx.HTTPError as exc:
                            out.append((path, type(exc).__name__))
                    return out

                answers = await asyncio.gather(*(client() for _ in range(CLIENTS)))
                return [a for got in answers for a in got]

        answers = asyncio.run(main())
        bad = [a for a in answers if a[1] != 200]
        assert not bad, f"{len(bad)} of {len(answers)} requests failed, e.g. {bad[:5]}"
        assert len(answers) == CLIENTS * len(PATHS)
        assert "Traceback" not in gw.text()
    finally:
        gw.stop()


def test_every_api_router_gives_connections_back() -> None:
    """A router made with FastAPI's own class would bring the stall back for its sync
    routes: every router of the API is ``Router``, and its sync routes close their
    sessions."""
    import importlib
    import pkgutil

    import gateway.api.routes as routes
    from gateway.api.routing import ReleasingRoute, Router
    from gateway.demo_inbox import inbox_router

    routers = [inbox_router("s")]
    for info in pkgutil.iter_modules(routes.__path__):
        module = importlib.import_module(f"{routes.__name__}.{info.name}")
        if hasattr(module, "router"):
            routers.append(module.router)
    assert len(routers) > 15
    for router in routers:
        assert isinstance(router, Router), router
        assert all(isinstance(r, ReleasingRoute) for r in router.routes), router
