"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.agents import McpEndpoint
from gateway.authz import PolicyCache
from gateway.automation import Dispatcher
from gateway.cluster import Cluster, new_replica_id
from gateway.governance.evaluator import Evaluator
from gateway.governance.housekeeping import Housekeeping
from gateway.memory import Trimmer
from gateway.model import SyncHint
from gateway.openlineage import Emitter
from gateway.secrets import SecretPolicy
from gateway.settings import Settings
from gateway.sso import OidcProvider
from gateway.store.checkpoint import Checkpointer, sqlite_file
from gateway.store.engine import (
    analyze,
    create_db_engine,
    is_postgres,
    session_scope,
    upgrade,
)
from gateway.store.services.ingest import RunChange
from gateway.store.services.tokens import create_token, list_tokens
from gateway.sync.manager import SyncManager

from .conditional import GZIP_EXCLUDED, GZIP_MINIMUM, ConditionalGet
from .docs_ui import install_docs
from .errors import install_error_handlers
from .events import Broadcaster, Event
from .metrics import Metrics
from .routes import (
    agents,
    approvals,
    audit,
    auth,
    automation,
    config,
    forecast,
    health,
    hooks,
    jobs,
    lineage,
    me,
    openlineage,
    overview,
    policy,
    push,
    runs,
    sources,
    stream,
    violations,
)
from .routes import cluster as cluster_routes
from .routes.hooks import audit_refused_webhook
from .throttle import AuthThrottle

__all__ = ["BodyLimit", "create_app", "ensure_admin_token", "request_shutdown"]

_log = logging.getLogger("accord")
_TERMINAL = {"success", "failed", "cancelled", "skipped"}
CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"


class BodyLimit:
    """Rejects bodies over the limit with 413 before the app reads them."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        on_reject: Callable[[str, str | None], None] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Called in a worker thread with the path and client address of a refused request
        # (the gateway audits refused webhook deliveries).
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, send)
            return
        seen = 0
        too_big = False

        async def limited() -> Message:
            nonlocal seen, too_big
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    too_big = True
                    raise _TooLarge()
            return msg

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        if self.on_reject is not None:
            client = scope.get("client")
            await anyio.to_thread.run_sync(
                self.on_reject, str(scope.get("path", "")), client[0] if client else None
            )
        body = (
            b'{"error":{"code":"payload_too_large","message":"request body exceeds '
            + str(self.max_bytes).encode()
            + b' bytes","details":null,"request_id":null}}'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def ensure_admin_token(engine: Engine, settings: Settings) -> str | None:
    """On the first start (no tokens at all) create an admin token; return it once."""
    with session_scope(engine) as session:
        if list_tokens(session, include_revoked=True):
            return None
        new = create_token(
            session, subject="admin", role="admin", domain="*", description="created on first start"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.admin_token_file
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(new.token + "\n")
    return new.token


def request_shutdown(app: FastAPI) -> None:
    """Tell a running app that the server is stopping (safe from a signal handler or any
    thread): event streams end and sync passes are cancelled before the server waits for
    in-flight requests."""
    loop: asyncio.AbstractEventLoop | None = app.state.loop
    if loop is not None and not loop.is_closed():
        loop.call_soon_threadsafe(app.state.begin_shutdown)


def _build_routes(app: FastAPI) -> None:
    """Build every route's parameter and response models now, in this thread.

    FastAPI builds them on a route's first request. The route objects of the module-level
    routers are shared by every app in the process, and pydantic's schema building is not
    thread-safe, so two apps (or a first burst of requests) building at once can fail.
    ``effective_candidates`` is FastAPI's own lazy step; without it (other FastAPI
    versions build eagerly) there is nothing to do."""
    pending: list[Any] = list(app.router.routes)
    while pending:
        route = pending.pop()
        build = getattr(route, "effective_candidates", None)
        if callable(build):
            pending.extend(build())


def _relayed(broadcaster: Broadcaster, message: dict[str, Any]) -> None:
    event = Event.from_message(message)
    if event is not None:
        broadcaster.publish_local(event)


def _hinted(manager: SyncManager, source: str, hints: list[dict[str, Any]]) -> None:
    """A hint another replica forwarded: acted on here if this replica holds the source."""
    parsed = [SyncHint.model_validate(h) for h in hints if isinstance(h, dict)]
    manager.hint(source, parsed or [SyncHint(scope="runs")], forward=False)


# The console's policy: its scripts and everything it fetches come from the gateway
# itself; no inline script, no framing. Styles may be inline (component libraries set
# them). The API docs pages (Swagger UI, ReDoc) run an inline bootstrap script, so they
# get only the framing rule.
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
_DOCS_PAGES = ("/docs", "/redoc")


def _security_headers(path: str, headers: MutableHeaders) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    if path.startswith(_DOCS_PAGES):
        headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
    else:
        headers.setdefault("Content-Security-Policy", CONSOLE_CSP)


class RequestContext:
    """Each HTTP request's id (``X-Request-Id``, taken from the caller or made), its
    latency and status in the metrics, and the security headers on every answer. A plain
    ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs a task group and a memory
    stream per request, more than a list page's own work."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = Headers(scope=scope).get("x-request-id") or secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.latency.observe(time.perf_counter() - started)
                self.metrics.requests.labels(scope["method"], str(message["status"])).inc()
                headers = MutableHeaders(scope=message)
                headers["X-Request-Id"] = rid
                _security_headers(scope["path"], headers)
            await send(message)

        await self.app(scope, receive, wrapped)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    start_sync: bool | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    settings = settings or Settings()
    engine = engine or create_db_engine(settings.resolved_database_url())
    run_sync = settings.sync_enabled if start_sync is None else start_sync
    broadcaster = Broadcaster()
    metrics = Metrics(engine)

    secret_policy = SecretPolicy.from_settings(settings)
    evaluator = Evaluator(
        engine,
        secrets=secret_policy.resolve,
        publish=lambda kind, domain, job, data: broadcaster.publish(Event(kind, domain, job, data)),
    )

    def on_change(source: str, changes: list[RunChange]) -> None:
        metrics.runs_ingested.labels(source).inc(len(changes))
        emitter.poke()
        if any(ch.to_state in _TERMINAL for ch in changes):
            dispatcher.poke()  # a firing may be owed: do not wait for the next poll
        for ch in changes:
            broadcaster.publish(
                Event(
                    "run.changed",
                    ch.domain,
                    ch.job_uid,
                    {
                        "uid": ch.uid,
                        "job_uid": ch.job_uid,
                        "from": ch.from_state,
                        "to": ch.to_state,
                    },
                )
            )

    def on_pass(source: str) -> None:
        metrics.sync_passes.labels(source).inc()

    # On PostgreSQL every gateway is a replica of a cluster (one replica is a cluster of
    # one); SQLite is one process and needs none of it.
    cluster = (
        Cluster(
            engine,
            replica=settings.replica_id,
            lease_seconds=settings.lease_seconds,
            url=settings.public_url,
            leases_sources=run_sync,
        )
        if is_postgres(engine)
        else None
    )

    def on_fenced(source: str) -> None:
        metrics.fenced_writes.labels(source).inc()

    manager = (
        SyncManager(
            engine,
            on_change=on_change,
            on_pass=on_pass,
            secrets=secret_policy.resolve,
            cluster=cluster,
            max_passes=settings.sync_concurrency or None,
            on_fenced=on_fenced,
        )
        if run_sync
        else None
    )
    # The name this process marks approved actions it runs with (gateway.governance).
    replica_id = cluster.replica if cluster is not None else new_replica_id()
    housekeeping = Housekeeping(
        engine,
        leader=cluster.singleton("approval-expiry") if cluster else None,
        me=replica_id,
        alive=cluster.store.live_replicas if cluster is not None else set,
    )
    if cluster is not None:
        evaluator.leader = cluster.singleton("slas-and-notifications")
        metrics.cluster = cluster
        cluster.on_event = lambda message: _relayed(broadcaster, message)
        broadcaster.relay = lambda event: cluster.publish_event(event.as_message())
        if manager is not None:
            cluster.on_owned_change = manager.wake
    policy_cache = PolicyCache(engine)
    dispatcher = Dispatcher(engine, manager=manager, policy=policy_cache)
    # OpenLineage out: one emitter per deployment, from the committed state changes.
    emitter = Emitter(
        engine,
        settings,
        leader=(
            cluster.singleton("openlineage-emitter")
            if cluster and settings.openlineage_transport != "none"
            else None
        ),
    )

    def begin_shutdown() -> None:
        # On the event loop: end event streams and cancel sync passes now, so in-flight
        # requests answer at once instead of holding the server's graceful shutdown.
        broadcaster.close()
        if manager is not None:
            manager.begin_stop()

    # SQLite's WAL checkpoints off the writers' path (gateway.store.checkpoint).
    db_file = sqlite_file(str(engine.url))
    checkpointer = Checkpointer(db_file) if db_file is not None else None
    trimmer = Trimmer()  # glibc's free pages back to the system (gateway.memory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade, engine)
        await asyncio.to_thread(analyze, engine)
        if checkpointer is not None:
            checkpointer.start()
        trimmer.start()
        loop = asyncio.get_running_loop()
        broadcaster.bind(loop)
        app.state.loop = loop
        token = await asyncio.to_thread(ensure_admin_token, engine, settings)
        if token:
            app.state.first_admin_token = token
            _log.warning("created the first admin token; it is in %s", settings.admin_token_file)
        if cluster is not None:
            if manager is not None:

                def forwarded(source: str, hints: list[dict[str, Any]]) -> None:
                    loop.call_soon_threadsafe(_hinted, manager, source, hints)

                cluster.on_hint = forwarded
            await cluster.start()
        if manager is not None:
            await manager.start()
        housekeeping.start()
        evaluator.start()
        if settings.automation_dispatch:
            dispatcher.start()
        emitter.start()
        try:
            async with app.state.mcp.run():
                yield
        finally:
            begin_shutdown()
            await evaluator.stop()
            await dispatcher.stop()
            await emitter.stop()
            await housekeeping.stop()
            if manager is not None:
                await manager.stop(timeout=settings.shutdown_grace)
            if app.state.oidc is not None:
                app.state.oidc.close()
            if cluster is not None:
                await cluster.stop()
            if checkpointer is not None:
                await asyncio.to_thread(checkpointer.stop)
            await trimmer.stop()

    app = FastAPI(
        title="Accord",
        version="0.1.0",
        description="One control plane for the schedulers you already run.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.secret_policy = secret_policy
    app.state.engine = engine
    app.state.checkpointer = checkpointer
    app.state.manager = manager
    app.state.evaluator = evaluator
    app.state.policy = policy_cache
    app.state.auth_throttle = AuthThrottle(
        settings.auth_failure_limit, settings.auth_failure_window
    )
    app.state.dispatcher = dispatcher
    app.state.openlineage = emitter
    metrics.openlineage = emitter
    app.state.cluster = cluster
    app.state.replica_id = replica_id
    app.state.events = broadcaster
    app.state.metrics = metrics
    app.state.first_admin_token = None
    app.state.loop = None
    app.state.begin_shutdown = begin_shutdown
    app.state.oidc = OidcProvider(settings) if settings.oidc_enabled else None
    install_error_handlers(app)

    app.add_middleware(RequestContext, metrics=metrics)

    # MCP for AI agents (streamable HTTP), before the console's catch-all mount.
    app.state.mcp = McpEndpoint(app, engine)
    app.router.routes.append(Route("/mcp", endpoint=app.state.mcp, include_in_schema=False))

    for r in (
        agents,
        sources,
        jobs,
        runs,
        lineage,
        push,
        openlineage,
        hooks,
        config,
        audit,
        me,
        health,
        stream,
        overview,
        approvals,
        violations,
        policy,
        forecast,
        automation,
        auth,
        cluster_routes,
    ):
        app.include_router(r.router)
    for extra in routers:  # e.g. the demo's notification inbox
        app.include_router(extra)
    install_docs(app, title="Accord")

    if (CONSOLE_DIR / "index.html").exists():
        app.mount("/", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    else:

        @app.get("/", include_in_schema=False)
        def landing() -> HTMLResponse:
            return HTMLResponse(
                "<!doctype html><title>Accord</title><h1>Accord gateway</h1>"
                "<p>The web console is not built into this installation. "
                "The API is at <a href='/docs'>/docs</a>.</p>"
            )

    @app.get("/api/v1", include_in_schema=False)
    def api_root() -> JSONResponse:
        return JSONResponse({"name": "accord", "version": "0.1.0", "openapi": "/openapi.json"})

    _build_routes(app)

    def refused(path: str, client: str | None) -> None:
        if path.startswith("/hooks/"):
            audit_refused_webhook(
                engine,
                path.removeprefix("/hooks/"),
                "too_large",
                client=client,
                reason=f"body over {settings.max_body_bytes} bytes",
            )

    app.add_middleware(ConditionalGet)
    app.add_middleware(
        GZipMiddleware,
        minimum_size=GZIP_MINIMUM,
        compresslevel=1,  # JSON compresses ~8x even so, at a fraction of level 9's time
        exclude_content_types=GZIP_EXCLUDED,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, on_reject=refused)
    return app
