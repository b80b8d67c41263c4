"""``accord agent``: the outbound-only process on a cron host.

    accord agent --server URL --token-file FILE --source NAME [--once] [--interval 30s]
                 [--crontab-root DIR] [--spool DIR ...] [--state FILE] [--syslog auto|off|PATH]
                 [--log-level N] [--host NAME] [--timezone ZONE] [--grace 5m] [--batch 500]

Each round it discovers the host's crontabs, reads the spools of ``accord exec``, cron's
log and computes missed runs, and pushes them to
``POST {server}/api/v1/sources/{source}/push`` with the token. The full inventory goes
along when it changed (and every ``--inventory-every``); every round pushes at least the
source's health, which keeps the source from going stale.

Delivery is at least once and idempotent: a spool file is deleted, and the log cursor
moved, only after the gateway answered 2xx; run ids never change, so a batch sent again
after a crash changes nothing at the gateway. While the gateway is unreachable the
wrapper keeps spooling and the agent catches up later, oldest runs first.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import random
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from gateway.model import JobRecord, RunRecord, SourceHealth, parse_duration, parse_retry_after

from . import spool as _spool
from .config import CronConfig
from .missed import missed_runs
from .observe import HostReader, JobIndex, syslog_record
from .parser import Discovery
from .spool_read import DAMAGED_DIR, SpoolRun, inspect_run, iter_runs
from .syslog import FileCursor, Pairing

__all__ = ["Agent", "AgentOptions", "PushError", "main"]

_log = logging.getLogger("accord.agent")
_STATE_VERSION = 1
_MAX_BACKOFF = 300.0
_STARTS_KEPT = 500


class PushError(Exception):
    """The gateway did not take a push. ``retry_after`` in seconds when it said so."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass
class AgentOptions:
    server: str
    source: str
    token: str = field(repr=False)
    config: CronConfig
    state_path: Path
    batch: int = 500
    inventory_every: timedelta = timedelta(minutes=5)
    timeout: float = 10.0


@dataclass
class StepResult:
    ok: bool
    runs_sent: int = 0
    inventory_sent: bool = False
    error: str | None = None
    retry_after: float | None = None
    permanent: bool = False


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("accord")
    except ImportError:
        return "unknown"


class _State:
    """What the agent remembers between rounds (written atomically after each 2xx)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.delivered: dict[str, int] = {}  # spool file → events delivered (-1: lost)
        self.cursor: FileCursor | None = None
        self.pairing: dict[str, Any] = {}
        self.since: dict[str, str] = {}
        self.starts: dict[str, list[str]] = {}
        self.missed_after: dict[str, str] = {}
        self.inventory_hash = ""
        self.inventory_at = ""
        self.load()

    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            _log.warning("agent state %s unreadable (%s): starting afresh", self.path, exc)
            return
        if not isinstance(data, dict) or data.get("v") != _STATE_VERSION:
            return
        self.delivered = {str(k): int(v) for k, v in (data.get("delivered") or {}).items()}
        self.cursor = FileCursor.from_json(data.get("cursor"))
        self.pairing = data.get("pairing") or {}
        self.since = dict(data.get("since") or {})
        self.starts = {k: list(v) for k, v in (data.get("starts") or {}).items()}
        self.missed_after = dict(data.get("missed_after") or {})
        self.inventory_hash = str(data.get("inventory_hash") or "")
        self.inventory_at = str(data.get("inventory_at") or "")

    def save(self) -> None:
        data = {
            "v": _STATE_VERSION,
            "delivered": self.delivered,
            "cursor": self.cursor.to_json() if self.cursor else None,
            "pairing": self.pairing,
            "since": self.since,
            "starts": self.starts,
            "missed_after": self.missed_after,
            "inventory_hash": self.inventory_hash,
            "inventory_at": self.inventory_at,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class _Item:
    """A run to push and what to do once the gateway has it."""

    record: RunRecord
    path: Path | None = None  # spool file
    events: int = 0
    finished: bool = False
    damage: str | None = None  # the file is set aside, not deleted, once delivered


def _now() -> datetime:
    """This host's clock (with the test skew of ``ACCORD_TEST_CLOCK_SKEW``, if set)."""
    return datetime.now(UTC) + timedelta(seconds=_spool.clock_skew())


def _inventory_hash(records: Sequence[JobRecord]) -> str:
    rows = [r.model_dump(mode="json", exclude={"next_run_at"}) for r in records]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


class Agent:
    """One cron host pushing to one source of a gateway."""

    def __init__(self, options: AgentOptions, client: httpx.Client | None = None) -> None:
        self.options = options
        self.reader = HostReader(options.config)
        self.state = _State(options.state_path)
        self.client = client or httpx.Client(timeout=options.timeout)
        self.batch = max(1, options.batch)
        self.url = f"{options.server.rstrip('/')}/api/v1/sources/{options.source}/push"

    def close(self) -> None:
        self.client.close()

    # -- collecting --------------------------------------------------------------------

    def _watch(self, discovery: Discovery, now: datetime) -> dict[str, datetime]:
        active = {
            x.native_id for x in discovery.lines if not x.paused and not x.problems and x.schedule
        }
        since = {k: v for k, v in self.state.since.items() if k in active}
        for job_id in active:
            since.setdefault(job_id, now.isoformat())
        self.state.since = since
        return {k: datetime.fromisoformat(v) for k, v in since.items()}

    def _spool_items(self, discovery: Discovery, index: JobIndex, now: datetime) -> list[_Item]:
        items: list[tuple[int, _Item]] = []
        known: set[str] = set()
        for directory in self.reader.spool_dirs(discovery):
            for path in iter_runs(directory):
                known.add(str(path))
                run, damage = inspect_run(path)  # the file times are the real clock
                if run is None:
                    if damage:  # nothing in it can be delivered
                        self._set_aside(path, damage, delivered=False)
                    continue
                done = self.state.delivered.get(str(path), 0)
                finished = run.end is not None
                lost = not finished and not run.wrapper_alive()
                if damage and not (finished or lost):
                    damage = None  # its wrapper still writes: look again when it ended
                if done == -1 or (finished and done >= run.events):
                    # delivered before a crash; only the cleanup is left
                    if damage:
                        self._set_aside(path, damage, delivered=True)
                    else:
                        self._forget(path)
                    continue
                if done >= run.events and not lost:
                    continue  # nothing new (a run still going)
                record = self.reader.spool_record(run, index)
                if record is None and index.for_spool(run.start) is not None:
                    # A job of this host, but its events do not make a valid run.
                    self._set_aside(path, damage or "its events do not form a valid run", False)
                    continue
                if record is None:
                    self._unmatched(path, run, now)
                    continue
                if damage:
                    note = f"the agent found its spool file damaged ({damage})"
                    message = f"{record.message}; {note}" if record.message else note
                    record = record.model_copy(update={"message": message})
                if record.started_at is not None:
                    self._started(record.job_native_id, record.started_at)
                items.append(
                    (
                        run.started_ns,
                        _Item(
                            record,
                            path,
                            -1 if lost else run.events,
                            finished or lost,
                            damage,
                        ),
                    )
                )
        self.state.delivered = {k: v for k, v in self.state.delivered.items() if k in known}
        items.sort(key=lambda x: x[0])
        return [item for _, item in items]

    def _unmatched(self, path: Path, run: SpoolRun, now: datetime) -> None:
        """A run of no crontab line (accord exec by hand, a removed line): dropped after
        the retention period."""
        age = now.timestamp() - run.started_ns / 1e9
        if run.end is not None and age > self.options.config.retention.total_seconds():
            self._forget(path)

    def _set_aside(self, path: Path, damage: str, delivered: bool) -> None:
        """Move a damaged run file to the spool's ``damaged/`` folder (with a note saying
        why), so that it is neither retried forever nor deleted unseen; the source's
        health lists it until a person removes it."""
        aside = path.parent.parent / DAMAGED_DIR
        what = "its intact part was delivered" if delivered else "nothing in it could be delivered"
        try:
            aside.mkdir(exist_ok=True)
            os.replace(path, aside / path.name)
            (aside / f"{path.name}.reason").write_text(
                f"{datetime.now(UTC).isoformat()} {damage}; {what}\n", encoding="utf-8"
            )
        except OSError as exc:
            _log.error("damaged spool file %s (%s) cannot be set aside: %s", path, damage, exc)
            return
        self.state.delivered.pop(str(path), None)
        _log.error("damaged spool file %s: %s; %s; moved to %s", path.name, damage, what, aside)

    def _damaged(self, discovery: Discovery) -> list[str]:
        """One health problem per spool holding damaged run files."""
        out: list[str] = []
        for directory in self.reader.spool_dirs(discovery):
            aside = directory / DAMAGED_DIR
            try:
                names = sorted(n for n in os.listdir(aside) if n.endswith(".jsonl"))
            except OSError:
                continue
            if names:
                out.append(
                    f"{len(names)} damaged spool file(s) set aside in {aside} "
                    f"(the newest: {names[-1]}; the .reason file beside each says what is "
                    "wrong; remove them once inspected)"
                )
        return out

    def _forget(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()
        self.state.delivered.pop(str(path), None)

    def _started(self, job_id: str, at: datetime) -> None:
        seen = self.state.starts.setdefault(job_id, [])
        text = at.astimezone(UTC).isoformat()
        if text not in seen:
            seen.append(text)
            seen.sort()
            del seen[:-_STARTS_KEPT]

    def _starts(self, now: datetime) -> dict[str, list[datetime]]:
        horizon = now - self.options.config.lookback - 2 * self.options.config.grace
        out: dict[str, list[datetime]] = {}
        for job_id, texts in list(self.state.starts.items()):
            kept = [t for t in texts if datetime.fromisoformat(t) >= horizon]
            if kept:
                self.state.starts[job_id] = kept
                out[job_id] = [datetime.fromisoformat(t) for t in kept]
            else:
                del self.state.starts[job_id]
        return out

    # -- pushing -----------------------------------------------------------------------

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.post(
                self.url,
                json=body,
                headers={
                    "Authorization": f"Bearer {self.options.token}",
                    # This host's clock: the gateway measures how far off it is.
                    "Date": format_datetime(_now(), usegmt=True),
                },
            )
        except httpx.HTTPError as exc:
            raise PushError(f"cannot reach {self.options.server}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                data = {}
            return data if isinstance(data, dict) else {}
        detail = _error_detail(response)
        retry_after = _retry_after(response)
        reasons = {
            401: "the gateway refused the token (401)",
            403: f"this token may not push to source {self.options.source!r} (403)",
            404: f"the gateway has no source {self.options.source!r} (404)",
            409: f"source {self.options.source!r} does not accept pushes (409)",
            413: "the push was too large (413)",
            422: "the gateway rejected the push as invalid (422)",
        }
        reason = reasons.get(status, f"the gateway answered {status}")
        raise PushError(
            f"{reason}: {detail}" if detail else reason, status=status, retry_after=retry_after
        )

    def step(self) -> StepResult:
        """One round: collect, push in batches, acknowledge. Never raises for the gateway's
        answers; returns what happened."""
        now = _now()
        try:
            discovery = self.reader.discover()
        except OSError as exc:
            return StepResult(False, error=f"cannot read the crontabs: {exc}")
        since = self._watch(discovery, now)
        index = JobIndex(discovery.lines)
        inventory = [line.to_record(now) for line in discovery.lines]
        inv_hash = _inventory_hash(inventory)
        due = (
            not self.state.inventory_at
            or now - datetime.fromisoformat(self.state.inventory_at) >= self.options.inventory_every
        )
        send_inventory = inv_hash != self.state.inventory_hash or due

        items = self._spool_items(discovery, index, now)
        pairing = Pairing.from_json(json.loads(json.dumps(self.state.pairing)))
        read = self.reader.read_log(self.state.cursor, pairing, index, now)
        for job_id, at in read.starts:
            self._started(job_id, at)
        for run, line in read.reported:
            items.append(
                _Item(syslog_record(run, line.native_id, self.reader.host, self.reader.log_level))
            )
        after = {k: datetime.fromisoformat(v) for k, v in self.state.missed_after.items()}
        watched = self.reader.watched(discovery, since)
        missed = missed_runs(
            watched,
            self._starts(now),
            now=now,
            grace=self.options.config.grace,
            lookback=self.options.config.lookback,
            after=after,
        )
        items.extend(_Item(r) for r in missed)
        extra = [read.error] if read.error else []
        extra += self._damaged(discovery)
        health = self.reader.health(
            discovery,
            extra=extra,
            details={
                "mode": "agent",
                "spools": [str(p) for p in self.reader.spool_dirs(discovery)],
                "pending_runs": len(items),
            },
        )
        result = self._push(items, inventory if send_inventory else None, health)
        if result.ok:
            self.state.cursor = read.cursor
            self.state.pairing = pairing.to_json()
            deadline = (now - self.options.config.grace).isoformat()
            self.state.missed_after = {w.job_id: deadline for w in watched}
            if send_inventory:
                self.state.inventory_hash, self.state.inventory_at = inv_hash, now.isoformat()
            result.inventory_sent = send_inventory
        self.state.save()
        return result

    def _push(
        self, items: list[_Item], inventory: list[JobRecord] | None, health: SourceHealth
    ) -> StepResult:
        agent = {"id": self.reader.host, "version": _version()}
        sent = 0
        first = True
        while first or sent < len(items):
            batch = items[sent : sent + self.batch]
            body: dict[str, Any] = {
                "agent": agent,
                "inventory": [j.model_dump(mode="json") for j in inventory]
                if first and inventory is not None
                else None,
                "runs": [i.record.model_dump(mode="json") for i in batch],
                "health": health.model_dump(mode="json") if first else None,
            }
            try:
                self._post(body)
            except PushError as exc:
                if exc.status == 413 and self.batch > 1:
                    self.batch = max(1, self.batch // 2)
                    _log.warning("push too large: batches of %d runs from now on", self.batch)
                    continue
                _log.error("push failed: %s", exc)
                permanent = exc.status in (401, 403, 404, 409, 422)
                return StepResult(
                    False,
                    runs_sent=sent,
                    error=str(exc),
                    retry_after=exc.retry_after,
                    permanent=permanent,
                )
            for item in batch:
                self._acknowledge(item)
            sent += len(batch)
            first = False
            self.state.save()
        return StepResult(True, runs_sent=sent)

    def _acknowledge(self, item: _Item) -> None:
        if item.path is None:
            return
        if item.damage:
            self._set_aside(item.path, item.damage, delivered=True)
        elif item.finished:
            self._forget(item.path)
        else:
            self.state.delivered[str(item.path)] = item.events


def _error_detail(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
        if "detail" in data:
            return str(data["detail"])[:500]
    return str(data)[:200]


def _retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="accord agent",
        description="Push this host's crontabs and their runs to an Accord gateway "
        "(outbound only).",
    )
    p.add_argument("--server", required=True, help="the gateway's base URL")
    p.add_argument("--source", required=True, help="the Source's name at the gateway")
    p.add_argument("--token-file", help="file holding the API token")
    p.add_argument(
        "--token-env", default="ACCORD_TOKEN", help="environment variable holding the token"
    )
    p.add_argument("--once", action="store_true", help="push once and exit (0: all delivered)")
    p.add_argument("--interval", default="30s", help="time between rounds (default 30s)")
    p.add_argument("--crontab-root", default="/", help="where etc/ and var/spool/cron/ are")
    p.add_argument("--spool", action="append", help="spool directory of accord exec (repeatable)")
    p.add_argument("--state", help="the agent's state file (default: in the first spool)")
    p.add_argument("--syslog", default="auto", help="cron's log: auto, off or a path")
    p.add_argument("--log-level", type=int, help="cron's -L level (default: from the daemon)")
    p.add_argument("--host", help="host name used in job ids")
    p.add_argument("--timezone", help="the cron daemon's time zone")
    p.add_argument("--grace", default="5m", help="how late a start may be before it is missed")
    p.add_argument("--batch", type=int, default=500, help="runs per push (default 500)")
    p.add_argument("--inventory-every", default="5m", help="resend the inventory this often")
    p.add_argument("--timeout", default="10s", help="HTTP timeout")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            return Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SystemExit(f"accord agent: cannot read the token file: {exc.strerror}") from None
    token = os.environ.get(args.token_env, "").strip()
    if not token:
        raise SystemExit(f"accord agent: no token: give --token-file or set ${args.token_env}")
    return token


def options_from(argv: Sequence[str]) -> tuple[AgentOptions, bool, float]:
    """Parse the command line into options, ``--once`` and the interval in seconds."""
    args = _parser().parse_args(list(argv))
    try:
        config = CronConfig(
            mode="agent",
            root=args.crontab_root,
            host=args.host,
            timezone=args.timezone,
            spool=tuple(args.spool) if args.spool else None,
            syslog=args.syslog,
            log_level=args.log_level,
            grace=parse_duration(args.grace),
        )
        interval = parse_duration(args.interval).total_seconds()
        inventory_every = parse_duration(args.inventory_every)
        timeout = parse_duration(args.timeout).total_seconds()
    except ValueError as exc:
        raise SystemExit(f"accord agent: {exc}") from None
    if args.state:
        state = Path(args.state)
    else:
        base = Path(args.spool[0] if args.spool else _spool.default_dir())
        state = base / f"agent-{args.source}.json"
    options = AgentOptions(
        server=args.server,
        source=args.source,
        token=_token(args),
        config=config,
        state_path=state,
        batch=args.batch,
        inventory_every=inventory_every,
        timeout=timeout,
    )
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    else:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    return options, bool(args.once), max(1.0, interval)


def main(argv: Sequence[str]) -> int:
    """``accord agent ARGS``; returns the exit status."""
    options, once, interval = options_from(argv)
    agent = Agent(options)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    failures = 0
    try:
        while True:
            result = agent.step()
            if result.ok:
                failures = 0
                _log.info(
                    "pushed %d runs%s",
                    result.runs_sent,
                    " and the inventory" if result.inventory_sent else "",
                )
            else:
                failures += 1
            if once:
                if not result.ok:
                    print(f"accord agent: {result.error}", file=sys.stderr, flush=True)
                return 0 if result.ok else 1
            wait = interval
            if not result.ok:
                # Wrong token or source: the operator has to act; do not hammer the gateway.
                backoff = _MAX_BACKOFF if result.permanent else interval * 2 ** min(failures, 8)
                backoff = min(_MAX_BACKOFF, backoff)
                wait = max(result.retry_after or 0.0, backoff * random.uniform(0.5, 1.0))
            if stop.wait(wait):
                return 0
    finally:
        agent.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
