"""The ``accord`` commands (typer)."""

import getpass
import json
import os
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.settings import Settings

from ._help import install as _install_help

_install_help()
if TYPE_CHECKING:
    from gateway.demo import DemoFederation

app = typer.Typer(
    help="Accord: one control plane for the schedulers you already run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
sources_app = typer.Typer(help="Configured sources.", no_args_is_help=True)
jobs_app = typer.Typer(help="Jobs across all sources.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs across all sources.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (local administration).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sources_app, name="sources")
app.add_typer(jobs_app, name="jobs")
app.add_typer(runs_app, name="runs")
app.add_typer(tokens_app, name="tokens")
app.add_typer(audit_app, name="audit")
approvals_app = typer.Typer(help="Four-eyes approvals (through a gateway).", no_args_is_help=True)
violations_app = typer.Typer(help="Compliance violations.", no_args_is_help=True)
policy_app = typer.Typer(help="Authorization policy.", no_args_is_help=True)
app.add_typer(approvals_app, name="approvals")
app.add_typer(violations_app, name="violations")
app.add_typer(policy_app, name="policy")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

FileOpt = Annotated[Path, typer.Option("-f", "--file", help="YAML file or directory")]
ServerOpt = Annotated[
    str | None,
    typer.Option("--server", envvar="ACCORD_SERVER", help="gateway URL (default: local store)"),
]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="ACCORD_TOKEN", help="API token for --server")
]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="table or json")]


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _local_subject() -> str:
    try:
        return f"local:{getpass.getuser()}"
    except Exception:  # no passwd entry (containers)
        return "local:unknown"


def _engine(settings: Settings | None = None) -> Any:
    from gateway.store import DatabaseUnavailable, create_db_engine, upgrade

    settings = settings or Settings()
    engine = create_db_engine(settings.resolved_database_url())
    try:
        upgrade(engine)
    except DatabaseUnavailable as exc:
        _fail(str(exc))
    return engine


def _client(server: str, token: str | None) -> httpx.Client:
    if not token:
        _fail("--server needs a token: pass --token or set ACCORD_TOKEN")
    return httpx.Client(
        base_url=server.rstrip("/"),
        headers={"Authorization": f"Bearer {token}", "X-Accord-Channel": "cli"},
        timeout=30,
    )


def _api(server: str, token: str | None, method: str, path: str, **kw: Any) -> Any:
    with _client(server, token) as c:
        try:
            resp = c.request(method, path, **kw)
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {server}: {exc}")
        if resp.status_code >= 400:
            try:
                e = resp.json()["error"]
                detail = e.get("details")
                msg = e["message"] + (f"\n{json.dumps(detail, indent=2)}" if detail else "")
            except (ValueError, KeyError, TypeError):
                msg = resp.text[:500]
            _fail(f"{resp.status_code}: {msg}")
        return resp.json()


def _table(rows: list[dict[str, Any]], columns: list[str], output: str, title: str = "") -> None:
    if output == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    if output != "table":
        _fail("--output must be table or json")
    t = Table(title=title or None)
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*["" if r.get(c) is None else str(r.get(c)) for c in columns])
    out.print(t)
    if not rows:
        out.print("(none)")


# -- serve -------------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
    demo: Annotated[bool, typer.Option(help="load the demo federation (own database)")] = False,
    file: Annotated[
        list[Path] | None, typer.Option("-f", "--file", help="apply this YAML before serving")
    ] = None,
    sync: Annotated[
        bool | None, typer.Option(help="run the sync workers (default: ACCORD_SYNC_ENABLED)")
    ] = None,
) -> None:
    """Start the gateway (API, console, sync). Migrates the database first.

    SIGTERM or Ctrl-C stops it within about twice ACCORD_SHUTDOWN_GRACE seconds, exit
    status 0, after stopping the demo's processes."""
    import logging

    from gateway.api.app import create_app, ensure_admin_token
    from gateway.api.server import serve as serve_app
    from gateway.memory import limit_arenas

    limit_arenas()  # before the gateway starts its threads

    # A stop request is a clean exit, whenever it comes (the demo's parts are stopped by
    # the finally below); uvicorn handles the signals while it serves, then hands them
    # back to this handler.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_requested)
    settings = Settings()
    if demo and not os.environ.get("ACCORD_DATABASE_URL"):
        settings.data_dir = settings.data_dir / "demo"
    settings.host = host or settings.host
    settings.port = port or settings.port
    if sync is not None:
        settings.sync_enabled = sync
    if demo and not os.environ.get("ACCORD_OPENLINEAGE_TRANSPORT"):
        # The demo shows OpenLineage out: every run change, as a line of a file.
        settings.openlineage_transport = "file"
        settings.openlineage_start_at = "beginning"
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    if settings.log_level.lower() != "debug":
        # One line per request to every source would drown the gateway's own messages.
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    federation: DemoFederation | None = None
    feeding: threading.Event | None = None
    try:
        engine = _engine(settings)
        if demo:
            from gateway.demo import start_demo

            federation = start_demo(settings.data_dir / "parts")
            # Notifications go, signed, to the gateway's own demo inbox (gateway.demo_inbox).
            from gateway.demo import DEMO_INBOX_SECRET_ENV, inbox_documents

            os.environ.setdefault(DEMO_INBOX_SECRET_ENV, secrets.token_urlsafe(24))
            inbox_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
            federation.documents.extend(inbox_documents(f"http://{inbox_host}:{settings.port}"))
            _apply_documents(
                engine, [("demo", i, d) for i, d in enumerate(federation.documents, 1)]
            )
            for p in federation.problems:
                err.print(f"[yellow]warning:[/] {p}")
        for f in file or []:
            _apply_path(engine, f, prune=False, dry_run=False)
        token = ensure_admin_token(engine, settings)
        url = settings.public_url or f"http://{settings.host}:{settings.port}"
        print(f"Accord gateway: {url}  (API docs: {url}/docs)")
        if token is None and demo and settings.admin_token_file.exists():
            token = settings.admin_token_file.read_text().strip()
            print(f"Admin token: {token}  (kept in {settings.admin_token_file})")
        elif token is None and settings.admin_token_file.exists():
            # Outside the demo the token is not printed again (logs keep what is printed).
            print(f"Admin token: in {settings.admin_token_file}")
        elif token is not None and demo:
            print(f"Admin token: {token}  (created now; kept in {settings.admin_token_file})")
        elif token is not None:
            # Never print a real installation's token: stdout ends up in service and pod
            # logs. It is in a file only its owner can read.
            print(
                f"Admin token: created now, written to {settings.admin_token_file} "
                "(mode 0600; not printed)"
            )
        else:
            print("Admin token: create one with 'accord tokens create --subject NAME --role admin'")
        if demo:
            n = sum(d.get("kind") == "Source" for d in federation.documents) if federation else 0
            db = _redact(settings.resolved_database_url())
            print(f"Demo federation: {n} demo sources (database {db})")
        if settings.openlineage_transport == "file":
            print(f"OpenLineage events: appended to {settings.openlineage_file_path}")
        elif settings.openlineage_transport == "http":
            print(f"OpenLineage events: sent to {settings.openlineage_url}")
        sys.stdout.flush()
        extra = []
        if demo:
            from gateway.demo_inbox import inbox_router

            extra.append(inbox_router())
        application = create_app(settings, engine=engine, routers=extra)
        marker = settings.data_dir / "demo-activity-done"
        if demo and not marker.exists():
            # The first start of a demo takes a few real actions through the API, so the
            # audit trail shows what it is for; later starts leave the history as it is.
            def activity() -> None:
                from gateway.demo import run_demo_activity

                local = (
                    f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '::') else settings.host}"
                )
                report = run_demo_activity(f"{local}:{settings.port}", engine)
                for line in report:
                    err.print(f"demo activity: {escape(line)}", highlight=False)
                if any(" -> " in line for line in report):  # it got as far as acting
                    marker.touch()

            threading.Thread(target=activity, name="demo-activity", daemon=True).start()
        if demo:
            # A dbt-like project sends OpenLineage events to the demo's openlineage source.
            from gateway.demo import feed_openlineage

            local = f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '::') else settings.host}"
            feeding = threading.Event()
            threading.Thread(
                target=feed_openlineage,
                args=(f"{local}:{settings.port}", engine, feeding),
                name="demo-openlineage",
                daemon=True,
            ).start()
        serve_app(
            application,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            grace=settings.shutdown_grace,
        )
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        # A second stop request while the demo's parts stop ends the process at once.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        if feeding is not None:
            feeding.set()
        if federation is not None:
            federation.stop()


def _stop_requested(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (idempotent)."""
    settings = Settings()
    _engine(settings)
    out.print(f"database is up to date ({_redact(settings.resolved_database_url())})")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- declarative config -------------------------------------------------------------------------
def _load(path: Path, check_secrets: bool = True) -> Any:
    from gateway.config import load_path

    result = load_path(path, check_secrets=check_secrets)
    if not result.ok:
        for e in result.errors:
            err.print(f"[red]✗[/] {escape(str(e))}", highlight=False)
        _fail(f"{len(result.errors)} problem(s) in {path}; nothing was changed")
    return result


def _apply_documents(engine: Any, raw: list[tuple[str, int, Any]]) -> None:
    from gateway.config import apply_plan, load_documents, plan
    from gateway.store import session_scope
    from gateway.store.engine import lock_config

    result = load_documents(raw)
    if not result.ok:
        for e in result.errors:
            err.print(f"[red]✗[/] {escape(str(e))}", highlight=False)
        _fail("the demo federation's documents are invalid")
    with session_scope(engine) as s:
        lock_config(s)
        p = plan(s, result.documents)
        apply_plan(s, p, subject=_local_subject(), channel="cli")


def _apply_path(engine: Any, path: Path, *, prune: bool, dry_run: bool) -> None:
    from gateway.config import ConfigRefused, apply_plan, plan
    from gateway.store import session_scope
    from gateway.store.engine import lock_config

    result = _load(path)
    try:
        with session_scope(engine) as s:
            lock_config(s)
            p = plan(s, result.documents, prune=prune)
            for ch in p.changes:
                out.print(ch.line(), highlight=False)
            if dry_run:
                out.print(f"dry run: {p.summary()} (nothing was changed)")
                s.rollback()
                return
            summary = apply_plan(s, p, subject=_local_subject(), channel="cli")
    except ConfigRefused as exc:
        for problem in exc.problems:
            err.print(f"[red]✗[/] {problem}", highlight=False)
        _fail(f"{len(exc.problems)} problem(s); nothing was changed")
    out.print(f"applied: {summary}")


@app.command()
def validate(file: FileOpt) -> None:
    """Validate documents without changing anything."""
    result = _load(file)
    for d in result.documents:
        out.print(f"[green]✓[/] {d.kind}/{d.name}  ({d.file}: document {d.index})", highlight=False)
    out.print(f"{len(result.documents)} document(s) valid")


@app.command()
def diff(
    file: FileOpt, prune: Annotated[bool, typer.Option(help="show deletions")] = False
) -> None:
    """Show what 'apply' would change."""
    from gateway.config import plan
    from gateway.store import session_scope

    result = _load(file)
    with session_scope(_engine()) as s:
        p = plan(s, result.documents, prune=prune)
    for ch in p.changes:
        out.print(ch.line(), highlight=False)
    out.print(str(p.summary()))


@app.command()
def apply(
    file: FileOpt,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="plan only")] = False,
    prune: Annotated[bool, typer.Option(help="delete applied resources not in FILE")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Validate every document, then apply them all in one audited transaction."""
    if server:
        result = _load(file, check_secrets=False)
        body = "\n---\n".join(json.dumps(d.as_dict()) for d in result.documents)
        res = _api(
            server,
            token,
            "POST",
            "/api/v1/config/apply",
            params={"dry_run": dry_run, "prune": prune},
            content=body,
            headers={"Content-Type": "application/yaml"},
        )
        for line in res["changes"]:
            out.print(line, highlight=False)
        out.print(("dry run: " if dry_run else "applied: ") + str(res["summary"]))
        return
    _apply_path(_engine(), file, prune=prune, dry_run=dry_run)


@app.command()
def schema(kind: Annotated[str | None, typer.Option(help="one kind only")] = None) -> None:
    """Print the JSON Schema of every resource kind."""
    from gateway.model.resources import KINDS

    if kind and kind not in KINDS:
        _fail(f"unknown kind {kind!r}; known kinds: {', '.join(KINDS)}")
    kinds = {kind: KINDS[kind]} if kind else KINDS
    print(json.dumps({k: m.model_json_schema(by_alias=True) for k, m in kinds.items()}, indent=2))


# -- lists ---------------------------------------------------------------------------------------
def _local_principal_visible() -> Any:
    from sqlalchemy import true

    return lambda _d, _u: true()


@sources_app.command("list")
def sources_list(
    server: ServerOpt = None, token: TokenOpt = None, output: OutputOpt = "table"
) -> None:
    """Sources with their health and lag."""
    if server:
        rows = _api(server, token, "GET", "/api/v1/sources")
    else:
        from gateway.api.convert import source_public
        from gateway.store import session_scope
        from gateway.store.services import queries

        with session_scope(_engine()) as s:
            visible = _local_principal_visible()
            counts = queries.job_counts(s, visible=visible)
            rows = [
                source_public(r, counts.get(r.name, 0)).model_dump(mode="json")
                for r in queries.list_sources(s, visible=visible)
            ]
    _table(
        rows,
        [
            "name",
            "type",
            "domain",
            "jobs",
            "health",
            "lag_seconds",
            "last_success_at",
            "health_message",
        ],
        output,
    )
    if output == "table":
        for r in rows:
            for p in r.get("problems") or []:
                where = p.get("file") or (f"job {p['job']}" if p.get("job") else "")
                if where and p.get("line"):
                    where = f"{where}:{p['line']}"
                out.print(
                    f"{r['name']}: {where + ': ' if where else ''}{p['message']}", highlight=False
                )


@jobs_app.command("list")
def jobs_list(
    source: str | None = None,
    domain: str | None = None,
    state: str | None = None,
    q: str | None = None,
    limit: int = 100,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Jobs across all sources."""
    params = {
        k: v
        for k, v in {
            "source": source,
            "domain": domain,
            "state": state,
            "q": q,
            "limit": limit,
        }.items()
        if v is not None
    }
    if server:
        rows = _api(server, token, "GET", "/api/v1/jobs", params=params)["items"]
    else:
        from gateway.api.convert import job_public
        from gateway.store import session_scope
        from gateway.store.services import queries

        with session_scope(_engine()) as s:
            page = queries.list_jobs(
                s,
                visible=_local_principal_visible(),
                limit=limit,
                filt=queries.JobFilter(source=source, domain=domain, state=state, q=q),
            )
            rows = [job_public(j).model_dump(mode="json") for j in page.items]
    for r in rows:
        r["schedule"] = (r.get("schedule") or {}).get("expression")
    _table(rows, ["uid", "domain", "schedule", "paused", "last_run_state", "last_run_at"], output)


@runs_app.command("list")
def runs_list(
    source: str | None = None,
    domain: str | None = None,
    job: str | None = None,
    state: str | None = None,
    since: Annotated[str | None, typer.Option(help="ISO time or 24h / 7d")] = None,
    limit: int = 50,
    all_runs: Annotated[
        bool, typer.Option("--all", help="every matching run (with -o json: streamed)")
    ] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Recent runs across all sources (newest first).

    With ``-o json`` and ``--all`` or a ``--limit`` over 1,000, the runs are streamed
    (from the gateway's export with --server) and written as they arrive, with a count
    on stderr; stdout stays one JSON array."""
    if limit < 1:
        _fail("--limit must be at least 1")
    since_dt = _since(since)
    params: dict[str, Any] = {
        k: v
        for k, v in {
            "source": source,
            "domain": domain,
            "job": job,
            "state": state,
            "limit": limit,
        }.items()
        if v is not None
    }
    if since_dt:
        params["since"] = since_dt.isoformat()
    if output == "json" and (all_runs or limit > STREAM_OVER):
        params.pop("limit")
        cap = None if all_runs else limit
        if server:
            _stream_runs_json(_export_lines(server, token, params, cap))
        else:
            _stream_runs_json(
                _local_run_lines(source, domain, job, state, since_dt, cap),
            )
        return
    if server:
        rows = _api(server, token, "GET", "/api/v1/runs", params=params)["items"]
    else:
        from gateway.api.convert import run_public
        from gateway.store import session_scope
        from gateway.store.services import queries

        with session_scope(_engine()) as s:
            page = queries.list_runs(
                s,
                visible=_local_principal_visible(),
                limit=limit,
                filt=queries.RunFilter(
                    source=source,
                    domain=domain,
                    job=job,
                    state=state.split(",") if state else [],
                    since=since_dt,
                ),
            )
            rows = [run_public(r).model_dump(mode="json") for r in page.items]
    _table(rows, ["uid", "state", "trigger", "started_at", "duration_s", "native_state"], output)


STREAM_OVER = 1000  # -o json streams larger results (the list API pages at 1,000)


def _export_lines(
    server: str, token: str | None, params: dict[str, Any], cap: int | None
) -> Iterator[str]:
    """The runs of ``GET /api/v1/runs/export`` (NDJSON), one JSON text per run."""
    query = {**params, "format": "ndjson", **({"limit": cap} if cap else {})}
    with _client(server, token) as c:
        try:
            with c.stream("GET", "/api/v1/runs/export", params=query, timeout=None) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    try:
                        msg = resp.json()["error"]["message"]
                    except (ValueError, KeyError, TypeError):
                        msg = resp.text[:500]
                    _fail(f"{resp.status_code}: {msg}")
                for line in resp.iter_lines():
                    if line:
                        yield line
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {server}: {exc}")


def _local_run_lines(
    source: str | None,
    domain: str | None,
    job: str | None,
    state: str | None,
    since: datetime | None,
    cap: int | None,
) -> Iterator[str]:
    """The local store's runs, newest first, read 1,000 at a time by cursor."""
    from pydantic_core import to_json
    from sqlmodel import Session

    from gateway.api.fastread import run_item
    from gateway.store.services import queries

    engine = _engine()
    filt = queries.RunFilter(
        source=source,
        domain=domain,
        job=job,
        state=state.split(",") if state else [],
        since=since,
    )
    cursor: str | None = None
    left = cap
    while left is None or left > 0:
        size = STREAM_OVER if left is None else min(STREAM_OVER, left)
        with Session(engine) as s:
            page = queries.list_run_rows(
                s, visible=_local_principal_visible(), filt=filt, limit=size, cursor=cursor
            )
        for row in page.items:
            yield to_json(run_item(row, [])).decode()
        if left is not None:
            left -= len(page.items)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _stream_runs_json(lines: Iterator[str]) -> None:
    """Write runs as one JSON array as they come; count them on stderr."""
    tty = err.is_terminal
    n = 0
    write = sys.stdout.write
    write("[")
    for line in lines:
        write(("\n" if n == 0 else ",\n") + line)
        n += 1
        if n % 5000 == 0:
            if tty:
                err.file.write(f"\r{n:,} runs")
                err.file.flush()
            elif n % 100_000 == 0:
                err.print(f"{n:,} runs so far", highlight=False)
    write("\n]\n" if n else "]\n")
    sys.stdout.flush()
    if tty:
        err.file.write("\r")
    err.print(f"{n:,} runs", highlight=False)


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    from gateway.model import parse_duration

    try:
        return datetime.now(UTC) - parse_duration(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--since: {value!r} is neither a duration (24h) nor an ISO time")
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# -- tokens --------------------------------------------------------------------------------------
@tokens_app.command("create")
def tokens_create(
    subject: Annotated[str, typer.Option(help="who the token acts as")],
    role: Annotated[
        str, typer.Option(help="viewer, operator, approver, auditor, agent, admin, ...")
    ],
    domain: Annotated[str, typer.Option(help="domain the role applies in ('*' = all)")] = "*",
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--ttl", "--expires-in", help="how long it lives, e.g. 30d (default: forever)"
        ),
    ] = None,
    description: str = "",
    kind: Annotated[
        str, typer.Option(help="person, or agent (an AI agent; the only kind MCP accepts)")
    ] = "person",
) -> None:
    """Create an API token. It is printed once and stored only as a hash."""
    from gateway.audit import AuditEntry, append
    from gateway.authz.loader import load_policy
    from gateway.model import parse_duration
    from gateway.store import session_scope
    from gateway.store.services.tokens import TOKEN_KINDS, create_token

    if kind not in TOKEN_KINDS:
        _fail(f"unknown token kind {kind!r}; known kinds: {', '.join(TOKEN_KINDS)}")
    engine = _engine()
    expires = None
    if expires_in:
        try:
            expires = datetime.now(UTC) + parse_duration(expires_in)
        except ValueError as exc:
            _fail(str(exc))
    with session_scope(engine) as s:
        roles = set(load_policy(s).role_names())
        if role not in roles:
            _fail(f"unknown role {role!r}; known roles: {', '.join(sorted(roles))}")
        new = create_token(
            s,
            subject=subject,
            role=role,
            domain=domain,
            description=description,
            expires_at=expires,
            kind=kind,
        )
        append(
            s,
            AuditEntry(
                subject=_local_subject(),
                channel="cli",
                action="token-create",
                target=f"token:{new.record.id}",
                domain=domain,
                decision="allow",
                outcome="ok",
                details={"subject": subject, "role": role, "kind": kind},
            ),
        )
    what = "agent token" if kind == "agent" else "token"
    out.print(f"{what} {new.record.id} for {subject} ({role} in {domain}):")
    print(new.token)
    err.print("store it now: it is not shown again.")


@tokens_app.command("list")
def tokens_list(
    all_: Annotated[bool, typer.Option("--all", help="include revoked")] = False,
    output: OutputOpt = "table",
) -> None:
    """Tokens (never their values)."""
    from gateway.store import session_scope
    from gateway.store.services.tokens import list_tokens

    with session_scope(_engine()) as s:
        rows = [
            {
                "id": t.id,
                "prefix": t.prefix + "…",
                "subject": t.subject,
                "kind": t.kind,
                "role": t.role,
                "domain": t.domain,
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "revoked_at": t.revoked_at,
                "replaced_by": t.replaced_by,
                "last_used_at": t.last_used_at,
            }
            for t in list_tokens(s, include_revoked=all_)
        ]
    _table(
        rows,
        [
            "id",
            "prefix",
            "subject",
            "kind",
            "role",
            "domain",
            "expires_at",
            "revoked_at",
            "replaced_by",
            "last_used_at",
        ],
        output,
    )


@tokens_app.command("revoke")
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by id; requests with it fail from now on."""
    from gateway.audit import AuditEntry, append
    from gateway.store import session_scope
    from gateway.store.services.tokens import revoke_token

    with session_scope(_engine()) as s:
        rec = revoke_token(s, token_id=token_id)
        if rec is None:
            _fail(f"no token with id {token_id}")
        append(
            s,
            AuditEntry(
                subject=_local_subject(),
                channel="cli",
                action="token-revoke",
                target=f"token:{token_id}",
                domain="*",
                decision="allow",
                outcome="ok",
            ),
        )
    out.print(f"token {token_id} revoked")


@tokens_app.command("rotate")
def tokens_rotate(
    token_id: int,
    grace: Annotated[
        str | None,
        typer.Option(
            help="how long the old token keeps working next to the new one, e.g. 15m; "
            "0s revokes it at once (default: ACCORD_TOKEN_ROTATION_GRACE, 1h)"
        ),
    ] = None,
    ttl: Annotated[
        str | None,
        typer.Option(help="how long the new token lives (default: as long as the old one)"),
    ] = None,
) -> None:
    """Replace a token by a new secret with the same subject, role and domain."""
    from gateway.audit import AuditEntry, append
    from gateway.model import parse_duration
    from gateway.settings import Settings
    from gateway.store import session_scope
    from gateway.store.services.tokens import AlreadyRotated, AuthFailure, rotate_token

    try:
        grace_d = (
            parse_duration(grace)
            if grace is not None
            else timedelta(seconds=Settings().token_rotation_grace)
        )
        ttl_d = parse_duration(ttl) if ttl is not None else None
    except ValueError as exc:
        _fail(str(exc))
    try:
        with session_scope(_engine()) as s:
            done = rotate_token(s, token_id=token_id, grace=grace_d, ttl=ttl_d)
            if done is None:
                _fail(f"no token with id {token_id}")
            new, old = done
            append(
                s,
                AuditEntry(
                    subject=_local_subject(),
                    channel="cli",
                    action="token-rotate",
                    target=f"token:{token_id}",
                    domain="*",
                    decision="allow",
                    outcome="ok",
                    details={"new_token": new.record.id, "grace_seconds": grace_d.total_seconds()},
                ),
            )
    except (AlreadyRotated, AuthFailure) as exc:
        _fail(str(exc))
    until = old.revoked_at or old.expires_at
    out.print(
        f"token {new.record.id} replaces token {token_id} ({old.subject}, {old.role} in "
        f"{old.domain}); token {token_id} "
        + ("is revoked now:" if old.revoked_at else f"works until {until:%Y-%m-%d %H:%M:%S} UTC:")
    )
    print(new.token)
    err.print("store it now: it is not shown again.")


# -- audit ---------------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify() -> None:
    """Prove the audit hash chain; name the first broken record."""
    from gateway.audit import verify
    from gateway.store import session_scope

    with session_scope(_engine()) as s:
        result = verify(s)
    if result.ok:
        out.print(f"audit chain OK: {result.count} records, head {result.head_hash}")
        return
    _fail(
        f"audit chain BROKEN at record {result.first_bad_seq}: {result.problem} "
        f"({result.count} records verified before it)",
        code=2,
    )


@audit_app.command("keygen")
def audit_keygen(
    output: Annotated[Path, typer.Option("--output", help="where to write the private key")],
) -> None:
    """Create an Ed25519 key pair for signing audit exports."""
    from gateway.audit.export import generate_key

    if output.exists():
        _fail(f"{output} exists; refusing to overwrite a key")
    pub = generate_key(output)
    out.print(f"private key written to {output} (mode 0600); set ACCORD_AUDIT_SIGNING_KEY_FILE")
    print(f"public key: {pub}")


@audit_app.command("public-key")
def audit_public_key(server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Print the public key that verifies audit exports (the key is made on first use)."""
    if server:
        body = _api(server, token, "GET", "/api/v1/audit/public-key")
        print(body["public_key"])
        err.print(f"ed25519, {body['origin']} key of {server}", highlight=False)
        return
    from gateway.audit.export import ExportError, signing_key

    settings = Settings()
    try:
        key = signing_key(settings.audit_signing_key_file, settings.data_dir)
    except ExportError as exc:
        _fail(str(exc))
    print(key.public_key)
    origin = "configured" if key.origin == "configured" else "this installation's own"
    err.print(f"ed25519, {origin} key: {key.path}", highlight=False)


def _since_until(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{name}: {value!r} is not an ISO date or date-time")
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@audit_app.command("export")
def audit_export(
    output: Annotated[Path, typer.Option("--output", help="records file to write")],
    format_: Annotated[str, typer.Option("--format", help="jsonl, csv or ocsf")] = "jsonl",
    since: Annotated[str | None, typer.Option(help="ISO date/time (inclusive)")] = None,
    until: Annotated[str | None, typer.Option(help="ISO date/time (exclusive)")] = None,
    domain: Annotated[str | None, typer.Option(help="one domain only")] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Export audit records with a signed manifest (streamed: any size fits)."""
    import io
    import zipfile

    from gateway.audit.export import FORMATS, ExportError, signing_key, write_export

    if format_ not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}")
    s_dt, u_dt = _since_until(since, "--since"), _since_until(until, "--until")
    if server:
        params = {
            "format": format_,
            **({"since": s_dt.isoformat()} if s_dt else {}),
            **({"until": u_dt.isoformat()} if u_dt else {}),
            **({"domain": domain} if domain else {}),
        }
        with _client(server, token) as c:
            resp = c.get("/api/v1/audit/export", params=params)
            if resp.status_code >= 400:
                _fail(f"{resp.status_code}: {resp.text[:500]}")
            with zipfile.ZipFile(io.BytesIO(resp.content)) as z:
                names = z.namelist()
                records = next(n for n in names if not n.endswith(".manifest.json"))
                output.write_bytes(z.read(records))
                output.with_name(output.name + ".manifest.json").write_bytes(
                    z.read(records + ".manifest.json")
                )
        out.print(f"wrote {output} and {output.name}.manifest.json")
        return
    settings = Settings()
    from gateway.store import session_scope

    try:
        key = signing_key(settings.audit_signing_key_file, settings.data_dir).key
        with session_scope(_engine(settings)) as s:
            result = write_export(
                s, fmt=format_, path=output, key=key, since=s_dt, until=u_dt, domain=domain
            )
    except ExportError as exc:
        _fail(str(exc))
    m = result.manifest
    out.print(
        f"exported {m['count']} records (seq {m['first_seq']}..{m['last_seq']}) to "
        f"{output}; manifest {result.manifest_path.name}"
    )


@audit_app.command("verify-export")
def audit_verify_export(
    file: Annotated[Path, typer.Argument(help="the exported records file")],
    public_key: Annotated[
        str | None, typer.Option(help="the signer's public key you trust")
    ] = None,
) -> None:
    """Check an export offline: signature, digest, count and record hashes.

    With --public-key the signature must be by the key you trust; without it, only by the
    key the manifest carries, which proves the files agree, not who made them.
    """
    from gateway.audit.export import manifest_key, verify_export

    problems = verify_export(file, trusted_key=public_key)
    if problems:
        for p in problems:
            err.print(f"[red]✗[/] {p}", highlight=False)
        raise typer.Exit(2)
    if public_key:
        out.print(f"{file}: export verified against the trusted key {public_key}")
        return
    out.print(
        f"{file}: export verified against the key embedded in its manifest "
        f"({manifest_key(file)}), not against a key you trust",
        highlight=False,
    )
    err.print(
        "[yellow]note:[/] anyone who changes the file can re-sign it with a key of their own; "
        "pass --public-key with the gateway's key ('accord audit public-key') to prove "
        "who signed it",
        highlight=False,
    )


# -- approvals, violations, policy -----------------------------------------------------------
def _need_server(server: str | None) -> str:
    if not server:
        _fail(
            "approvals act as a person: pass --server URL and --token (or ACCORD_SERVER, "
            "ACCORD_TOKEN)"
        )
    return server


@approvals_app.command("list")
def approvals_list(
    status: Annotated[str | None, typer.Option(help="pending, approved, rejected, expired")] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Approval requests you may see."""
    params = {"status": status} if status else {}
    rows = _api(_need_server(server), token, "GET", "/api/v1/approvals", params=params)
    for r in rows:
        r["approved_by"] = ",".join(r["approved_by"])
    _table(
        rows,
        [
            "id",
            "status",
            "action",
            "job_uid",
            "requested_by",
            "approved_by",
            "expires_at",
            "reason",
        ],
        output,
    )


def _decide(
    verb: str, request_id: int, reason: str | None, server: str | None, token: str | None
) -> None:
    res = _api(
        _need_server(server),
        token,
        "POST",
        f"/api/v1/approvals/{request_id}/{verb}",
        json={"reason": reason},
    )
    a = res["approval"]
    out.print(
        f"request {a['id']}: {a['status']} ({len(a['approved_by'])}/"
        f"{a['approvals_needed']} approvals)"
    )
    if res.get("result"):
        out.print(f"action: {res['result'].get('outcome')}: {res['result'].get('message')}")


@approvals_app.command("approve")
def approvals_approve(
    request_id: int, reason: str | None = None, server: ServerOpt = None, token: TokenOpt = None
) -> None:
    """Approve a pending request (not your own); the action runs once enough people agree."""
    _decide("approve", request_id, reason, server, token)


@approvals_app.command("reject")
def approvals_reject(
    request_id: int, reason: str | None = None, server: ServerOpt = None, token: TokenOpt = None
) -> None:
    """Reject a pending request."""
    _decide("reject", request_id, reason, server, token)


@violations_app.command("list")
def violations_list(
    status: Annotated[str, typer.Option(help="open, resolved or all")] = "open",
    rule: str | None = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Jobs that fail compliance rules, with evidence."""
    if server:
        params: dict[str, Any] = {
            "status": status,
            "limit": 1000,
            **({"rule": rule} if rule else {}),
        }
        rows = []
        while True:
            page = _api(server, token, "GET", "/api/v1/violations", params=params)
            rows.extend(page["items"])
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
    else:
        from sqlmodel import col, select

        from gateway.store import session_scope
        from gateway.store.tables import Violation

        with session_scope(_engine()) as s:
            stmt = select(Violation).order_by(col(Violation.id))
            if status == "open":
                stmt = stmt.where(col(Violation.resolved_at).is_(None))
            elif status == "resolved":
                stmt = stmt.where(col(Violation.resolved_at).is_not(None))
            if rule:
                stmt = stmt.where(col(Violation.rule) == rule)
            rows = [v.model_dump(mode="json") for v in s.exec(stmt).all()]
    _table(
        rows,
        ["rule", "severity", "job_uid", "first_seen", "last_seen", "resolution", "message"],
        output,
    )


@app.command("compliance-check")
def compliance_check() -> None:
    """Evaluate every compliance rule over every job now."""
    from gateway.governance.compliance import evaluate_all
    from gateway.store import session_scope

    with session_scope(_engine()) as s:
        summary = evaluate_all(s)
    out.print(
        f"{summary.rules} rules over {summary.jobs} jobs: {summary.opened} new, "
        f"{summary.still_open} still open, {summary.resolved} resolved"
    )


@policy_app.command("check")
def policy_check(
    subject: str,
    action: str,
    obj: Annotated[str, typer.Argument(metavar="OBJECT", help="job uid (source/native_id)")],
    domain: Annotated[str | None, typer.Option(help="default: the job's domain")] = None,
) -> None:
    """Explain a decision: allowed or not, and which rule matched."""
    from sqlmodel import select

    from gateway.authz.loader import load_policy
    from gateway.store import session_scope
    from gateway.store.tables import Job

    with session_scope(_engine()) as s:
        policy = load_policy(s)
        if domain is None:
            job = s.exec(select(Job).where(Job.uid == obj)).first()
            if job is None:
                _fail(f"no job {obj!r}: pass --domain to check an object that is not a job")
            domain = job.domain
    decision = policy.decide(subject, domain, obj, action)
    reference = policy.enforce(subject, domain, obj, action)
    verdict = "ALLOW" if decision.allowed else "DENY"
    out.print(f"{verdict}: {subject} {action} {obj} in domain {domain}", highlight=False)
    out.print(f"  {decision.reason}", highlight=False)
    roles = ", ".join(f"{r}@{d}" for r, d in policy.roles_of(subject)) or "none"
    out.print(f"  roles: {roles}", highlight=False)
    out.print(f"  casbin enforce agrees: {'yes' if reference == decision.allowed else 'NO'}")
    raise typer.Exit(0 if decision.allowed else 3)


# -- sync ----------------------------------------------------------------------------------------
@app.command()
def sync(source: Annotated[str, typer.Argument(help="source name")]) -> None:
    """Run one sync pass of a source now and print what changed."""
    import asyncio

    from gateway.sync import SyncManager

    manager = SyncManager(_engine())
    try:
        report = asyncio.run(manager.sync_now(source))
    except KeyError:
        _fail(f"no source named {source!r}")
    out.print_json(
        json.dumps(
            {
                "inventory": report.inventory,
                "runs": report.runs,
                "edges": report.edges,
                "error": report.error,
                "seconds": round(report.seconds, 3),
            }
        )
    )
    if report.error:
        raise typer.Exit(1)


@app.command("mcp")
def mcp_stdio(
    server: ServerOpt = None,
    token: TokenOpt = None,
    on_behalf_of: Annotated[
        str | None,
        typer.Option(
            envvar="ACCORD_ON_BEHALF_OF",
            help="the person this agent acts for (recorded with every call, grants nothing)",
        ),
    ] = None,
) -> None:
    """Serve MCP over stdio for a local AI agent, through a gateway (needs an agent token)."""
    import anyio

    from gateway.agents.stdio import serve_stdio

    if not server:
        _fail("accord mcp talks to a gateway: pass --server URL (or set ACCORD_SERVER)")
    url = server
    if not token:
        _fail("accord mcp needs an agent token: pass --token or set ACCORD_TOKEN")
    # Nothing but MCP may reach stdout: the checks below report on stderr only.
    with httpx.Client(
        base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as c:
        try:
            resp = c.get("/api/v1/me")
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {url}: {exc}")
    if resp.status_code != 200:
        _fail(f"the gateway refused the token ({resp.status_code}): {resp.text[:300]}")
    if resp.json().get("kind") != "agent":
        _fail(
            "accord mcp needs an agent token (create one with 'accord tokens create --kind "
            "agent'): an agent's calls are governed and recorded as the agent's"
        )
    anyio.run(partial(serve_stdio, url, token, on_behalf_of=on_behalf_of))


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def agent(ctx: typer.Context) -> None:
    """Run the outbound-only host agent (see 'accord agent --help')."""
    try:
        from adapters.cron.agent import main as agent_main
    except ModuleNotFoundError:
        _fail("the cron adapter (which provides the agent) is not installed")
    raise typer.Exit(agent_main(list(ctx.args)))
