"""Streamed export of runs (NDJSON or CSV) for a filter, in constant memory.

The runs are read newest first in chunks of ``CHUNK`` rows by keyset (sort time, id),
each chunk in its own short read transaction in a worker thread, the next one while
this one is sent. Each NDJSON line is the run exactly as ``GET /api/v1/runs`` lists it.
On SQLite the database builds the whole line (``json_object``), the subject's
``allowed_actions`` included when they depend on the source and domain only (decided
once per pair, handed to SQLite as a CASE); otherwise Python adds them to each line.
Elsewhere each row is serialized with the list endpoint's own encoder.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import cache
from typing import Any

import anyio
from pydantic_core import to_json
from sqlalchemy import (
    ColumnElement,
    Engine,
    Text,
    and_,
    case,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects import sqlite
from sqlmodel import Session

from gateway.actions import RUN_ACTIONS
from gateway.store.engine import is_sqlite
from gateway.store.services import queries
from gateway.store.tables import Job, Run

from .deps import Principal
from .fastread import ActionsOf, run_item

__all__ = ["CHUNK", "CSV_COLUMNS", "sqlite_lines", "stream_runs"]

CHUNK = 5000

CSV_COLUMNS = (
    "uid",
    "source",
    "job_uid",
    "domain",
    "state",
    "native_state",
    "trigger",
    "actor",
    "queued_at",
    "started_at",
    "ended_at",
    "duration_s",
    "attempt",
    "url",
    "message",
    "observed_at",
    "allowed_actions",
    "cancelled_through_accord",
    "cancel_requested_by",
)

_T = Run.__table__.c  # type: ignore[attr-defined]
_J = Job.__table__.c  # type: ignore[attr-defined]


def _text(column: Any) -> Any:
    return type_coerce(column, Text())


def _iso(column: Any) -> ColumnElement[Any]:
    """SQLite's stored 'YYYY-MM-DD HH:MM:SS.ffffff' as the API writes it (ISO 8601, 'Z',
    no fraction when it is zero)."""
    raw = _text(column)
    return case(
        (raw.is_(None), null()),
        (
            func.substr(raw, 21) == "000000",
            func.replace(func.substr(raw, 1, 19), " ", "T") + literal("Z"),
        ),
        else_=func.replace(raw, " ", "T") + literal("Z"),
    )


def _micros_between(start: Any, end: Any) -> Any:
    """Whole microseconds from ``start`` to ``end`` (stored SQLite timestamps)."""
    a, b = _text(start), _text(end)
    # Whole seconds parsed without the fraction: SQLite rounds a parsed time to the
    # millisecond, so '...:00.999999' would count as the next second.
    a_s, b_s = func.substr(a, 1, 19), func.substr(b, 1, 19)
    if sqlite3.sqlite_version_info >= (3, 38):
        # unixepoch() (SQLite 3.38+) is a third cheaper per run than strftime('%s').
        seconds = func.unixepoch(b_s) - func.unixepoch(a_s)
    else:
        seconds = func.strftime("%s", b_s) - func.strftime("%s", a_s)
    return seconds * 1_000_000 + (func.substr(b, 21, 6) - func.substr(a, 21, 6))


def _sqlite_line(actions: ColumnElement[Any] | None = None) -> ColumnElement[Any]:
    """One run as a JSON object, built by SQLite; without ``allowed_actions`` unless
    ``actions`` gives them (as JSON text)."""
    started, ended = _T.started_at, _T.ended_at
    duration = case(
        (
            and_(started.is_not(None), ended.is_not(None)),
            func.max(literal(0.0), _micros_between(started, ended) / literal(1_000_000.0)),
        ),
        else_=null(),
    )
    cancelled = func.json(
        case(
            (and_(_T.cancel_requested_at.is_not(None), _T.state == "cancelled"), "true"),
            else_="false",
        )
    )
    return func.json_object(
        "uid", _T.uid,
        "source", _T.source,
        "job_uid", _T.job_uid,
        "domain", _T.domain,
        "state", _T.state,
        "native_state", _T.native_state,
        "trigger", _T.trigger,
        "actor", _T.actor,
        "queued_at", _iso(_T.queued_at),
        "started_at", _iso(started),
        "ended_at", _iso(ended),
        "duration_s", duration,
        "attempt", _T.attempt,
        "url", _T.url,
        "message", _T.message,
        "observed_at", _iso(_T.observed_at),
        "steps", null(),
        "cancelled_through_accord", cancelled,
        "cancel_requested_by", _T.cancel_requested_by,
        "upstream", null(),
        "downstream", null(),
        *(() if actions is None else ("allowed_actions", func.json(actions))),
        type_=Text(),
    )  # fmt: skip


@cache
def _sqlite_line_sql() -> ColumnElement[Any]:
    """``_sqlite_line`` compiled once to SQL text: building and keying the expression
    tree costs more per request than the query it stands for."""
    sql = _sqlite_line().compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True})
    return literal_column(str(sql), type_=Text())


_UNDECIDED = '"allowed_actions":null}'


def _export_line_sql(session: Session, principal: Principal) -> ColumnElement[Any] | None:
    """For an export on SQLite: each run's whole line, ``allowed_actions`` included, built
    by the database — when the subject's grants for the run actions name no job, so that
    the actions depend on the source and domain only. They are decided here once per
    (source, domain) of the jobs and handed to SQLite as a CASE; a run whose pair is not
    among them (its job moved since) gets null there and is decided in Python. None when
    the grants name jobs (then Python adds the actions to each line)."""
    actions = ActionsOf(session, principal, RUN_ACTIONS)
    if not actions.blind:
        return None
    pairs = session.execute(select(_J.source, _J.domain).distinct()).all()
    actions.load_sources({source for source, _ in pairs})
    domains: dict[str, dict[str, str]] = {}
    for source, domain in pairs:
        domains.setdefault(source, {})[domain] = to_json(actions(source, domain, "*")).decode()
    decided: ColumnElement[Any] = null()
    if domains:
        decided = case(
            {
                source: case({d: literal(a) for d, a in by_domain.items()}, value=_T.domain)
                for source, by_domain in domains.items()
            },
            value=_T.source,
        )
    sql = _sqlite_line(decided).compile(
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
    )
    return literal_column(str(sql), type_=Text())


def _export_chunk_sqlite(
    session: Session,
    principal: Principal,
    line: ColumnElement[Any],
    conds: list[ColumnElement[bool]],
    after: tuple[datetime, int] | None,
    size: int,
) -> tuple[list[str], tuple[datetime, int] | None]:
    """A chunk of whole lines made by ``_export_line_sql``'s expression."""
    stmt = (
        select(line, _text(_T.sort_at), _T.id)
        .where(and_(*conds, *_after(after)))
        .order_by(_T.sort_at.desc(), _T.id.desc())
        .limit(size)
    )
    rows = session.execute(stmt).all()
    if not rows:
        return [], None
    lines = [r[0] for r in rows]
    undecided = [i for i, text in enumerate(lines) if text.endswith(_UNDECIDED)]
    if undecided:
        actions = ActionsOf(session, principal, RUN_ACTIONS)
        for i in undecided:
            run = json.loads(lines[i])
            actions.load_sources({run["source"]})
            run["allowed_actions"] = actions(run["source"], run["domain"], run["job_uid"])
            lines[i] = to_json(run).decode()
    return lines, _key(*rows[-1][1:])


def _key(sort_at: str, rid: int) -> tuple[datetime, int]:
    """The keyset key of a run from its stored sort time (text) and id."""
    return datetime.fromisoformat(sort_at).replace(tzinfo=UTC), int(rid)


def _after(key: tuple[datetime, int] | None) -> list[ColumnElement[bool]]:
    if key is None:
        return []
    at, rid = key
    # "sort_at <= at" first: a range the (sort_at, id) index serves; the OR alone makes
    # SQLite read every newer run again for each chunk.
    return [_T.sort_at <= at, or_(_T.sort_at < at, _T.id < rid)]


def sqlite_lines(
    session: Session,
    principal: Principal,
    conds: list[ColumnElement[bool]],
    size: int,
) -> tuple[list[str], list[tuple[str, int]]]:
    """Up to ``size`` runs (newest first) as the JSON texts the list gives, built by
    SQLite, with the subject's ``allowed_actions`` added; and each one's keyset key
    (the stored sort time as text, the id)."""
    stmt = (
        select(_sqlite_line_sql(), _T.source, _T.domain, _T.job_uid, _text(_T.sort_at), _T.id)
        .where(and_(*conds))
        .order_by(_T.sort_at.desc(), _T.id.desc())
        .limit(size)
    )
    rows = session.execute(stmt).all()
    if not rows:
        return [], []
    actions = ActionsOf(session, principal, RUN_ACTIONS)
    actions.load_sources({r[1] for r in rows})
    spliced: dict[tuple[str, str, str], str] = {}
    lines = []
    keys = []
    for line, source, domain, job_uid, sort_at, rid in rows:
        key = actions.key(source, domain, job_uid)
        tail = spliced.get(key)
        if tail is None:
            tail = ',"allowed_actions":' + to_json(actions(source, domain, job_uid)).decode() + "}"
            spliced[key] = tail
        lines.append(line[:-1] + tail)
        keys.append((sort_at, rid))
    return lines, keys


def _chunk_sqlite(
    session: Session,
    principal: Principal,
    conds: list[ColumnElement[bool]],
    after: tuple[datetime, int] | None,
    size: int,
) -> tuple[list[str], tuple[datetime, int] | None]:
    lines, keys = sqlite_lines(session, principal, [*conds, *_after(after)], size)
    if not lines:
        return [], None
    return lines, _key(*keys[-1])


def _chunk_rows(
    session: Session,
    principal: Principal,
    conds: list[ColumnElement[bool]],
    after: tuple[datetime, int] | None,
    size: int,
) -> tuple[list[dict[str, Any]], tuple[datetime, int] | None]:
    stmt = (
        select(Run.__table__)  # type: ignore[attr-defined]
        .where(and_(*conds, *_after(after)))
        .order_by(_T.sort_at.desc(), _T.id.desc())
        .limit(size)
    )
    rows = session.execute(stmt).mappings().all()
    if not rows:
        return [], None
    actions = ActionsOf(session, principal, RUN_ACTIONS)
    actions.load_sources({r["source"] for r in rows})
    items = [run_item(r, actions(r["source"], r["domain"], r["job_uid"])) for r in rows]
    last = rows[-1]
    return items, (last["sort_at"], int(last["id"]))


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return to_json(value).decode()[1:-1]
    if isinstance(value, list):
        return " ".join(value)
    return value


async def stream_runs(
    engine: Engine,
    principal: Principal,
    filt: queries.RunFilter,
    *,
    fmt: str,
    limit: int | None = None,
    chunk: int | None = None,
) -> AsyncIterator[bytes]:
    """The runs ``filt`` selects that ``principal`` may read, newest first, as NDJSON
    lines or CSV rows (with a header), ``chunk`` rows per read and per piece sent.

    The next chunk is read (in a worker thread) while this one is sent: at most two
    chunks are held at once, and the database's work overlaps the socket's."""
    chunk = chunk or CHUNK
    conds = queries.run_conditions(filt, principal.visible())
    fast = fmt == "ndjson" and is_sqlite(engine)
    line: ColumnElement[Any] | None = None
    if fmt == "csv":
        yield (",".join(CSV_COLUMNS) + "\r\n").encode()
    if fast:

        def prepare() -> ColumnElement[Any] | None:
            with Session(engine) as session:
                return _export_line_sql(session, principal)

        line = await anyio.to_thread.run_sync(prepare)

    def read(
        after: tuple[datetime, int] | None, size: int
    ) -> tuple[bytes, tuple[datetime, int] | None, int]:
        with Session(engine) as session:
            if line is not None:
                lines, nxt = _export_chunk_sqlite(session, principal, line, conds, after, size)
            elif fast:
                lines, nxt = _chunk_sqlite(session, principal, conds, after, size)
            else:
                items, nxt = _chunk_rows(session, principal, conds, after, size)
                return _encode(items, fmt), nxt, len(items)
            data = ("\n".join(lines) + "\n").encode() if lines else b""
            return data, nxt, len(lines)

    def start(
        after: tuple[datetime, int] | None, size: int
    ) -> asyncio.Task[tuple[bytes, tuple[datetime, int] | None, int]]:
        task = asyncio.ensure_future(anyio.to_thread.run_sync(read, after, size))
        # Abandoned when the client goes away: its outcome is not wanted then.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    left = limit
    size = chunk if left is None else min(chunk, left)
    pending: asyncio.Task[tuple[bytes, tuple[datetime, int] | None, int]] | None = start(None, size)
    try:
        while pending is not None:
            data, nxt, count = await pending
            pending = None
            if left is not None:
                left -= count
            if count == size and (left is None or left > 0):
                size = chunk if left is None else min(chunk, left)
                pending = start(nxt, size)
            if data:
                yield data
    finally:
        if pending is not None:
            pending.cancel()


def _encode(items: list[dict[str, Any]], fmt: str) -> bytes:
    if not items:
        return b""
    if fmt == "ndjson":
        return b"".join(to_json(item) + b"\n" for item in items)
    out = io.StringIO()
    writer = csv.writer(out)
    for item in items:
        writer.writerow([_csv_value(item[c]) for c in CSV_COLUMNS])
    return out.getvalue().encode()
